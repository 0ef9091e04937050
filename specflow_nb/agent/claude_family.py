"""Claude Code (``claude -p --output-format stream-json``): its argv, its outcome classification, its transcript.

The Claude Code half of the agent families (:mod:`specflow_nb.agent.family`); the Codex half is
:mod:`specflow_nb.agent.codex_family`. Launching, waiting and killing are common (:mod:`specflow_nb.agent.process`).
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from specflow_nb.agent.options import AgentOptions, SessionMode
from specflow_nb.agent.outcome import (
    AgentOutcome,
    AgentRunError,
    FailureKind,
    name_run_folder,
    structured_output_failure,
)
from specflow_nb.agent.recorder import EXIT_RECORDER
from specflow_nb.agent.rundir import EXIT_FILE, STREAM_FILE
from specflow_nb.agent.stream import AssistantMessage, ResultMessage, StreamEvent, SystemInit, iter_events
from specflow_nb.models import utcnow

INSTALL_HINT = (
    "Install Claude Code with `npm install -g @anthropic-ai/claude-code`, or set the agent command to its path."
)


def build_claude_argv(opts: AgentOptions) -> list[str]:
    """The argument list of one Claude Code run (the prompt goes on stdin). Never a shell string."""
    argv = shlex.split(opts.command)
    if not argv:
        raise AgentRunError(FailureKind.NOT_INSTALLED, "The agent command is empty.", hint=INSTALL_HINT)
    argv += ["-p", "--output-format", opts.output_format]
    if opts.output_format == "stream-json":
        argv.append("--verbose")  # the CLI refuses stream-json in print mode without it
    if opts.output_schema is not None:
        argv += ["--json-schema", json.dumps(opts.output_schema, separators=(",", ":"))]
    if opts.session_mode is SessionMode.NEW:
        if opts.session_id:
            argv += ["--session-id", opts.session_id]
    else:
        if not opts.session_id:
            raise AgentRunError(
                FailureKind.INVALID_SESSION,
                f"Session mode {opts.session_mode.value!r} needs a session id.",
                hint="Pass the session id of the run to continue, or use a new session.",
            )
        argv += ["--resume", opts.session_id]
        if opts.session_mode is SessionMode.FORK:
            argv.append("--fork-session")
    if opts.no_session_persistence:
        argv.append("--no-session-persistence")
    if opts.model:
        argv += ["--model", opts.model]
    if opts.fallback_model:
        argv += ["--fallback-model", opts.fallback_model]
    if opts.tools is not None:
        argv += ["--tools", ",".join(opts.tools)]
    if opts.allowed_tools:
        argv += ["--allowedTools", ",".join(opts.allowed_tools)]
    if opts.disallowed_tools:
        argv += ["--disallowedTools", ",".join(opts.disallowed_tools)]
    if opts.permission_mode:
        argv += ["--permission-mode", opts.permission_mode]
    if opts.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{opts.max_budget_usd:.6f}".rstrip("0").rstrip(".") or "0"]
    if opts.max_turns is not None:
        argv += ["--max-turns", str(opts.max_turns)]
    if opts.append_system_prompt:
        argv += ["--append-system-prompt", opts.append_system_prompt]
    argv += opts.extra_args
    return argv


def reads(event: StreamEvent) -> bool:
    """The stream events :func:`classify` reads (a run's live follower keeps these, and only these, for it)."""
    return isinstance(event, (SystemInit, ResultMessage)) or (
        isinstance(event, AssistantMessage) and event.error is not None
    )


def classify(
    run_dir: Path,
    record: Mapping[str, Any],
    argv_info: Mapping[str, Any],
    exit_info: Mapping[str, Any],
    kill_info: Mapping[str, Any],
    stderr: str,
    warnings: list[str],
    events: Iterable[StreamEvent] | None = None,
) -> AgentOutcome:
    """The :class:`AgentOutcome` of a finished Claude Code run, from its stream and files. ``events``: the stream's
    events already parsed by the run's live follower (those :func:`reads` keeps; its parse warnings are in
    ``warnings``), so the stream is not parsed twice; None reads stream.jsonl."""
    exit_code = exit_info.get("exitCode")

    parse_warnings: list[str] = []
    init: SystemInit | None = None
    result: ResultMessage | None = None
    auth_error = False
    if events is None:
        events = iter_events(run_dir / STREAM_FILE, warnings=parse_warnings)
    for event in events:
        if isinstance(event, SystemInit) and init is None:
            init = event
        elif isinstance(event, AssistantMessage) and event.error == "authentication_failed":
            auth_error = True
        elif isinstance(event, ResultMessage):
            result = event
    all_warnings = list(dict.fromkeys([*warnings, *parse_warnings]))

    duration = None
    with contextlib.suppress(TypeError, ValueError):
        started = datetime.fromisoformat(str(record.get("startedAt")))
        ended = datetime.fromisoformat(str(exit_info["endedAt"])) if exit_info.get("endedAt") else utcnow()
        duration = max(0.0, (ended - started).total_seconds())
    if result is not None and result.duration_ms is not None and duration is None:
        duration = result.duration_ms / 1000

    structured = result.structured_output if result is not None else None
    outcome = AgentOutcome(
        execution_id=run_dir.name,
        exit_code=exit_code,
        session_id=(result.session_id if result else None) or (init.session_id if init else None),
        model=init.model if init else None,
        cost_usd=result.total_cost_usd if result else 0.0,
        num_turns=result.num_turns if result else 0,
        is_error=result.is_error if result else True,
        subtype=result.subtype if result else None,
        result_text=result.result if result else None,
        structured_output=structured if isinstance(structured, dict) else None,
        stderr_tail=stderr,
        duration_s=duration,
        warnings=all_warnings,
    )
    if result is None:
        outcome.warnings.append("the run ended without a result message; its cost is unknown and recorded as 0")
    kind, message = _failure(outcome, result, auth_error, kill_info, argv_info, stderr)
    outcome.failure, outcome.failure_message = kind, name_run_folder(message, run_dir)
    return outcome


def _failure(
    outcome: AgentOutcome,
    result: ResultMessage | None,
    auth_error: bool,
    kill_info: Mapping[str, Any],
    argv_info: Mapping[str, Any],
    stderr: str,
) -> tuple[FailureKind | None, str | None]:
    """The typed failure of a finished run, checked from the most specific cause to the most general."""
    code = outcome.exit_code
    errors = " ".join(result.errors) if result else ""
    if kill_info.get("reason"):
        kind = FailureKind(kill_info["reason"])
        texts = {
            FailureKind.TIMEOUT: "The run exceeded its time limit and was stopped (SIGTERM, then SIGKILL).",
            FailureKind.STALLED: "The run produced no output for too long and was stopped.",
        }
        return kind, texts.get(
            kind, "The run was cancelled."
        ) + " Retry it, or raise the time limit if it needs longer."
    if "cannot be used with root/sudo privileges" in stderr:
        return FailureKind.PERMISSION_REFUSED, (
            "Claude Code refused to bypass permissions as root. Use the default permission mode "
            "(acceptEdits with an allowed-tools list), run as a non-root user, or set IS_SANDBOX=1 in a sandbox."
        )
    if "No conversation found with session ID" in stderr + errors or "is already in use" in stderr:
        return FailureKind.INVALID_SESSION, (
            f"The session could not be used: {(stderr.strip() or errors).splitlines()[-1]}. "
            "Start a new session instead."
        )
    if result is not None and result.subtype == "error_max_budget_usd":
        return FailureKind.BUDGET_EXCEEDED, (
            f"The run reached its budget cap ({errors or 'max budget'}) after ${result.total_cost_usd:.4f}. "
            "Raise the budget and retry."
        )
    if result is not None and result.subtype == "error_max_turns":
        return FailureKind.MAX_TURNS, f"The run reached its turn limit ({errors or 'max turns'}). Raise max turns."
    result_text = (result.result or "") if result else ""
    if auth_error or (
        result is not None
        and result.is_error
        and (
            result_text.startswith("Not logged in")
            or "Invalid API key" in result_text
            or result.api_error_status == 401
        )
    ):
        return FailureKind.AUTH_FAILED, (
            f"Claude Code is not authenticated ({result_text or 'authentication_failed'}). "
            "Run `claude /login` or set ANTHROPIC_API_KEY for the server."
        )
    if result is None:
        if code == 127:
            return FailureKind.NOT_INSTALLED, f"The agent command was not found (exit 127). {INSTALL_HINT}"
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no stderr"
        code_text = f"exit code {code}" if code is not None else "an unknown exit code (adopted run)"
        return FailureKind.PROCESS_FAILED, (
            f"The agent process ended with {code_text} and no result: {tail}. See stderr.log in the run folder."
        )
    if result.is_error:
        return FailureKind.PROCESS_FAILED, (
            f"The run ended with an error ({result.subtype}): {result_text or errors or 'no message'}. "
            "See stream.jsonl in the run folder."
        )
    if code not in (0, None):
        return FailureKind.PROCESS_FAILED, f"The agent process exited with code {code}: {stderr.strip()[-300:]}"
    return structured_output_failure(
        argv_info.get("outputSchema"),
        outcome,
        "The run was asked for structured output (--json-schema) but returned none. Retry the run.",
    )


def transcript_events(run_dir: Path) -> list[dict[str, Any]]:
    """A run's assistant/user messages as raw dicts, oldest first."""
    return [
        event.model_dump(mode="json", by_alias=True)
        for event in iter_events(Path(run_dir) / STREAM_FILE)
        if event.type in ("assistant", "user")
    ]


class ClaudeFamily:
    """Claude Code behind the :class:`specflow_nb.agent.family.AgentFamily` interface."""

    name = "claude"
    install_hint = INSTALL_HINT

    def check(self, opts: AgentOptions, env: Mapping[str, str]) -> None:
        """Nothing to refuse before launch: Claude Code prices its own runs."""

    def schema_path(self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str]) -> Path | None:
        return None  # the schema travels in the argv (--json-schema)

    def build_argv(self, opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
        return build_claude_argv(opts)

    def prepare(
        self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str], resolved: str
    ) -> tuple[dict[str, Any], list[str]]:
        return {}, [EXIT_RECORDER, str(run_dir / EXIT_FILE)]

    def usage_watch(self, run_dir: Path, info: Mapping[str, Any]) -> tuple[Any, float | None]:
        return None, None  # Claude Code stops itself at --max-budget-usd

    classify = staticmethod(classify)
    #: Optional beyond :class:`~specflow_nb.agent.family.AgentFamily`: ``classify`` also takes the live follower's
    #: events (``events=``), those ``reads`` keeps.
    reads = staticmethod(reads)
    transcript_events = staticmethod(transcript_events)
