"""Links out of a project: which of a project's own folders resolve outside it (and must not be read through).

Apart from :mod:`specflow_nb.project` because the store checks it before every read and write of a record, and
the project (its status view) reads the store: one module below both keeps that import one-way.
"""

from __future__ import annotations

from pathlib import Path

from specflow_nb.errors import ProjectOutsideRoot

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
