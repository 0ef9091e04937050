"""End-to-end fixtures: the real Claude Code CLI talking to the scripted model server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.claude_cli import hermetic_env, require_claude, scrub_credentials
from tests.support.model_server import ModelServer, model_server_fixture  # noqa: F401 (provides `model_server`)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def claude_bin() -> str:
    return require_claude()


@pytest.fixture
def cli_env(model_server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Env for runs of the real CLI against ``model_server``, with a private config dir."""
    scrub_credentials(monkeypatch)
    config = tmp_path / "claude-config"
    config.mkdir()
    return hermetic_env(model_server.url, config)
