"""The client against a real `jupyter server` subprocess it discovers through the server's runtime file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from specflow_nb.client import PermissionDenied, SpecflowClient
from specflow_nb.errors import ConfigError, OrchestrationConflict, ProjectNotFound, ProjectOutsideRoot
from tests.support.live_server import jupyter_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(root_dir, runtime_dir) of a running server with the extension; stopped at the end."""
    base = tmp_path_factory.mktemp("live")
    root, runtime = base / "root", base / "runtime"
    (root / "todo" / "specs").mkdir(parents=True)
    with jupyter_server(root, runtime, base=base):
        yield root, runtime


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
