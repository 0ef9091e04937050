"""The bundled sample project and demo agent: a full phase with no account and no network."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_FEATURE = "0001-todo-cli"

_GIT_IDENTITY = ["-c", "user.name=specflow demo", "-c", "user.email=demo@specflow.invalid"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *_GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True)


def prepare_sample(dest: Path, *, git: bool = True) -> Path:
    """Copy the sample project to ``dest`` (created; must be empty or absent) and return its path.

    With ``git`` (the default) the copy becomes a repository whose ``main`` holds the initial commit and whose
    checked-out branch is the feature branch ``0001-todo-cli``, as a developer's project would be mid-phase.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty; choose an empty or new folder for the sample project")
    shutil.copytree(SAMPLE_DIR, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    if git:
        _git(dest, "init", "-q", "-b", "main")
        (dest / ".gitignore").write_text(".specflow/\n__pycache__/\n")
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", "Sample project: todo CLI spec")
        _git(dest, "checkout", "-q", "-b", SAMPLE_FEATURE)
    return dest


def demo_agent_command() -> str:
    """The bundled demo agent's console script, next to this Python (installed with the package)."""
    exe = Path(sys.executable).parent / "specflow-nb-demo-agent"
    if exe.exists():
        return str(exe)
    return f"{sys.executable} -m specflow_nb.demo.demo_agent"
