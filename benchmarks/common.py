"""Shared helpers for the server benchmarks and the reliability tests (tests/chaos, tests/fuzz, tests/faults).

A real ``jupyter server`` subprocess with the specflow extension (:class:`LiveServer`): start it, SIGKILL it,
restart it on the same root, read its memory from ``/proc``. Projects are copies of the bundled sample (a git repo
with 20 tasks in 6 sections); copying one prepared repo is much faster than ``git init`` per project.

Importable both as ``benchmarks.common`` (from the repository root, e.g. by pytest) and as ``common`` (when a
benchmark runs as ``python benchmarks/bench_x.py``).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample

TOKEN = "bench-token"
API = "specflow/api/"
DEMO_AGENT = [sys.executable, "-m", "specflow_nb.demo.demo_agent"]
WORKFLOWS = Path(".specflow") / "workflows"
ACTIVE = ("running", "paused", "waiting_merge", "needs_attention")
RESTING = ("paused", "waiting_merge", "needs_attention", "completed", "failed", "cancelled")
_OTHER_EXTENSIONS = {
    name: False for name in ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim", "notebook")
}
_CLIENT_ENV = ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def hwm_kib(pid: int) -> int:
    """Peak resident memory of ``pid`` in KiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


class LiveServer:
    """One ``jupyter server`` process over ``root`` with the specflow extension; restartable on the same root.

    ``agent_env`` reaches every agent run (e.g. SPECFLOW_DEMO_SCENARIO); ``settings`` are extra
    ``SpecflowExtension`` traitlets. The server's stderr is appended to ``base/server.log`` across restarts.
    """

    def __init__(
        self,
        root: Path,
        base: Path,
        *,
        agent_command: list[str] | None = None,
        agent_env: dict[str, str] | None = None,
        max_concurrent: int = 250,
        settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.base = Path(base)
        self.agent_command = agent_command if agent_command is not None else DEMO_AGENT
        self.agent_env = dict(agent_env or {})
        self.max_concurrent = max_concurrent
        self.settings = dict(settings or {})
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api(self) -> str:
        return self.url + API

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {TOKEN}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def _config(self) -> Path:
        config_dir = self.base / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        ext: dict[str, Any] = {
            "agent_env": self.agent_env,
            "max_concurrent_orchestrations": self.max_concurrent,
            **self.settings,
        }
        if self.agent_command:  # [] = no override: each orchestration's own agentCommand is used
            ext["agent_command"] = shlex.join(self.agent_command)
        (config_dir / "jupyter_server_config.json").write_text(json.dumps({"SpecflowExtension": ext}))
        return config_dir

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its API answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.base.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.base / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self._config()),
        }
        for var in _CLIENT_ENV:
            env.pop(var, None)
        env.update(self.env)
        self.port = free_port()
        with self.log.open("ab") as log:
            log.write(f"\n==== start {self.starts + 1} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter_server",
                    "--no-browser",
                    "--ip=127.0.0.1",
                    f"--port={self.port}",
                    f"--ServerApp.root_dir={self.root}",
                    # Only specflow: JupyterLab, LSP and terminals would slow every (re)start and are not measured.
                    "--ServerApp.jpserver_extensions=" + repr({"specflow_nb.server": True, **_OTHER_EXTENSIONS}),
                    f"--IdentityProvider.token={TOKEN}",
                    "--allow-root",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,  # a file, not a pipe: an undrained pipe would block the server
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(self.api + "projects", headers=self.headers, timeout=5)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server process itself (detached agent runs live on, as after a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (clean shutdown), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.headers, timeout=kw.pop("timeout", 30), **kw)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api, headers=self.headers, timeout=kw.pop("timeout", 30), **kw)


@contextmanager
def live_server(root: Path, base: Path, **kw: Any) -> Iterator[LiveServer]:
    server = LiveServer(root, base, **kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------------------
# Projects


def make_projects(root: Path, count: int, *, prefix: str = "p") -> list[str]:
    """``count`` copies of the sample project (git repos on their feature branch) under ``root``; their ids."""
    root.mkdir(parents=True, exist_ok=True)
    template = root.parent / f".{root.name}-template"
    if not template.exists():
        prepare_sample(template)
    ids = []
    for i in range(count):
        pid = f"{prefix}{i:03d}"
        shutil.copytree(template, root / pid, symlinks=True)
        ids.append(pid)
    return ids


def tasks_file(project: Path) -> Path:
    return project / "specs" / SAMPLE_FEATURE / "tasks.md"


def fast_config(**extra: Any) -> dict[str, Any]:
    """Design and analyze skipped (the sample has its artifacts), verify skipped, auto-merge: a phase of batches."""
    return {"skipDesign": True, "skipAnalyze": True, "skipVerify": True, "autoMerge": True, **extra}


def state_files(project: Path) -> list[Path]:
    return sorted((project / WORKFLOWS).glob("orchestration-*.json"))


def corrupt_files(project: Path) -> list[Path]:
    return sorted((project / WORKFLOWS).glob("orchestration-*.json.corrupt-*"))


def read_states(project: Path) -> list[dict[str, Any]]:
    """Every orchestration record of a project, parsed (raises if any is torn)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in state_files(project)]


def run_log(path: Path) -> list[dict[str, Any]]:
    """The demo agent's SPECFLOW_DEMO_LOG lines (one per run)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------
# Numbers


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"jupyter_server {_version('jupyter_server')}, tornado {_version('tornado')}"
    )


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(heading: str, body: str) -> None:
    """Replace the ``heading`` section of RESULTS.md (or append it), re-reading the file just before; others stay."""
    section = f"{heading}\n\n{body.strip()}\n"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    if heading not in lines:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join([*lines[:start], *section.splitlines(), "", *lines[end:]])
    RESULTS.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def write_subsection(heading: str, body: str) -> None:
    """Replace the ``### `` block titled by ``body``'s first line inside ``heading``'s section; others stay."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if heading not in text.splitlines():
        write_section(heading, body)
        return
    lines = text.splitlines()
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start + 1 : end]
    title = body.strip().splitlines()[0]
    if title in section:
        s = section.index(title)
        e = next((i for i in range(s + 1, len(section)) if section[i].startswith("### ")), len(section))
        section = [*section[:s], *body.strip().splitlines(), "", *section[e:]]
    else:
        section = [*section, "", *body.strip().splitlines(), ""]
    new = [*lines[: start + 1], *section, *lines[end:]]
    RESULTS.write_text("\n".join(new).rstrip("\n") + "\n", encoding="utf-8")
