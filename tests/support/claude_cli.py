"""Finding and running the real Claude Code CLI hermetically (pointed at the scripted model server).

Where the CLI is looked for, in order: ``$SPECFLOW_CLAUDE_BIN``; ``.ci/node/node_modules/.bin/claude`` in this
repository (what ``.ci/run`` installs with ``npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.197``);
``claude`` on PATH. Without one the end-to-end tests are skipped — unless ``SPECFLOW_REQUIRE_CLAUDE=1`` (set by
``.ci/run``), where a missing CLI fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL_BIN = REPO / ".ci" / "node" / "node_modules" / ".bin" / "claude"
PINNED_VERSION = "2.1.197"
INSTALL = f"npm install --prefix .ci/node @anthropic-ai/claude-code@{PINNED_VERSION}"

#: Environment variables that could make a test run use a developer's real credentials or settings.
_CREDENTIAL_VARS = ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_MODEL", "CLAUDE_CODE_USE_BEDROCK")


def find_claude() -> str | None:
    """The path of a runnable ``claude``, or None."""
    explicit = os.environ.get("SPECFLOW_CLAUDE_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access(LOCAL_BIN, os.X_OK):
        return str(LOCAL_BIN)
    return shutil.which("claude")


def claude_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def require_claude() -> str:
    """The CLI for an E2E test: skips (or fails under SPECFLOW_REQUIRE_CLAUDE=1) with how to install it."""
    binary = find_claude()
    if binary is None:
        where = os.environ.get("SPECFLOW_CLAUDE_BIN") or f"{LOCAL_BIN} or PATH"
        reason = f"the real Claude Code CLI was not found ({where}); install it with `{INSTALL}`"
        if os.environ.get("SPECFLOW_REQUIRE_CLAUDE") == "1":
            pytest.fail(reason + " (SPECFLOW_REQUIRE_CLAUDE=1)", pytrace=False)
        pytest.skip(reason)
    return binary


def hermetic_env(base_url: str, config_dir: Path, *, api_key: str = "sk-ant-test") -> dict[str, str]:
    """Extra env for a CLI run against the scripted server: fake key, private config dir, no telemetry.

    ``api_key=""`` gives the CLI no credentials at all (its "Not logged in" path).
    """
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


def scrub_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove a developer's own credentials from this process's env (runs inherit it)."""
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
