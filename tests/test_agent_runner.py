"""The agent runner through real processes: the DEMO agent (python -m specflow_nb.demo.demo_agent) as the command."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from specflow_nb.agent import (
    AgentOptions,
    AgentRunError,
    FailureKind,
    SessionMode,
    StreamEvent,
    SystemInit,
    attach_run,
    read_outcome,
    start_run,
    transcript_tail,
)
from specflow_nb.procs import create_time

DEMO = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
BATCH_PROMPT = (
    'Implement the batch.\nExecute only the "Phase 2: Foundational - model and storage" section '
    "(T004, T005, T006, T007). Do NOT work on tasks from other sections."
)
SCHEMA = {
    "type": "object",
    "properties": {"status": {"enum": ["completed", "failed"]}, "tasksCompleted": {"type": "array"}},
    "required": ["status", "tasksCompleted"],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def opts(project: Path, scenario: str = "success", prompt: str = BATCH_PROMPT, **kw: object) -> AgentOptions:
    env = {"SPECFLOW_DEMO_SCENARIO": scenario, **kw.pop("env", {})}  # type: ignore[dict-item]
    return AgentOptions(command=DEMO, cwd=project, prompt=prompt, env=env, **kw)  # type: ignore[arg-type]


def checked(project: Path) -> set[str]:
    text = (project / "specs" / "0001-todo-cli" / "tasks.md").read_text()
    return {line.split()[2] for line in text.splitlines() if line.startswith("- [x] ")}


def run_dir(project: Path, name: str = "run-1") -> Path:
    return project / ".specflow" / "workflows" / name


@pytest.mark.anyio
async def test_success_run_checks_tasks_and_records_everything(sample_project: Path) -> None:
    events: list[StreamEvent] = []
    secret = "sk-ant-very-secret-value"
    run = await start_run(
        run_dir(sample_project),
        opts(sample_project, output_schema=SCHEMA, env={"ANTHROPIC_API_KEY": secret}),
    )
    outcome = await run.wait(on_event=events.append)

    assert outcome.ok, outcome.failure_message
    assert outcome.exit_code == 0
    assert outcome.cost_usd == pytest.approx(0.01)
    assert outcome.structured_output == {"status": "completed", "tasksCompleted": ["T004", "T005", "T006", "T007"]}
    assert isinstance(events[0], SystemInit)
    assert outcome.session_id == events[0].session_id and outcome.model == "demo-sonnet"
    assert events[-1].type == "result"
    assert checked(sample_project) == {"T004", "T005", "T006", "T007"}

    folder = run.run_dir
    assert folder.name == run.execution_id == outcome.execution_id
    assert (folder / "prompt.md").read_text() == BATCH_PROMPT
    argv = json.loads((folder / "argv.json").read_text())
    assert argv["argv"][-2:] == ["--permission-mode", "acceptEdits"]
    assert argv["envKeys"] == ["ANTHROPIC_API_KEY", "SPECFLOW_DEMO_SCENARIO"]
    pid = json.loads((folder / "pid.json").read_text())
    assert pid["pid"] == run.pid and pid["createTime"] > 0
    for f in folder.iterdir():
        assert secret not in f.read_text(errors="replace"), f"secret leaked into {f.name}"
    assert read_outcome(folder) == outcome  # cached in outcome.json
    assert json.loads((folder / "outcome.json").read_text())["cost_usd"] == 0.01


@pytest.mark.anyio
async def test_partial_run_leaves_tasks_unchecked_but_succeeds(sample_project: Path) -> None:
    outcome = await (await start_run(run_dir(sample_project), opts(sample_project, "partial"))).wait()
    assert outcome.ok
    assert checked(sample_project) == {"T004", "T005"}


@pytest.mark.parametrize(
    ("scenario", "extra", "kind", "cost"),
    [
        ("auth_error", {}, FailureKind.AUTH_FAILED, 0.0),
        ("budget_error", {}, FailureKind.BUDGET_EXCEEDED, 0.01),
        ("success", {"max_budget_usd": 0.001}, FailureKind.BUDGET_EXCEEDED, 0.01),
        ("max_turns_error", {"max_turns": 2}, FailureKind.MAX_TURNS, 0.01),
        ("no_structured_output", {"output_schema": SCHEMA}, FailureKind.SCHEMA_VALIDATION_FAILED, 0.01),
        ("crash", {}, FailureKind.PROCESS_FAILED, 0.0),
        (
            "success",
            {"session_mode": SessionMode.RESUME, "session_id": "99999999-2222-4333-8444-555555555555"},
            FailureKind.INVALID_SESSION,
            0.0,
        ),
    ],
)
@pytest.mark.anyio
async def test_typed_failures(sample_project: Path, scenario: str, extra: dict, kind: FailureKind, cost: float) -> None:
    outcome = await (await start_run(run_dir(sample_project), opts(sample_project, scenario, **extra))).wait()
    assert outcome.failure is kind, outcome
    assert not outcome.ok
    assert outcome.cost_usd == pytest.approx(cost)  # failed runs are paid for too
    assert outcome.failure_message and len(outcome.failure_message) > 20
    if kind is FailureKind.PROCESS_FAILED:
        assert outcome.exit_code == 1
        assert "simulated crash" in outcome.stderr_tail
        assert "exit code 1" in outcome.failure_message
        # the folder is named (.specflow/ is hidden in JupyterLab's file browser)
        run_name = outcome.execution_id
        assert f"See .specflow/workflows/{run_name}/stderr.log." in outcome.failure_message


@pytest.mark.anyio
async def test_session_in_use_is_invalid_session(sample_project: Path) -> None:
    first = await (await start_run(run_dir(sample_project, "a"), opts(sample_project, prompt="hello"))).wait()
    assert first.ok and first.session_id
    again = opts(sample_project, prompt="hello", session_id=first.session_id)
    second = await (await start_run(run_dir(sample_project, "b"), again)).wait()
    assert second.failure is FailureKind.INVALID_SESSION
    assert "already in use" in second.stderr_tail


@pytest.mark.anyio
async def test_resume_and_fork_keep_or_change_the_session(sample_project: Path) -> None:
    first = await (await start_run(run_dir(sample_project, "a"), opts(sample_project, prompt="hello"))).wait()
    resumed = opts(sample_project, prompt="more", session_mode=SessionMode.RESUME, session_id=first.session_id)
    forked = opts(sample_project, prompt="more", session_mode=SessionMode.FORK, session_id=first.session_id)
    r = await (await start_run(run_dir(sample_project, "b"), resumed)).wait()
    f = await (await start_run(run_dir(sample_project, "c"), forked)).wait()
    assert r.ok and r.session_id == first.session_id
    assert f.ok and f.session_id not in (None, first.session_id)


@pytest.mark.anyio
async def test_permission_refusal_as_root_is_typed(sample_project: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the CLI only refuses to bypass permissions when run as root")
    o = opts(sample_project, permission_mode="bypassPermissions", env={"IS_SANDBOX": ""})
    outcome = await (await start_run(run_dir(sample_project), o)).wait()
    assert outcome.failure is FailureKind.PERMISSION_REFUSED
    assert "acceptEdits" in (outcome.failure_message or "")


@pytest.mark.anyio
async def test_missing_command_is_not_installed(tmp_path: Path) -> None:
    with pytest.raises(AgentRunError) as err:
        await start_run(tmp_path / "run", AgentOptions(command="no-such-claude-xyz", cwd=tmp_path, prompt="hi"))
    assert err.value.kind is FailureKind.NOT_INSTALLED
    assert "npm install -g @anthropic-ai/claude-code" in str(err.value)


@pytest.mark.anyio
async def test_timeout_terminates_the_process_group(sample_project: Path) -> None:
    run = await start_run(run_dir(sample_project), opts(sample_project, "hang", timeout_seconds=1.0))
    outcome = await run.wait()
    assert outcome.failure is FailureKind.TIMEOUT
    assert outcome.exit_code == -signal.SIGTERM
    assert create_time(run.pid) is None  # reaped, gone


@pytest.mark.anyio
async def test_kill_escalates_to_sigkill_when_sigterm_is_ignored(sample_project: Path) -> None:
    run = await start_run(run_dir(sample_project), opts(sample_project, "stubborn_hang"))
    events: list[StreamEvent] = []

    async def waiter() -> None:
        nonlocal outcome
        outcome = await run.wait(on_event=events.append)

    outcome = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        with anyio.fail_after(10):
            while len(events) < 2:  # init + "hanging" message: the SIGTERM handler is installed by now
                await anyio.sleep(0.05)
        await run.kill(grace=0.5)
    assert outcome is not None
    assert outcome.exit_code == -signal.SIGKILL
    assert outcome.failure is FailureKind.CANCELLED


@pytest.mark.anyio
async def test_stall_callback_fires_without_killing(sample_project: Path) -> None:
    stalls: list[float] = []
    o = opts(sample_project, "slow", env={"SPECFLOW_DEMO_DELAY": "0.5"}, prompt="Run the analysis.")
    run = await start_run(run_dir(sample_project), o)
    outcome = await run.wait(stale_after=0.2, on_stall=lambda: stalls.append(1.0))
    assert stalls, "no stall was reported while the agent was silent"
    assert outcome.ok


@pytest.mark.anyio
async def test_async_stall_callback_may_kill(sample_project: Path) -> None:
    run = await start_run(run_dir(sample_project), opts(sample_project, "hang"))

    async def give_up() -> None:
        await run.kill(grace=2, reason=FailureKind.STALLED)

    outcome = await run.wait(stale_after=0.5, on_stall=give_up)
    assert outcome.failure is FailureKind.STALLED


@pytest.mark.anyio
async def test_invalid_json_line_is_a_warning(sample_project: Path) -> None:
    outcome = await (await start_run(run_dir(sample_project), opts(sample_project, "invalid_json_line"))).wait()
    assert outcome.ok
    assert any("not JSON" in w for w in outcome.warnings)


@pytest.mark.anyio
async def test_huge_output_line_is_skipped_not_fatal(sample_project: Path) -> None:
    events: list[StreamEvent] = []
    run = await start_run(run_dir(sample_project), opts(sample_project, "huge_output"))
    outcome = await run.wait(on_event=events.append)
    assert outcome.ok and outcome.cost_usd == pytest.approx(0.01)
    assert any("longer than" in w for w in outcome.warnings)
    assert events[-1].type == "result"


@pytest.mark.anyio
async def test_json_output_format(sample_project: Path) -> None:
    o = opts(sample_project, output_format="json", output_schema=SCHEMA)
    outcome = await (await start_run(run_dir(sample_project), o)).wait()
    assert outcome.ok and outcome.structured_output and outcome.structured_output["status"] == "completed"
    assert len((run_dir(sample_project) / "stream.jsonl").read_text().splitlines()) == 1


STARTER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from specflow_nb.agent import AgentOptions, start_run

    async def main():
        opts = AgentOptions(command=sys.argv[3], cwd=Path(sys.argv[2]), prompt=sys.argv[4],
                            env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.15"})
        run = await start_run(Path(sys.argv[1]), opts)
        print(run.pid)

    asyncio.run(main())
    """
)


