"""Benchmark: delay from a state change saved by the server to the panel's widgets showing it.

Runs a real `jupyter server` with the extension, drives PHASES phases from a real ProjectPanel (RemoteBackend,
long-poll live channel) with the demo agent, and beside it a client that polls ``status`` every 3 s (the
original's design, the baseline). A thread watches the state file on disk (every 2 ms) and records when each
version appears. For every version saved, the delay is the time until the client showed that version or a newer
one. Prints one JSON line; results go to benchmarks/RESULTS.md "## Panel".

    .venv/bin/python -m tests.widgets.bench_live_latency [PHASES]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import specflow_nb
from specflow_nb.client import SpecflowClient
from specflow_nb.demo import prepare_sample
from specflow_nb.models import OrchestrationExecution
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server
from tests.widgets.panel_driver import start_from_form, status_is, until

BASELINE_POLL_SECONDS = 3.0


class DiskWatcher(threading.Thread):
    """First time each (orchestration id, version) is readable in the project's state files."""

    def __init__(self, project: Path) -> None:
        super().__init__(daemon=True)
        self.folder = project / ".specflow" / "workflows"
        self.seen: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.folder.glob("orchestration-*.json") if self.folder.is_dir() else ():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                self.seen.setdefault((data["id"], int(data["version"])), time.monotonic())
            time.sleep(0.002)


class Poller(threading.Thread):
    """The baseline: GET status every 3 s."""

    def __init__(self, project_id: str) -> None:
        super().__init__(daemon=True)
        self.client = SpecflowClient()
        self.project_id = project_id
        self.shown: list[tuple[float, str, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(BASELINE_POLL_SECONDS):
            ex = self.client.status(self.project_id)
            if ex is not None:
                self.shown.append((time.monotonic(), ex.id, ex.version))
        self.client.close()


def delays(saved: dict[tuple[str, int], float], shown: list[tuple[float, str, int]]) -> list[float]:
    """For each saved version: time until a version >= it (same orchestration) was shown."""
    out = []
    for (oid, version), t_saved in saved.items():
        later = [t for t, sid, sv in shown if sid == oid and sv >= version and t >= t_saved]
        if later:
            out.append(min(later) - t_saved)
    return out


def stats(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
        "worst_ms": round(1000 * ordered[-1], 1),
    }


async def drive(project: Path) -> tuple[list[tuple[float, str, int]], list[tuple[float, str, int]]]:
    """One phase from the panel's form to complete; what the panel and the 3 s poller showed, and when."""
    panel = specflow_nb.panel(project)
    shown: list[tuple[float, str, int]] = []
    apply = panel.apply

    def timed_apply(execution: OrchestrationExecution | None) -> None:
        apply(execution)  # sets the widget values synchronously
        if execution is not None and panel.execution is execution:
            shown.append((time.monotonic(), execution.id, execution.version))

    panel.apply = timed_apply  # type: ignore[method-assign]
    poller = Poller(panel.project_id)
    poller.start()
    try:
        await start_from_form(panel)
        await until(panel, status_is("waiting_merge"), "merge ready", timeout=120)
        panel.progress.merge.merge.click()
        await until(panel, status_is("completed"), "complete", timeout=60)
        await asyncio.sleep(BASELINE_POLL_SECONDS + 0.5)  # the poller sees the end too
    finally:
        poller.stop.set()
        await panel.aclose()
        if panel.backend is not None:
            await panel.backend.aclose()
    poller.join(10)
    return shown, poller.shown


def main(phases: int) -> dict[str, Any]:
    live: list[float] = []
    baseline: list[float] = []
    saved = 0
    with tempfile.TemporaryDirectory(prefix="bench-panel-") as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        runtime = base / "runtime"
        for var in CLIENT_ENV_VARS:
            os.environ.pop(var, None)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
        with jupyter_server(root, runtime, base=base):
            for n in range(phases):  # a new sample project per phase (a merged phase is not completed twice)
                project = prepare_sample(root / f"todo{n}")
                watcher = DiskWatcher(project)
                watcher.start()
                shown, polled = asyncio.run(drive(project))
                watcher.stop.set()
                watcher.join(5)
                saved += len(watcher.seen)
                live += delays(watcher.seen, shown)
                baseline += delays(watcher.seen, polled)
    result: dict[str, Any] = {
        "phases": phases,
        "versions_saved": saved,
        "panel_live_channel": stats(live),
        "baseline_poll_3s": stats(baseline),
    }
    result["median_ratio_baseline_over_live"] = round(
        result["baseline_poll_3s"]["median_ms"] / max(result["panel_live_channel"]["median_ms"], 0.1), 1
    )
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)))
