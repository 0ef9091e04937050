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
from typing import Any

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


# ---- the real Codex CLI (``--codex``): the runner vs the same codex process with the same arguments

CODEX_HEADING = "## Agent runner: Codex"


def _codex_model(req: Any) -> list[Any]:
    """One batch through Codex's own shell tool: check T004 in tasks.md, then answer."""
    from tests.support.responses_server import Say, Shell

    last = req.input[-1] if req.input else {}
    if last.get("type") in ("function_call_output", "custom_tool_call_output"):
        return [Say("Checked T004.")]
    return [Shell(f"sed -i 's/^- \\[ \\] T004 /- [x] T004 /' specs/{SAMPLE_FEATURE}/tasks.md")]


def measure_codex(n: int, codex: str) -> tuple[dict[str, list[float]], str]:
    from specflow_nb.agent import build_argv
    from tests.support.codex_cli import codex_version, hermetic_env, provider_args
    from tests.support.responses_server import ResponsesServer

    results: dict[str, list[float]] = {k: [] for k in ("bare", "bare_first", "runner", "runner_first", "exit")}
    with tempfile.TemporaryDirectory() as tmp, ResponsesServer(max_requests=10 * (n + 1) + 10) as server:
        server.fallback = _codex_model
        project = prepare_sample(Path(tmp) / "todo")
        home = Path(tmp) / "codex-home"
        home.mkdir()
        extra = hermetic_env(home)
        opts = AgentOptions(
            agent="codex", command=codex, cwd=project, prompt=PROMPT, env=extra, extra_args=provider_args(server.url)
        )
        argv = build_argv(opts)  # the runner's exact argv, run bare with the same env
        env = {**os.environ, **extra}
        tasks = (project / "specs" / SAMPLE_FEATURE / "tasks.md").read_text()
        for i in range(n + 1):
            _reset(project, tasks)
            t0 = time.perf_counter()
            subprocess.run(argv, input=PROMPT.encode(), cwd=project, env=env, capture_output=True, check=True)
            b = time.perf_counter() - t0
            _reset(project, tasks)
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=project, env=env
            )
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(PROMPT.encode())
            proc.stdin.close()
            proc.stdout.readline()
            bf = time.perf_counter() - t0
            proc.stdout.read()
            proc.wait()
            _reset(project, tasks)
            r, rf, ex = anyio.run(_runner_with, opts, project / ".specflow" / "workflows" / f"codex-{i}")
            if i:
                for key, value in zip(results, (b, bf, r, rf, ex), strict=True):
                    results[key].append(value)
        return results, codex_version(codex)


async def _runner_with(opts: AgentOptions, run_dir: Path) -> tuple[float, float, float]:
    first: list[float] = []

    def on_event(_: StreamEvent) -> None:
        if not first:
            first.append(time.perf_counter())

    t0 = time.perf_counter()
    run = await start_run(run_dir, opts)
    outcome = await run.wait(on_event=on_event)
    t_done = time.perf_counter()
    wall_done = time.time()
    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    ended = datetime.fromisoformat(json.loads((run_dir / "exit.json").read_text())["endedAt"])
    return t_done - t0, first[0] - t0, wall_done - ended.timestamp()


def report_codex(results: dict[str, list[float]], n: int, version: str) -> str:
    med = {k: statistics.median(v) for k, v in results.items()}
    ms = {k: v * 1000 for k, v in med.items()}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return "\n".join(
        [
            CODEX_HEADING,
            "",
            f"`benchmarks/bench_runner.py --codex`, {when}, {machine}; median of {n} runs of the REAL Codex CLI",
            f"({version}) doing one batch (a shell tool call that checks T004 in tasks.md, then the answer: two model",
            "calls) against the scripted Responses API server on 127.0.0.1. Baseline: the same `codex exec` argv, env",
            "and server, launched with `subprocess.run`.",
            "",
            "| measure | runner | bare codex | ratio |",
            "|---|---:|---:|---:|",
            f"| launch -> outcome available (total) | {ms['runner']:.1f} ms | {ms['bare']:.1f} ms "
            f"| {med['runner'] / med['bare']:.2f}x |",
            f"| spawn -> first event | {ms['runner_first']:.1f} ms | {ms['bare_first']:.1f} ms "
            f"| {med['runner_first'] / med['bare_first']:.2f}x |",
            f"| agent exit -> outcome available | {ms['exit']:.1f} ms | — | — |",
            "",
            "On top of the Claude path the Codex runner writes the strict output schema (none here), reads Codex's",
            "session file for the per-call usage that prices the run, and runs under the Codex exit recorder (the",
            "one that resumes a rate-limited thread). Codex's own start-up and its two model calls dominate: the runner's",
            "total is within run-to-run noise of the bare process (bare and runner runs alternate; a ratio under 1 is noise,",
            "not a speed-up), and the exit -> outcome step includes reading the session file.",
        ]
    )


def write_named_section(heading: str, section: str) -> None:
    """Replace (or append) the section under ``heading`` in RESULTS.md."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        runner_at = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
        if runner_at is None:
            new = text.rstrip("\n") + "\n\n" + section + "\n"
        else:  # right after the Claude runner's section
            end = next((j for j in range(runner_at + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
            new = "\n".join([*lines[:end], *section.splitlines(), "", *lines[end:]])
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        new = "\n".join([*lines[:start], *section.splitlines(), "", *lines[end:]])
    RESULTS.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="runs per measure (default 15)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument(
        "--codex",
        metavar="BIN",
        nargs="?",
        const="",
        help="measure the real Codex CLI instead (default: $SPECFLOW_CODEX_BIN or .ci/node's codex)",
    )
    args = ap.parse_args()
    if args.codex is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.support.codex_cli import find_codex

        codex = args.codex or find_codex()
        if not codex:
            raise SystemExit("no codex binary: npm install --prefix .ci/node @openai/codex@0.169.0")
        results, version = measure_codex(args.n, codex)
        section = report_codex(results, args.n, version)
        print(section)
        if not args.no_write:
            write_named_section(CODEX_HEADING, section)
            print(f"updated {RESULTS}")
        return
    section = report(measure(args.n), args.n)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"updated {RESULTS}")


if __name__ == "__main__":
    main()
