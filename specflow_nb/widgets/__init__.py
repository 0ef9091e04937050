"""The ipywidgets panel: Complete Phase from a notebook, the JupyterLab side panel, or JupyterHub.

``specflow_nb.panel(project=".")`` and ``specflow_nb.overview()`` are the entry points; each part of the panel is
a small module here (form, progress, badge, controls …) that renders purely from model values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from specflow_nb.widgets.backend import Backend
from specflow_nb.widgets.overview import Overview
from specflow_nb.widgets.panel import ProjectPanel

if TYPE_CHECKING:
    from specflow_nb.orchestrator import EngineSettings

__all__ = ["Backend", "Overview", "ProjectPanel", "connect", "overview", "panel"]


def connect(
    project: str | Path = ".",
    *,
    server: str | None = None,
    token: str | None = None,
    project_id: str | None = None,
) -> tuple[Backend, str]:
    """The server backend and the project's id on it (its folder relative to the server root).

    The id comes from the server's root folder when discovery knows it (runtime files), else from the server's
    sessions API (JupyterHub: the session running this kernel), else ``project_id`` or the relative path given.
    Raises ``specflow_nb.client.NoServerFound`` when no server with the extension is reachable.
    """
    from specflow_nb.client import SpecflowClient
    from specflow_nb.errors import ConfigError
    from specflow_nb.widgets.locate import project_id_on_server
    from specflow_nb.widgets.remote import RemoteBackend

    client = SpecflowClient(url=server, token=token, cwd=Path(project).resolve())
    try:
        if project_id is None:
            if client.server.root_dir is not None:
                project_id = client.project_id_for(Path(project))
            else:
                project_id = project_id_on_server(client.server, Path(project))
        if project_id is None:
            client.projects()  # an unreachable server says so first (ServerUnavailable), not "where is it?"
            if Path(project).is_absolute():
                raise ConfigError(
                    f"Cannot tell where {project} is on the server at {client.server.url}.",
                    hint="Pass project_id=: the folder's path relative to the server's root.",
                )
            project_id = Path(project).as_posix()
    except Exception:
        client.close()
        raise
    return RemoteBackend(client), "" if project_id in ("", ".") else project_id


def _local(project: str | Path, settings: EngineSettings | None = None) -> tuple[Backend, str]:
    from specflow_nb.widgets.local import LocalBackend

    return LocalBackend(Path(project), settings=settings), ""


def panel(
    project: str | Path = ".",
    *,
    server: str | None = None,
    token: str | None = None,
    local: bool = False,
    backend: Backend | None = None,
    project_id: str | None = None,
    engine_settings: EngineSettings | None = None,
) -> ProjectPanel:
    """The Complete Phase panel of ``project`` (a folder; default: the notebook's folder).

    It talks to the Jupyter server's specflow_nb extension (found by itself: ``server``/``token`` override the
    discovery). Without a reachable server it says so and offers to run the engine in this kernel; ``local=True``
    does that right away; ``engine_settings`` configure that in-kernel engine (e.g. ``agent_env``).
    ``backend``/``project_id`` plug in any :class:`Backend` (tests, other hosts).
    """
    title = Path(project).resolve().name
    reason: str | None = None
    not_found: str | None = None
    if backend is None:
        if local:
            backend, project_id = _local(project, engine_settings)
        else:
            from specflow_nb.errors import ProjectNotFound, ProjectOutsideRoot

            try:
                backend, project_id = connect(project, server=server, token=token, project_id=project_id)
            except Exception as exc:  # NoServerFound, ImportError, a refused connection: all mean "no server"
                from specflow_nb.widgets.panel import error_text

                backend, reason = None, error_text(exc)
            else:
                # a server found in the runtime files may lack the extension or be gone: ask it once, here
                client = getattr(backend, "client", None)
                try:
                    if client is not None:
                        client.status(project_id)
                except (ProjectNotFound, ProjectOutsideRoot):
                    root = getattr(client.server, "root_dir", None) if client is not None else None
                    where = f"the server root {root}" if root else "the server's root folder"
                    not_found = (
                        f"{str(project)!r} was not found under {where} (project id {project_id or '.'!r}). "
                        "Pass a project folder under that root, e.g. specflow_nb.panel('my-project')."
                    )
                except Exception as exc:
                    from specflow_nb.widgets.panel import error_text

                    backend, reason = None, error_text(exc)
    return ProjectPanel(
        backend,
        project_id or "",
        title=title,
        connect_local=lambda: _local(project, engine_settings),
        no_server_reason=reason,
        not_found=not_found,
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
