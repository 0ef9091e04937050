"""Profile: where the milliseconds of a transition (agent exit → next agent started) go.

Run from the repository root:

    .venv/bin/python benchmarks/profile_transition.py --phases 3

The phase of ``bench_orchestrator.py`` (10 batches + verify + merge, instant DEMO agent), event-driven, with the
stages of a transition stamped (wall clock, the same clock as the run's exit and start stamps) by thin wrappers
around the functions that perform them. For each batch → batch transition it prints, per stage, the median time
from the previous stage's end to this stage's end: the stages follow one another on the loop, so the rows add up
to the transition (the last row is the gap between the last stage and the next run's start stamp).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))

import bench_orchestrator as bench

from specflow_nb import machine, performing, stepping
from specflow_nb.agent import launching, process
from specflow_nb.orchestrator import Orchestrator

MARKS: list[tuple[str, float]] = []


def _stamped(name: str, fn: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
    if is_async:

        @functools.wraps(fn)
        async def awrap(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            finally:
                MARKS.append((name, time.time()))

        return awrap

    @functools.wraps(fn)
    def wrap(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            MARKS.append((name, time.time()))

    return wrap


def install() -> None:
    """Stamp the end of each stage of a transition."""
    process.AgentRun._wait_exit = _stamped(  # type: ignore[method-assign]
        "exit noticed (the recorder's message on its pipe)", process.AgentRun._wait_exit, is_async=True
    )
    process.read_outcome = _stamped(  # type: ignore[assignment]
        "outcome read (follower's drain, classification)", process.read_outcome, is_async=False
    )
    original_transition = machine.transition

    def transition(ex: Any, event: Any) -> Any:
        try:
            return original_transition(ex, event)
        finally:
            MARKS.append((f"machine.transition({type(event).__name__})", time.time()))

    stepping.machine.transition = transition  # type: ignore[attr-defined]
    P = performing.Performer
    P.snapshot = _stamped("project read (tasks.md, plan)", P.snapshot, is_async=True)  # type: ignore[method-assign]
    P._prompt = _stamped("prompt and run options built", P._prompt, is_async=False)  # type: ignore[method-assign]
    performing.write_ahead_or_now = _stamped(  # type: ignore[assignment]
        "record saved (thread hop, lock, fence, dump, journal write + fdatasync)",
        performing.write_ahead_or_now,
        is_async=False,
    )
    launching.prepare = _stamped(  # type: ignore[assignment]
        "run folder (spare renamed, prompt.md, argv.json, run.lock)", launching.prepare, is_async=False
    )


def stages(ended: float, started: float) -> list[tuple[str, float]]:
    """The marks inside one transition window, as (stage, time since the previous mark)."""
    inside = sorted((t, n) for n, t in MARKS if ended <= t <= started)
    out, last = [], ended
    seen: dict[str, int] = {}
    for t, name in inside:
        seen[name] = seen.get(name, 0) + 1
        label = f"{name} #{seen[name]}" if seen[name] > 1 else name
        out.append((label, t - last))
        last = t
    out.append(("start stamp (pid.json startedAt, just before the fork)", started - last))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phases", type=int, default=3)
    args = parser.parse_args()
    install()
    rows: dict[str, list[float]] = {}
    order: list[str] = []
    totals: list[float] = []
    for i in range(args.phases + 1):
        with tempfile.TemporaryDirectory() as tmp:
            MARKS.clear()
            root = Path(tmp)
            anyio.run(bench.one_phase, Orchestrator, root, False)
            project = root / "proj"
            runs = sorted(p for p in (project / ".specflow" / "workflows").iterdir() if (p / "pid.json").exists())
            if i == 0:
                continue  # warm-up
            starts = [bench._stamp(p / "pid.json", "startedAt") for p in runs]
            ends = [bench._stamp(p / "exit.json", "endedAt") for p in runs]
            for k in range(len(runs) - 2):  # batch → batch only (the last is batch → verify)
                totals.append(starts[k + 1] - ends[k])
                for label, dt in stages(ends[k], starts[k + 1]):
                    if label not in rows:
                        order.append(label)
                    rows.setdefault(label, []).append(dt)
    ms = 1000.0
    print("| stage (end of) | median | p90 |")
    print("|---|---:|---:|")
    for label in order:
        values = sorted(rows[label])
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        print(f"| {label} | {statistics.median(values) * ms:.2f} ms | {p90 * ms:.2f} ms |")
    print(f"| **transition (batch → batch), median** | **{statistics.median(totals) * ms:.2f} ms** | |")
    print(f"\n{len(totals)} transitions over {args.phases} phases")


if __name__ == "__main__":
    main()
