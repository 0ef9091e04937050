"""Finding and running the real Codex CLI hermetically (pointed at the scripted Responses API server).

Where the CLI is looked for, in order: ``$SPECFLOW_CODEX_BIN``; ``.ci/node/node_modules/.bin/codex`` in this
repository (what ``.ci/run`` installs with ``npm install --prefix .ci/node @openai/codex@0.169.0``); ``codex`` on
PATH. Without one the Codex end-to-end tests are skipped — unless ``SPECFLOW_REQUIRE_CODEX=1`` (set by
``.ci/run``), where a missing CLI fails them.

A hermetic run: ``CODEX_HOME`` in a temp folder (sessions, config, logs), a fake ``OPENAI_API_KEY``, and a model
provider ``local`` (``base_url`` = the scripted server, ``wire_api = "responses"``) chosen with ``-c`` options.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL_BIN = REPO / ".ci" / "node" / "node_modules" / ".bin" / "codex"
PINNED_VERSION = "0.169.0"
INSTALL = f"npm install --prefix .ci/node @openai/codex@{PINNED_VERSION}"
#: The model codex-cli 0.169.0 sends when none is named (the scripted server prices it in the tests).
DEFAULT_MODEL = "gpt-6.1-sol"

#: Environment variables that could make a test run use a developer's real credentials or settings.
_CREDENTIAL_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME", "CODEX_API_KEY", "OPENAI_ORG_ID")


def find_codex() -> str | None:
    """The path of a runnable ``codex``, or None."""
    explicit = os.environ.get("SPECFLOW_CODEX_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access(LOCAL_BIN, os.X_OK):
        return str(LOCAL_BIN)
    return shutil.which("codex")


def codex_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def require_codex() -> str:
    """The CLI for an E2E test: skips (or fails under SPECFLOW_REQUIRE_CODEX=1) with how to install it."""
    binary = find_codex()
    if binary is None:
        where = os.environ.get("SPECFLOW_CODEX_BIN") or f"{LOCAL_BIN} or PATH"
        reason = f"the real Codex CLI was not found ({where}); install it with `{INSTALL}`"
        if os.environ.get("SPECFLOW_REQUIRE_CODEX") == "1":
            pytest.fail(reason + " (SPECFLOW_REQUIRE_CODEX=1)", pytrace=False)
        pytest.skip(reason)
    return binary


def provider_args(base_url: str, *, env_key: str = "OPENAI_API_KEY") -> list[str]:
    """``-c`` options selecting a model provider at ``base_url`` (the scripted server) that speaks Responses."""
    return [
        "-c",
        'model_provider="local"',
        "-c",
        f'model_providers.local={{name="local",base_url="{base_url}",wire_api="responses",env_key="{env_key}"}}',
    ]


def hermetic_env(codex_home: Path, *, api_key: str | None = "sk-test-codex") -> dict[str, str]:
    """Extra env for a CLI run: a private CODEX_HOME and a fake key (``api_key=None``: no key at all)."""
    env = {"CODEX_HOME": str(codex_home)}
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    return env


def scrub_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove a developer's own credentials and Codex home from this process's env (runs inherit it)."""
    for name in _CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
