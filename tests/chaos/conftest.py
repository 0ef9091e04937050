"""Chaos tests: a real ``jupyter server`` subprocess killed with SIGKILL at random moments of a running phase.

Bounded for CI (3 seeded trials). The heavier run is by hand: ``SPECFLOW_LONG=1 .venv/bin/python -m pytest
tests/chaos`` (20 trials, up to 3 kills each). An environment variable rather than a ``--long`` option: pytest only
reads ``pytest_addoption`` from the root conftest, and this folder must not touch files other engineers own.
``SPECFLOW_CHAOS_SEED`` picks another seed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.common import tasks_file

LONG = os.environ.get("SPECFLOW_LONG", "") not in ("", "0")
SEED = int(os.environ.get("SPECFLOW_CHAOS_SEED", "20261125"))


def chaos_tasks(sections: int, per: int) -> str:
    lines = ["# Tasks: chaos", ""]
    n = 0
    for s in range(sections):
        lines += [f"## Phase {s + 1}: Part {s + 1}", ""]
        for _ in range(per):
            n += 1
            lines.append(f"- [ ] T{n:03d} Do thing {n} in `src/mod{n}.py`")
        lines.append("")
    return "\n".join(lines)


def commit_tasks(project: Path, text: str) -> None:
    tasks_file(project).write_text(text, encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "commit", "-qam", "chaos tasks"], cwd=project, check=True, capture_output=True)


@pytest.fixture
def long_run() -> bool:
    return LONG


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
