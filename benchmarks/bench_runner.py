"""Benchmark: the agent runner's overhead over the bare agent process.

Run from the repository root:

    .venv/bin/python benchmarks/bench_runner.py            # prints the numbers and updates benchmarks/RESULTS.md
    .venv/bin/python benchmarks/bench_runner.py --no-write # prints only

The agent is the DEMO agent (a real Python process doing a real batch: it checks four tasks in tasks.md and writes
four files). The baseline, timed in the same run on the same project, is the least any launcher must do:
``subprocess.run`` with the prompt on stdin and the output captured. The runner additionally writes the run folder
(prompt, argv, pid record), starts the process detached under a tiny exit recorder with its output going to files, follows the output as it
grows (inotify), awaits the exit (pidfd) and parses the stream into the typed outcome.

Measured per run (median of N):
* total: launch until the outcome is available, vs the bare process's wall time -> ratio;
* spawn -> first event: start_run() until the first parsed event, vs the bare process's time to its first stdout
  line (Popen with a pipe) -> ratio;
* agent exit -> outcome: from the agent's exit (exit.json's endedAt, stamped by the run's exit recorder the moment
  its child ended) until wait() returned the outcome (recorder exit, pidfd wake-up, parsing, outcome.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import anyio

from specflow_nb.agent import AgentOptions, StreamEvent, start_run
from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Agent runner"
PROMPT = (
    'Execute only the "Phase 2: Foundational - model and storage" section (T004, T005, T006, T007). '
    "Do NOT work on tasks from other sections."
)
DEMO_ARGV = [sys.executable, "-m", "specflow_nb.demo.demo_agent"]
CLI_ARGS = ["-p", "--output-format", "stream-json", "--verbose"]


def _reset(project: Path, tasks: str) -> None:
    (project / "specs" / SAMPLE_FEATURE / "tasks.md").write_text(tasks)


def bare_total(project: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([*DEMO_ARGV, *CLI_ARGS], input=PROMPT.encode(), cwd=project, capture_output=True, check=True)
    return time.perf_counter() - t0


def bare_first_line(project: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*DEMO_ARGV, *CLI_ARGS], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=project
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(PROMPT.encode())
    proc.stdin.close()
    proc.stdout.readline()
    first = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return first


async def runner(project: Path, run_dir: Path) -> tuple[float, float, float]:
    opts = AgentOptions(command=shlex.join(DEMO_ARGV), cwd=project, prompt=PROMPT)
    first: list[float] = []

    def on_event(_: StreamEvent) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    run = await start_run(run_dir, opts)
    outcome = await run.wait(on_event=on_event)
    t_done = time.perf_counter()
    wall_done = time.time()
    assert outcome.ok, outcome.failure_message
    ended = datetime.fromisoformat(json.loads((run_dir / "exit.json").read_text())["endedAt"])
    exit_to_outcome = wall_done - ended.timestamp()
    return t_done - t0, first[0] - t0, exit_to_outcome


def measure(n: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {k: [] for k in ("bare", "bare_first", "runner", "runner_first", "exit")}
    with tempfile.TemporaryDirectory() as tmp:
        project = prepare_sample(Path(tmp) / "todo")
        tasks = (project / "specs" / SAMPLE_FEATURE / "tasks.md").read_text()
        for i in range(n + 1):  # the first round warms caches and is dropped
            _reset(project, tasks)
            b = bare_total(project)
            _reset(project, tasks)
            bf = bare_first_line(project)
            _reset(project, tasks)
            r, rf, ex = anyio.run(runner, project, project / ".specflow" / "workflows" / f"bench-{i}")
            if i:
                for key, value in zip(results, (b, bf, r, rf, ex), strict=True):
                    results[key].append(value)
    return results


def report(results: dict[str, list[float]], n: int) -> str:
    med = {k: statistics.median(v) for k, v in results.items()}
    ms = {k: v * 1000 for k, v in med.items()}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return "\n".join(
        [
            HEADING,
            "",
            f"`benchmarks/bench_runner.py`, {when}, {machine}; median of {n} runs of the DEMO agent doing one real",
            "4-task batch on the sample project (baseline: the same process launched with `subprocess.run`).",
            "",
            "| measure | runner | bare process | ratio |",
            "|---|---:|---:|---:|",
            f"| launch -> outcome available (total) | {ms['runner']:.1f} ms | {ms['bare']:.1f} ms "
            f"| {med['runner'] / med['bare']:.2f}x |",
            f"| spawn -> first event | {ms['runner_first']:.1f} ms | {ms['bare_first']:.1f} ms "
            f"| {med['runner_first'] / med['bare_first']:.2f}x |",
            f"| agent exit -> outcome available | {ms['exit']:.1f} ms | — | — |",
            "",
            "The runner's extra cost is the run folder (prompt, argv, pid record with fsync), the exit recorder (a",
            "`python -I -S` session leader that records the agent's exit status so an adopted run's status is known),",
            "parsing the stream twice (live for events, then from the file for the outcome) and writing outcome.json.",
            "Completion is a pidfd and new output is inotify, so no polling interval shows up in these numbers.",
        ]
    )


def write_section(section: str) -> None:
    """Replace the "## Agent runner" section of RESULTS.md (or append it); other sections stay as they are."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "\n".join([*lines[:start], *section.splitlines(), "", *lines[end:]])
    RESULTS.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="runs per measure (default 15)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    section = report(measure(args.n), args.n)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
