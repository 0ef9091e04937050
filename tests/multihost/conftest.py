"""Several real hosts on one project: Jupyter server processes, ``specflow-nb`` CLI processes, the demo agent.

Every host is a real process. Servers are found by nobody (each has its own JUPYTER_RUNTIME_DIR), so a terminal
in the project cannot discover them: the situation of a remote server, another user's server or another runtime
dir. The demo agent logs one JSON line per run (SPECFLOW_DEMO_LOG), so tests count agent runs per batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.common import DEMO_AGENT, LiveServer, make_projects, read_states, run_log, tasks_file
from specflow_nb import ownership
from specflow_nb.store import OrchestrationStore

CLI = str(Path(sys.executable).parent / "specflow-nb")
SLOW = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.15"}


def tasks_text(sections: int, per: int) -> str:
    lines, n = ["# Tasks: hosts", ""], 0
    for s in range(sections):
        lines += [f"## Phase {s + 1}: Part {s + 1}", ""]
        for _ in range(per):
            n += 1
            lines.append(f"- [ ] T{n:03d} Do thing {n} in `src/mod{n}.py`")
        lines.append("")
    return "\n".join(lines)


class Hosts:
    """One project under one root, and the hosts a test starts on it (all stopped at the end)."""

    def __init__(self, tmp: Path, *, sections: int = 3, per: int = 2) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        [self.project_id] = make_projects(self.root, 1)
        self.project = self.root / self.project_id
        tasks_file(self.project).write_text(tasks_text(sections, per), encoding="utf-8")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
        subprocess.run([*git, "commit", "-qam", "tasks"], cwd=self.project, check=True, capture_output=True)
        self.log = tmp / "runs.jsonl"
        self.agent_env = {**SLOW, "SPECFLOW_DEMO_LOG": str(self.log)}
        self.servers: list[LiveServer] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    # ---- servers

    def server(self, name: str, *, host_id: str | None = None, settings: dict[str, Any] | None = None) -> LiveServer:
        env = {"SPECFLOW_HOST_ID": host_id} if host_id else {}
        srv = LiveServer(
            self.root,
            self.tmp / name,
            agent_env=self.agent_env,
            settings={"owner_renew_seconds": 0.5, "rescan_seconds": 2.0, **(settings or {})},
            env=env,
        )
        srv.start()
        self.servers.append(srv)
        return srv

    def status(self, srv: LiveServer, **params: Any) -> dict[str, Any]:
        with srv.client() as c:
            r = c.get("workflow/orchestrate/status", params={"projectId": self.project_id, **params})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post(self, srv: LiveServer, route: str, body: dict[str, Any]) -> httpx.Response:
        with srv.client(timeout=60) as c:
            return c.post(route, json={"projectId": self.project_id, **body})

    def wait(self, srv: LiveServer, until: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
        """Long-poll ``srv`` until the orchestration satisfies ``until``."""
        deadline = time.monotonic() + timeout
        since = -1
        while True:
            body = self.status(srv, since=since, timeout=2)
            ex = body["orchestration"]
            if ex is not None and until(ex):
                return dict(ex)
            assert time.monotonic() < deadline, f"timed out; last: {ex and (ex['status'], ex['version'])}"
            since = ex["version"] if ex is not None else -1

    # ---- CLI processes

    def cli_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECFLOW_SERVER", "JUPYTERHUB_"))}
        env.update(self.agent_env)
        env["JUPYTER_RUNTIME_DIR"] = str(self.tmp / "cli-runtime")  # finds no server
        env["COLUMNS"] = "100"
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args, "--project", str(self.project)],
            env=self.cli_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cli_background(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        out = (self.tmp / f"cli-{len(self.procs)}.out").open("wb")
        proc = subprocess.Popen(
            [CLI, *args, "--project", str(self.project)],
            env=self.cli_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"cli-{self.procs.index(proc)}.out").read_text(errors="replace")

    # ---- the record and the runs

    def record(self) -> dict[str, Any]:
        [state] = read_states(self.project)
        return state

    def owner(self) -> ownership.OwnerRecord | None:
        return ownership.read_owner(OrchestrationStore(self.project).folder, self.record()["id"])

    def batch_runs(self) -> list[tuple[str, ...]]:
        return [tuple(r["taskIds"]) for r in run_log(self.log) if r.get("taskIds")]

    def assert_each_batch_ran_once(self, final: dict[str, Any]) -> None:
        runs = self.batch_runs()
        for batch in final["batches"]["items"]:
            assert runs.count(tuple(batch["taskIds"])) == 1, (batch["taskIds"], runs)

    def wait_file(self, until: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            states = read_states(self.project)
            if states and until(states[0]):
                return states[0]
            assert time.monotonic() < deadline, f"timed out; last: {states and states[0]['status']}"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        for srv in self.servers:
            srv.stop()


def decisions(ex: dict[str, Any]) -> list[str]:
    return [d["decision"] for d in ex["decisionLog"]]


def entry(ex: dict[str, Any], decision: str) -> dict[str, Any]:
    return next(d for d in ex["decisionLog"] if d["decision"] == decision)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    h = Hosts(tmp_path)
    try:
        yield h
    finally:
        h.stop()


__all__ = ["DEMO_AGENT", "Hosts", "decisions", "entry", "json_lines"]
