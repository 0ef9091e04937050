"""The client against a real `jupyter server` subprocess it discovers through the server's runtime file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from specflow_nb.client import PermissionDenied, SpecflowClient, runtime_servers
from specflow_nb.errors import ConfigError, OrchestrationConflict, ProjectNotFound, ProjectOutsideRoot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(root_dir, runtime_dir) of a running server with the extension; stopped at the end."""
    base = tmp_path_factory.mktemp("live")
    root, runtime = base / "root", base / "runtime"
    (root / "todo" / "specs").mkdir(parents=True)
    runtime.mkdir()
    log = base / "server.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(base / "config")}
    for var in ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={_free_port()}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.jpserver_extensions={'specflow_nb.server': True}",
            "--IdentityProvider.token=live-test-token",
            "--allow-root",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),  # a file, not a pipe: an undrained pipe would block the server
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not runtime_servers(runtime):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield root, runtime
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def client(live_server: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[SpecflowClient]:
    root, runtime = live_server
    for var in ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    with SpecflowClient(cwd=root / "todo") as c:
        yield c


def test_discovers_the_server_from_its_runtime_file(client: SpecflowClient, live_server: tuple[Path, Path]) -> None:
    root, _ = live_server
    assert client.server.source == "runtime-file"
    assert client.server.token == "live-test-token"
    assert client.project_id_for(root / "todo") == "todo"


def test_errors_are_the_engines_classes(client: SpecflowClient) -> None:
    with pytest.raises(ProjectOutsideRoot) as outside:
        client.status("../elsewhere")
    assert outside.value.hint
    with pytest.raises(ProjectNotFound):
        client.list("missing")
    with pytest.raises(ConfigError, match="answers"):
        client.answer("todo", {})
    assert issubclass(OrchestrationConflict, Exception)  # (409s need the engine: see the lifecycle tests)


def test_a_wrong_token_is_permission_denied(client: SpecflowClient) -> None:
    with SpecflowClient(client.server.url, "wrong-token") as other, pytest.raises(PermissionDenied) as info:
        other.projects()
    assert info.value.hint
