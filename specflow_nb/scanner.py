"""Finding projects under a root: folders holding ``specs/`` or ``.specflow/``, breadth-first, to one depth.

The one scanner of the package: the projects overview (server and in-kernel panel alike) lists what it finds.
Engine code, so every host uses it without importing another host.
"""

from __future__ import annotations

import os
from pathlib import Path

#: How many folder levels below the root a scan looks for projects, unless a host configures another depth.
DEFAULT_SCAN_DEPTH = 2
#: How many projects a scan lists at most, unless a host configures another limit.
DEFAULT_SCAN_LIMIT = 200
#: Folders never searched for projects (virtualenvs, caches, dependency trees).
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "dist", "build"})
#: A scan visits at most this many folders, whatever the depth, so a huge root cannot stall the request.
MAX_DIRS_VISITED = 5000


def is_project(path: Path) -> bool:
    """A folder is a project when it has ``specs/`` (spec-kit / SpecFlow) or ``.specflow/`` (our state)."""
    return (path / "specs").is_dir() or (path / ".specflow").is_dir()


def find_projects(
    root: Path, *, depth: int = DEFAULT_SCAN_DEPTH, limit: int = DEFAULT_SCAN_LIMIT
) -> tuple[list[tuple[str, Path]], bool]:
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
