"""Crash tests: the orchestrating process is SIGKILLed at arbitrary points of a run, and a new one takes over.

A host (tests/support/crash_host.py, a real process) drives one project; the test kills it with SIGKILL after
seeded random delays — while a batch's agent runs, between a state write and the spawn it records, during a
heal — then starts a new host on the same root, which reconciles (adopts live runs by pid + start time, applies
the results of runs that ended meanwhile, respawns lost ones). Agent runs are detached, so they outlive the host.

What "every batch's agent run counted exactly once per attempt" means here. An *attempt* is one Spawn decision of
the state machine: it has its own run id and run folder (``.specflow/workflows/<runId>/``). Asserted:

1. Every agent process the demo agent logged belongs to exactly one run folder of the orchestration (matched by
   the session id in the folder's stream), and no run folder holds two processes: nothing was spawned twice for
   one attempt, and nothing was spawned outside an attempt.
2. Every task is checked in tasks.md by exactly one run (read from each run's stream: the demo agent's Edit
   calls), and that run succeeded; a task is asked of a later run only when the earlier one left it unchecked
   (a partial batch before its healer). The one exception: a run declared lost by a restart (``reconcile_lost``:
   no usable result in its folder, e.g. the host died between spawning the process and recording it) may share
   tasks with the attempt that replaced it.
3. The orchestration completes: every batch completed or healed, every task checked, the branch merged.

Also asserted after every kill: every orchestration-*.json parses, none was set aside as corrupt, and the decision
log only grows (each snapshot is a prefix of the next one). ``SPECFLOW_LONG=1`` runs 20+ trials per scenario.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from specflow_nb.agent.claude import read_outcome
from specflow_nb.models import OrchestrationExecution
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore
from specflow_nb.tasks import parse_tasks
from tests.support.orch_helpers import (
    DEMO_AGENT,
    WORKFLOWS,
    big_project,
    feature_tasks,
    run_log,
    write_script,
)

REPO = Path(__file__).resolve().parents[1]
LONG = os.environ.get("SPECFLOW_LONG") == "1"
TRIALS = 20 if LONG else 2
HOST_TIMEOUT = 120.0


# -------------------------------------------------------------------------------------------------- the harness


@dataclass
class Harness:
    root: Path
    project: Path
    project_id: str
    env: dict[str, str]
    config: dict[str, Any]
    snapshots: list[list[tuple[str, str, str]]] = field(default_factory=list)
    kills: int = 0

    def launch(self) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "tests.support.crash_host", str(self.root), self.project_id]
        argv += ["--start", json.dumps(self.config), "--timeout", str(HOST_TIMEOUT)]
        return subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def kill_after(self, delay: float) -> None:
        """Start a host, SIGKILL it after ``delay`` seconds (if still running), then check the files on disk."""
        host = self.launch()
        try:
            host.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            host.send_signal(signal.SIGKILL)
            self.kills += 1
        host.communicate(timeout=30)
        self.check_files()

    def finish(self) -> dict[str, Any]:
        """A host that is left alone: it must bring the orchestration to rest."""
        host = self.launch()
        out, err = host.communicate(timeout=HOST_TIMEOUT + 30)
        assert host.returncode == 0, f"host failed ({host.returncode}):\n{out}\n{err[-3000:]}"
        self.check_files()
        return dict(json.loads(out.strip().splitlines()[-1]))

    def executions(self) -> list[OrchestrationExecution]:
        folder = self.project / WORKFLOWS
        return [
            OrchestrationExecution.model_validate_json(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("orchestration-*.json"))
        ]

    def check_files(self) -> None:
        folder = self.project / WORKFLOWS
        if not folder.exists():
            return
        corrupt = list(folder.glob("*.corrupt-*"))
        assert corrupt == [], f"state files were set aside as corrupt: {corrupt}"
        executions = self.executions()  # every state file parses: no torn write
        assert len(executions) <= 1, "a restart started a second orchestration"
        if not executions:
            return
        log = [(d.timestamp.isoformat(), d.decision, d.reason) for d in executions[0].decision_log]
        if self.snapshots:
            before = self.snapshots[-1]
            assert log[: len(before)] == before, "the decision log lost or rewrote entries across a restart"
        self.snapshots.append(log)


def make_harness(tmp_path: Path, *, rules: list[dict[str, Any]], delay: str, sections: int, total: int) -> Harness:
    root = tmp_path / "root"
    root.mkdir()
    project = big_project(root / "proj", sections=sections, total=total)
    script = write_script(tmp_path / "script.json", rules)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SPECFLOW_DEMO_LOG": str(tmp_path / "runs.jsonl"),
        "SPECFLOW_DEMO_SCRIPT": str(script),
        "SPECFLOW_DEMO_DELAY": delay,
    }
    config = {"agentCommand": DEMO_AGENT, "autoMerge": True, "skipAnalyze": True, "maxHealAttempts": 2}
    return Harness(root=root, project=project, project_id="proj", env=env, config=config)


# -------------------------------------------------------------------------------------------------- the checks


def session_of(folder: Path) -> str | None:
    stream = folder / "stream.jsonl"
    if not stream.exists():
        return None
    for line in stream.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "system" and obj.get("subtype") == "init":
            return str(obj.get("session_id"))
    return None


def checked_in(folder: Path) -> set[str]:
    """The tasks a demo-agent run checked in tasks.md: its Edit tool calls turning ``[ ] T…`` into ``[x] T…``."""
    done: set[str] = set()
    stream = folder / "stream.jsonl"
    for line in stream.read_text(encoding="utf-8", errors="replace").splitlines() if stream.exists() else []:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("type") != "assistant":
            continue
        for part in obj["message"]["content"]:
            if part.get("type") == "tool_use" and part.get("name") == "Edit":
                new = str(part["input"].get("new_string", ""))
                if new.startswith("[x] "):
                    done.add(new[4:])
    return done


def assert_completed_once_per_attempt(h: Harness, log_path: Path) -> OrchestrationExecution:
    (ex,) = h.executions()
    assert ex.status.value == "completed", (ex.status, ex.recovery_context)
    assert all(b.status.value in ("completed", "healed") for b in ex.batches.items)
    parsed = parse_tasks(feature_tasks(h.project).read_text(encoding="utf-8"))
    assert parsed.total > 0 and all(t.done for t in parsed.tasks)

    folders = {p.name: p for p in (h.project / WORKFLOWS).iterdir() if p.is_dir() and p.name.startswith(ex.id)}
    # Folders by session, in spawn order (a lost run's replacement may resume the very same session).
    folders_of: dict[str, list[str]] = {}
    for run_id in sorted(folders):
        sid = session_of(folders[run_id])
        if sid is not None:
            folders_of.setdefault(sid, []).append(run_id)
    log = [r for r in run_log(log_path) if r["cwd"] == str(h.project)]
    records_of: dict[str, list[dict[str, Any]]] = {}
    for record in log:  # the log is appended in spawn order
        records_of.setdefault(str(record["sessionId"]), []).append(record)
    assert set(records_of) <= set(folders_of), "an agent process outside every attempt"
    run_of: list[tuple[str, dict[str, Any]]] = []
    for sid, run_ids in folders_of.items():
        records = records_of.get(sid, [])
        assert len(records) == len(run_ids), f"session {sid}: runs {run_ids} but processes {len(records)}"
        run_of += list(zip(run_ids, records, strict=True))
    per_folder = {run_id: 1 for run_id, _ in run_of}
    lost = {str((d.data or {}).get("runId")) for d in ex.decision_log if d.decision == "reconcile_lost"}
    asked: dict[str, list[str]] = {}  # task -> the runs whose prompt asked for it, in spawn order
    for run_id, record in sorted(run_of, key=lambda pair: pair[0]):
        for task in record["taskIds"]:
            asked.setdefault(task, []).append(run_id)
    checks: dict[str, list[str]] = {}
    for run_id in sorted(per_folder):
        for task in checked_in(folders[run_id]):
            checks.setdefault(task, []).append(run_id)
    for task in (t.id for t in parsed.tasks):
        runs = asked.get(task, [])
        # Asked again only when the earlier run left it unchecked or was lost in a restart.
        for earlier in runs[:-1]:
            assert earlier in lost or task not in checked_in(folders[earlier]), f"{task} redone after {earlier}"
        # Checked by exactly one run, or by a lost run and the one that replaced it.
        by = checks.get(task, [])
        assert len(by) == 1 or (len(by) == 2 and by[0] in lost), f"{task} checked by {by} (lost: {sorted(lost)})"
        if not read_outcome(folders[by[-1]]).ok:
            pytest.fail(f"{task} was checked only by the failed run {by[-1]}")
    return ex


def run_trial(h: Harness, seed: int, kills: int, low: float, high: float) -> OrchestrationExecution:
    rng = random.Random(seed)
    for _ in range(kills):
        h.kill_after(rng.uniform(low, high))
    result = h.finish()
    assert result["status"] == "completed", result
    return assert_completed_once_per_attempt(h, Path(h.env["SPECFLOW_DEMO_LOG"]))


# -------------------------------------------------------------------------------------------------- the trials


@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill_during_batches(tmp_path: Path, seed: int) -> None:
    """Slow batches (about a second each): most kills land while an agent runs and is later adopted."""
    rules = [{"match": "Execute only the", "scenario": "slow"}]
    h = make_harness(tmp_path, rules=rules, delay="0.04", sections=4, total=16)
    run_trial(h, seed, kills=3, low=0.8, high=2.5)
    assert h.kills >= 1
    assert len(h.snapshots) >= 2


@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill_at_transitions(tmp_path: Path, seed: int) -> None:
    """Instant agents: the host spends its time between persist and spawn, so kills land in transitions."""
    h = make_harness(tmp_path, rules=[], delay="0", sections=5, total=10)
    run_trial(h, 1000 + seed, kills=4, low=0.3, high=1.6)


@pytest.mark.parametrize("seed", range(TRIALS))
def test_kill_during_healing(tmp_path: Path, seed: int) -> None:
    """Batch 2 leaves half its tasks; its slow healer is running when the host dies."""
    rules: list[dict[str, Any]] = [
        {"match": "Complete only these remaining tasks", "scenario": "slow"},
        {"match": "Phase 2: Part 2", "run": 1, "scenario": "partial"},
    ]
    h = make_harness(tmp_path, rules=rules, delay="0.1", sections=3, total=12)
    ex = run_trial(h, 2000 + seed, kills=3, low=0.6, high=2.0)
    assert ex.batches.items[1].status.value == "healed"
    assert ex.batches.items[1].heal_attempts >= 1


def test_corrupt_state_file_is_rebuilt_and_retry_continues(tmp_path: Path) -> None:
    rules = [{"match": "Phase 3: Part 3", "run": 1, "scenario": "hang"}]
    h = make_harness(tmp_path, rules=rules, delay="0", sections=4, total=8)
    log_path = Path(h.env["SPECFLOW_DEMO_LOG"])
    host = h.launch()
    deadline = time.monotonic() + 60
    while not any(r["taskIds"][:1] == ["T005"] for r in run_log(log_path)):  # batch 3 hangs: batches 1-2 done
        assert time.monotonic() < deadline and host.poll() is None
        time.sleep(0.05)
    host.send_signal(signal.SIGKILL)
    host.communicate(timeout=30)
    hung = next(r for r in run_log(log_path) if r["taskIds"][:1] == ["T005"])
    os.killpg(os.getpgid(hung["pid"]), signal.SIGKILL)  # the hanging agent goes too
    (state,) = list((h.project / WORKFLOWS).glob("orchestration-*.json"))
    state.write_text('{"id": "torn', encoding="utf-8")

    ex = Orchestrator(h.root).status(h.project_id)  # a read alone sets it aside but finds nothing active
    assert ex is None or ex.status.value != "running"

    async def rebuild_and_retry() -> OrchestrationExecution:
        agent_env = {k: v for k, v in h.env.items() if k.startswith("SPECFLOW_DEMO_")}
        # No agent command in the settings: the rebuilt config takes it from the newest run's argv.json.
        async with Orchestrator(h.root, EngineSettings(agent_env=agent_env)) as orch:
            ex = orch.status(h.project_id)
            assert ex is not None and ex.status.value == "needs_attention"
            assert ex.recovery_context is not None and ex.recovery_context.kind == "state_rebuilt"
            assert "4 of 8 tasks done" in ex.recovery_context.issue
            ex = await orch.command(h.project_id, {"action": "recover", "option": "retry"}, orchestration_id=ex.id)
            with anyio.fail_after(60):
                while not (ex.status.value in ("completed", "needs_attention", "waiting_merge") and not ex.current_run):
                    ex = await orch.wait_for_change(h.project_id, ex.version, 5) or ex
            return ex

    before = len(run_log(log_path))
    ex = anyio.run(rebuild_and_retry)
    assert list((h.project / WORKFLOWS).glob("orchestration-*.json.corrupt-*"))
    assert ex.status.value == "waiting_merge", ex.recovery_context  # autoMerge was in the lost file: off now
    assert ex.config.agent_command == DEMO_AGENT
    parsed = parse_tasks(feature_tasks(h.project).read_text(encoding="utf-8"))
    assert all(t.done for t in parsed.tasks)
    after = run_log(log_path)[before:]
    redone = [t for r in after for t in r["taskIds"] if t in ("T001", "T002", "T003", "T004")]
    assert redone == []  # checked tasks are not redone
    assert {t for r in after for t in r["taskIds"]} == {"T005", "T006", "T007", "T008"}
    # The rebuilt execution keeps its id and never reuses a run folder of the lost one.
    rebuilt = OrchestrationStore(h.project).load(ex.id)
    assert rebuilt.decision_log[0].decision == "needs_attention"


@pytest.mark.parametrize("kill_at_read", [3, 4])
def test_kill_between_a_run_end_and_the_save_that_carries_it(tmp_path: Path, kill_at_read: int) -> None:
    """A run's end is saved with the next state (one fsynced write per transition, ``Persist.may_join_next``). The
    host dies in between (in the project read that follows the run's end): the record still shows the run in flight
    with no outcome; the next host applies the outcome found in the run's folder (``reconcile_finished``). Nothing
    is lost: every run's cost is counted exactly once, no batch runs twice, the phase completes."""
    h = make_harness(tmp_path, rules=[], delay="0", sections=4, total=8)
    log_path = Path(h.env["SPECFLOW_DEMO_LOG"])
    argv = [sys.executable, "-m", "tests.support.crash_in_transition", str(h.root), h.project_id]
    argv += ["--start", json.dumps(h.config), "--timeout", str(HOST_TIMEOUT)]
    env = {**h.env, "SPECFLOW_TEST_KILL_AT_READ": str(kill_at_read)}
    host = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=HOST_TIMEOUT)
    assert host.returncode == -signal.SIGKILL, host.stderr[-3000:]
    h.check_files()
    (before,) = h.executions()
    run = before.current_run
    assert run is not None and run.live and run.outcome is None  # the run's end was not saved on its own
    ended = run.execution_id
    # but its folder says how it ended: the run's recorder writes exit.json once the host let go of its pipe (here:
    # died), within milliseconds
    deadline = time.monotonic() + 5
    while not (h.project / WORKFLOWS / ended / "exit.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (h.project / WORKFLOWS / ended / "exit.json").exists()
    assert before.total_cost_usd == pytest.approx(0.01 * (len(run_log(log_path)) - 1))

    result = h.finish()
    assert result["status"] == "completed", result
    ex = assert_completed_once_per_attempt(h, log_path)
    finished = [d for d in ex.decision_log if d.decision == "reconcile_finished"]
    assert [(d.data or {}).get("runId") for d in finished] == [ended]
    assert "ended while the host was down" in finished[0].reason
    runs = len(run_log(log_path))
    assert ex.total_cost_usd == pytest.approx(0.01 * runs)  # every run's cost, each once
    assert sum(b.cost_usd for b in ex.batches.items) + ex.healing_cost_usd <= ex.total_cost_usd + 1e-9


def test_kill_after_a_spawn_before_the_record_is_written_behind_its_journal(tmp_path: Path) -> None:
    """The save before a spawn goes to the record's write-ahead journal (one pwrite + fdatasync); the record file
    follows the spawn (:mod:`specflow_nb.fenced`). The host dies in between: the record file still shows the state
    before, the journal the state with the new run, and every reader gets the journal's; the next host writes it into
    the record as it takes over and adopts the run. Nothing is lost and nothing runs twice."""
    h = make_harness(tmp_path, rules=[], delay="0.3", sections=4, total=8)
    log_path = Path(h.env["SPECFLOW_DEMO_LOG"])
    argv = [sys.executable, "-m", "tests.support.crash_in_transition", str(h.root), h.project_id]
    argv += ["--start", json.dumps(h.config), "--timeout", str(HOST_TIMEOUT)]
    env = {**h.env, "SPECFLOW_TEST_KILL_BEHIND": "3"}
    host = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=HOST_TIMEOUT)
    assert host.returncode == -signal.SIGKILL, host.stderr[-3000:]
    h.check_files()
    (on_file,) = h.executions()  # the record file, as the host left it
    seen = OrchestrationStore(h.project).load(on_file.id)  # what any reader gets: the journal's step
    assert seen.version > on_file.version
    run = seen.current_run
    assert run is not None and run.live and run.outcome is None
    assert on_file.current_run is None or on_file.current_run.execution_id != run.execution_id
    assert (h.project / WORKFLOWS / run.execution_id / "pid.json").exists()  # spawned: its journal entry came first

    result = h.finish()
    assert result["status"] == "completed", result
    ex = assert_completed_once_per_attempt(h, log_path)
    reconciled = [(d.data or {}).get("runId") for d in ex.decision_log if d.decision.startswith("reconcile_")]
    assert run.execution_id in reconciled  # the next host knew the run from the journal's step
    lost = [d for d in ex.decision_log if d.decision == "reconcile_lost"]
    assert lost == []  # adopted (or found ended), never declared lost
    assert ex.total_cost_usd == pytest.approx(0.01 * len(run_log(log_path)))
