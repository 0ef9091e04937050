"""The projects overview the server serves: assembled in :mod:`specflow_nb.projects_view` from the one scanner
(:mod:`specflow_nb.scanner`); these names stay importable from here."""

from __future__ import annotations

from specflow_nb.projects_view import projects_overview
from specflow_nb.scanner import MAX_DIRS_VISITED, SKIP_DIRS, find_projects, is_project

__all__ = ["MAX_DIRS_VISITED", "SKIP_DIRS", "find_projects", "is_project", "projects_overview"]
