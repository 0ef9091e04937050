"""A real `jupyter server` subprocess with the extension, found by clients through its runtime file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from specflow_nb.client import runtime_servers

TOKEN = "live-test-token"
CLIENT_ENV_VARS = ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def jupyter_server(root: Path, runtime: Path, *, base: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a server on 127.0.0.1 with ``root`` as its root dir until the block ends (then SIGTERM, SIGKILL)."""
    runtime.mkdir(parents=True, exist_ok=True)
    log = base / "server.log"
    full_env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(base / "config")}
    for var in CLIENT_ENV_VARS:
        full_env.pop(var, None)
    full_env.update(env or {})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={free_port()}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.jpserver_extensions={'specflow_nb.server': True}",
            f"--IdentityProvider.token={TOKEN}",
            "--allow-root",
        ],
        env=full_env,
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
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
