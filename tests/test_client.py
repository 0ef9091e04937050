"""The client finds its server without configuration, in the documented order, and maps errors to our classes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from specflow_nb import client as client_mod
from specflow_nb.client import (
    NoServerFound,
    PermissionDenied,
    ServerUnavailable,
    SpecflowClient,
    discover_server,
    error_from_response,
)
from specflow_nb.errors import OrchestrationConflict, ProjectNotFound, ProjectOutsideRoot, SpecflowError


def _write_server_file(runtime: Path, name: str, *, root: Path, port: int, pid: int, mtime: float) -> Path:
    path = runtime / f"jpserver-{name}.json"
    info = {
        "base_url": "/",
        "hostname": "127.0.0.1",
        "password": False,
        "pid": pid,
        "port": port,
        "root_dir": str(root),
        "secure": False,
        "sock": "",
        "token": f"token-{name}",
        "url": f"http://127.0.0.1:{port}/",
        "version": "2.21.1",
    }
    path.write_text(json.dumps(info))
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    path = tmp_path / "runtime"
    path.mkdir()
    return path


HUB = {"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/alice/", "JUPYTERHUB_API_TOKEN": "hub-token"}
OVERRIDE = {"SPECFLOW_SERVER_URL": "http://127.0.0.1:9999/base", "SPECFLOW_SERVER_TOKEN": "env-token"}


def test_explicit_url_wins(runtime: Path) -> None:
    info = discover_server("http://example.test:1234/x/", "tok", environ={**HUB, **OVERRIDE}, runtime_dir=runtime)
    assert (info.url, info.token, info.source) == ("http://example.test:1234/x/", "tok", "explicit")


def test_explicit_url_takes_a_token_from_the_environment(runtime: Path) -> None:
    info = discover_server("http://h:1/", environ=OVERRIDE, runtime_dir=runtime)
    assert info.token == "env-token"


def test_env_override_beats_jupyterhub(runtime: Path) -> None:
    info = discover_server(environ={**HUB, **OVERRIDE}, runtime_dir=runtime)
    assert (info.url, info.token, info.source) == ("http://127.0.0.1:9999/base/", "env-token", "env")


def test_jupyterhub_variables(runtime: Path, tmp_path: Path) -> None:
    _write_server_file(runtime, "1", root=tmp_path, port=1, pid=os.getpid(), mtime=1000)
    info = discover_server(environ=HUB, runtime_dir=runtime, cwd=tmp_path)
    # the hub's bind-all address is reached on the loopback; the base path is kept
    assert (info.url, info.token, info.source) == ("http://127.0.0.1:8888/user/alice/", "hub-token", "jupyterhub")


def test_jupyterhub_root_maps_a_folder_to_its_project_id(tmp_path: Path, runtime: Path) -> None:
    home = tmp_path / "home" / "alice"
    (home / "work" / "todo").mkdir(parents=True)
    info = discover_server(environ={**HUB, "HOME": str(home)}, runtime_dir=runtime, cwd=home)
    assert info.root_dir == home
    root = tmp_path / "srv"
    (root / "todo").mkdir(parents=True)
    info = discover_server(environ={**HUB, "HOME": str(home), "JUPYTERHUB_ROOT_DIR": str(root)}, runtime_dir=runtime)
    assert info.root_dir == root
    with SpecflowClient(url="http://127.0.0.1:1/", token="t") as client:
        client.server = discover_server(environ={**HUB, "HOME": str(home)}, runtime_dir=runtime)
        assert client.project_id_for(home / "work" / "todo") == "work/todo"


def test_runtime_file_containing_cwd_then_newest(runtime: Path, tmp_path: Path, dead_pid: int) -> None:
    alive = os.getpid()
    projects = tmp_path / "work" / "projects"
    (projects / "todo").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write_server_file(runtime, "old-containing", root=tmp_path / "work", port=1, pid=alive, mtime=1000)
    _write_server_file(runtime, "new-containing", root=projects, port=2, pid=alive, mtime=2000)
    _write_server_file(runtime, "newest-elsewhere", root=elsewhere, port=3, pid=alive, mtime=3000)
    _write_server_file(runtime, "dead", root=projects, port=4, pid=dead_pid, mtime=4000)
    (runtime / "jpserver-broken.json").write_text("{not json")

    info = discover_server(environ={}, runtime_dir=runtime, cwd=projects / "todo")
    assert (info.url, info.token, info.source) == ("http://127.0.0.1:2/", "token-new-containing", "runtime-file")
    assert info.root_dir == projects

    # no server contains the cwd: the newest live one
    info = discover_server(environ={}, runtime_dir=runtime, cwd=tmp_path)
    assert info.token == "token-newest-elsewhere"


def test_no_server_found_says_how_to_start_one(runtime: Path, tmp_path: Path, dead_pid: int) -> None:
    _write_server_file(runtime, "dead", root=tmp_path, port=4, pid=dead_pid, mtime=4000)
    with pytest.raises(NoServerFound) as info:
        discover_server(environ={}, runtime_dir=runtime, cwd=tmp_path)
    assert "jupyter server" in str(info.value.hint)
    assert "SPECFLOW_SERVER_URL" in str(info.value.hint)


def test_client_uses_jupyter_runtime_dir(monkeypatch: pytest.MonkeyPatch, runtime: Path, tmp_path: Path) -> None:
    for var in ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    _write_server_file(runtime, "a", root=tmp_path, port=5, pid=os.getpid(), mtime=1000)
    (tmp_path / "proj").mkdir()
    with SpecflowClient(cwd=tmp_path / "proj") as c:
        assert c.api_url == "http://127.0.0.1:5/specflow/api/"
        assert c.server.token == "token-a"
        assert c.project_id_for(tmp_path / "proj") == "proj"
        assert c.project_id_for(tmp_path) == ""
        with pytest.raises(ProjectOutsideRoot):
            c.project_id_for(tmp_path.parent)


def test_bad_url_is_a_clear_error(runtime: Path) -> None:
    with pytest.raises(NoServerFound, match="Not a server URL"):
        discover_server("localhost:8888", environ={}, runtime_dir=runtime)


def _response(status: int, body: Any) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1:1/specflow/api/projects")
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return httpx.Response(status, content=content, request=request)


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (
            409,
            {"error": "Orchestration already in progress: x.", "code": "OrchestrationConflict"},
            OrchestrationConflict,
        ),
        (403, {"error": "outside", "hint": "h", "code": "ProjectOutsideRoot"}, ProjectOutsideRoot),
        (403, {"error": "User is not authorized to write", "code": "PermissionDenied"}, PermissionDenied),
        (404, {"error": "Project not found", "code": "ProjectNotFound"}, ProjectNotFound),
        (409, {"error": "older server without code"}, OrchestrationConflict),
        (400, {"error": "x", "code": "NotAnErrorClass"}, SpecflowError),
        (502, b"<html>Bad gateway</html>", ServerUnavailable),
    ],
)
def test_error_responses_map_to_engine_errors(status: int, body: Any, cls: type[SpecflowError]) -> None:
    err = error_from_response(_response(status, body))
    assert type(err) is cls
    if isinstance(body, dict):
        assert err.message == body["error"]
        assert err.hint == body.get("hint")


def test_html_404_hints_at_the_extension() -> None:
    err = error_from_response(_response(404, b"<html>404</html>"))
    assert "extension" in str(err.hint)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with SpecflowClient(f"http://127.0.0.1:{_closed_port()}/", "t") as c, pytest.raises(ServerUnavailable) as info:
        c.projects()
    assert "jupyter server" in str(info.value.hint)


def test_watch_retries_with_backoff_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "RETRY_DELAYS", (0.01, 0.02, 0.04))
    with SpecflowClient(f"http://127.0.0.1:{_closed_port()}/", "t") as c:
        with pytest.raises(ServerUnavailable, match="gave up after 3 retries"):
            next(c.iter_updates("p"))

        async def first() -> Any:
            async for ex in c.watch("p"):
                return ex

        import asyncio

        with pytest.raises(ServerUnavailable, match="gave up after 3 retries"):
            asyncio.run(first())


def test_client_does_not_import_jupyter_server() -> None:
    code = "import sys, specflow_nb.client; print('jupyter_server' in sys.modules, 'tornado' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
