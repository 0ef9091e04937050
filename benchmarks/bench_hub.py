"""Benchmark: how many users' servers, each with an active orchestration, one host sustains on a real JupyterHub.

Run from the repository root (needs jupyterhub, jupyterhub-idle-culler and configurable-http-proxy, as tests/hub):

    .venv/bin/python benchmarks/bench_hub.py                       # ramp 1,2,4,8,12,16,20,24 users
    .venv/bin/python benchmarks/bench_hub.py --steps 1,4 --no-write

The hub is tests/hub/hubctl.py's (SimpleLocalProcessSpawner, one single-user server process per user, the
specflow extension loaded with jupyterlab and the other installed server extensions, as a real hub would run it).
Each user gets the sample project and an orchestration driven by the DEMO agent in "slow" mode (one output line per
``--delay`` seconds, so a batch run lasts tens of seconds like a short real run, with transitions in between); a
user whose phase finishes gets a fresh project and a new orchestration, so every user stays active.

At each step, after ``--settle`` seconds, for ``--window`` seconds:

* host CPU busy % (/proc/stat) and memory available (/proc/meminfo);
* per single-user server: RSS (VmRSS) and CPU % of one core over the window, its finished agent runs included
  (utime+stime+cutime+cstime: the server reaps each run's exit recorder, which reaps the agent);
* "ours": the CPU of every user's server tree plus the hub and the proxy, in % of one core (host CPU includes
  whatever else runs on the machine);
* per user: RSS of the agent processes (demo agent + its exit recorder) — the real Claude Code CLI's own footprint
  is measured separately (``--claude``) since it dominates a real run;
* the hub and the proxy: RSS, CPU %;
* responsiveness: latency of ``GET specflow/api/workflow/orchestrate/status`` through the proxy, 4 requests a second
  in all, users in turn (p50, p95) — what a panel or the CLI feels.

The ramp stops early when the status p95 exceeds ``--max-p95`` seconds or a server fails to start.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from specflow_nb.demo import prepare_sample  # noqa: E402
from tests.hub.hubctl import As, Hub, find_proxy, hub_missing_reason, tagged_pids  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## JupyterHub"
CONFIG = {"skipDesign": True, "skipAnalyze": True, "autoMerge": True}
TICK = os.sysconf("SC_CLK_TCK")
PROBE_RATE = 4.0
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------------------------------------------
# /proc readings


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole host."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def proc_cpu(pid: int, *, children: bool = False) -> int:
    """CPU ticks of the process (utime + stime), plus those of its reaped children (agent runs) with ``children``."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    own = int(parts[11]) + int(parts[12])
    return own + (int(parts[13]) + int(parts[14]) if children else 0)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def environ_of(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------------------------
# The ramp


@dataclass
class User:
    name: str
    client: As
    project: str = ""
    generation: int = 0


@dataclass
class Step:
    users: int
    active: int
    host_cpu: float
    mem_available: float
    server_rss: list[float]
    server_cpu: list[float]
    agent_rss_per_user: float
    hub_rss: float
    proxy_rss: float
    hub_cpu: float
    proxy_cpu: float
    latencies: list[float] = field(default_factory=list)
    start_seconds: float = 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if len(self.latencies) < 2:
            return self.p50
        return statistics.quantiles(self.latencies, n=20)[-1]


def new_orchestration(hub: Hub, user: User) -> None:
    user.generation += 1
    user.project = f"todo-{user.generation}"
    prepare_sample(hub.home(user.name) / user.project)
    code, body = user.client.post("workflow/orchestrate", {"projectId": user.project, "config": CONFIG})
    if code not in (200, 201):
        raise RuntimeError(f"start for {user.name}: {code} {body}")


def keep_active(hub: Hub, users: list[User]) -> int:
    """Start a new phase for every user whose phase ended; returns how many are active."""
    active = 0
    for user in users:
        code, body = user.client.get("workflow/orchestrate/status", projectId=user.project)
        ex = body.get("orchestration") if code == 200 else None
        if ex is None or ex["status"] in ("completed", "failed", "cancelled", "waiting_merge", "needs_attention"):
            new_orchestration(hub, user)
        active += 1
    return active


def classify(hub: Hub, users: list[User]) -> tuple[dict[str, int], list[int], int | None, int | None]:
    """Server pid per user, every agent-side pid, the hub's and the proxy's pids."""
    servers = {u.name: hub.server_pid(u.name) for u in users}
    server_pids = set(servers.values())
    agents = []
    hub_pid = proxy_pid = None
    for pid in tagged_pids(hub.tag):
        line = cmdline(pid)
        if pid in server_pids:
            continue
        if "configurable-http-proxy" in line:
            proxy_pid = pid
        elif "-m jupyterhub -f" in line:
            hub_pid = pid
        elif environ_of(pid).get("JUPYTERHUB_USER"):
            agents.append(pid)
    return servers, agents, hub_pid, proxy_pid


def measure(hub: Hub, users: list[User], window: float) -> Step:
    servers, agents, hub_pid, proxy_pid = classify(hub, users)
    watched = [*servers.values(), *(p for p in (hub_pid, proxy_pid) if p)]
    server_pids = set(servers.values())
    cpu0 = {pid: proc_cpu(pid, children=pid in server_pids) for pid in watched}
    busy0, total0 = cpu_times()
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        # a light, paced probe (PROBE_RATE requests/s in all, users in turn), so it measures and barely loads
        i = 0
        while not stop.wait(1.0 / PROBE_RATE):
            user = users[i % len(users)]
            t0 = time.perf_counter()
            code, _ = user.client.get("workflow/orchestrate/status", projectId=user.project)
            if code == 200:
                latencies.append(time.perf_counter() - t0)
            i += 1

    poller = threading.Thread(target=poll)
    poller.start()
    # sample RSS mid-window (agent processes come and go with their runs)
    time.sleep(window / 2)
    server_rss = [rss_mb(pid) for pid in servers.values()]
    _, agents, _, _ = classify(hub, users)
    agent_rss = sum(rss_mb(pid) for pid in agents)
    hub_rss = rss_mb(hub_pid) if hub_pid else 0.0
    proxy_rss = rss_mb(proxy_pid) if proxy_pid else 0.0
    mem = mem_available_mb()
    time.sleep(window / 2)
    stop.set()
    poller.join()
    busy1, total1 = cpu_times()
    elapsed_ticks = window * TICK

    def pct(pid: int | None) -> float:
        if not pid:
            return 0.0
        return 100.0 * (proc_cpu(pid, children=pid in server_pids) - cpu0.get(pid, 0)) / elapsed_ticks

    server_cpu = [pct(pid) for pid in servers.values()]
    return Step(
        users=len(users),
        active=len(users),
        host_cpu=100.0 * (busy1 - busy0) / max(1, total1 - total0),
        mem_available=mem,
        server_rss=server_rss,
        server_cpu=server_cpu,
        agent_rss_per_user=agent_rss / len(users),
        hub_rss=hub_rss,
        proxy_rss=proxy_rss,
        hub_cpu=pct(hub_pid),
        proxy_cpu=pct(proxy_pid),
        latencies=latencies,
    )


def claude_rss() -> float | None:
    """Peak RSS (MB) of the real Claude Code CLI answering one print-mode request (not logged in: it loads, fails
    auth and exits) — a lower bound of what each real agent run adds."""
    exe = os.environ.get("SPECFLOW_CLAUDE_BIN") or str(REPO / ".ci/node/node_modules/.bin/claude")
    if not Path(exe).exists() and not shutil.which("claude"):
        return None
    exe = exe if Path(exe).exists() else str(shutil.which("claude"))
    with tempfile.TemporaryDirectory() as home:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": home}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run(
            [exe, "-p", "--output-format", "json", "hello"], env=env, capture_output=True, timeout=120, check=False
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024


def ramp(args: argparse.Namespace) -> tuple[list[Step], str | None, float | None]:
    base = Path(tempfile.mkdtemp(prefix="specflow-bench-hub-"))
    proxy = find_proxy()
    assert proxy is not None
    hub = Hub(base, proxy)
    hub.start()
    users: list[User] = []
    steps: list[Step] = []
    stopped_because: str | None = None
    try:
        for target in args.steps:
            names = [f"u{i:03d}" for i in range(len(users), target)]
            for name in names:
                hub.home(name).mkdir(parents=True, exist_ok=True)
                (hub.control / f"{name}.delay").write_text(str(args.delay))
            t0 = time.monotonic()
            try:
                hub.start_servers(names, timeout=180)
            except RuntimeError as exc:
                stopped_because = f"servers for {target} users did not all start: {str(exc)[:200]}"
                break
            start_seconds = time.monotonic() - t0
            for name in names:
                user = User(name, As(hub, name, hub.token(name)))
                new_orchestration(hub, user)
                users.append(user)
            time.sleep(args.settle)
            keep_active(hub, users)
            step = measure(hub, users, args.window)
            step.start_seconds = start_seconds
            steps.append(step)
            print(row(step), flush=True)
            if step.p95 > args.max_p95:
                stopped_because = f"status p95 {step.p95:.2f}s > {args.max_p95}s at {target} users"
                break
    finally:
        for user in users:
            user.client.post("workflow/orchestrate/cancel", {"projectId": user.project})
            user.client.close()
        hub.stop()
        shutil.rmtree(base, ignore_errors=True)
    return steps, stopped_because, claude_rss() if args.claude else None


# --------------------------------------------------------------------------------------------------------------
# Report

COLUMNS = (
    "| users | ours CPU | host CPU | mem available | server RSS median | CPU/user | agent RSS/user | hub+proxy RSS "
    "| hub+proxy CPU | status p50 | status p95 | start new servers |\n"
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def row(s: Step) -> str:
    return (
        f"| {s.users} | {sum(s.server_cpu) + s.hub_cpu + s.proxy_cpu:.0f}% | {s.host_cpu:.0f}% "
        f"| {s.mem_available / 1024:.1f} GB | {statistics.median(s.server_rss):.0f} MB "
        f"| {statistics.mean(s.server_cpu):.1f}% | {s.agent_rss_per_user:.0f} MB | {s.hub_rss + s.proxy_rss:.0f} MB "
        f"| {s.hub_cpu + s.proxy_cpu:.0f}% | {s.p50 * 1000:.0f} ms | {s.p95 * 1000:.0f} ms | {s.start_seconds:.0f} s |"
    )


def report(args: argparse.Namespace, steps: list[Step], stopped: str | None, claude: float | None) -> str:
    load = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: `{platform.system()} {platform.release()} {platform.machine()}`, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; 1-minute load average {load:.1f} at the end",
        f"- Command: `python benchmarks/bench_hub.py --steps {','.join(map(str, args.steps))} --delay {args.delay} "
        f"--settle {args.settle} --window {args.window}`",
        "- Setup: a real JupyterHub (configurable-http-proxy, SimpleLocalProcessSpawner), one single-user server per "
        "user with the specflow extension (and jupyterlab, as installed); each user runs a phase of the sample "
        f"project with the DEMO agent writing one line per {args.delay} s (a batch run lasts tens of seconds); "
        "finished phases are restarted so every user stays active; status probed 4×/s through the proxy. The test "
        "hub's activity settings are chatty (activity posted every 1 s, refreshed every 1 s; production: 60 s / 30 s)",
        "",
        COLUMNS,
        *(row(s) for s in steps),
        "",
    ]
    if stopped:
        lines.append(f"Ramp stopped: {stopped}.")
    if claude is not None:
        lines.append(
            f"The real Claude Code CLI (2.1.197) peaks at {claude:.0f} MB RSS for one print-mode request that only "
            "loads and fails authentication: a real agent run adds at least that per active user."
        )
    lines.append("")
    return "\n".join(lines)


def write_results(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING in current:
        head, rest = current.split(HEADING, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        current = head + text + ("\n" + tail if tail else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="1,2,4,8,12,16,20,24", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--delay", type=float, default=1.0, help="demo agent seconds per output line")
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--window", type=float, default=20.0)
    p.add_argument("--max-p95", type=float, default=2.0, help="stop the ramp when status p95 exceeds this (s)")
    p.add_argument("--claude", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    reason = hub_missing_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    print(COLUMNS, flush=True)
    steps, stopped, claude = ramp(args)
    text = report(args, steps, stopped, claude)
    print(text)
    if not args.no_write:
        write_results(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
