"""The server's one scan depth (issue 17): ``scan_depth`` (and its former name ``projects_scan_depth``) sets both
what the projects overview lists and the engine's ``EngineSettings.scan_depth`` (what it resumes after a restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from specflow_nb.scanner import MAX_SCAN_DEPTH
from specflow_nb.server.extension import SpecflowExtension


def _deep_projects(root: Path) -> None:
    (root / "near" / "specs").mkdir(parents=True)
    (root / "a" / "b" / "deep" / "specs").mkdir(parents=True)


def test_the_default_depth_reaches_the_engine(specflow_ext: SpecflowExtension) -> None:
    assert specflow_ext.scan_depth == 2 and specflow_ext.projects_scan_depth is None
    assert specflow_ext.orchestrator.settings.scan_depth == 2


@pytest.mark.parametrize("name", ["scan_depth", "projects_scan_depth"])
class TestConfiguredDepth:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, name: str) -> Config:
        jp_server_config["SpecflowExtension"] = Config({name: 3})
        return jp_server_config

    async def test_the_overview_and_the_engine_use_it(
        self, specflow_ext: SpecflowExtension, api: Any, jp_root_dir: Path, name: str
    ) -> None:
        _deep_projects(jp_root_dir)
        assert specflow_ext.scan_depth == 3
        assert specflow_ext.orchestrator.settings.scan_depth == 3
        code, body = await api("GET", "projects")
        assert code == 200 and sorted(p["projectId"] for p in body["projects"]) == ["a/b/deep", "near"], body
        assert sorted(p.name for p in specflow_ext.orchestrator.scan_projects()) == ["deep", "near"]  # type: ignore[attr-defined]


async def test_at_the_default_depth_the_deep_project_is_not_listed(api: Any, jp_root_dir: Path) -> None:
    _deep_projects(jp_root_dir)
    code, body = await api("GET", "projects")
    assert code == 200 and [p["projectId"] for p in body["projects"]] == ["near"], body


@pytest.mark.parametrize("name", ["scan_depth", "projects_scan_depth"])
def test_a_depth_out_of_range_is_refused(name: str) -> None:
    ext = SpecflowExtension()
    with pytest.raises(TraitError):
        setattr(ext, name, MAX_SCAN_DEPTH + 1)
    with pytest.raises(TraitError):
        setattr(ext, name, -1)
    assert ext.scan_depth == 2
