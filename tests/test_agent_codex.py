"""The agent choice and the Codex runner's pure parts: per-agent config defaults, argv, strict schemas, prices,
the preflight, the host's default agent, Codex prompt folders. (The real CLI runs in tests/e2e.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from specflow_nb.agent import AgentOptions, SessionMode, build_argv
from specflow_nb.agent.codex import (
    DEFAULT_PRICES,
    agent_options,
    agent_preflight,
    apply_default_agent,
    codex_model,
    configured_model,
    effective_model,
    price_for,
    strict_schema,
    usage_cost,
)
from specflow_nb.agent.prompts import OUTPUT_MODELS, build_step_prompt, json_schema, prompt_agent, prompt_source
from specflow_nb.models import ModelPrice, OrchestrationConfig
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.responses_server import strict_schema_problems


def test_config_defaults_per_agent() -> None:
    claude = OrchestrationConfig()
    assert (claude.agent, claude.agent_command, claude.model) == ("claude", "claude", "sonnet")
    codex = OrchestrationConfig.model_validate({"agent": "codex"})
    assert (codex.agent_command, codex.model) == ("codex", None)
    # A form switched from Claude keeps Claude's defaults in its fields: for Codex they mean "not set".
    switched = OrchestrationConfig.model_validate({"agent": "codex", "agentCommand": "claude", "model": "sonnet"})
    assert (switched.agent_command, switched.model) == ("codex", None)
    named = OrchestrationConfig.model_validate({"agent": "codex", "agentCommand": "/opt/codex", "model": "gpt-5"})
    assert (named.agent_command, named.model) == ("/opt/codex", "gpt-5")
    assert OrchestrationConfig.model_validate(named.model_dump()) == named  # survives the state file
    assert OrchestrationConfig.model_validate({"model": None}).model == "sonnet"
    with pytest.raises(ValueError):
        OrchestrationConfig.model_validate({"agent": "gemini"})


def opts(**kw: object) -> AgentOptions:
    return AgentOptions(agent="codex", command="codex", cwd=Path("/proj"), prompt="p", **kw)  # type: ignore[arg-type]


def test_argv_new_resume_fork_and_read_only() -> None:
    assert build_argv(opts()) == [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "-C",
        "/proj",
        "--sandbox",
        "workspace-write",
        "-c",
        'approval_policy="never"',
        "-",
    ]
    resume = build_argv(opts(session_mode=SessionMode.RESUME, session_id="T1", model="gpt-5"), Path("/r/schema.json"))
    assert resume[-3:] == ["resume", "T1", "-"]
    # The exec options go before the subcommand: a resume does not keep the saved cwd or sandbox.
    assert resume.index("-C") < resume.index("resume") and resume.index("--sandbox") < resume.index("resume")
    assert resume[resume.index("-m") + 1] == "gpt-5"
    assert resume[resume.index("--output-schema") + 1] == "/r/schema.json"
    fork = build_argv(opts(session_mode=SessionMode.FORK, session_id="T1"))
    assert fork[-3:] == ["fork", "T1", "-"]
    decision = build_argv(opts(tools=["Read", "Grep", "Glob"], no_session_persistence=True))
    assert decision[decision.index("--sandbox") + 1] == "read-only" and "--ephemeral" in decision
    # Claude's flags never leak into a Codex argv.
    assert not {"-p", "--max-budget-usd", "--permission-mode", "--allowedTools"} & set(build_argv(opts()))


def test_every_output_schema_is_made_strict() -> None:
    for name, model in OUTPUT_MODELS.items():
        schema = strict_schema(json_schema(model))
        assert strict_schema_problems(schema) == [], name
        assert "default" not in str(schema)
    nested = strict_schema(
        {"type": "object", "properties": {"q": {"type": "array", "items": {"properties": {"a": {}}}}}}
    )
    assert nested["properties"]["q"]["items"]["additionalProperties"] is False
    assert nested["properties"]["q"]["items"]["required"] == ["a"]


def test_prices_and_cost() -> None:
    table = {
        "gpt-5": DEFAULT_PRICES["gpt-5"],
        "team-*": ModelPrice(input_per_mtok=2, cached_input_per_mtok=1, output_per_mtok=4),
    }
    assert price_for("gpt-5", table) is table["gpt-5"]
    assert price_for("team-large", table) is table["team-*"]
    assert price_for("gpt-unknown", table) is None
    usage = {"input_tokens": 1_000_000, "cached_input_tokens": 400_000, "output_tokens": 100_000}
    assert usage_cost(usage, table["team-*"]) == pytest.approx(0.6 * 2 + 0.4 * 1 + 0.1 * 4)
    assert set(DEFAULT_PRICES) >= {"gpt-5", "gpt-5-codex", "o3"}


def test_model_resolution(tmp_path: Path) -> None:
    env = {"CODEX_HOME": str(tmp_path)}
    assert codex_model("sonnet") is None and codex_model("claude-opus-4") is None and codex_model("gpt-5") == "gpt-5"
    assert effective_model(None, env) == "gpt-6.1-sol"  # codex-cli 0.169.0's own default
    (tmp_path / "config.toml").write_text('model = "o3"\n')
    assert configured_model(env) == "o3" and effective_model(None, env) == "o3"
    assert effective_model("gpt-5", env) == "gpt-5"


def test_preflight_refuses_unpriced_missing_and_disallowed(tmp_path: Path) -> None:
    codex = OrchestrationConfig.model_validate({"agent": "codex", "agentCommand": "/bin/true", "model": "gpt-x"})
    check = agent_preflight(codex, EngineSettings())
    assert check.found and any("No price for the Codex model 'gpt-x'" in p for p in check.problems)
    priced = EngineSettings(codex_prices={"gpt-x": DEFAULT_PRICES["gpt-5"]})
    ok = agent_preflight(codex, priced)
    assert ok.problems == [] and any("within one model call" in w for w in ok.warnings)
    missing = agent_preflight(codex.model_copy(update={"agent_command": str(tmp_path / "nope")}), priced)
    assert any("npm install -g @openai/codex" in p for p in missing.problems)
    refused = agent_preflight(codex, priced.model_copy(update={"allowed_agents": ["claude"]}))
    assert any("does not allow the agent 'codex'" in p for p in refused.problems)


def test_host_policy_commands_and_default_agent() -> None:
    cfg = OrchestrationConfig.model_validate({"agent": "codex", "agentCommand": "/home/me/codex"})
    base = AgentOptions(command=cfg.agent_command, cwd=Path("/p"), prompt="x", model="sonnet", extra_args=["--x"])
    mine = agent_options(base, cfg, EngineSettings())
    assert (mine.agent, mine.command, mine.model) == ("codex", "/home/me/codex", None)
    # A host imposing a Claude wrapper never lets the request choose what runs: Codex runs its codex_command or
    # plain `codex`.
    assert agent_options(base, cfg, EngineSettings(agent_command="team-claude")).command == "codex"
    policy = EngineSettings(agent_command="team-claude", codex_command="team-codex", codex_args=["-c", "a=1"])
    pinned = agent_options(base, cfg, policy)
    assert pinned.command == "team-codex" and pinned.extra_args == ["-c", "a=1", "--x"]

    host = EngineSettings(default_agent="codex")
    assert apply_default_agent(OrchestrationConfig(), host).agent == "codex"
    assert apply_default_agent(OrchestrationConfig(), host).agent_command == "codex"
    assert apply_default_agent(OrchestrationConfig(agent="claude"), host).agent == "claude"  # named: kept


def test_codex_prompts_come_from_codex_folders(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / ".codex" / "prompts").mkdir(parents=True)
    (project / ".codex" / "prompts" / "speckit.analyze.md").write_text("Codex analyze for $ARGUMENTS")
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "flow.analyze.md").write_text("Claude analyze")
    (project / ".claude" / "commands" / "flow.merge.md").write_text("Claude merge")
    user = tmp_path / "codex-home"
    (user / "prompts").mkdir(parents=True)
    (user / "prompts" / "flow.verify.md").write_text("User's Codex verify")
    env = {"CODEX_HOME": str(user), "HOME": str(tmp_path)}
    assert prompt_source(project, "analyze", env).skill == "flow.analyze"  # Claude by default
    with prompt_agent("codex"):
        analyze = build_step_prompt(project, "analyze", additional_context="", feature_dir=None, env=env)
        assert analyze.source == "project" and "Codex analyze" in analyze.text
        assert prompt_source(project, "verify", env).source == "user"
        assert prompt_source(project, "merge", env).source == "builtin"  # merging stays the engine's git merge
    assert prompt_source(project, "merge", env).skill == "flow.merge"


def test_config_rebuilt_from_a_codex_run_keeps_the_agent(tmp_path: Path) -> None:
    import json

    from specflow_nb.orchestrator import _Slot  # the rebuild path after a corrupt state file
    from specflow_nb.store import OrchestrationStore

    project = tmp_path / "p"
    run = project / ".specflow" / "workflows" / "x-001-batch1"
    run.mkdir(parents=True)
    argv = ["/opt/codex", "exec", "--json", "-C", str(project), "-m", "gpt-5", "-"]
    (run / "argv.json").write_text(json.dumps({"argv": argv, "agent": "codex"}))
    orch = Orchestrator(tmp_path)
    slot = _Slot(project=project, project_id="p", store=OrchestrationStore(project))
    cfg = orch._config_from_runs(slot, ["x-001-batch1"])
    assert (cfg.agent, cfg.agent_command, cfg.model) == ("codex", "/opt/codex", "gpt-5")


def test_verify_and_merge_strict_schemas_can_ask() -> None:
    for name in ("verify", "merge"):
        schema = strict_schema(json_schema(OUTPUT_MODELS[name]))
        assert "needs_input" in schema["properties"]["status"]["enum"], name
        assert {"status", "questions"} <= set(schema["required"]), name  # strict: Codex must always fill them
        assert schema["properties"]["questions"]["items"]["required"] == ["id", "question", "options"], name
