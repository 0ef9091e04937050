"""The runner against the REAL Claude Code CLI (2.1.197), pointed at the scripted model server on 127.0.0.1."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from specflow_nb.agent import (
    AgentOptions,
    FailureKind,
    SessionMode,
    StreamEvent,
    SystemInit,
    claude_helper,
    start_run,
    transcript_tail,
)
from tests.support.claude_cli import PINNED_VERSION, claude_version
from tests.support.model_server import ModelServer, text, tool_use

pytestmark = pytest.mark.anyio
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def opts(claude_bin: str, cwd: Path, env: dict[str, str], prompt: str = "Say pong.", **kw: object) -> AgentOptions:
    return AgentOptions(command=claude_bin, cwd=cwd, prompt=prompt, env=env, **kw)  # type: ignore[arg-type]


def folder(cwd: Path, name: str) -> Path:
    return cwd / ".specflow" / "workflows" / name


async def test_pinned_cli_version(claude_bin: str) -> None:
    assert PINNED_VERSION in claude_version(claude_bin)


async def test_plain_run_reports_cost_session_and_model(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    model_server.add_turns(text("pong from the scripted model"))
    events: list[StreamEvent] = []
    run = await start_run(folder(tmp_path, "plain"), opts(claude_bin, tmp_path, cli_env))
    outcome = await run.wait(on_event=events.append)

    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.exit_code == 0
    assert outcome.result_text == "pong from the scripted model"
    assert outcome.cost_usd > 0
    assert outcome.num_turns == 1
    assert outcome.session_id and UUID.match(outcome.session_id)
    assert outcome.model
    init = events[0]
    assert isinstance(init, SystemInit) and init.session_id == outcome.session_id
    assert init.permission_mode == "acceptEdits"
    request = model_server.message_requests[0]
    assert request.body["stream"] is True
    assert request.headers.get("x-api-key") == "sk-ant-test"
    assert "AskUserQuestion" not in request.tool_names  # --disallowedTools reached the CLI


class SpecVerdict(BaseModel):
    name: str
    passed: bool
    findings: list[str]


async def test_typed_structured_output_through_the_helper(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    model_server.add_turns(tool_use("StructuredOutput", name="spec-ok", passed=True, findings=["none"]))
    result = await claude_helper(
        "Judge the spec.", tmp_path, SpecVerdict, preset="decision", command=claude_bin, env=cli_env
    )
    assert result.ok, (result.failure, result.failure_message)
    assert result.value == SpecVerdict(name="spec-ok", passed=True, findings=["none"])
    assert result.cost_usd > 0 and result.session_id and result.duration_s is not None
    # The decision preset is read-only: only Read/Grep/Glob (plus the CLI's StructuredOutput tool) were offered.
    assert sorted(model_server.message_requests[0].tool_names) == ["Glob", "Grep", "Read", "StructuredOutput"]


async def test_missing_structured_output_is_schema_validation_failed(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # The model never calls StructuredOutput (and a wrongly typed call is rejected by the CLI itself).
    model_server.add_turns(tool_use("StructuredOutput", name="x", passed="maybe", findings=[]), text("I refuse."))
    result = await claude_helper("Judge.", tmp_path, SpecVerdict, preset="decision", command=claude_bin, env=cli_env)
    assert result.failure is FailureKind.SCHEMA_VALIDATION_FAILED
    assert result.value is None and result.cost_usd > 0


async def test_resume_and_fork(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    model_server.add_turns(text("first"), text("second"), text("forked"))
    first = await (await start_run(folder(tmp_path, "a"), opts(claude_bin, tmp_path, cli_env))).wait()
    assert first.ok and first.session_id

    resume = opts(claude_bin, tmp_path, cli_env, "Again.", session_mode=SessionMode.RESUME, session_id=first.session_id)
    second = await (await start_run(folder(tmp_path, "b"), resume)).wait()
    assert second.ok and second.session_id == first.session_id
    history = model_server.message_requests[1].messages
    assert any("first" in str(m.get("content")) for m in history)  # the resumed run saw the earlier turn

    fork = opts(claude_bin, tmp_path, cli_env, "Branch.", session_mode=SessionMode.FORK, session_id=first.session_id)
    forked = await (await start_run(folder(tmp_path, "c"), fork)).wait()
    assert forked.ok and forked.result_text == "forked"
    assert forked.session_id and forked.session_id != first.session_id


async def test_unknown_session_is_invalid_session_and_helper_retries_new(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = "99999999-2222-4333-8444-555555555555"
    o = opts(claude_bin, tmp_path, cli_env, session_mode=SessionMode.RESUME, session_id=unknown)
    outcome = await (await start_run(folder(tmp_path, "bad"), o)).wait()
    assert outcome.failure is FailureKind.INVALID_SESSION
    assert "No conversation found" in outcome.stderr_tail

    model_server.add_turns(tool_use("StructuredOutput", name="healed", passed=True, findings=[]))
    healed = await claude_helper(
        "Heal.", tmp_path, SpecVerdict, preset="healing", session_id=unknown, command=claude_bin, env=cli_env
    )
    assert healed.ok, healed.failure_message
    assert healed.value is not None and healed.value.name == "healed"
    assert any("retried as a new session" in w for w in healed.warnings)


async def test_budget_cap_is_budget_exceeded(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    model_server.add_turns(text("expensive"))
    o = opts(claude_bin, tmp_path, cli_env, max_budget_usd=0.00001)
    outcome = await (await start_run(folder(tmp_path, "budget"), o)).wait()
    assert outcome.failure is FailureKind.BUDGET_EXCEEDED
    assert outcome.subtype == "error_max_budget_usd"
    assert outcome.cost_usd > 0  # the money spent before the cap is still recorded


async def test_max_turns(claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path) -> None:
    model_server.add_turns(tool_use("Bash", command="echo 1"), tool_use("Bash", command="echo 2"), text("x"))
    o = opts(claude_bin, tmp_path, cli_env, max_turns=1)
    outcome = await (await start_run(folder(tmp_path, "turns"), o)).wait()
    assert outcome.failure is FailureKind.MAX_TURNS


async def test_not_logged_in_is_auth_failed(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "ANTHROPIC_API_KEY": ""}  # no credentials at all
    outcome = await (await start_run(folder(tmp_path, "auth"), opts(claude_bin, tmp_path, env))).wait()
    assert outcome.failure is FailureKind.AUTH_FAILED
    assert "Not logged in" in (outcome.result_text or "")
    assert outcome.cost_usd == 0
    assert model_server.message_requests == []  # it never reached the model


async def test_bypass_permissions_as_root_is_permission_refused(
    claude_bin: str, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the CLI refuses to bypass permissions only when run as root")
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    o = opts(claude_bin, tmp_path, cli_env, permission_mode="bypassPermissions")
    outcome = await (await start_run(folder(tmp_path, "root"), o)).wait()
    assert outcome.failure is FailureKind.PERMISSION_REFUSED


async def test_model_checks_a_task_with_the_cli_edit_tool(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], sample_project: Path
) -> None:
    tasks_md = sample_project / "specs" / "0001-todo-cli" / "tasks.md"
    before = tasks_md.read_text()
    model_server.add_turns(
        tool_use("Read", file_path=str(tasks_md)),  # the CLI refuses an Edit of a file not read first
        tool_use("Edit", file_path=str(tasks_md), old_string="- [ ] T001 ", new_string="- [x] T001 "),
        text("Checked T001."),
    )
    prompt = 'Execute only the "Phase 1: Setup" section (T001). Do NOT work on tasks from other sections.'
    run = await start_run(folder(sample_project, "edit"), opts(claude_bin, sample_project, cli_env, prompt))
    outcome = await run.wait()

    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.num_turns == 3
    assert tasks_md.read_text() == before.replace("- [ ] T001 ", "- [x] T001 ")
    edit_result = model_server.message_requests[2].tool_results()[0]
    assert "updated successfully" in str(edit_result["content"])
    tail = transcript_tail(run.run_dir, n=4)
    assert [m["type"] for m in tail] == ["user", "assistant", "user", "assistant"]
