"""A project's feature folders: ``specs/NNNN-name``, and which one is active (explicit, recorded, or newest).

Apart from :mod:`specflow_nb.project` (the status view) because most hosts only need to find the feature folder,
and finding it needs only the project's recorded state, not its status, git or records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from specflow_nb.confinement import SPECS_DIR
from specflow_nb.errors import ConfigError, ProjectNotFound, ProjectOutsideRoot
from specflow_nb.store import StateFile

__all__ = ["SPECS_DIR", "find_feature_dir", "list_feature_dirs", "parse_feature_name"]

_FEATURE_RE = re.compile(r"^(\d{3,})-(.+)$")


def _require_project(project: Path) -> Path:
    project = Path(project)
    if not project.is_dir():
        raise ProjectNotFound(
            f"Project folder not found: {project}", hint="Pass an existing project folder (--project PATH)."
        )
    return project


def parse_feature_name(name: str) -> tuple[int, str] | None:
    """``0001-todo-cli`` -> ``(1, "todo-cli")``; None for a name that is not a numbered feature folder."""
    m = _FEATURE_RE.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def list_feature_dirs(project: Path) -> list[Path]:
    """The numbered feature folders under ``specs/``, newest (highest number) first."""
    specs = Path(project) / SPECS_DIR
    try:
        entries = [p for p in specs.iterdir() if p.is_dir() and parse_feature_name(p.name)]
    except OSError:
        return []
    return sorted(entries, key=lambda p: (parse_feature_name(p.name) or (0, ""), p.name), reverse=True)


def _lookup_feature(project: Path, ref: str) -> Path | None:
    """A feature folder named by number (``1``, ``0001``), name (``0001-todo-cli``) or path; None if absent."""
    ref = ref.strip()
    if not ref:
        return None
    if ref.isdigit():
        for p in list_feature_dirs(project):
            parsed = parse_feature_name(p.name)
            if parsed and parsed[0] == int(ref):
                return p
        return None
    project_resolved = project.resolve()
    for base in (project / SPECS_DIR, project):
        candidate = (base / ref).resolve()
        if not candidate.is_relative_to(project_resolved):
            raise ProjectOutsideRoot(
                f"Feature folder {ref!r} is outside the project", hint="Name a folder under the project's specs/."
            )
        if candidate.is_dir():
            return candidate
    return None


def _state_feature(state: dict[str, Any]) -> str | None:
    value = state.get("feature")
    return value if isinstance(value, str) and value.strip() else None


def find_feature_dir(project: Path, explicit: str | None = None) -> Path | None:
    """The active feature folder: ``explicit`` (raises :class:`ProjectNotFound` if absent), else the state's
    ``feature`` key when it names an existing folder, else the highest-numbered ``specs/NNNN-name``; None if none.
    """
    project = _require_project(project)
    if explicit:
        found = _lookup_feature(project, explicit)
        if found is None:
            available = ", ".join(p.name for p in list_feature_dirs(project)) or "none"
            raise ProjectNotFound(
                f"Feature folder not found: {explicit}",
                hint=f"Pass a folder under specs/ by name or number (available: {available}).",
            )
        return found
    try:
        recorded = _state_feature(StateFile(project).load())
    except ConfigError:
        recorded = None
    if recorded:
        try:
            found = _lookup_feature(project, recorded)
        except ProjectOutsideRoot:
            found = None
        if found is not None:
            return found
    dirs = list_feature_dirs(project)
    return dirs[0] if dirs else None
