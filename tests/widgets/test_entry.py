"""Entry points: lazy import from the package root, the panel without a server, sync holding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ipywidgets as w
import pytest

import specflow_nb
from specflow_nb.widgets import ProjectPanel
from specflow_nb.widgets.sync import descendants, held


def test_import_specflow_nb_does_not_import_ipywidgets() -> None:
    code = (
        "import sys, specflow_nb; assert 'ipywidgets' not in sys.modules, 'eager';"
        "specflow_nb.panel; assert 'ipywidgets' in sys.modules, 'lazy'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_attribute_still_raises() -> None:
    try:
        specflow_nb.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_without_backend_the_panel_offers_the_kernel_engine(tmp_path: Path) -> None:
    panel = ProjectPanel(None, "", title="todo", no_server_reason="no server in runtime files")
    texts = " ".join(c.value for c in descendants(panel) if isinstance(c, w.HTML))
    assert "No Jupyter server with specflow_nb is reachable" in texts
    assert "no server in runtime files" in texts
    assert panel.local_button in list(descendants(panel))
    assert panel.complete not in list(descendants(panel))
    panel.close()


def test_held_holds_every_descendant() -> None:
    inner = w.HTML()
    box = w.VBox([w.HBox([inner]), w.Accordion(children=[w.Label()])])
    assert len(list(descendants(box))) == 5
    with held(box):
        inner.value = "x"
        assert inner._holding_sync
    assert not inner._holding_sync


def test_panel_without_a_running_server_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    for name in ("SPECFLOW_SERVER_URL", "SPECFLOW_SERVER_TOKEN", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    panel = specflow_nb.panel(tmp_path)
    assert panel.backend is None
    texts = " ".join(c.value for c in descendants(panel) if isinstance(c, w.HTML))
    assert "No running Jupyter server found" in texts
    panel.close()


def test_panel_with_a_dead_server_url_says_so(tmp_path: Path) -> None:
    panel = specflow_nb.panel(tmp_path, server="http://127.0.0.1:9/")  # discard port: nothing listens
    assert panel.backend is None
    texts = " ".join(c.value for c in descendants(panel) if isinstance(c, w.HTML))
    assert "Cannot reach the Jupyter server" in texts
    panel.close()


def test_every_widget_of_the_panel_is_open() -> None:
    """A widget class that shadows ``Widget.open`` (a method or attribute of that name) never gets a comm, and
    the first redraw of its parent then fails: every part of the panel must be open after construction."""
    from specflow_nb.widgets.backend import ProjectCard
    from specflow_nb.widgets.overview import ProjectCardWidget

    panel = ProjectPanel(None, "", title="todo")
    card = ProjectCardWidget(ProjectCard(project_id="a", name="a"), lambda _c, _f: panel)
    parts = [panel, panel.summary, panel.form, panel.progress, panel.no_server, card]
    closed = [type(x).__name__ for part in parts for x in descendants(part) if x.comm is None]
    assert closed == []
    panel.close()
