"""Benchmark: the server's status endpoint and live channel under load, and memory per idle orchestration.

Run from the repository root (takes about two minutes on 2 cores):

    .venv/bin/python benchmarks/bench_server.py            # prints the numbers and updates benchmarks/RESULTS.md
    .venv/bin/python benchmarks/bench_server.py --no-write # prints only

A real ``jupyter server`` subprocess with the specflow extension and the DEMO agent (scenario ``slow``: each run
prints a line every ``--delay`` seconds, so the orchestrations stay active and change state as batches finish).

Latency (GET ``workflow/orchestrate/status``, one request at a time from a separate process's client):
* baseline A: the same server idle (no orchestration anywhere), same projects;
* baseline B: jupyter_server's own ``GET /api/status`` under the same load (the server's floor for a request);
* loaded: ``--orchestrations`` (50) running orchestrations and ``--clients`` (20) long-poll clients connected.

Live channel: 20 clients long-poll ``status?since=<version>`` on 20 of the running projects; for each delivered
change the latency is (time received - the state's ``updatedAt``, stamped by the server just before it saved and
published the change). Both clocks are this machine's wall clock. Baseline: the original's fixed 3 s polling, whose
expected delay is 1.5 s (mean) / 3 s (worst); and the status round trip measured in the same run.

Memory per idle orchestration: server RSS (VmRSS) after touching N projects (status + preview, no orchestration) vs
after starting one orchestration on each that then rests in ``waiting_merge`` (all steps but merge skipped, no agent
process), divided by N. Baseline: the RSS added per project by merely serving its status.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    RESTING,
    LiveServer,
    fast_config,
    machine,
    make_projects,
    p50,
    percentile,
    rss_kib,
    write_subsection,
)

HEADING = "## Server and scale"
SUBHEADING = "### Status endpoint and live channel (bench_server.py)"


async def timed_gets(client: httpx.AsyncClient, paths: list[tuple[str, dict[str, Any]]]) -> list[float]:
    """Latency in ms of each GET, one after another."""
    out = []
    for path, params in paths:
        t0 = time.perf_counter()
        r = await client.get(path, params=params)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


async def status_latency(server: LiveServer, projects: list[str], requests: int) -> list[float]:
    async with server.async_client() as client:
        await timed_gets(client, [("workflow/orchestrate/status", {"projectId": p}) for p in projects[:5]])  # warm
        paths = [("workflow/orchestrate/status", {"projectId": projects[i % len(projects)]}) for i in range(requests)]
        return await timed_gets(client, paths)


async def jupyter_status_latency(server: LiveServer, requests: int) -> list[float]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as client:
        return await timed_gets(client, [("api/status", {})] * requests)


async def long_poller(
    server: LiveServer, project: str, stop: asyncio.Event, out: list[float], errors: list[str]
) -> None:
    """One live-channel client: long-poll, record delivery latency of every new version."""
    since = -1
    oid: str | None = None
    async with server.async_client(timeout=60) as client:
        while not stop.is_set():
            params: dict[str, Any] = {"projectId": project, "since": since, "timeout": 5}
            if oid:
                params["knownId"] = oid
            try:
                r = await client.get("workflow/orchestrate/status", params=params)
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
                continue
            received = time.time()
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
                continue
            ex = r.json()["orchestration"]
            if ex is None:
                continue
            if since >= 0 and ex["version"] > since:
                updated = datetime.fromisoformat(ex["updatedAt"].replace("Z", "+00:00")).timestamp()
                out.append((received - updated) * 1000)
            since, oid = ex["version"], ex["id"]


async def loaded_phase(server: LiveServer, projects: list[str], clients: int, window: float, requests: int) -> dict:
    stop = asyncio.Event()
    live: list[float] = []
    errors: list[str] = []
    pollers = [asyncio.create_task(long_poller(server, p, stop, live, errors)) for p in projects[:clients]]
    await asyncio.sleep(1.0)  # every poller connected and waiting
    t_end = time.monotonic() + window
    status: list[float] = []
    jstatus: list[float] = []
    while time.monotonic() < t_end:  # the whole window, so batches finish and the live channel has changes
        status += await status_latency(server, projects, 50)
        jstatus += await jupyter_status_latency(server, 20)
    async with server.async_client() as client:
        states = [
            (await client.get("workflow/orchestrate/status", params={"projectId": p})).json()["orchestration"]
            for p in projects
        ]
    active = sum(1 for s in states if s and s["status"] == "running")
    stop.set()
    await asyncio.gather(*pollers)
    return {"status": status, "jstatus": jstatus, "live": live, "errors": errors, "active_at_end": active}


def start_all(server: LiveServer, projects: list[str], config: dict[str, Any]) -> None:
    with server.client() as client:
        for p in projects:
            r = client.post("workflow/orchestrate", json={"projectId": p, "config": config})
            assert r.status_code == 201, (p, r.status_code, r.text[:300])


def cancel_all(server: LiveServer, projects: list[str]) -> None:
    with server.client() as client:
        for p in projects:
            client.post("workflow/orchestrate/cancel", json={"projectId": p})  # 409 when already finished
    wait_resting(server, projects)


def wait_resting(server: LiveServer, projects: list[str], timeout: float = 300) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    out = []
    with server.client(timeout=60) as client:
        for p in projects:
            since = 0
            while True:
                assert time.monotonic() < deadline, f"{p} did not rest within {timeout}s"
                ex = client.get(
                    "workflow/orchestrate/status", params={"projectId": p, "since": since, "timeout": 10}
                ).json()["orchestration"]
                if ex and ex["status"] in RESTING and not ex["currentRun"]:
                    out.append(ex)
                    break
                since = ex["version"] if ex else since
    return out


def memory_phase(base: Path, count: int) -> dict[str, float]:
    root = base / "mem-root"
    projects = make_projects(root, count + 1)
    warm, rest = projects[0], projects[1:]
    server = LiveServer(root, base / "mem-srv")
    server.start()
    try:
        # Warm-up: one whole orchestration, so code paths and caches are loaded before the first measure.
        start_all(server, [warm], fast_config(skipImplement=True, autoMerge=False))
        wait_resting(server, [warm])
        with server.client() as client:
            for p in [warm, *rest]:
                client.get("workflow/orchestrate/status", params={"projectId": p, "preview": "true"})
        time.sleep(1.0)
        rss_projects_before = rss_kib(server.pid)
        # Baseline: touch each project again (status + preview): what serving a project costs without orchestration.
        with server.client() as client:
            for p in rest:
                client.get("workflow/orchestrate/status", params={"projectId": p, "preview": "true"})
        time.sleep(1.0)
        rss_before = rss_kib(server.pid)
        start_all(server, rest, fast_config(skipImplement=True, autoMerge=False))
        states = wait_resting(server, rest)
        assert all(s["status"] == "waiting_merge" for s in states), {s["status"] for s in states}
        time.sleep(1.0)
        rss_after = rss_kib(server.pid)
    finally:
        server.stop()
    return {
        "count": count,
        "rss_before_mib": rss_before / 1024,
        "rss_after_mib": rss_after / 1024,
        "per_orch_kib": (rss_after - rss_before) / count,
        "per_project_kib": (rss_before - rss_projects_before) / count,
    }


def fmt(values: list[float]) -> tuple[str, str]:
    return f"{p50(values):.1f} ms", f"{percentile(values, 99):.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orchestrations", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="status requests for the idle baseline (the loaded one runs for --window)",
    )
    parser.add_argument("--window", type=float, default=40.0, help="seconds of loaded measurement")
    parser.add_argument("--delay", type=float, default=0.5, help="demo agent seconds per output line")
    parser.add_argument("--idle", type=int, default=100, help="idle orchestrations for the memory measure")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="bench-server-", ignore_cleanup_errors=True) as tmp:
        base = Path(tmp)
        root = base / "root"
        projects = make_projects(root, args.orchestrations)
        server = LiveServer(
            root,
            base / "srv",
            agent_env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": str(args.delay)},
        )
        server.start()
        try:
            idle = asyncio.run(status_latency(server, projects, args.requests))
            idle_j = asyncio.run(jupyter_status_latency(server, args.requests // 5))
            t0 = time.monotonic()
            start_all(server, projects, fast_config())
            start_s = time.monotonic() - t0
            loaded = asyncio.run(loaded_phase(server, projects, args.clients, args.window, args.requests))
            rss_loaded = rss_kib(server.pid)
            cancel_all(server, projects)  # kills the agents still running before their folders are removed
        finally:
            server.stop()
        mem = memory_phase(base, args.idle)

    live = loaded["live"]
    rows = [
        ("status, idle server (baseline A)", *fmt(idle), len(idle)),
        ("`/api/status` (jupyter_server's own), idle server", *fmt(idle_j), len(idle_j)),
        (
            f"**status, {args.orchestrations} running + {args.clients} long-poll clients**",
            *fmt(loaded["status"]),
            len(loaded["status"]),
        ),
        ("`/api/status` under the same load (baseline B)", *fmt(loaded["jstatus"]), len(loaded["jstatus"])),
        ("**live channel: change saved -> client has it**", *fmt(live), len(live)),
    ]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = (
        f"`.venv/bin/python benchmarks/bench_server.py --orchestrations {args.orchestrations} --clients {args.clients}"
        f" --requests {args.requests} --window {args.window:g} --delay {args.delay:g} --idle {args.idle}`"
    )
    table = "\n".join(f"| {name} | {a} | {b} | {n} |" for name, a, b, n in rows)
    body = f"""{SUBHEADING}

