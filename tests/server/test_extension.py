"""The extension's settings, its activity report for idle culling, and the projects scan."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from specflow_nb.server.extension import SpecflowExtension
from specflow_nb.server.projects import find_projects

SECRET = "sk-test-never-log-me"


class TestSettings:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["SpecflowExtension"] = Config(
            {
                "agent_command": "/opt/team/claude-wrapper",
                "default_model": "opus",
                "stale_after_seconds": 42.0,
                "max_concurrent_orchestrations": 3,
                "agent_env": {"ANTHROPIC_API_KEY": SECRET},
            }
        )
        return jp_server_config

    def test_traitlets_reach_the_extension(self, specflow_ext: SpecflowExtension, jp_root_dir: Path) -> None:
        assert specflow_ext.name == "specflow"
        assert specflow_ext.agent_command == "/opt/team/claude-wrapper"
        assert specflow_ext.default_model == "opus"
        assert specflow_ext.stale_after_seconds == 42.0
        assert specflow_ext.max_concurrent_orchestrations == 3
        assert specflow_ext.agent_env == {"ANTHROPIC_API_KEY": SECRET}
        assert specflow_ext.root_dir == jp_root_dir.resolve()

    def test_agent_env_is_not_logged(self, specflow_ext: SpecflowExtension, caplog: pytest.LogCaptureFixture) -> None:
        # traitlets' own DEBUG dump of the config is the server's business; nothing at INFO or above may show it
        records = caplog.get_records("setup") + caplog.get_records("call")
        shown = [r.getMessage() for r in records if r.levelno >= logging.INFO]
        assert shown, "expected the server's startup log"
        assert not [m for m in shown if SECRET in m]


def test_defaults(specflow_ext: SpecflowExtension) -> None:
    assert specflow_ext.agent_command is None
    assert specflow_ext.max_concurrent_orchestrations == 20
    assert specflow_ext.agent_env == {}
    assert specflow_ext.orchestrator_class == "specflow_nb.orchestrator.Orchestrator"


def test_progress_counts_as_server_activity(specflow_ext: SpecflowExtension, jp_serverapp: Any) -> None:
    """Saved changes feed ServerApp.last_activity() (what /api/status reports and JupyterHub's culler reads)."""
    web_app = jp_serverapp.web_app
    before = web_app.last_activity()
    assert specflow_ext.current_activity() is False  # no engine built yet: nothing running
    specflow_ext._on_change(None)  # type: ignore[arg-type]  # the callback ignores its argument
    assert "specflow_last_activity" in web_app.settings
    assert web_app.last_activity() >= before
    assert web_app.last_activity() == web_app.settings["specflow_last_activity"]


def test_find_projects(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "alpha" / "specs").mkdir(parents=True)
    (root / "team" / "beta" / ".specflow").mkdir(parents=True)
    (root / "team" / "beta" / "sub" / "specs").mkdir(parents=True)  # inside a project: not searched
    (root / "a" / "b" / "too-deep" / "specs").mkdir(parents=True)
    (root / ".hidden" / "specs").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "specs").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "specs").mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)

    found, truncated = find_projects(root, depth=2)
    assert [pid for pid, _ in found] == ["alpha", "team/beta"]
    assert not truncated

    assert [pid for pid, _ in find_projects(root, depth=3)[0]] == ["alpha", "team/beta", "a/b/too-deep"]
    limited, truncated = find_projects(root, depth=3, limit=1)
    assert [pid for pid, _ in limited] == ["alpha"] and truncated


def test_root_itself_is_a_project(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "child" / "specs").mkdir(parents=True)
    assert [pid for pid, _ in find_projects(tmp_path)[0]] == [""]


async def test_projects_route_on_an_empty_root(api: Any) -> None:
    code, body = await api("GET", "projects")
    assert (code, body) == (200, {"projects": [], "truncated": False})
