"""Confinement: a project id resolved under the root (never outside it), and the links out of a project (which of
its own folders resolve outside it, and must not be read or written through).

Apart from :mod:`specflow_nb.project` because the store checks it before every read and write of a record, and
the project (its status view) reads the store: one module below both keeps that import one-way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from specflow_nb.errors import ConfigError, ProjectNotFound, ProjectOutsideRoot

#: The folder of a project holding its feature folders.
SPECS_DIR = "specs"

#: The folders of a project specflow_nb reads or writes: each must stay inside the project (a link out is refused).
PROJECT_LINKS: tuple[str, ...] = (
    ".specflow",
    ".specflow/workflows",
    ".specflow/inbox",
    ".specflow/locks",
    SPECS_DIR,
)


def link_outside(project: Path) -> str | None:
    """The first of the project's own folders (``.specflow/``, ``specs/``, each feature folder) that resolves
    outside ``project`` (a symlink leading elsewhere), as a path relative to it; None when all stay inside."""
    project = Path(project)
    if not _has_links(project):
        return None  # no link anywhere on those paths: each resolves inside the project (checked on every save)
    try:
        base = project.resolve()
        for rel in PROJECT_LINKS:
            path = project / rel
            if (path.is_symlink() or path.exists()) and not path.resolve().is_relative_to(base):
                return rel
        specs = project / SPECS_DIR
        if specs.is_dir():
            for child in specs.iterdir():
                if child.is_symlink() and not child.resolve().is_relative_to(base):
                    return f"{SPECS_DIR}/{child.name}"
    except (OSError, RuntimeError):  # a symlink loop, or a folder we may not read: not inside either
        return ".specflow"
    return None


def _has_links(project: Path) -> bool:
    """Whether any folder :func:`link_outside` checks, or a folder on the way to one, is a symlink (or cannot be
    looked at): only then must paths be resolved. A few ``lstat`` calls instead of resolving every path."""
    try:
        for rel in PROJECT_LINKS:
            path = project
            for part in rel.split("/"):
                path = path / part
                try:
                    mode = os.lstat(path).st_mode
                except (FileNotFoundError, NotADirectoryError):
                    break  # absent: nothing below it to check
                if stat.S_ISLNK(mode):
                    return True
        with os.scandir(project / SPECS_DIR) as entries:
            return any(entry.is_symlink() for entry in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False  # no specs folder
    except OSError:
        return True  # let the full check decide


def check_links(project: Path) -> None:
    """Raise :class:`ProjectOutsideRoot` (403) naming the first project folder that is a link out of the project."""
    link = link_outside(project)
    if link is not None:
        raise ProjectOutsideRoot(
            f"'{link}' in project {project.name!r} is a link leading outside the project: nothing is read or written "
            "through it",
            hint=f"Replace the link '{link}' with a real folder inside the project.",
            details={"link": link},
        )


def resolve_project(root: Path, project_id: str) -> Path:
    """The project folder for ``project_id`` under ``root`` (resolved, symlinks followed).

    Raises :class:`ProjectOutsideRoot` (403) when it would leave ``root``, :class:`ProjectNotFound` (404) when it
    is not an existing folder, :class:`ConfigError` for an id that is not a path at all.
    """
    root = Path(root)
    pid = (project_id or "").strip()
    if "\x00" in pid:
        raise ConfigError("Invalid project id: it contains a NUL character", hint="Pass a folder path under the root.")
    too_long = [part for part in pid.replace("\\", "/").split("/") if len(part.encode("utf-8", "replace")) > 255]
    if too_long or len(pid.encode("utf-8", "replace")) > 4096:
        raise ConfigError(
            "Invalid project id: a folder name is longer than 255 bytes (or the path longer than 4096)",
            hint="Pass a folder path under the root.",
            details={"loc": ["projectId"]},
        )
    try:
        root_resolved = root.resolve()
        candidate = (root_resolved / pid).resolve() if pid not in ("", ".") else root_resolved
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ProjectNotFound(f"Cannot resolve project {project_id!r}: {exc}", hint="Check the folder.") from None
    if not candidate.is_relative_to(root_resolved):
        raise ProjectOutsideRoot(
            f"Project {project_id!r} is outside the root folder",
            hint="Use a folder path relative to the root (no '..', no absolute paths or symlinks leading elsewhere).",
        )
    if not candidate.is_dir():
        where = "the root folder" if candidate == root_resolved else f"{project_id!r} under the root folder"
        raise ProjectNotFound(
            f"Project not found: {where} does not exist or is not a folder",
            hint="Check the path; project ids are folder paths relative to the root.",
            details={"projectId": project_id},
        )
    check_links(candidate)
    return candidate
