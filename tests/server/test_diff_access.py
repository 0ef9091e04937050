"""View diff shows the project's files: it needs jupyter_server's ``contents`` read permission besides ``specflow``
read; an observer role without it gets a 403, one with it gets the diff."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from traitlets.config import Config

from specflow_nb.demo import prepare_sample

DIFF = "workflow/orchestrate/diff"


class SpecflowOnlyAuthorizer(Authorizer):
    """May read (not write) specflow, and nothing else: no contents, kernels or terminals."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "specflow" and action == "read"


class ReaderAuthorizer(Authorizer):
    """May read specflow and the server's contents (files)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read" and resource in ("specflow", "contents")


@pytest.fixture
def project(jp_root_dir: Any) -> str:
    sample = prepare_sample(jp_root_dir / "todo")
    (sample / "src" / "added.py").parent.mkdir(parents=True, exist_ok=True)
    (sample / "src" / "added.py").write_text("print('new on the feature branch')\n")
    return "todo"


class TestWithoutContentsRead:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["ServerApp"]["authorizer_class"] = SpecflowOnlyAuthorizer
        return jp_server_config

    async def test_diff_is_403_and_says_why(self, api: Any, project: str) -> None:
        code, body = await api("GET", DIFF, params={"projectId": project})
        assert code == 403, body
        assert "read the project's files" in body["error"]
        code, body = await api("GET", "workflow/orchestrate/status", params={"projectId": project})
        assert code == 200  # the rest of the read API still works for this observer


class TestWithContentsRead:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["ServerApp"]["authorizer_class"] = ReaderAuthorizer
        return jp_server_config

    async def test_diff_lists_the_feature_branchs_files(self, api: Any, project: str) -> None:
        code, body = await api("GET", DIFF, params={"projectId": project})
        assert code == 200, body
        paths = [f["path"] for f in body["files"]]
        assert "src/added.py" in paths
        added = next(f for f in body["files"] if f["path"] == "src/added.py")
        assert added["added"] == 1 and "+print('new on the feature branch')" in added["patch"]
