"""Finding projects under a root: folders holding ``specs/`` or ``.specflow/``, breadth-first, to one depth.

The one scanner of the package, with one depth setting (``EngineSettings.scan_depth``; the server's ``scan_depth``
traitlet, alias ``projects_scan_depth``, is mapped onto it): the projects overview (server and in-kernel panel
alike) lists what it finds, and the engine reconciles and observes the orchestrations of what it finds (at start, and
on every rescan). Engine code, so every host uses it without importing another host.

Nested projects: a project's own folders are not searched. Its feature folders, examples and test fixtures may hold
``specs/`` of their own; they belong to the project, not beside it (tests/server/test_extension.py). The overview
lists only the outer project, so the engine does not reconcile inner ones either: what the engine resumes after a
restart is what the overview shows. A project deeper than the depth, or inside another, can still be opened by its
id; it is then driven, but not found again by a restart's scan.
"""

from __future__ import annotations

import os
from pathlib import Path

#: How many folder levels below the root a scan looks for projects, unless a host configures another depth.
DEFAULT_SCAN_DEPTH = 2
#: The deepest a host may configure (every level multiplies the folders visited).
MAX_SCAN_DEPTH = 5
#: How many projects a scan lists at most, unless a host configures another limit.
DEFAULT_SCAN_LIMIT = 200
#: Folders never searched for projects (virtualenvs, caches, dependency trees).
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "dist", "build"})
#: The overview's scan visits at most this many folders, whatever the depth, so a huge root cannot stall the request.
MAX_DIRS_VISITED = 5000


def is_project(path: Path) -> bool:
    """A folder is a project when it has ``specs/`` (spec-kit / SpecFlow) or ``.specflow/`` (our state)."""
    return (path / "specs").is_dir() or (path / ".specflow").is_dir()


def find_projects(
    root: Path,
    *,
    depth: int = DEFAULT_SCAN_DEPTH,
    limit: int | None = DEFAULT_SCAN_LIMIT,
    max_dirs: int | None = MAX_DIRS_VISITED,
) -> tuple[list[tuple[str, Path]], bool]:
    """Breadth-first search below ``root`` (the root itself, then ``depth`` levels) → ``([(projectId, path)], truncated)``.

    Hidden folders and dependency trees are skipped, a project's own subfolders are not searched, and symlinks
    are not followed (a link could lead outside the root). ``limit`` (projects) and ``max_dirs`` (folders visited)
    bound a request's scan (``truncated`` says one was reached); the engine passes None for both: it must find every
    project whose orchestration it may have to resume.
    """
    root = root.resolve()
    found: list[tuple[str, Path]] = []
    level = [root]
    visited = 0
    for current_depth in range(depth + 1):
        next_level: list[Path] = []
        for folder in level:
            visited += 1
            if (max_dirs is not None and visited > max_dirs) or (limit is not None and len(found) >= limit):
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
