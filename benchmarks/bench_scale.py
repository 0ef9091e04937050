"""Benchmark: N concurrent orchestrations (default 200) on one server with the DEMO agent — all complete, nothing lost.

Run from the repository root (several minutes on 2 cores):

    .venv/bin/python benchmarks/bench_scale.py             # prints the numbers and updates benchmarks/RESULTS.md
    .venv/bin/python benchmarks/bench_scale.py -n 50 --no-write

Each project is a copy of the bundled sample (a git repo; 20 tasks of which the phase still has to do 4 batches);
every orchestration runs implement batch by batch, then the built-in git merge (design, analyze, verify skipped,
auto-merge). Baseline, measured in the same run on the same server: ONE orchestration alone (its wall time is the
floor for a phase; N phases on 2 cores cannot beat N x the CPU one needs, so the ratio to report is the time per
phase). "Nothing lost": every orchestration ``completed``, every task checked, every batch run exactly once (the demo
agent logs every run), no record torn or set aside. Peak memory: the server's VmHWM (the agents are separate
processes and are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_server import wait_resting
from benchmarks.common import (
    LiveServer,
    corrupt_files,
    fast_config,
    hwm_kib,
    machine,
    make_projects,
    read_states,
    rss_kib,
    run_log,
    tasks_file,
    write_subsection,
)
from specflow_nb.tasks import parse_tasks

HEADING = "## Server and scale"
SUBHEADING = "### Concurrent orchestrations on one server (bench_scale.py)"


def lost(root: Path, projects: list[str], states: list[dict], log: Path) -> list[str]:
    """What went wrong, per project (empty when nothing was lost or run twice)."""
    problems = []
    runs = Counter((r["cwd"], tuple(r["taskIds"])) for r in run_log(log) if r["taskIds"])
    for p, ex in zip(projects, states, strict=True):
        project = root / p
        if ex["status"] != "completed":
            problems.append(f"{p}: {ex['status']} {ex.get('errorMessage') or ex.get('recoveryContext')}")
        if any(not t.done for t in parse_tasks(tasks_file(project).read_text(encoding="utf-8")).tasks):
            problems.append(f"{p}: tasks left unchecked")
        for b in ex["batches"]["items"]:
            n = runs[(str(project), tuple(b["taskIds"]))]
            if n != 1:
                problems.append(f"{p}: batch {b['index']} ran {n} times")
        if corrupt_files(project) or len(read_states(project)) != 1:
            problems.append(f"{p}: state files torn or missing")
    return problems


async def start_concurrently(server: LiveServer, projects: list[str], parallel: int = 25) -> None:
    """POST every start with up to ``parallel`` requests in flight (so the phases really overlap)."""
    limits = httpx.Limits(max_connections=parallel)
    async with server.async_client(timeout=300, limits=limits) as client:
        gate = asyncio.Semaphore(parallel)

        async def one(p: str) -> None:
            async with gate:
                r = await client.post("workflow/orchestrate", json={"projectId": p, "config": fast_config()})
                assert r.status_code == 201, (p, r.status_code, r.text[:300])

        await asyncio.gather(*(one(p) for p in projects))


def peak_overlap(states: list[dict]) -> int:
    """The most orchestrations active at one instant (from each record's startedAt .. completedAt)."""
    edges = []
    for ex in states:
        edges.append((ex["startedAt"], 1))
        edges.append((ex["completedAt"] or ex["updatedAt"], -1))
    level = peak = 0
    for _, step in sorted(edges, key=lambda e: (datetime.fromisoformat(e[0].replace("Z", "+00:00")), e[1])):
        level += step
        peak = max(peak, level)
    return peak


def run(base: Path, count: int, label: str) -> dict:
    root = base / f"root-{label}"
    projects = make_projects(root, count)
    log = base / f"runs-{label}.jsonl"
    server = LiveServer(root, base / f"srv-{label}", agent_env={"SPECFLOW_DEMO_LOG": str(log)}, max_concurrent=count)
    server.start()
    try:
        rss0 = rss_kib(server.pid)
        t0 = time.monotonic()
        asyncio.run(start_concurrently(server, projects))
        started = time.monotonic() - t0
        states = wait_resting(server, projects, timeout=max(300.0, count * 6.0))
        elapsed = time.monotonic() - t0
        peak = hwm_kib(server.pid)
    finally:
        server.stop()
    problems = lost(root, projects, states, log)
    return {
        "count": count,
        "elapsed": elapsed,
        "started": started,
        "per_phase": elapsed / count,
        "rss0_mib": rss0 / 1024,
        "peak_mib": peak / 1024,
        "runs": len(run_log(log)),
        "problems": problems,
        "completed": sum(1 for s in states if s["status"] == "completed"),
        "peak_active": peak_overlap(states),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--orchestrations", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        one = run(Path(tmp), 1, "one")
        many = run(Path(tmp), args.orchestrations, "many")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict = (
        f"all {many['completed']} completed, nothing lost, no batch run twice"
        if not many["problems"]
        else f"{len(many['problems'])} PROBLEMS: {many['problems'][:5]}"
    )
    body = f"""{SUBHEADING}

`.venv/bin/python benchmarks/bench_scale.py -n {args.orchestrations}`, {stamp}, {machine()}.

| measure | 1 orchestration (baseline) | {many["count"]} concurrent |
|---|---:|---:|
| wall time, first start -> last one resting | {one["elapsed"]:.1f} s | {many["elapsed"]:.1f} s |
| wall time per phase | {one["per_phase"]:.2f} s | {many["per_phase"]:.2f} s |
| time until every start was answered 201 (25 requests in flight) | {one["started"]:.2f} s | {many["started"]:.1f} s |
| most orchestrations active at one instant | {one["peak_active"]} | {many["peak_active"]} |
| agent runs (4 batches per phase) | {one["runs"]} | {many["runs"]} |
| server RSS at start -> peak (VmHWM) | {one["rss0_mib"]:.0f} -> {one["peak_mib"]:.0f} MiB | {many["rss0_mib"]:.0f} -> {many["peak_mib"]:.0f} MiB |

Result: {verdict}. The agents are separate processes (one per running batch, detached from the server); the peak is
the server's own memory.
"""
    print(body)
    if not args.no_write:
        write_subsection(HEADING, body)
    return 1 if many["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
