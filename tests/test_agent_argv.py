"""Typed options -> the exact argv of `claude -p` (pure; the E2E tests prove the real CLI accepts it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specflow_nb.agent import AgentOptions, AgentRunError, FailureKind, SessionMode, build_argv


def test_defaults() -> None:
    argv = build_argv(AgentOptions(cwd=Path("/p"), prompt="never in argv"))
    assert argv == [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--allowedTools",
        "Bash,Edit,Write,Read,Glob,Grep",
        "--disallowedTools",
        "AskUserQuestion",
        "--permission-mode",
        "acceptEdits",
    ]


def test_every_option() -> None:
    opts = AgentOptions(
        command="npx --yes 'my claude'",
        cwd=Path("/p"),
        prompt="p",
        output_format="json",
        output_schema={"type": "object", "required": ["a"]},
        session_mode=SessionMode.FORK,
        session_id="abc",
        no_session_persistence=True,
        model="sonnet",
        fallback_model="haiku",
        tools=["Read", "Grep", "Glob"],
        allowed_tools=["Read"],
        disallowed_tools=[],
        max_budget_usd=1.25,
        max_turns=7,
        append_system_prompt="Be brief; it's $HOME",
        extra_args=["--add-dir", "/x y"],
        env={"ANTHROPIC_API_KEY": "secret"},
    )
    argv = build_argv(opts)
    assert argv[:3] == ["npx", "--yes", "my claude"]  # shlex-split, never a shell
    assert argv[3:] == [
        "-p",
        "--output-format",
        "json",
        "--json-schema",
        json.dumps({"type": "object", "required": ["a"]}, separators=(",", ":")),
        "--resume",
        "abc",
        "--fork-session",
        "--no-session-persistence",
        "--model",
        "sonnet",
        "--fallback-model",
        "haiku",
        "--tools",
        "Read,Grep,Glob",
        "--allowedTools",
        "Read",
        "--permission-mode",
        "acceptEdits",
        "--max-budget-usd",
        "1.25",
        "--max-turns",
        "7",
        "--append-system-prompt",
        "Be brief; it's $HOME",
        "--add-dir",
        "/x y",
    ]
    assert "secret" not in repr(opts) and "env" not in opts.model_dump()


def test_new_session_may_pin_an_id_and_resume_needs_one() -> None:
    pinned = build_argv(AgentOptions(cwd=Path("/p"), prompt="p", session_id="11111111-2222-4333-8444-555555555555"))
    assert pinned[pinned.index("--session-id") + 1] == "11111111-2222-4333-8444-555555555555"
    assert "--resume" not in pinned
    with pytest.raises(AgentRunError) as err:
        build_argv(AgentOptions(cwd=Path("/p"), prompt="p", session_mode=SessionMode.RESUME))
    assert err.value.kind is FailureKind.INVALID_SESSION


def test_budget_formatting() -> None:
    for value, text in ((0.5, "0.5"), (0.0, "0"), (2, "2"), (0.00001, "0.00001")):
        argv = build_argv(AgentOptions(cwd=Path("/p"), prompt="p", max_budget_usd=value))
        assert argv[argv.index("--max-budget-usd") + 1] == text
