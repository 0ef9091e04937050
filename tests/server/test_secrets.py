"""Secrets never leave the server (issue 12): a canary in the server's environment and one in agent_env, across a
phase whose verify command prints them, are found in no API response, no file under .specflow/ and not in the log."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from specflow_nb import redact
from specflow_nb.demo import prepare_sample
from specflow_nb.server.extension import SpecflowExtension

from .test_lifecycle import wait_until

DEMO_AGENT = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
ENV_CANARY = "sk-ant-canary-ENV-4f1c2e9b7d"
AGENT_CANARY = "canary-AGENTENV-93be01c7aa"
#: The verify command: prints the canaries (read from a file in the project) and what it sees of the server's key.
VERIFY = (
    "import os, sys; print(open('canaries.txt').read()); "
    "print('key in env:', os.environ.get('ANTHROPIC_API_KEY', 'ENV-ABSENT')); "
    "print('agent var:', os.environ.get('TEAM_WRAPPER_OPTION', 'AGENTVAR-ABSENT')); sys.exit(1)"
)


@pytest.fixture
def jp_server_config(jp_server_config: Config, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_CANARY)
    monkeypatch.setenv("UNRELATED_SERVER_SETTING", "visible-to-nobody")
    jp_server_config["SpecflowExtension"] = Config(
        {
            "agent_command": DEMO_AGENT,
            # agent_env values are redacted whatever their names
            "agent_env": {"SPECFLOW_DEMO_DELAY": "0.05", "TEAM_WRAPPER_OPTION": AGENT_CANARY},
            "verify_command": shlex.join([sys.executable, "-c", VERIFY]),
        }
    )
    return jp_server_config


@pytest.fixture
def project(jp_root_dir: Path) -> str:
    prepare_sample(jp_root_dir / "todo")
    (jp_root_dir / "todo" / "canaries.txt").write_text(f"leaked: {ENV_CANARY} and {AGENT_CANARY}\n")
    return "todo"


@pytest.fixture
def running(specflow_ext: SpecflowExtension, jp_asyncio_loop: asyncio.AbstractEventLoop) -> SpecflowExtension:
    jp_asyncio_loop.run_until_complete(specflow_ext.start_loop())
    return specflow_ext


def test_environments_are_allow_lists() -> None:
    environ = {
        "PATH": "/bin",
        "LC_ALL": "C",
        "SPECFLOW_X": "1",
        "ANTHROPIC_API_KEY": "a" * 20,
        "OPENAI_API_KEY": "o" * 20,
        "AWS_SECRET_ACCESS_KEY": "s" * 20,
        "GITHUB_TOKEN": "g" * 20,
        "DATABASE_URL": "postgres://u:p@h/db",
        "MY_EXTRA": "x",
    }
    verify = redact.verify_environment(["MY_EXTRA"], environ=environ)
    assert verify == {"PATH": "/bin", "LC_ALL": "C", "SPECFLOW_X": "1", "MY_EXTRA": "x"}
    claude = redact.agent_environment("claude", {"K": "v"}, environ=environ)
    assert set(claude) == {"PATH", "LC_ALL", "SPECFLOW_X", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "K"}
    codex = redact.agent_environment("codex", {}, environ=environ)
    assert set(codex) == {"PATH", "LC_ALL", "SPECFLOW_X", "OPENAI_API_KEY"}


def test_redaction_masks_secret_values_and_keeps_json_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # under 8 characters: not masked (it would mask ordinary words)
    redact.register(["0.05", "true", "agent-env-value-xyz"])  # numbers and flags are never registered
    assert redact.redact("pw=hunter2hunter2 abc") == "pw=*** abc"
    assert redact.redact("x agent-env-value-xyz 0.05 true") == "x *** 0.05 true"
    text = '{"a": "hunter2hunter2", "n": 0.05, "k": ["agent-env-value-xyz"]}'
    assert redact.redact_json(text) == '{"a": "***", "n": 0.05, "k": ["***"]}'


async def test_no_canary_in_responses_files_or_log(
    api: Any, project: str, running: SpecflowExtension, jp_root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # a user pastes the agent_env value into the additional context: it reaches no file, response or prompt.md
    config = {"additionalContext": f"the wrapper option is {AGENT_CANARY}"}
    code, started = await api("POST", "workflow/orchestrate", body={"projectId": project, "config": config})
    assert code == 201, started
    ex, seen = await wait_until(api, project, lambda ex: ex["status"] in ("needs_attention", "waiting_merge"))
    assert ex["status"] == "needs_attention" and ex["currentPhase"] == "verify", ex["status"]
    issue = ex["recoveryContext"]["issue"]
    # the verify command ran, printed the canaries (masked), and saw neither the server's key nor agent_env
    assert "leaked: *** and ***" in issue, issue
    assert "ENV-ABSENT" in issue and "AGENTVAR-ABSENT" in issue, issue
    # a request that carries a canary (it is logged by the access log)
    await api("GET", "workflow/orchestrate/status", params={"projectId": project, "knownId": AGENT_CANARY})
    responses = [started, ex, *seen]
    for method, path, params in [
        ("GET", "workflow/orchestrate/status", {"projectId": project}),
        ("GET", "workflow/orchestrate/status", {"projectId": project, "preview": "1"}),
        ("GET", "workflow/orchestrate/list", {"projectId": project}),
        ("GET", "projects", {}),
    ]:
        code, body = await api(method, path, params=params)
        assert code == 200, body
        responses.append(body)
    files = [p for p in (jp_root_dir / project / ".specflow").rglob("*") if p.is_file()]
    assert any(p.name.startswith("orchestration-") for p in files)
    prompts = [p for p in files if p.name == "prompt.md"]
    assert prompts and all("the wrapper option is ***" in p.read_text() for p in prompts)
    for canary in (ENV_CANARY, AGENT_CANARY):
        for body in responses:
            assert canary not in repr(body)
        for path in files:
            assert canary.encode() not in path.read_bytes(), path
        assert canary not in caplog.text
    assert "***" in caplog.text  # the access log line of the request above, masked
