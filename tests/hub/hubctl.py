"""A real JupyterHub on 127.0.0.1 for tests and benchmarks: configurable-http-proxy, dummy authenticator,
SimpleLocalProcessSpawner (one home folder per user under a temp root), single-user servers with specflow enabled.

Its config loads the shipped example (jupyter_server_config/jupyterhub_config.example.py), so the role recipe the
docs give is the one under test; only ports, paths, the admin service and the demo agent are added here.

Every process it starts carries ``SPECFLOW_HUB_TAG`` in its environment (the hub, its proxy, the single-user servers
and, by inheritance, their detached agent runs), so :meth:`Hub.stop` can end every one of them and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_server import CLIENT_ENV_VARS, free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "jupyter_server_config" / "jupyterhub_config.example.py"
DEMO_AGENT = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
PASSWORD = "hub-test-password"
#: Seconds between a single-user server's activity posts to the hub (JupyterHub's minimum is 1).
ACTIVITY_INTERVAL = 1


def find_proxy() -> str | None:
    """configurable-http-proxy: ``SPECFLOW_CHP_BIN``, then the CI install under .ci/node, then ``PATH``."""
    env = os.environ.get("SPECFLOW_CHP_BIN")
    if env:
        return env if Path(env).exists() else None
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


def hub_missing_reason() -> str | None:
    """Why a hub cannot run here (None when it can)."""
    try:
        import jupyterhub  # noqa: F401
        import jupyterhub_idle_culler  # noqa: F401
    except ImportError as exc:
        return f"jupyterhub / jupyterhub-idle-culler not installed ({exc}); `pip install jupyterhub jupyterhub-idle-culler`"
    if find_proxy() is None:
        return (
            "configurable-http-proxy not found: `npm install --prefix .ci/node configurable-http-proxy` "
            "or set SPECFLOW_CHP_BIN"
        )
    return None


_CONFIG = """\
import json, os, sys
from pathlib import Path

load_subconfig({example!r})

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{base}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{base}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{base}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.last_activity_interval = 2
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{base}/home/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = c.Spawner.args + [
    "--SpecflowExtension.agent_command=" + {agent!r},
    "--ServerApp.shutdown_no_activity_timeout=0",
    "--allow-root",  # CI containers run as root; a real hub spawns servers as the users
    "--ServerApp.answer_yes=True",
    # a running phase counts as activity every second (default 30 s), to match the 1 s activity posts below
    "--SpecflowExtension.activity_refresh_seconds=1",
]
# After SIGINT a single-user server stops serving at once, but its process lingers until idle AnyIO worker threads
# (non-daemon) time out after 10 s; the spawner's defaults wait 10 s then SIGTERM. Shorter waits keep tests brisk.
c.Spawner.interrupt_timeout = 3
c.Spawner.term_timeout = 3
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90

CONTROL = Path({control!r})

def _delay(spawner):
    # per-user demo-agent speed: tests write CONTROL/<user>.delay before starting that user's server
    f = CONTROL / (spawner.user.name + ".delay")
    return f.read_text().strip() if f.exists() else "0.05"

c.Spawner.environment = dict(c.Spawner.environment)
c.Spawner.environment.update({{
    "JUPYTERHUB_ACTIVITY_INTERVAL": "{activity}",
    "SPECFLOW_DEMO_SCENARIO": "slow",
    "SPECFLOW_DEMO_DELAY": _delay,
    "SPECFLOW_HUB_TAG": {tag!r},
}})

