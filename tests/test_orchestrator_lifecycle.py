"""The engine's lifecycle is structured: nothing it starts outlives ``async with`` / ``stop_loop()``.

Every background task (a run's watcher, the inbox server, an observer, the rescan, a subscriber's coroutine) lives in
the engine's task group; its threads (the lease renewer, the folder watch reader) end with it. Startup is awaited
through ``task_status.started()``, never polled. Real demo-agent runs, real files.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from specflow_nb.models import OrchestrationExecution
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.orch_helpers import base_config, big_project, settle, wait_until

pytestmark = pytest.mark.anyio

#: The names of the threads an engine starts (the lease renewer; the folder watch readers it makes start).
ENGINE_THREADS = ("specflow-lease", "specflow-inotify", "specflow-watch")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(tmp_path: Path, **kw: Any) -> EngineSettings:
    env = {
        "SPECFLOW_DEMO_LOG": str(tmp_path / "runs.jsonl"),
        "SPECFLOW_DEMO_SCENARIO": "slow",
        "SPECFLOW_DEMO_DELAY": "0.5",
    }
    return EngineSettings(agent_env=env, renew_seconds=0.2, rescan_seconds=0.2, **kw)


def engine_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.name.startswith(ENGINE_THREADS)]


def two_projects(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    big_project(root / "p", sections=3, total=6)
    big_project(root / "q", sections=3, total=6)
    return root


async def busy_engine(orch: Orchestrator, other: Orchestrator, seen: list[int]) -> None:
    """Give ``orch`` one of everything it runs in the background: a live run it watches and an inbox it serves
    (project p), a project it observes (q, driven by ``other``), the rescan, a subscriber's coroutine that never
    ends by itself, a live wait_for_change."""

    async def forever(ex: OrchestrationExecution) -> None:
        seen.append(ex.version)
        await anyio.sleep_forever()

    orch.subscribe(forever)
    await orch.start("p", base_config())
    await other.start("q", base_config())
    await wait_until(orch, "p", lambda e: e.current_run is not None and e.current_run.live, timeout=60)
    await wait_until(orch, "q", lambda e: e.current_run is not None, timeout=60)  # observed: other drives q
    assert orch.owns("p") and not orch.owns("q")
    assert seen, "the subscriber's coroutine ran in the engine's task group"


async def cancel_all(root: Path, tmp_path: Path) -> None:
    """Stop the detached demo runs the test left behind."""
    async with Orchestrator(root, settings(tmp_path)) as orch:
        for project in ("p", "q"):
            ex = orch.status(project)
            if ex is not None and ex.status.is_active:
                await orch.command(project, {"action": "cancel"})
            await settle(orch, project, timeout=60)


async def test_nothing_of_the_engine_outlives_async_with(tmp_path: Path) -> None:
    root = two_projects(tmp_path)
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    seen: list[int] = []
    other = Orchestrator(root, settings(tmp_path, host_kind="cli"))
    await other.start_loop()
    async with Orchestrator(root, settings(tmp_path)) as orch:
        await busy_engine(orch, other, seen)
        with anyio.move_on_after(0.2):
            await orch.wait_for_change("q", 10**9, 10)  # a live wait, cut off by the scope
    assert not orch.running
    await other.stop_loop()
    left = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert left == [], f"tasks left after the engines stopped: {left}"
    assert engine_threads(threads_before) == []
    await cancel_all(root, tmp_path)


async def test_nothing_of_the_engine_outlives_stop_loop(tmp_path: Path) -> None:
    root = two_projects(tmp_path)
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())
    seen: list[int] = []
    other = Orchestrator(root, settings(tmp_path, host_kind="cli"))
    orch = Orchestrator(root, settings(tmp_path))
    await other.start_loop()
    await orch.start_loop()  # returns once the engine has reconciled: it runs
    assert orch.running
    await busy_engine(orch, other, seen)
    await orch.stop_loop()
    await other.stop_loop()
    assert not orch.running and not other.running
    left = [t for t in asyncio.all_tasks() - tasks_before if not t.done()]
    assert left == [], f"tasks left after stop_loop: {left}"
    assert engine_threads(threads_before) == []
    await cancel_all(root, tmp_path)


async def test_serve_in_a_hosts_own_task_group(tmp_path: Path) -> None:
    """A host with a task group of its own starts the engine with ``tg.start`` (startup awaited, not polled)."""
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=2)
    threads_before = set(threading.enumerate())
    orch = Orchestrator(root, EngineSettings(renew_seconds=0.2))
    async with anyio.create_task_group() as tg:
        await tg.start(orch.serve)
        assert orch.running and "specflow-lease" in engine_threads(threads_before)
        await orch.stop_loop()
    assert not orch.running
    assert engine_threads(threads_before) == []


async def test_a_callback_coroutine_after_stop_is_dropped_not_run(tmp_path: Path) -> None:
    """A subscriber called while no loop runs (a status read that loads a record) must not start a task that
    outlives the engine: its coroutine is closed."""
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=2)
    ran: list[int] = []

    async def record(ex: OrchestrationExecution) -> None:
        ran.append(ex.version)

    async with Orchestrator(root, settings(tmp_path)) as orch:
        orch.subscribe(record)
        ex = await orch.start("p", base_config(pauseBetweenBatches=True))
        await anyio.sleep(0.1)
        assert ran, "a coroutine returned by a subscriber runs in the engine's task group"
        await orch.command("p", {"action": "cancel"})
        await settle(orch, "p", timeout=60)
    count = len(ran)
    tasks_before = asyncio.all_tasks()
    orch.scope.changed(orch._resolve("p"), ex)  # what a subscriber sees when a record changes
    assert asyncio.all_tasks() == tasks_before and len(ran) == count
