"""Settings remembered: the options this user last started each project with, in the user's Jupyter data folder.

``{jupyter_data_dir()}/specflow_nb/panel-settings.json`` maps a project (its folder on this machine when the kernel
sees it, else the server's URL and the project id) to the last started config. The form opens with it; "Reset to
defaults" goes back to the model's defaults. A file that cannot be read or written only loses the memory: it never
stops a start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from specflow_nb.models import OrchestrationConfig

FILE_NAME = "panel-settings.json"
#: Projects remembered (the least recently started ones are forgotten first).
MAX_PROJECTS = 200


def settings_path() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "specflow_nb" / FILE_NAME


def project_key(folder: Path | None, where: str, project_id: str) -> str:
    """The project's folder when known (it survives server restarts and port changes), else server + id."""
    if folder is not None:
        return str(Path(folder).resolve())
    return f"{where}#{project_id or '.'}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    projects = data.get("projects") if isinstance(data, dict) else None
    return projects if isinstance(projects, dict) else {}


def load(key: str, *, path: Path | None = None) -> tuple[OrchestrationConfig, str] | None:
    """(the config last started for ``key``, when it was saved) or ``None``."""
    entry = _read(path or settings_path()).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        config = OrchestrationConfig.model_validate(entry.get("config") or {})
    except ValidationError:
        return None  # saved by another version with other rules: forget it rather than fail the form
    return config, str(entry.get("savedAt") or "")


def save(key: str, config: OrchestrationConfig, *, path: Path | None = None) -> bool:
    """Remember ``config`` for ``key`` (atomically). False when the file could not be written."""
    target = path or settings_path()
    projects = _read(target)
    projects.pop(key, None)
    projects[key] = {
        "config": config.model_dump(mode="json", by_alias=True),
        "savedAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    while len(projects) > MAX_PROJECTS:
        projects.pop(next(iter(projects)))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".panel-settings-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": 1, "projects": projects}, out, indent=1)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp)
        return False
    return True
