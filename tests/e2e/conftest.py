"""End-to-end fixtures: the real Claude Code and Codex CLIs talking to scripted model servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.claude_cli import hermetic_env, require_claude, scrub_credentials
from tests.support.codex_cli import require_codex
from tests.support.codex_cli import scrub_credentials as scrub_codex_credentials
from tests.support.model_server import ModelServer, model_server_fixture  # noqa: F401 (provides `model_server`)
from tests.support.responses_server import responses_server_fixture  # noqa: F401 (provides `responses_server`)


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


# ---- the real Codex CLI against the scripted Responses API server


@pytest.fixture
def codex_bin() -> str:
    return require_codex()


@pytest.fixture
def codex_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private CODEX_HOME (sessions, config, logs) for this test; the developer's own credentials scrubbed."""
    scrub_codex_credentials(monkeypatch)
    home = tmp_path / "codex-home"
    home.mkdir()
    return home
