"""A host's settings (the server's traitlets) against a request's config; a start claimed but never saved."""

import sys
from pathlib import Path

import anyio

from specflow_nb import machine
from specflow_nb.demo import prepare_sample
from specflow_nb.models import OrchestrationConfig, utcnow
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore


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


def test_a_start_claimed_but_never_saved_is_started_by_the_next_host(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    agent = str(Path(sys.executable).parent / "specflow-nb-demo-agent")
    store = OrchestrationStore(project)
    claim = machine.new_execution("claim-1", "todo", OrchestrationConfig(agent_command=agent), utcnow())
    store.save(claim)  # what a host writes under the lock right before applying Started, then dies

    async def main() -> None:
        async with Orchestrator(tmp_path) as orch:
            ex = orch.status("todo")
            with anyio.fail_after(60):
                while ex is None or ex.status.value not in ("waiting_merge", "needs_attention"):
                    ex = await orch.wait_for_change("todo", ex.version if ex else 0, 10)
            assert ex.id == "claim-1" and ex.status.value == "waiting_merge"
            assert ex.decision_log[0].decision == "start"
            assert any(d.decision == "step_skipped" for d in ex.decision_log)  # smart config applied as at start

    anyio.run(main)
