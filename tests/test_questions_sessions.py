"""Verify questions and lost sessions, end to end: real demo-agent subprocesses, real files and git, and the answer
sent by the real CLI from another process (through the owner's inbox, as a second host would)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.live_server import CLIENT_ENV_VARS
from tests.support.orch_helpers import argv_of, base_config, big_project, decisions, run_folder, run_log, settle

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def engine(log_file: Path) -> EngineSettings:
    return EngineSettings(agent_env={"SPECFLOW_DEMO_LOG": str(log_file), "SPECFLOW_DEMO_SCENARIO": "verify_question"})


def counting_verify_command(tmp_path: Path) -> tuple[str, Path]:
    """A verifyCommand that exits 0 and appends a line to a file each time it runs."""
    ran = tmp_path / "verify-ran.txt"
    code = f"open({str(ran)!r}, 'a').write('ran\\n')"
    return shlex.join([sys.executable, "-c", code]), ran


async def answer_from_the_cli(project: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """`specflow-nb orchestrate answer --local` in another process: it finds this test's engine owning the
    orchestration and hands the answer to it through the inbox."""
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    argv = [sys.executable, "-m", "specflow_nb", "orchestrate", "answer", "--local", "--project", str(project)]
    with anyio.fail_after(120):
        result = await anyio.run_process([*argv, *answers], env=env, check=False)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


async def ask_in_verify(orch: Orchestrator, project: Path, verify_command: str) -> str:
    """Start a phase whose verify run asks; returns the id of the run that asked."""
    await orch.start("big", base_config(autoMerge=True, verifyCommand=verify_command))
    ex = await settle(orch, "big")
    assert ex.status.value == "paused" and ex.waiting_for_input, (ex.status, decisions(ex))
    assert ex.current_phase.value == "verify" and ex.step_status["verify"].value == "running"
    assert ex.questions and "config file" in ex.questions[0].question
    assert ex.question_run is not None and ex.question_run.execution_id == ex.executions.verify
    return ex.question_run.execution_id


async def test_a_verify_question_is_answered_and_the_phase_completes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = big_project(root / "big", sections=1, total=2)
    log = tmp_path / "runs.jsonl"
    verify_command, ran = counting_verify_command(tmp_path)
    async with Orchestrator(root, engine(log)) as orch:
        asked = await ask_in_verify(orch, project, verify_command)
        assert not ran.exists()  # a verify that asks is no verdict: its command waits for the final pass
        cli = await answer_from_the_cli(project, "q1=yes, accept it")
        assert cli.returncode == 0, (cli.stdout, cli.stderr)
        ex = await settle(orch, "big")

    assert ex.status.value == "completed", (ex.status, ex.recovery_context, decisions(ex))
    names = decisions(ex)
    assert names.index("waiting_input") < names.index("answers_received") < names.index("complete")
    resumed = ex.executions.verify or ""
    assert resumed != asked
    asked_session = run_log(log)[-2]["sessionId"]
    argv = argv_of(project, resumed)
    assert argv[argv.index("--resume") + 1] == asked_session and "--fork-session" not in argv
    assert "- q1: yes, accept it" in (run_folder(project, resumed) / "prompt.md").read_text()
    batch, *verify_runs = run_log(log)
    assert batch["taskIds"] == ["T001", "T002"]
    assert [r["answers"] for r in verify_runs] == [{}, {"q1": "yes, accept it"}]  # the demo agent used it
    assert ran.read_text() == "ran\n"  # the verify command ran once, on the final pass
    assert "answers used: q1 = yes, accept it" in json.dumps(
        json.loads((run_folder(project, resumed) / "outcome.json").read_text())
    )


async def test_a_lost_verify_session_is_retried_as_a_new_session_and_completes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = big_project(root / "big", sections=1, total=2)
    log = tmp_path / "runs.jsonl"
    verify_command, ran = counting_verify_command(tmp_path)
    async with Orchestrator(root, engine(log)) as orch:
        asked = await ask_in_verify(orch, project, verify_command)
        # the session is gone (another machine, a cleaned config folder): the demo agent no longer knows it
        sessions = project / ".specflow" / "demo_agent_sessions.json"
        data = json.loads(sessions.read_text())
        lost = run_log(log)[-1]["sessionId"]
        del data["sessions"][lost]
        sessions.write_text(json.dumps(data))
        await orch.command("big", {"action": "answer", "answers": {"q1": "yes, accept it"}})
        ex = await settle(orch, "big")

    names = decisions(ex)
    assert names.count("session_lost") == 1, names
    entry = next(d for d in ex.decision_log if d.decision == "session_lost")
    assert entry.data and entry.data["level"] == "warning" and entry.data["lostSession"] == lost
    assert entry.data["lostRun"] == asked and "No conversation found" in entry.reason
    runs = run_log(log)
    resume, retry = runs[-2], runs[-1]
    assert resume["resume"] == lost and resume["sessionId"] is None  # refused like the real CLI
    assert retry["resume"] is None and retry["answers"] == {"q1": "yes, accept it"}
    retry_run = ex.executions.verify or ""
    assert "--resume" not in argv_of(project, retry_run)
    prompt = (run_folder(project, retry_run) / "prompt.md").read_text()
    assert "What the previous session did before it was lost" in prompt
    assert "DEMO agent (needs_input): working on the prompt." in prompt  # the lost run's own stream
    assert "- q1: yes, accept it" in prompt
    assert ex.status.value == "completed", (ex.status, ex.recovery_context, names)
    assert ran.read_text() == "ran\n"  # the verify command ran once, on the final pass
