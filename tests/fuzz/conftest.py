"""Fuzzing through a real ``jupyter server`` subprocess: one server per module, the DEMO agent, bounded examples.

``SPECFLOW_LONG=1`` raises the number of examples (see ``EXAMPLES``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.common import WORKFLOWS, LiveServer, fast_config, make_projects

LONG = os.environ.get("SPECFLOW_LONG", "") not in ("", "0")
EXAMPLES = 1000 if LONG else 150
RESTING_PROJECT = "fz000"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every orchestration record under ``root`` (path -> bytes): a rejected request must not change any."""
    return {str(p): p.read_bytes() for p in sorted(root.glob(f"*/{WORKFLOWS}/orchestration-*.json"))}


def settle(client: httpx.Client, project: str, timeout: float = 60) -> dict[str, Any] | None:
    """Wait until the project's orchestration (if any) has no run in flight and is not running."""
    deadline = time.monotonic() + timeout
    params: dict[str, Any] = {"projectId": project}  # first a plain read: a long-poll on nothing would wait
    while True:
        r = client.get("workflow/orchestrate/status", params=params)
        assert r.status_code == 200, r.text
        ex = r.json()["orchestration"]
        if ex is None or (ex["currentRun"] is None and ex["status"] != "running" and not ex["killedRunIds"]):
            return ex  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"{project} did not settle"
        params = {"projectId": project, "since": ex["version"], "timeout": 3}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose root holds fz000 (an orchestration resting in waiting_merge) and fz001 (none)."""
    base = tmp_path_factory.mktemp("fuzz")
    make_projects(base / "root", 2, prefix="fz")
    live = LiveServer(base / "root", base / "srv")
    live.start()
    with live.client() as client:
        body = {"projectId": RESTING_PROJECT, "config": fast_config(skipImplement=True, autoMerge=False)}
        r = client.post("workflow/orchestrate", json=body)
        assert r.status_code == 201, r.text
        ex = settle(client, RESTING_PROJECT)
        assert ex is not None and ex["status"] == "waiting_merge", ex
    yield live
    live.stop()
    log = live.log.read_text(errors="replace")
    assert " 500 " not in log and "Traceback" not in log, log[-4000:]
