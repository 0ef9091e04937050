"""Long runs on a hub: a progressing orchestration is activity the hub (and its idle culler) sees, while no client
is connected; a stopped or culled server resumes its phase when it starts again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from specflow_nb.demo import prepare_sample

from .hubctl import ACTIVITY_INTERVAL, As, Hub, read_state

#: The hub learns of activity every ACTIVITY_INTERVAL s; allow that twice plus the hub's own bookkeeping.
MAX_LAG = 2 * ACTIVITY_INTERVAL + 4.0
#: Demo agent seconds per output line for "long" runs: one batch run takes well over 15 s.
SLOW = 1.0
CULL_TIMEOUT = 8


def _ts(value: str | None) -> float:
    assert value, "no last_activity"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def _server_activity(hub: Hub, user: str) -> float:
    """The server's last_activity as the hub (and so its idle culler) sees it; asks only the hub."""
    return _ts(hub.user(user)["servers"][""]["last_activity"])


def _start_long(hub: Hub, user: str, project: str) -> tuple[As, str]:
    hub.home(user).mkdir(parents=True, exist_ok=True)
    prepare_sample(hub.home(user) / project)
    hub.start_server(user, delay=SLOW)
    client = As(hub, user, hub.token(user))
    code, body = client.post(
        "workflow/orchestrate", {"projectId": project, "config": {"skipDesign": True, "skipAnalyze": True}}
    )
    assert code in (200, 201), body
    return client, body["orchestration"]["id"]


def _until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_active_orchestration_keeps_the_servers_activity_fresh(hub: Hub) -> None:
    user, project = "lena", "long"
    client, oid = _start_long(hub, user, project)
    folder = hub.home(user) / project
    try:
        time.sleep(ACTIVITY_INTERVAL + 1)
        # no request reaches lena's server from here on: only the hub API and the state file on disk are read
        lags = []
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:
            lags.append(time.time() - _server_activity(hub, user))
            time.sleep(1)
        state = read_state(folder)
        assert state["status"] == "running", state["status"]
        assert len(state["executions"]["implement"]) <= 2, "the window covered one or two long batch runs"
        assert max(lags) < MAX_LAG, f"last_activity lagged {max(lags):.1f}s behind a running phase: {lags}"

        code, body = client.post("workflow/orchestrate/cancel", {"projectId": project, "id": oid})
        assert code == 200, body
        _until(lambda: read_state(folder)["status"] == "cancelled", 30, "cancelled on disk")
        time.sleep(ACTIVITY_INTERVAL + 3)  # the cancel request and the killed run's end are the last activity
        settled = _server_activity(hub, user)
        time.sleep(3 * ACTIVITY_INTERVAL + 1)
        assert _server_activity(hub, user) == settled, "an idle server kept reporting activity"
    finally:
        client.close()


def test_idle_culler_culls_the_idle_server_and_spares_the_running_phase(hub: Hub) -> None:
    client, oid = _start_long(hub, "mira", "long")
    hub.start_server("ivan")  # a server with nothing running
    env = {
        **os.environ,
        "JUPYTERHUB_API_TOKEN": hub.admin_token,
        "JUPYTERHUB_API_URL": hub.api_url.rstrip("/"),
    }
    culler = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--url={hub.api_url.rstrip('/')}",
            f"--timeout={CULL_TIMEOUT}",
            "--cull-every=2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(hub.base / "culler.log").open("wb"),
    )
    try:
        _until(lambda: not hub.user("ivan").get("servers"), 4 * CULL_TIMEOUT, "ivan's idle server culled")
        # by now mira's phase has outlived the timeout several times over, with no client connected
        time.sleep(CULL_TIMEOUT)
        assert hub.user("mira").get("servers"), (
            f"the running phase's server was culled:\n{_tail(hub.base / 'culler.log')}"
        )
        assert read_state(hub.home("mira") / "long")["status"] == "running"
    finally:
        culler.terminate()
        culler.wait(timeout=10)
        if hub.user("mira").get("servers"):
            client.post("workflow/orchestrate/cancel", {"projectId": "long", "id": oid})
        client.close()


def test_a_stopped_server_resumes_its_phase_when_started_again(hub: Hub) -> None:
    user, project = "rita", "todo"
    hub.home(user).mkdir(parents=True, exist_ok=True)
    prepare_sample(hub.home(user) / project)
    folder = hub.home(user) / project
    hub.start_server(user, delay=0.1)
    token = hub.token(user)
    client = As(hub, user, token)
    try:
        code, body = client.post(
            "workflow/orchestrate",
            {"projectId": project, "config": {"skipDesign": True, "skipAnalyze": True, "autoMerge": True}},
        )
        assert code in (200, 201), body
        oid = body["orchestration"]["id"]
        # mid-phase: the second batch's run is in flight
        _until(lambda: len(read_state(folder)["executions"]["implement"]) >= 2, 90, "second batch running")
        run_id = read_state(folder)["executions"]["implement"][-1]
        hub.stop_server(user)
        pid = json.loads((folder / ".specflow" / "workflows" / run_id / "pid.json").read_text())["pid"]
        # the agent run is detached: it outlives its server (unless it already finished)
        run_alive = Path(f"/proc/{pid}").exists()
        stopped_state = read_state(folder)
        assert stopped_state["status"] == "running"

        hub.start_server(user)
        client.close()
        client = As(hub, user, token)
        final = client.wait(project, lambda ex: ex["status"] in ("completed", "failed", "needs_attention"))
        assert final["id"] == oid
        assert final["status"] == "completed", [e["decision"] for e in final["decisionLog"]]
        decisions = [e["decision"] for e in final["decisionLog"]]
        assert any(d.startswith("reconcile_") for d in decisions), decisions
        if run_alive:
            assert "reconcile_adopted" in decisions or "reconcile_finished" in decisions, decisions
        # no batch ran twice: one implement run per batch
        assert len(final["executions"]["implement"]) == final["batches"]["total"], final["executions"]
        assert all(b["status"] == "completed" for b in final["batches"]["items"])
    finally:
        client.close()


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""
