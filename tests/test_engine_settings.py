"""A host's settings (the server's traitlets) against a request's config."""

from pathlib import Path

from specflow_nb.orchestrator import EngineSettings, Orchestrator


def test_host_agent_command_wins_and_defaults_fill_only_what_the_request_left_out(tmp_path: Path) -> None:
    orch = Orchestrator(
        tmp_path, EngineSettings(agent_command="team-claude", default_model="opus", stale_after_seconds=60)
    )
    cfg = orch._effective_config({"agentCommand": "my-claude", "model": "haiku"})
    assert cfg.agent_command == "team-claude"  # policy: a team's wrapper is not bypassed by a request
    assert cfg.model == "haiku" and cfg.stale_after_seconds == 60
    assert orch._effective_config(None).model == "opus"


def test_without_host_settings_the_request_decides(tmp_path: Path) -> None:
    cfg = Orchestrator(tmp_path)._effective_config({"agentCommand": "my-claude"})
    assert cfg.agent_command == "my-claude" and cfg.model == "sonnet"
