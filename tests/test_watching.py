"""Folder watches: one inotify instance per process however many folders, a change wakes only its folder's
waiters, and the portable (watchfiles) and network (polling) paths wake too."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from specflow_nb.watching import FolderWatch, watch_mode

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def inotify_instances() -> int:
    return sum(1 for fd in os.listdir("/proc/self/fd") if "inotify" in _link(f"/proc/self/fd/{fd}"))


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


async def _wakes(watch: FolderWatch, folder: Path, limit: float) -> float:
    """Seconds from a file written in ``folder`` to ``watch`` waking (fails past ``limit``)."""

    async def touch() -> None:
        await anyio.sleep(0.05)
        (folder / f"f{time.monotonic_ns()}").write_text("x")

    async with anyio.create_task_group() as tg:
        tg.start_soon(touch)
        t0 = time.monotonic()
        with anyio.fail_after(limit):
            await watch.wait(None)
        return time.monotonic() - t0


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="Linux only")
async def test_many_folders_share_one_inotify_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECFLOW_PORTABLE", raising=False)
    monkeypatch.delenv("SPECFLOW_WATCH_POLL", raising=False)
    folders = [tmp_path / f"d{i}" for i in range(200)]
    for f in folders:
        f.mkdir()
    before = inotify_instances()
    watches = [FolderWatch(f).__enter__() for f in folders]
    try:
        assert {w.mode for w in watches} == {"inotify"}
        assert inotify_instances() - before <= 1  # 200 folders, at most one new instance
        # a change in one folder wakes its watch, and not another folder's
        assert await _wakes(watches[7], folders[7], 5) < 2
        with anyio.move_on_after(0.3) as quiet:
            await watches[8].wait(None)
        assert quiet.cancelled_caught
    finally:
        for w in watches:
            w.__exit__(None, None, None)


@pytest.mark.parametrize("env", ["SPECFLOW_PORTABLE", "SPECFLOW_WATCH_POLL"])
async def test_portable_and_polling_paths_wake_on_a_change(
    tmp_path: Path, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "1")
    assert watch_mode(tmp_path) == ("watchfiles" if env == "SPECFLOW_PORTABLE" else "poll")
    with FolderWatch(tmp_path) as watch:
        assert await _wakes(watch, tmp_path, 5) < 2  # polling looks every 0.5 s; watchfiles debounces ≤ 100 ms
