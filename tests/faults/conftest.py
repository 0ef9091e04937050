"""Resource faults through a real ``jupyter server`` subprocess: a read-only or full state folder, a vanished agent
binary, an agent flooding its output.

The storage faults are real, not injected: a read-only bind mount and a size-limited tmpfs over the project's
``.specflow/workflows`` folder. That needs root and ``mount`` (both present in this project's CI container); where
they are missing the storage tests are skipped with the reason (an ``OSError`` injected in-process would not test the
real write path). Everything else needs neither.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

STATUS = "workflow/orchestrate/status"


def _can_mount(probe: Path) -> str | None:
    """None when tmpfs and bind mounts work here, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root for mount"
    probe.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
    if done.returncode != 0:
        return f"mount is not permitted here: {done.stderr.decode(errors='replace').strip()}"
    subprocess.run(["umount", str(probe)], check=True)
    return None


@pytest.fixture(scope="session")
def mountable(tmp_path_factory: pytest.TempPathFactory) -> None:
    reason = _can_mount(tmp_path_factory.mktemp("mount-probe") / "m")
    if reason:
        pytest.skip(reason)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a folder) read-only for everyone, root included, until the block ends (a read-only bind mount)."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        _umount(path)


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """Put ``path`` (a folder) on a tmpfs of ``size``, keeping its files; yields a filler file that fills the disk."""
    path.mkdir(parents=True, exist_ok=True)
    saved = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        for rel, data in saved.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_bytes(data)
        yield path / "filler.bin"
    finally:
        _umount(path)


def fill(filler: Path) -> None:
    """Write ``filler`` until the file system says ENOSPC."""
    try:
        with filler.open("wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC


def settle(client: httpx.Client, project: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the orchestration rests (not running, no run in flight, no killed run's end pending, no diagnosis
    helper in flight: its answer and cost have landed)."""
    deadline = time.monotonic() + timeout
    params: dict[str, Any] = {"projectId": project}
    while True:
        r = client.get(STATUS, params=params)
        assert r.status_code == 200, r.text
        ex = r.json()["orchestration"]
        if (
            ex is not None
            and ex["currentRun"] is None
            and ex["status"] != "running"
            and not ex["killedRunIds"]
            and not ex.get("pendingDiagnoses")
        ):
            return dict(ex)
        assert time.monotonic() < deadline, f"{project} did not settle: {ex and ex['status']}"
        params = {"projectId": project, "since": ex["version"] if ex else 0, "timeout": 3}


def drive_to_end(client: httpx.Client, project: str, timeout: float = 90) -> dict[str, Any]:
    """Resume every pause (pauseBetweenBatches) until the orchestration is no longer paused."""
    deadline = time.monotonic() + timeout
    while True:
        ex = settle(client, project, timeout=max(1.0, deadline - time.monotonic()))
        if ex["status"] != "paused":
            return ex
        r = client.post("workflow/orchestrate/resume", json={"projectId": project})
        assert r.status_code == 200, r.text


def assert_no_server_error(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert " 500 " not in text, text[-4000:]
    assert "Traceback" not in text, text[-6000:]
