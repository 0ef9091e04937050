"""The projects overview as the REST API serves it: every project the scanner finds, with its status and the
orchestration its card shows.

Apart from the scanner (:mod:`specflow_nb.scanner`, engine) because it assembles the API's wire models
(:mod:`specflow_nb.server.api`); the server's route and the in-kernel panel both serve it from here, so neither host
imports the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specflow_nb.confinement import check_links
from specflow_nb.errors import SpecflowError
from specflow_nb.models import ProjectStatus
from specflow_nb.scanner import DEFAULT_SCAN_DEPTH, DEFAULT_SCAN_LIMIT, find_projects
from specflow_nb.server.api import ProjectsResponse, ProjectSummary, summarize
from specflow_nb.summary import badge_text


def _project_status(path: Path) -> tuple[ProjectStatus | None, str | None]:
    from specflow_nb.project import project_status

    try:
        check_links(path)  # a folder linked out of the project is not read (and the card says which)
        status = project_status(path)
    except SpecflowError as exc:
        return None, str(exc)
    return status, None


async def projects_overview(
    root: Path, engine: Callable[[], Any], *, depth: int = DEFAULT_SCAN_DEPTH, limit: int = DEFAULT_SCAN_LIMIT
) -> ProjectsResponse:
    """Every project under ``root`` with its status and the orchestration a card shows (active first).

    ``engine`` is a getter: the engine is only built when there is a project to ask it about.
    """
    # The scan and the status reads are file I/O: keep them off the server's event loop.
    found, truncated = await asyncio.to_thread(find_projects, root, depth=depth, limit=limit)
    statuses = await asyncio.to_thread(lambda: [_project_status(path) for _, path in found])
    projects = []
    for (project_id, path), (status, status_error) in zip(found, statuses, strict=True):
        try:
            ex = engine().status(project_id)
        except SpecflowError as exc:  # e.g. its .specflow links out of the project: this card only, not a 403
            ex, status_error = None, status_error or str(exc)
        projects.append(
            ProjectSummary(
                project_id=project_id,
                name=path.name,
                status=status,
                status_error=status_error,
                orchestration=summarize(ex) if ex is not None else None,
                badge=badge_text(ex) if ex is not None and ex.status.is_active else None,
            )
        )
    return ProjectsResponse(projects=projects, truncated=truncated)
