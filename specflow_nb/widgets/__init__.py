"""The ipywidgets panel: Complete Phase from a notebook, the JupyterLab side panel, or JupyterHub.

``specflow_nb.panel(project=".")`` and ``specflow_nb.overview()`` are the entry points; each part of the panel is
a small module here (form, progress, badge, controls …) that renders purely from model values.
"""

from __future__ import annotations

from pathlib import Path

from specflow_nb.widgets.backend import Backend
from specflow_nb.widgets.overview import Overview
from specflow_nb.widgets.panel import ProjectPanel

__all__ = ["Backend", "Overview", "ProjectPanel", "connect", "overview", "panel"]


def connect(project: str | Path = ".", *, server: str | None = None, token: str | None = None) -> tuple[Backend, str]:
    """The server backend and the project's id on it (its folder relative to the server root).

    Raises ``specflow_nb.client.NoServerFound`` when no server with the extension is reachable.
    """
    from specflow_nb.client import SpecflowClient
    from specflow_nb.widgets.remote import RemoteBackend

    client = SpecflowClient(url=server, token=token)
    root = getattr(client, "root_dir", None)
    root_dir = Path(root).resolve() if root else None
    path = Path(project).resolve()
    if root_dir is None:
        project_id = "" if str(project) in ("", ".") else str(project)
    else:
        from specflow_nb.errors import ProjectOutsideRoot

        try:
            project_id = path.relative_to(root_dir).as_posix()
        except ValueError as exc:
            raise ProjectOutsideRoot(
                f"{path} is outside the Jupyter server's root {root_dir}.",
                hint="Open the project from a notebook under the server's root, or pass panel(local=True).",
            ) from exc
        project_id = "" if project_id == "." else project_id
    return RemoteBackend(client, root_dir=root_dir), project_id


def _local(project: str | Path) -> tuple[Backend, str]:
    from specflow_nb.widgets.local import LocalBackend

    return LocalBackend(Path(project)), ""


def panel(
    project: str | Path = ".",
    *,
    server: str | None = None,
    token: str | None = None,
    local: bool = False,
    backend: Backend | None = None,
    project_id: str | None = None,
) -> ProjectPanel:
    """The Complete Phase panel of ``project`` (a folder; default: the notebook's folder).

    It talks to the Jupyter server's specflow_nb extension (found by itself: ``server``/``token`` override the
    discovery). Without a reachable server it says so and offers to run the engine in this kernel; ``local=True``
    does that right away. ``backend``/``project_id`` plug in any :class:`Backend` (tests, other hosts).
    """
    title = Path(project).resolve().name
    reason: str | None = None
    if backend is None:
        if local:
            backend, project_id = _local(project)
        else:
            try:
                backend, project_id = connect(project, server=server, token=token)
            except Exception as exc:  # NoServerFound, ImportError, a refused connection: all mean "no server"
                from specflow_nb.widgets.panel import error_text

                backend, reason = None, error_text(exc)
    return ProjectPanel(
        backend,
        project_id or "",
        title=title,
        connect_local=lambda: _local(project),
        no_server_reason=reason,
    )


def overview(
    *,
    server: str | None = None,
    token: str | None = None,
    root: str | Path | None = None,
    backend: Backend | None = None,
) -> Overview:
    """Every project under the server root (or under ``root`` in this kernel) as a card with its badge."""
    if backend is None:
        backend = _local(root)[0] if root is not None else connect(".", server=server, token=token)[0]
    return Overview(backend)
