"""One project scanner (issue 17): the engine's scans (reconcile at start, rescans) and the projects overview find
projects with the same function, the same rules and one depth setting (``EngineSettings.scan_depth``).

The rules (specflow_nb/scanner.py): folders holding specs/ or .specflow/, the root itself included; hidden folders,
dependency trees and symlinks are not followed; a project's own folders are not searched (nested projects belong to
the outer one); at most ``scan_depth`` levels down. The overview also has a limit; the engine has none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from specflow_nb.engine_settings import EngineSettings
from specflow_nb.orchestrator import Orchestrator
from specflow_nb.scanner import DEFAULT_SCAN_DEPTH, DEFAULT_SCAN_LIMIT, MAX_SCAN_DEPTH, find_projects


def tree(root: Path) -> Path:
    for rel in (
        "alpha/specs",
        "team/beta/.specflow",
        "team/beta/sub/specs",  # inside a project: not a project of its own
        "team/beta/examples/demo/.specflow",  # nor this
        "a/b/deep/specs",  # three levels down
        ".hidden/specs",
        "node_modules/pkg/specs",
        "venv/lib/specs",
    ):
        (root / rel).mkdir(parents=True)
    outside = root.parent / "outside"
    (outside / "specs").mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    return root


def engine_scan(root: Path, **settings: int) -> list[str]:
    orch = Orchestrator(root, EngineSettings(**settings))
    return sorted(p.relative_to(root.resolve()).as_posix() for p in orch.scan_projects())


def overview_scan(root: Path, depth: int) -> list[str]:
    return sorted(pid for pid, _ in find_projects(root, depth=depth)[0])


@pytest.mark.parametrize("depth", [0, 1, 2, 3, MAX_SCAN_DEPTH])
def test_the_engine_and_the_overview_find_the_same_projects(tmp_path: Path, depth: int) -> None:
    root = tree(tmp_path / "root")
    assert engine_scan(root, scan_depth=depth) == overview_scan(root, depth)


def test_what_both_find(tmp_path: Path) -> None:
    root = tree(tmp_path / "root")
    assert DEFAULT_SCAN_DEPTH == 2 and EngineSettings().scan_depth == DEFAULT_SCAN_DEPTH
    assert engine_scan(root) == ["alpha", "team/beta"]  # the default depth: not a/b/deep, nothing nested
    assert engine_scan(root, scan_depth=3) == ["a/b/deep", "alpha", "team/beta"]
    assert engine_scan(root, scan_depth=0) == []


def test_a_root_that_is_a_project_hides_the_folders_below(tmp_path: Path) -> None:
    root = tree(tmp_path / "root")
    (root / ".specflow").mkdir()
    assert engine_scan(root) == ["."] and overview_scan(root, 2) == [""]


def test_the_engine_has_no_limit_the_overview_has_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for i in range(DEFAULT_SCAN_LIMIT + 5):
        (root / f"p{i:03d}" / "specs").mkdir(parents=True)
    listed, truncated = find_projects(root)
    assert len(listed) == DEFAULT_SCAN_LIMIT and truncated
    assert len(engine_scan(root)) == DEFAULT_SCAN_LIMIT + 5


def test_the_depth_is_bounded(tmp_path: Path) -> None:
    EngineSettings(scan_depth=MAX_SCAN_DEPTH)
    for bad in (-1, MAX_SCAN_DEPTH + 1):
        with pytest.raises(ValidationError, match="scan_depth"):
            EngineSettings(scan_depth=bad)
