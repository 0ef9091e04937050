"""Shared fixtures. Each area keeps its own fixtures in its test files or in tests/support/."""

from __future__ import annotations

from pathlib import Path

import pytest

from specflow_nb.demo import prepare_sample


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A fresh copy of the bundled sample project as a git repo on its feature branch (main holds the base)."""
    return prepare_sample(tmp_path / "todo")
