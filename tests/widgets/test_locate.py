"""The project id when the server's root is unknown (JupyterHub): from the server's session of this kernel."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import specflow_nb
from specflow_nb.client import ServerInfo, runtime_servers
from specflow_nb.widgets.locate import kernel_id, project_id_on_server, root_from_sessions
from specflow_nb.widgets.remote import RemoteBackend
from tests.support.live_server import CLIENT_ENV_VARS, TOKEN, jupyter_server

pytestmark = pytest.mark.timeout(120)


def test_outside_a_kernel_there_is_no_kernel_id() -> None:
    assert kernel_id() is None


def test_the_root_from_the_session_of_a_kernel_in_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    notebooks = root / "team" / "notes"
    notebooks.mkdir(parents=True)
    (root / "team" / "todo").mkdir()
    runtime = tmp_path / "runtime"
    with jupyter_server(root, runtime, base=tmp_path):
        info = runtime_servers(runtime)[0][0]
        # found by URL (as on JupyterHub): the root folder is not known
        server = ServerInfo(url=info["url"], token=TOKEN, source="explicit")
        headers = {"Authorization": f"token {TOKEN}"}
        body = {"path": "team/notes/analysis.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        session = httpx.post(f"{server.url}api/sessions", json=body, headers=headers, timeout=60).json()
        try:
            kernel = session["kernel"]["id"]
            assert root_from_sessions(server, kernel, notebooks) == root
            assert root_from_sessions(server, "no-such-kernel", notebooks) is None
            assert root_from_sessions(server, kernel, tmp_path / "elsewhere") is None  # not the notebook's folder
            assert project_id_on_server(server, root / "team" / "todo", kernel=kernel, cwd=notebooks) == "team/todo"
            assert project_id_on_server(server, tmp_path, kernel=kernel, cwd=notebooks) is None  # outside the root

            # the panel by URL with a relative folder and no kernel: the relative path is the id
            for var in CLIENT_ENV_VARS:
                monkeypatch.delenv(var, raising=False)
            monkeypatch.chdir(root)
            panel = specflow_nb.panel("team/todo", server=server.url, token=TOKEN)
            assert isinstance(panel.backend, RemoteBackend) and panel.project_id == "team/todo"
            panel.close()
            panel.backend.client.close()
        finally:
            httpx.delete(f"{server.url}api/sessions/{session['id']}", headers=headers, timeout=30)
