"""One small interface for an agent CLI family (Claude Code, Codex …): what differs between them, chosen by
``opts.agent`` at launch and by the run folder's ``argv.json`` afterwards.

The runner (:mod:`specflow_nb.agent.process`) launches, waits for and kills every run the same way; a family says
how to build its argv, what to write beside it and which session leader runs it, how to watch its spending, how to
classify its outcome and how to read its transcript. A new agent is one more class here, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from specflow_nb.agent.claude_family import ClaudeFamily
from specflow_nb.agent.codex_family import CodexFamily
from specflow_nb.agent.options import AgentOptions
from specflow_nb.agent.outcome import AgentOutcome


class UsageWatch(Protocol):
    """Polled by the runner while a budgeted run works: the cost so far, in USD."""

    calls: int
    model: str | None

    def poll(self) -> float: ...


class AgentFamily(Protocol):
    """What differs between agent CLIs."""

    name: str
    #: How to install the CLI, for a command that is not found.
    install_hint: str

    def check(self, opts: AgentOptions, env: Mapping[str, str]) -> None:
        """Refuse options this family cannot run (raises AgentRunError) before anything is written."""

    def schema_path(self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str]) -> Path | None:
        """Where the output schema goes when it travels as a file (None: it travels in the argv, or there is none)."""

    def build_argv(self, opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
        """The argument list of one run (the prompt goes on stdin). Raises AgentRunError for unusable options."""

    def prepare(
        self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str], resolved: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Files the run needs beside its argv; returns argv.json's extra fields and the session leader's script and
        arguments (before the agent's own argv)."""

    def usage_watch(self, run_dir: Path, info: Mapping[str, Any]) -> tuple[UsageWatch | None, float | None]:
        """For a run the runner must stop at its budget: a watch over its spending and the budget; else (None, None)."""

    def classify(
        self,
        run_dir: Path,
        record: Mapping[str, Any],
        argv_info: Mapping[str, Any],
        exit_info: Mapping[str, Any],
        kill_info: Mapping[str, Any],
        stderr: str,
        warnings: list[str],
    ) -> AgentOutcome:
        """The typed outcome of a finished run, from its files."""

    def transcript_events(self, run_dir: Path) -> list[dict[str, Any]]:
        """The run's messages as Claude-shaped assistant/user dicts (what healing shows a healer), oldest first."""


FAMILIES: dict[str, AgentFamily] = {"claude": ClaudeFamily(), "codex": CodexFamily()}


def family_for(agent: str | None) -> AgentFamily:
    """The family of ``agent`` (an ``AgentOptions.agent`` or argv.json's ``agent``); Claude Code when unnamed."""
    return FAMILIES.get(agent or "claude", FAMILIES["claude"])


def build_argv(opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
    """The argument list for one run (the prompt is not in it: it goes on stdin). Never a shell string.

    For Codex the output schema travels as a file (``schema_path``, written into the run folder by the launcher).
    """
    return family_for(opts.agent).build_argv(opts, schema_path)