{cmd}, {stamp}, {machine()}.

A real `jupyter server` subprocess, the DEMO agent in scenario `slow` (a line every {args.delay:g} s) so all
{args.orchestrations} orchestrations are running batches during the measurement; {args.clients} clients hold
long-polls (`status?since=`) on {args.clients} of them. Status requests are sent one at a time by another client.
Starting the {args.orchestrations} orchestrations took {start_s:.1f} s; {loaded["active_at_end"]} were still
running when the window ended; {len(loaded["errors"])} client errors.

| measure | p50 | p99 | samples |
|---|---:|---:|---:|
{table}

Live-channel baseline: the original polled every 3 s, an expected delay of 1.5 s (worst 3 s) per change; the long-poll
delivers at p99 {percentile(live, 99):.1f} ms. Goal p99 < 50 ms for status:
{"met" if percentile(loaded["status"], 99) < 50 else "NOT met"} ({percentile(loaded["status"], 99):.1f} ms);
server RSS with the load: {rss_loaded / 1024:.0f} MiB.

**Memory per idle orchestration**: {mem["per_orch_kib"]:.0f} KiB ({mem["count"]} orchestrations resting in
`waiting_merge`, server RSS {mem["rss_before_mib"]:.1f} -> {mem["rss_after_mib"]:.1f} MiB). Baseline: serving the same
projects' status and preview without an orchestration added {mem["per_project_kib"]:.0f} KiB per project. Goal < 1 MB:
{"met" if mem["per_orch_kib"] < 1024 else "NOT met"}.
"""
    print(body)
    if loaded["errors"]:
        print("client errors:", loaded["errors"][:5])
    if not args.no_write:
        write_subsection(HEADING, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