# The example's idle culler runs inside one test instead (with a short timeout), not for the hub's lifetime.
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if r["name"] != "idle-culler"] + [
    {{
        "name": "test-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "admin:server_state", "list:users", "read:users",
                   "read:users:activity", "read:servers", "delete:servers", "users:activity"],
        "services": ["test-admin"],
    }}
]
"""


class Hub:
    """One JupyterHub with its proxy; users, tokens and servers through the hub's REST API."""

    def __init__(self, base: Path, proxy: str) -> None:
        self.base = base
        self.proxy = proxy
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.admin_token = secrets.token_hex(16)
        self.tag = secrets.token_hex(8)
        self.control = base / "control"
        self.log_path = base / "jupyterhub.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=60.0)

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The public URL (through the proxy), as a browser sees it."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api/"

    def server_url(self, user: str) -> str:
        """The user's single-user server through the proxy (with its base path)."""
        return f"{self.url}user/{user}/"

    def home(self, user: str) -> Path:
        return self.base / "home" / user

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        (self.base / "home").mkdir(exist_ok=True)
        config = self.base / "jupyterhub_config.py"
        config.write_text(
            _CONFIG.format(
                example=str(EXAMPLE_CONFIG),
                port=self.port,
                hub_port=self.hub_port,
                proxy_api_port=self.proxy_api_port,
                chp=self.proxy,
                base=self.base,
                password=PASSWORD,
                agent=DEMO_AGENT,
                control=str(self.control),
                activity=ACTIVITY_INTERVAL,
                tag=self.tag,
                admin_token=self.admin_token,
            )
        )
        env = {**os.environ, "SPECFLOW_HUB_TAG": self.tag}
        for var in (*CLIENT_ENV_VARS, "JUPYTERHUB_ACTIVITY_INTERVAL"):
            env.pop(var, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config), "--debug"],
            cwd=self.base,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),  # a file, not a pipe: an undrained pipe would block the hub
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub did not start:\n{self.log_tail()}")
            try:
                if self.http.get(self.api_url).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop every server, the hub and its proxy, then end whatever else carries this hub's tag."""
        if self.proc is not None and self.proc.poll() is None:
            # the hub stops every server itself on SIGTERM (cleanup_servers), all at once
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (left := tagged_pids(self.tag)) and time.monotonic() < deadline:
            for pid in left:
                _kill(pid, signal.SIGTERM if time.monotonic() < deadline - 5 else signal.SIGKILL)
            time.sleep(0.2)
        for pid in tagged_pids(self.tag):
            _kill(pid, signal.SIGKILL)
        self.http.close()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no hub log)"

    # -- the hub's REST API ----------------------------------------------------------------------------------

    def api(self, method: str, path: str, *, token: str | None = None, json_body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return self.http.request(method, self.api_url + path, headers=headers, json=json_body)

    def user(self, name: str) -> dict[str, Any]:
        r = self.api("GET", f"users/{name}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def ensure_user(self, name: str) -> None:
        r = self.api("POST", f"users/{name}")
        if r.status_code not in (201, 409):
            raise RuntimeError(f"create user {name}: {r.status_code} {r.text}")

    def token(self, name: str, *, note: str = "test") -> str:
        """A new API token of user ``name`` (all of that user's permissions)."""
        r = self.api("POST", f"users/{name}/tokens", json_body={"note": note, "expires_in": 3600})
        if r.status_code != 201:
            raise RuntimeError(f"token for {name}: {r.status_code} {r.text}")
        return str(r.json()["token"])

    def start_server(self, name: str, *, delay: float | None = None, timeout: float = 90.0) -> None:
        """Start ``name``'s server and wait until the proxy routes to it; ``delay``: demo agent seconds per line."""
        self.ensure_user(name)
        if delay is not None:
            (self.control / f"{name}.delay").write_text(str(delay))
        r = self.api("POST", f"users/{name}/server")
        if r.status_code not in (201, 202, 400):  # 400: already running
            raise RuntimeError(f"start {name}'s server: {r.status_code} {r.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.user(name).get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name}'s server not ready within {timeout}s:\n{self.log_tail()}")

    def start_servers(self, names: list[str], *, timeout: float = 120.0) -> None:
        """Start several users' servers at once (the hub spawns them concurrently) and wait for all."""
        for name in names:
            self.ensure_user(name)
            r = self.api("POST", f"users/{name}/server")
            if r.status_code not in (201, 202, 400):
                raise RuntimeError(f"start {name}'s server: {r.status_code} {r.text}")
        for name in names:
            self.start_server(name, timeout=timeout)

    def stop_server(self, name: str, *, timeout: float = 60.0) -> None:
        r = self.api("DELETE", f"users/{name}/server")
        if r.status_code not in (202, 204, 400):
            raise RuntimeError(f"stop {name}'s server: {r.status_code} {r.text}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.user(name).get("servers"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{name}'s server did not stop within {timeout}s")

    def server_pid(self, name: str) -> int:
        """The pid of ``name``'s single-user server (from the spawner's state)."""
        state = self.user(name)["servers"][""].get("state") or {}
        if not state.get("pid"):
            # older hubs hide state behind include_stopped_servers / admin:server_state
            r = self.api("GET", f"users/{name}?include_stopped_servers")
            state = r.json()["servers"][""].get("state") or {}
        return int(state["pid"])

    def server_environ(self, name: str) -> dict[str, str]:
        """The environment of ``name``'s single-user server: what every kernel it starts inherits."""
        raw = Path(f"/proc/{self.server_pid(name)}/environ").read_bytes()
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(): v.decode() for k, v in pairs}


# ---------------------------------------------------------------------------------------------------------------
# Cleanup by tag


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def tagged_pids(tag: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``SPECFLOW_HUB_TAG=tag``."""
    needle = f"SPECFLOW_HUB_TAG={tag}".encode()
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue
        if _environ_has(int(entry.name), needle):
            found.append(int(entry.name))
    return found


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# ---------------------------------------------------------------------------------------------------------------
# Talking to a user's server as someone


STATUS = "workflow/orchestrate/status"
#: Bound on a whole demo phase on a hub (seconds): a hang fails the test instead of waiting forever.
PHASE_DEADLINE = 120.0


class As:
    """Requests to ``owner``'s single-user server (through the proxy) with ``token``: raw status codes and JSON."""

    def __init__(self, hub: Hub, owner: str, token: str | None) -> None:
        self.base = f"{hub.server_url(owner)}specflow/api/"
        self.root = hub.server_url(owner)
        headers = {"Authorization": f"token {token}"} if token else {}
        self.http = httpx.Client(headers=headers, timeout=60.0)

    def get(self, path: str, **params: Any) -> tuple[int, Any]:
        r = self.http.get(self.base + path, params=params)
        return r.status_code, _json(r)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        r = self.http.post(self.base + path, json=body)
        return r.status_code, _json(r)

    def raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A request to any route of the server (``api/contents/…``), relative to its base URL."""
        return self.http.request(method, self.root + path, **kw)

    def wait(self, project: str, done: Any, *, since: int = 0) -> dict[str, Any]:
        """Long-poll the live channel until ``done(orchestration)``."""
        deadline = time.monotonic() + PHASE_DEADLINE
        last: Any = None
        while time.monotonic() < deadline:
            code, body = self.get(STATUS, projectId=project, since=since, timeout=10)
            assert code == 200, body
            ex = body["orchestration"]
            if ex is not None:
                last = ex
                since = max(since, ex["version"])
                if done(ex):
                    return dict(ex)
        raise AssertionError(f"not done within {PHASE_DEADLINE}s; last: {last and last['status']}")

    def close(self) -> None:
        self.http.close()


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def state_files(project: Path) -> list[Path]:
    return sorted((project / ".specflow" / "workflows").glob("orchestration-*.json"))


def read_state(project: Path) -> dict[str, Any]:
    """The project's newest orchestration straight from disk (no request to its server)."""
    newest = max(state_files(project), key=lambda p: json.loads(p.read_text())["startedAt"])
    data: dict[str, Any] = json.loads(newest.read_text())
    return data


def actors(ex: dict[str, Any]) -> list[str]:
    """The actor of every decision log entry that names one, in log order."""
    return [e["data"]["actor"] for e in ex["decisionLog"] if (e.get("data") or {}).get("actor")]