@pytest.mark.anyio
async def test_detached_run_outlives_its_starter_and_is_adopted(sample_project: Path) -> None:
    folder = run_dir(sample_project)
    starter = subprocess.run(
        [sys.executable, "-c", STARTER, str(folder), str(sample_project), DEMO, BATCH_PROMPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(starter.stdout.strip())
    run = attach_run(folder)  # the starter has exited; the agent (slow) is still working
    assert run is not None and run.pid == pid
    with pytest.raises(AgentRunError):
        read_outcome(folder)  # still running
    seen: list[StreamEvent] = []
    outcome = await run.wait(on_event=seen.append)
    assert outcome.ok, outcome.failure_message
    assert outcome.exit_code == 0  # recorded by the run's exit recorder, though the run is not our child
    assert checked(sample_project) == {"T004", "T005", "T006", "T007"}
    assert seen and seen[-1].type == "result"
    assert attach_run(folder) is None  # finished runs are not live


def test_attach_refuses_a_reused_pid(tmp_path: Path) -> None:
    me = os.getpid()
    real = create_time(me)
    assert real is not None
    (tmp_path / "pid.json").write_text(json.dumps({"pid": me, "createTime": real + 1}))
    assert attach_run(tmp_path) is None  # alive pid, other process
    (tmp_path / "pid.json").write_text(json.dumps({"pid": me, "createTime": real}))
    adopted = attach_run(tmp_path)
    assert adopted is not None and adopted.pid == me
    (tmp_path / "pid.json").write_text("{not json")
    assert attach_run(tmp_path) is None


@pytest.mark.anyio
async def test_transcript_tail(sample_project: Path) -> None:
    await (await start_run(run_dir(sample_project), opts(sample_project))).wait()
    tail = transcript_tail(run_dir(sample_project), n=3)
    assert [m["type"] for m in tail] == ["assistant", "user", "assistant"]
    assert tail[0]["message"]["content"][0]["input"]["new_string"] == "[x] T007"
    assert "checked T004, T005, T006, T007" in tail[-1]["message"]["content"][0]["text"]
    assert len(transcript_tail(run_dir(sample_project), n=100)) > 3


@pytest.mark.anyio
async def test_events_are_delivered_even_when_the_run_ended_before_wait(sample_project: Path) -> None:
    run = await start_run(run_dir(sample_project), opts(sample_project, prompt="hello"))
    with anyio.fail_after(30):
        while (run_dir(sample_project) / "stream.jsonl").stat().st_size == 0 or run.is_alive():
            await anyio.sleep(0.05)
    events: list[StreamEvent] = []
    outcome = await run.wait(on_event=events.append)
    assert outcome.ok and events[0].type == "system" and events[-1].type == "result"


@pytest.mark.anyio
async def test_the_exit_signal_reaches_the_host_not_the_agent(tmp_path: Path) -> None:
    """The exit recorder tells its launching host on a pipe how the run ended (the host then waits neither for
    exit.json nor for the recorder's own exit): the agent sees neither the variable naming that pipe nor the pipe
    itself; once the host lets go of the pipe the recorder writes the same in exit.json and is reaped without a
    warning."""
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\nenv | grep -c SPECFLOW_EXIT_FD\nls -l /proc/$$/fd/ | grep -c pipe\nexit 3\n")
    script.chmod(0o755)
    run = await start_run(tmp_path / "run", AgentOptions(command=str(script), cwd=tmp_path, prompt="hi"))
    assert run._exit_signal is not None
    outcome = await run.wait()
    assert outcome.exit_code == 3 and not outcome.ok
    assert (tmp_path / "run" / "stream.jsonl").read_text().split() == ["0", "0"]  # no variable, no pipe
    assert run._recorded == {"exitCode": 3, "endedAt": run._recorded["endedAt"]}  # from the pipe
    assert run._exit_signal is None  # let go of once the run ended (no hold_exit)
    with anyio.fail_after(5):
        while run._popen is not None and run._popen.returncode is None:  # reaped when its pidfd turns readable
            await anyio.sleep(0.01)
    assert json.loads((tmp_path / "run" / "exit.json").read_text()) == run._recorded  # written before it exited


@pytest.mark.anyio
async def test_a_held_exit_recorder_writes_exit_json_once_released(tmp_path: Path) -> None:
    """``wait(hold_exit=True)``: the host learns how the run ended while the recorder waits to write exit.json and
    exit until the host lets go (``release_exit``): nothing of it competes with the host's transition."""
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\nexit 4\n")
    script.chmod(0o755)
    run = await start_run(tmp_path / "run", AgentOptions(command=str(script), cwd=tmp_path, prompt="hi"))
    outcome = await run.wait(hold_exit=True)
    assert outcome.exit_code == 4
    await anyio.sleep(0.2)
    assert not (tmp_path / "run" / "exit.json").exists()  # held
    assert run._popen is not None and run._popen.poll() is None
    run.release_exit()
    with anyio.fail_after(5):
        while run._popen.returncode is None:
            await anyio.sleep(0.01)
    assert json.loads((tmp_path / "run" / "exit.json").read_text())["exitCode"] == 4


def test_one_structured_output_rule_for_both_families() -> None:
    """Claude Code and Codex runs asked for structured output fail the same way when it is missing or lacks a
    required field (one helper, ``agent.outcome.structured_output_failure``, that both families call); each names
    how it asked when there is none."""
    from specflow_nb.agent.outcome import AgentOutcome, FailureKind, structured_output_failure

    schema = {"type": "object", "required": ["status", "summary"]}
    partial = AgentOutcome(execution_id="r", structured_output={"status": "completed"})
    kind, message = structured_output_failure(schema, partial, "none")
    assert kind is FailureKind.SCHEMA_VALIDATION_FAILED and message is not None and "summary" in message
    assert structured_output_failure(schema, partial.model_copy(update={"structured_output": None}), "none") == (
        FailureKind.SCHEMA_VALIDATION_FAILED,
        "none",
    )
    whole = partial.model_copy(update={"structured_output": {"status": "completed", "summary": "done"}})
    assert structured_output_failure(schema, whole, "none") == (None, None)
    assert structured_output_failure(None, partial, "none") == (None, None)
