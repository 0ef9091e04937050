"""Concurrency through a real server: simultaneous starts on one project, and pause/resume/cancel storms.

* 50 simultaneous ``POST workflow/orchestrate`` on one project → exactly one 201, 49 × 409 naming the winner.
* Storms of pause/resume/cancel from many clients at once on a running phase → every answer is 200 or 409 (never a
  500), and the state that remains is valid: the record parses, its status agrees with its run, versions seen on the
  live channel never go back, and the orchestration can still be driven to an end.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.common import LiveServer, corrupt_files, fast_config, make_projects, state_files

from .conftest import LONG, SEED

STATUS = "workflow/orchestrate/status"
pytestmark = pytest.mark.anyio
STORMS = 6 if LONG else 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("concurrency")
    make_projects(base / "root", 0)
    live = LiveServer(
        base / "root", base / "srv", agent_env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.03"}
    )
    live.start()
    yield live
    live.stop()
    log = live.log.read_text(errors="replace")
    assert " 500 " not in log and "Traceback" not in log, log[-4000:]


def new_project(server: LiveServer, name: str) -> Path:
    [pid] = make_projects(server.root, 1, prefix=name)
    return server.root / pid


async def settle(client: httpx.AsyncClient, project: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    since = 0
    while True:
        assert time.monotonic() < deadline, "did not settle"
        r = await client.get(STATUS, params={"projectId": project, "since": since, "timeout": 5})
        assert r.status_code == 200, r.text
        ex = r.json()["orchestration"]
        # resting: nothing in flight, and a killed run's end (one more saved version) already recorded
        if ex["currentRun"] is None and ex["status"] != "running" and not ex["killedRunIds"]:
            return dict(ex)
        since = ex["version"]


def check_valid(project: Path, ex: dict[str, Any]) -> None:
    """Basic invariants of a resting orchestration, on the server's answer and on the file."""
    assert corrupt_files(project) == []
    [path] = state_files(project)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["version"] == ex["version"] and on_disk["status"] == ex["status"]
    assert on_disk["currentRun"] is None
    if ex["status"] in ("completed", "cancelled", "failed"):
        assert on_disk["completedAt"] is not None
    if ex["status"] == "paused":
        assert not on_disk["pauseRequested"], "paused with a pause still pending"
    stamps = [e["timestamp"] for e in on_disk["decisionLog"]]
    assert stamps == sorted(stamps), "decision log out of order"
    for b in on_disk["batches"]["items"]:
        assert b["status"] != "running", b


async def test_fifty_simultaneous_starts_one_wins(server: LiveServer) -> None:
    project = new_project(server, "starts").name
    body = {"projectId": project, "config": fast_config(pauseBetweenBatches=True)}
    async with server.async_client(limits=httpx.Limits(max_connections=60)) as client:
        responses = await asyncio.gather(*(client.post("workflow/orchestrate", json=body) for _ in range(50)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [409] * 49, codes
        winner = next(r for r in responses if r.status_code == 201).json()["orchestration"]["id"]
        for r in responses:
            if r.status_code == 409:
                err = r.json()
                assert err["error"] == (
                    f"Orchestration already in progress: {winner}. Cancel it first or wait for completion."
                ), err
        r = await client.post("workflow/orchestrate/cancel", json={"projectId": project})
        assert r.status_code in (200, 409), r.text
        ex = await settle(client, project)
    assert ex["status"] == "cancelled"
    check_valid(server.root / project, ex)


async def watch_versions(client: httpx.AsyncClient, project: str, stop: asyncio.Event, seen: list[int]) -> None:
    since = 0
    while not stop.is_set():
        r = await client.get(STATUS, params={"projectId": project, "since": since, "timeout": 1})
        assert r.status_code == 200, r.text
        ex = r.json()["orchestration"]
        if ex is not None:
            seen.append(ex["version"])
            since = max(since, ex["version"])


@pytest.mark.parametrize("storm", range(STORMS))
async def test_command_storm_leaves_a_valid_state(server: LiveServer, storm: int) -> None:
    rng = random.Random(SEED + storm)
    project = new_project(server, f"storm{storm}-").name
    async with server.async_client(limits=httpx.Limits(max_connections=40)) as client:
        r = await client.post("workflow/orchestrate", json={"projectId": project, "config": fast_config()})
        assert r.status_code == 201, r.text
        stop = asyncio.Event()
        seen: list[int] = []
        watcher = asyncio.create_task(watch_versions(client, project, stop, seen))

        async def burst(n: int) -> list[int]:
            codes = []
            for _ in range(n):
                verb = rng.choices(["pause", "resume", "cancel"], weights=[5, 5, 1 if storm % 2 else 0])[0]
                await asyncio.sleep(rng.uniform(0, 0.15))
                resp = await client.post(f"workflow/orchestrate/{verb}", json={"projectId": project})
                assert resp.status_code in (200, 409), (verb, resp.status_code, resp.text)
                if resp.status_code == 409:
                    assert resp.json()["code"] in ("OrchestrationConflict", "IllegalTransition"), resp.text
                codes.append(resp.status_code)
            return codes

        results = await asyncio.gather(*(burst(12) for _ in range(10)))
        assert any(200 in codes for codes in results)
        # Drive it to an end: resume whatever the storm left paused, then let it finish (or it was cancelled).
        for _ in range(20):
            ex = await settle(client, project)
            if ex["status"] != "paused":
                break
            r = await client.post("workflow/orchestrate/resume", json={"projectId": project})
            assert r.status_code in (200, 409), r.text
        stop.set()
        await watcher
    assert ex["status"] in ("completed", "cancelled"), (ex["status"], ex["errorMessage"])
    assert seen == sorted(seen), "the live channel delivered an older version after a newer one"
    check_valid(server.root / project, ex)
