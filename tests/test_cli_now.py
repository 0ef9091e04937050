"""The terminal view's Now line and notifications: `specflow-nb orchestrate watch` (an observer in another process)
prints what the agent does as it does it, and a line with the terminal bell when the orchestration needs the
person; the live box shows the Now line at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from specflow_nb.activity import Activity, ActivityLine
from specflow_nb.cli_orchestrate import demo_agent_command, render
from specflow_nb.demo import prepare_sample
from specflow_nb.models import CurrentRun, OrchestrationStatus, RunKind
from tests.support.live_server import CLIENT_ENV_VARS
from tests.widgets.conftest import T0, make_execution

pytestmark = pytest.mark.timeout(180)
CLI = [sys.executable, "-m", "specflow_nb"]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra, "COLUMNS": "80"}
    for var in CLIENT_ENV_VARS:
        env.pop(var, None)
    env["JUPYTER_RUNTIME_DIR"] = "/nonexistent-runtime"  # no server: the CLI runs and observes the engine itself
    return env


def test_watch_prints_now_lines_and_rings_at_needs_attention(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": "slow", "rules": [{"match": "Phase 2", "run": 1, "scenario": "crash"}]}))
    env = _env({"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_DELAY": "0.2"})
    config = {"skipDesign": True, "skipAnalyze": True, "autoHealEnabled": False, "agentCommand": demo_agent_command()}
    owner = subprocess.Popen(
        [*CLI, "orchestrate", "start", "--local", "--project", str(project), "--config", json.dumps(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not list((project / ".specflow" / "workflows").glob("orchestration-*.json")):
            assert time.monotonic() < deadline and owner.poll() is None
            time.sleep(0.1)
        watch = subprocess.run(
            [*CLI, "orchestrate", "watch", "--project", str(project)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        owner.terminate()
        owner.wait(timeout=30)
    out = watch.stdout
    assert "now: Reading specs/0001-todo-cli/tasks.md" in out, out
    assert "now: Editing specs/0001-todo-cli/tasks.md" in out and "now: Writing .demo_agent/T00" in out, out
    # the needs-attention line with the bell, naming where the failed run's files are
    line = next(x for x in out.splitlines() if x.startswith("» ") or "\a» " in x)
    assert "needs attention" in line.lower() and ".specflow/workflows/" in line, out
    assert "\a" in out


def test_the_live_box_shows_now_at_80_columns() -> None:
    ex = make_execution(
        OrchestrationStatus.RUNNING,
        current_run=CurrentRun(execution_id="orch-1-004-batch2", kind=RunKind.BATCH, step="implement", started_at=T0),
    )
    act = Activity(
        run_id="orch-1-004-batch2",
        now="Running pytest -q tests/test_store.py::test_a_very_long_name_that_wraps_somewhere_in_the_box",
        turns=7,
        tasks_done=5,
        tasks_total=35,
        recent=[ActivityLine(kind="tool", text="Editing src/todo/store.py")],
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(render(ex, width=80, activity=act))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "Now Running pytest -q" in text and "turn 7" in text and "5/35 tasks (14%)" in text, text
    # the same box without a live run has no Now line, and the record's counts
    console = Console(width=80, record=True, color_system=None)
    console.print(render(ex.model_copy(update={"current_run": None}), width=80, activity=act))
    assert "Now " not in console.export_text()
