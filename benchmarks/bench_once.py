"""Benchmark: the same operation timed back to back, and once after a pause (why the transition's floor is timed once).

Run from the repository root:

    .venv/bin/python benchmarks/bench_once.py            # 30 samples each, pause 0.2 s

A transition runs once per agent run, after the engine waited for the agent; ``bench_orchestrator.py`` times its
floor (two fsynced record writes and a fork/exec) the same way, and this shows why: each operation below is timed
(a) back to back in a loop, (b) once after sleeping ``--pause`` seconds, (c) once after spinning the CPU in Python
for as long. On the 2-CPU VM of ``RESULTS.md`` (b) costs 2–15× (a), kernel work and Python alike, and (c) about as
much for the kernel work: a hot loop measures a cost no transition ever sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from specflow_nb.models import OrchestrationExecution
from specflow_nb.store import atomic_write_text


def record() -> OrchestrationExecution:
    """A record of a dozen kilobytes, like a phase's in ``bench_orchestrator.py``."""
    at = datetime(2026, 11, 30, tzinfo=timezone.utc)
    ex = OrchestrationExecution(id="20261130T120000-abcdef", project_id="p", started_at=at, updated_at=at)
    ex.error_message = "x" * 12_000
    return ex


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def timed(fn: Callable[[], object], samples: int, before: Callable[[], None] | None) -> float:
    out = []
    for _ in range(samples):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.2)
    args = parser.parse_args()
    ex = record()
    text = ex.model_dump_json(indent=2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fd = os.open(folder / "journal", os.O_RDWR | os.O_CREAT)
        os.pwrite(fd, bytes(1 << 16), 0)
        os.fsync(fd)
        data = text.encode()
        ops: list[tuple[str, Callable[[], object]]] = [
            (
                "atomic write of the record (temp file, fsync, rename, folder fsync)",
                lambda: atomic_write_text(folder / "r.json", text),
            ),
            ("pwrite + fdatasync into a file of written zeros", lambda: (os.pwrite(fd, data, 0), os.fdatasync(fd))),
            ("fork/exec of `true` (Popen, then wait)", lambda: subprocess.Popen(["true"]).wait()),
            ("the record's model_dump_json", lambda: ex.model_dump_json(indent=2)),
            ("the record's model_validate_json", lambda: OrchestrationExecution.model_validate_json(text)),
        ]
        print(f"{args.samples} samples each, medians; pause {args.pause} s\n")
        print("| operation | back to back | once after a sleep | once after a spin | sleep / back to back |")
        print("|---|---:|---:|---:|---:|")
        for name, fn in ops:
            hot = timed(fn, args.samples, None)
            slept = timed(fn, args.samples, lambda: time.sleep(args.pause))
            spun = timed(fn, args.samples, lambda: spin(args.pause))
            ms = 1000.0
            print(f"| {name} | {hot * ms:.3f} ms | {slept * ms:.3f} ms | {spun * ms:.3f} ms | {slept / hot:.1f}x |")
        os.close(fd)


if __name__ == "__main__":
    main()
