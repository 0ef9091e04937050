"""SIGKILL the Jupyter server at random moments of a running phase, restart it on the same root, and check:

* the phase completes (status ``completed``, every task checked in tasks.md);
* no batch is run twice (the DEMO agent logs every run: exactly one run per batch's task ids);
* the decision log only grows (what was on disk just before each kill is a prefix of the final log);
* no state file is torn or lost (every orchestration-*.json parses, none was set aside as corrupt, one record).

Agent runs are detached from the server, so a run in flight when the server dies keeps going and is adopted (or
its result read) by the next server.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    LiveServer,
    corrupt_files,
    fast_config,
    make_projects,
    read_states,
    run_log,
    state_files,
    tasks_file,
)
from specflow_nb.tasks import parse_tasks

from .conftest import LONG, SEED, chaos_tasks, commit_tasks

TRIALS = 20 if LONG else 3
MAX_KILLS = 3 if LONG else 1
SECTIONS, PER_SECTION = 4, 2
PHASE_DEADLINE = 120.0


def entry_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry["timestamp"], entry["decision"], entry["reason"])


def wait_done(server: LiveServer, project: str, deadline: float) -> dict[str, Any]:
    """Long-poll until the orchestration rests with no run in flight."""
    since = 0
    with server.client(timeout=30) as client:
        while True:
            assert time.monotonic() < deadline, f"phase not done in time; last: {since}"
            r = client.get("workflow/orchestrate/status", params={"projectId": project, "since": since, "timeout": 5})
            assert r.status_code == 200, r.text
            ex = r.json()["orchestration"]
            if ex["status"] not in ("running",) and ex["currentRun"] is None and not ex["killedRunIds"]:
                return dict(ex)
            since = ex["version"]


def run_trial(tmp: Path, trial: int, rng: random.Random) -> dict[str, Any]:
    root = tmp / f"root{trial}"
    [project] = make_projects(root, 1)
    proj = root / project
    commit_tasks(proj, chaos_tasks(SECTIONS, PER_SECTION))
    log = tmp / f"runs{trial}.jsonl"
    server = LiveServer(
        root,
        tmp / f"srv{trial}",
        agent_env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.02", "SPECFLOW_DEMO_LOG": str(log)},
    )
    server.start()
    kills: list[float] = []
    prefixes: list[list[tuple[str, str, str]]] = []
    try:
        with server.client() as client:
            r = client.post("workflow/orchestrate", json={"projectId": project, "config": fast_config()})
            assert r.status_code == 201, r.text
        for _ in range(rng.randint(1, MAX_KILLS)):
            delay = rng.uniform(0.05, 4.0)
            time.sleep(delay)
            states = read_states(proj)  # every record parses at every moment (atomic writes)
            prefixes.append([entry_key(e) for s in states for e in s["decisionLog"]])
            server.kill()
            kills.append(round(delay, 2))
            server.start()
        final = wait_done(server, project, time.monotonic() + PHASE_DEADLINE)
    finally:
        server.stop()
    return {"project": proj, "log": log, "final": final, "kills": kills, "prefixes": prefixes, "server": server}


def test_server_killed_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    summary = []
    for trial in range(TRIALS):
        out = run_trial(tmp_path, trial, rng)
        proj: Path = out["project"]
        final = out["final"]
        where = f"trial {trial} (seed {SEED}, kills after {out['kills']} s)"
        assert final["status"] == "completed", (
            where,
            final["status"],
            final.get("errorMessage"),
            final["recoveryContext"],
        )

        # Every task of the phase checked in tasks.md.
        parsed = parse_tasks(tasks_file(proj).read_text(encoding="utf-8"))
        assert all(t.done for t in parsed.tasks), (where, [t.id for t in parsed.tasks if not t.done])

        # One run per batch: no completed batch ran again.
        runs = [tuple(r["taskIds"]) for r in run_log(out["log"]) if r["taskIds"]]
        batches = [tuple(b["taskIds"]) for b in final["batches"]["items"]]
        assert len(batches) == SECTIONS, (where, batches)
        for ids in batches:
            assert runs.count(ids) == 1, (where, ids, runs)
        assert all(b["status"] == "completed" for b in final["batches"]["items"]), where

        # No state file torn or lost, none set aside, exactly this one orchestration.
        assert corrupt_files(proj) == [], where
        records = [json.loads(p.read_text(encoding="utf-8")) for p in state_files(proj)]
        assert [r["id"] for r in records] == [final["id"]], where

        # The decision log only grows: everything on disk before each kill is still there, in order.
        final_log = [entry_key(e) for e in records[0]["decisionLog"]]
        for prefix in out["prefixes"]:
            assert final_log[: len(prefix)] == prefix, (where, len(prefix), len(final_log))
        # No request failed with a 500 and nothing of specflow's crashed unhandled in any server's log.
        server_log = out["server"].log.read_text(errors="replace")
        assert " 500 " not in server_log, (where, server_log[-3000:])
        assert "Traceback" not in server_log, (where, server_log[-4000:])
        summary.append((trial, out["kills"], len(final_log)))
    assert len(summary) == TRIALS
