"""The projects overview: project folders under the server root, their phase status and active orchestration."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specflow_nb.errors import SpecflowError
from specflow_nb.models import ProjectStatus
from specflow_nb.server.api import ProjectsResponse, ProjectSummary, summarize
from specflow_nb.summary import badge_text

#: Folders never searched for projects (virtualenvs, caches, dependency trees).
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "dist", "build"})
#: A scan visits at most this many folders, whatever the depth, so a huge root cannot stall the request.
MAX_DIRS_VISITED = 5000


def is_project(path: Path) -> bool:
    """A folder is a project when it has ``specs/`` (spec-kit / SpecFlow) or ``.specflow/`` (our state)."""
    return (path / "specs").is_dir() or (path / ".specflow").is_dir()


def find_projects(root: Path, *, depth: int = 2, limit: int = 200) -> tuple[list[tuple[str, Path]], bool]:
    """Breadth-first search below ``root`` (the root itself, then ``depth`` levels) → ``([(projectId, path)], truncated)``.

    Hidden folders and dependency trees are skipped, a project's own subfolders are not searched, and symlinks
    are not followed (a link could lead outside the root).
    """
    root = root.resolve()
    found: list[tuple[str, Path]] = []
    level = [root]
    visited = 0
    for current_depth in range(depth + 1):
        next_level: list[Path] = []
        for folder in level:
            visited += 1
            if visited > MAX_DIRS_VISITED or len(found) >= limit:
                return found, True
            if is_project(folder):
                rel = folder.relative_to(root).as_posix()
                found.append(("" if rel == "." else rel, folder))
                continue
            if current_depth == depth:
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue  # unreadable folder: not ours to report
            next_level.extend(
                Path(entry.path)
                for entry in entries
                if entry.is_dir(follow_symlinks=False)
                and not entry.name.startswith(".")
                and entry.name not in SKIP_DIRS
            )
        level = next_level
    return found, False


def _project_status(path: Path) -> tuple[ProjectStatus | None, str | None]:
    from specflow_nb.project import check_links, project_status

    try:
        check_links(path)  # a folder linked out of the project is not read (and the card says which)
        status = project_status(path)
    except SpecflowError as exc:
        return None, str(exc)
    return status, None


async def projects_overview(root: Path, engine: Callable[[], Any], *, depth: int, limit: int) -> ProjectsResponse:
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
