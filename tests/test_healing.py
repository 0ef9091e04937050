"""Healing: failure context from a real run folder layout; the machine's confirmation and budget rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.agent.claude import AgentOutcome, FailureKind
from specflow_nb.agent.prompts import HealOutput, build_heal_prompt
from specflow_nb.healing import capture_failure_context, transcript_messages
from specflow_nb.machine import heal_confirmed, healer_budget
from specflow_nb.models import BatchItem, BudgetConfig, OrchestrationConfig
from specflow_nb.tasks import parse_tasks

SESSION = "e766bb49-7715-486b-9fee-a8c83ac85fd9"
TASKS_MD = """# Tasks
## Phase 1: Setup
- [x] T001 Create layout
## Phase 2: Core
- [x] T004 Create `Item` in `todo/model.py`
- [ ] T005 Implement `load()` [depends: T004]
- [ ] T006 Implement `save()` [depends: T004]
## Phase 3: Polish
- [ ] T009 Docs
"""
BATCH = BatchItem(index=1, section="Phase 2: Core", task_ids=["T004", "T005", "T006"], workflow_execution_id="run-7")


def _assistant(*content: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    # the shape of reference/claude-code-2.1.197/stream-json.jsonl's assistant line
    line: dict[str, Any] = {
        "type": "assistant",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": list(content)},
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "uuid": "u",
    }
    if error:
        line["error"] = error
    return line


def _tool_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    return {
        "type": "user",
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": text, "is_error": is_error}],
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "uuid": "u",
    }


def write_run(run_dir: Path, *, turns: int = 8, result: dict[str, Any] | None = None, stderr: str = "") -> Path:
    run_dir.mkdir(parents=True)
    lines: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "cwd": "/p", "session_id": SESSION, "tools": ["Bash"], "model": "m"}
    ]
    for i in range(turns):
        lines.append(_assistant({"type": "text", "text": f"Working on step {i}"}))
        lines.append(
            _assistant(
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": f"pytest -q -k t{i}"}}
            )
        )
        lines.append(_tool_result(f"E   ImportError: cannot import name 'load' ({i})", is_error=True))
    if result is not None:
        lines.append({"type": "result", "session_id": SESSION, "num_turns": turns, **result})
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    (run_dir / "stream.jsonl").write_text(text + '{"type": "assistant", "mess')  # a torn last line
    if stderr:
        (run_dir / "stderr.log").write_text(stderr)
    return run_dir


# ---------------------------------------------------------------------------------------------------- context


def test_context_from_a_failed_run(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run-7", stderr="x" * 10_000 + "\nFatal: the tests crashed\n")
    outcome = AgentOutcome(
        execution_id="run-7",
        exit_code=1,
        session_id=SESSION,
        is_error=True,
        failure=FailureKind.PROCESS_FAILED,
        failure_message="The agent process exited with code 1: Fatal: the tests crashed",
        stderr_tail="Fatal: the tests crashed\n",
    )
    ctx = capture_failure_context(run, batch=BATCH, tasks=parse_tasks(TASKS_MD), outcome=outcome)

    assert ctx.batch_index == 1 and ctx.section == "Phase 2: Core"
    assert ctx.failure_kind == "process_failed" and ctx.exit_code == 1
    assert ctx.error_message.startswith("The agent process exited with code 1")
    assert ctx.stderr_tail == "Fatal: the tests crashed\n"
    assert ctx.completed_task_ids == ["T004"] and ctx.remaining_task_ids == ["T005", "T006"]
    assert ctx.failed_run_id == "run-7" and ctx.session_id == SESSION
    # the last 10 conversation messages, oldest first, tool calls and results summarized
    assert len(ctx.transcript) == 10
    assert ctx.transcript[-1].role == "user"
    assert ctx.transcript[-1].text.startswith("[tool result error] E   ImportError")
    assert ctx.transcript[-2].text == "[tool Bash] pytest -q -k t7"
    assert ctx.transcript[-3].text == "Working on step 7"
    # round-trips as camelCase JSON (it goes into the state file / recovery context)
    data = json.loads(ctx.model_dump_json())
    assert data["remainingTaskIds"] == ["T005", "T006"] and type(ctx).model_validate(data) == ctx


def test_context_reads_outcome_and_stderr_from_the_folder_when_not_given(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run-8",
        turns=2,
        result={"subtype": "error_max_budget_usd", "is_error": True, "total_cost_usd": 0.5, "result": ""},
        stderr="budget warning\n",
    )
    ctx = capture_failure_context(run, batch=BATCH, tasks=parse_tasks(TASKS_MD))
    assert ctx.failure_kind == "budget_exceeded"
    assert ctx.stderr_tail == "budget warning\n"
    assert ctx.session_id == SESSION and ctx.failed_run_id == "run-8"
    assert len(ctx.transcript) == 6


def test_clean_exit_with_unchecked_tasks(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run-9", turns=1)
    outcome = {"executionId": "run-9", "exitCode": 0, "sessionId": SESSION, "isError": False, "failure": None}
    ctx = capture_failure_context(run, batch=BATCH, tasks=parse_tasks(TASKS_MD), outcome=outcome)
    assert ctx.failure_kind == "tasks_unchecked"
    assert ctx.error_message == "The run ended with 2 task(s) of the batch unchecked: T005, T006"


def test_missing_run_folder_never_raises(tmp_path: Path) -> None:
    ctx = capture_failure_context(tmp_path / "gone", batch=BATCH, tasks=parse_tasks(""), outcome=None)
    assert ctx.failure_kind == "no_result"
    assert ctx.transcript == [] and ctx.stderr_tail == "" and ctx.session_id is None
    assert ctx.completed_task_ids == [] and ctx.remaining_task_ids == ["T004", "T005", "T006"]
    assert ctx.failed_run_id == "run-7"  # from the batch record


def test_broken_tasks_view_never_raises(tmp_path: Path) -> None:
    class Broken:
        def by_id(self) -> dict[str, Any]:
            raise OSError("tasks.md vanished")

    ctx = capture_failure_context(tmp_path / "gone", batch=BATCH, tasks=Broken(), outcome={"exitCode": 137})
    assert ctx.failure_kind == "process_failed" and ctx.remaining_task_ids == BATCH.task_ids


def test_transcript_of_auth_failure_names_the_error(tmp_path: Path) -> None:
    run = tmp_path / "run-a"
    run.mkdir()
    line = _assistant({"type": "text", "text": "Not logged in · Please run /login"}, error="authentication_failed")
    (run / "stream.jsonl").write_text(json.dumps(line) + "\n")
    (msg,) = transcript_messages(run)
    assert msg.role == "assistant" and "Not logged in" in msg.text and "[error: authentication_failed]" in msg.text


def test_long_messages_are_truncated(tmp_path: Path) -> None:
    run = tmp_path / "run-b"
    run.mkdir()
    (run / "stream.jsonl").write_text(json.dumps(_assistant({"type": "text", "text": "y" * 50_000})) + "\n")
    (msg,) = transcript_messages(run)
    assert len(msg.text) <= 600 and msg.text.endswith("…")


def test_context_feeds_the_heal_prompt(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run-7", turns=1, stderr="boom\n")
    ctx = capture_failure_context(run, batch=BATCH, tasks=parse_tasks(TASKS_MD), outcome={"exitCode": 1})
    text = build_heal_prompt(ctx, additional_context="").text
    assert "T005, T006" in text and "boom" in text and "[tool Bash] pytest -q -k t0" in text


# ---------------------------------------------------------------------------------------------------- confirmation


def test_heal_confirmed_needs_fixed_and_every_task_checked() -> None:
    done = parse_tasks(TASKS_MD.replace("- [ ] T005", "- [x] T005").replace("- [ ] T006", "- [X] T006"))
    half = parse_tasks(TASKS_MD.replace("- [ ] T005", "- [x] T005"))
    fixed = HealOutput(status="fixed", tasks_completed=["T005", "T006"])
    assert heal_confirmed(fixed, done, BATCH)
    assert not heal_confirmed(fixed, half, BATCH)  # the healer's word is not enough
    assert not heal_confirmed(HealOutput(status="partial"), done, BATCH)
    assert not heal_confirmed(None, done, BATCH)
    gone = BatchItem(index=1, section="Phase 2: Core", task_ids=["T004", "T005", "T006", "T099"])
    assert not heal_confirmed(fixed, done, gone)  # a task missing from tasks.md is not done
    assert not heal_confirmed(fixed, done, BatchItem(index=0, section="empty", task_ids=[]))


# ---------------------------------------------------------------------------------------------------- healer run


def _config(**budget: float) -> OrchestrationConfig:
    return OrchestrationConfig(budget=BudgetConfig(**budget), agent_command="my-claude --flag", model="opus")


def test_healer_budget_is_healing_left_capped_by_total_left() -> None:
    cfg = _config(healing_budget=2.0, max_total=50.0)
    assert healer_budget(cfg, healing_spent_usd=0.5, total_spent_usd=10) == 1.5
    assert healer_budget(cfg, healing_spent_usd=0.0, total_spent_usd=49.25) == 0.75
    assert healer_budget(cfg, healing_spent_usd=2.5, total_spent_usd=0) == 0.0


# ---------------------------------------------------------------------------------------------------- lost sessions


def test_lost_session_context_keeps_the_newest_messages_within_3000_characters(tmp_path: Path) -> None:
    from specflow_nb.healing import LOST_SESSION_CHARS, lost_session_context

    run = write_run(tmp_path / "run-lost", turns=30)
    text = lost_session_context(run)
    assert LOST_SESSION_CHARS == 3000 and 0 < len(text) <= 3000
    assert text.splitlines()[-1].startswith("- **user**: [tool result error] E   ImportError") and "(29)" in text
    assert "Working on step 0" not in text  # the oldest are dropped first
    assert lost_session_context(tmp_path / "missing") == ""


def test_lost_session_context_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from specflow_nb.healing import lost_session_context

    secret = "sk-live-0123456789abcdef"
    monkeypatch.setenv("SPECFLOW_TEST_API_KEY", secret)
    run = tmp_path / "run-secret"
    run.mkdir()
    line = _assistant({"type": "text", "text": f"export KEY={secret} then run the tests"})
    (run / "stream.jsonl").write_text(json.dumps(line) + "\n")
    text = lost_session_context(run)
    assert "then run the tests" in text and secret not in text and "***" in text
