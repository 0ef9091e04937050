"""Typed one-shot agent calls: ``await claude_helper(message, project, OutputModel)`` -> a validated instance.

Presets (MISSION §5, §6):

* ``decision`` — read-only tools (Read, Grep, Glob), no session persistence, the decision budget (0.5 USD), 10 min.
* ``healing``  — resume + fork the failed run's session (``session_id``), the healing budget (2 USD), 30 min
  (never the original's 120 s).
* ``custom``   — the runner's defaults; every option can be overridden.

A session that cannot be resumed (``invalid_session``) is retried once as a new session, with a warning. Every
failure comes back typed in ``HelperResult.failure``; nothing here raises for an agent's misbehaviour.

The diagnosis at needs_attention (issue 15.5) is the ``decision`` preset's production caller: :func:`diagnosis_prompt`
points the helper at the failed run's folder, :class:`DiagnosisOutput` is its answer, and :func:`adopt_helper`
collects a helper started before a host restart (still running, or ended meanwhile).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import anyio
from pydantic import BaseModel, Field, ValidationError

from specflow_nb.agent.options import AgentOptions, SessionMode
from specflow_nb.agent.outcome import AgentOutcome, AgentRunError, FailureKind
from specflow_nb.agent.process import attach_run, start_run
from specflow_nb.agent.results import new_execution_id, read_outcome
from specflow_nb.agent.rundir import PID_FILE, PROMPT_FILE, STDERR_FILE, STREAM_FILE
from specflow_nb.agent.stream import StreamEvent
from specflow_nb.models import BudgetConfig

T = TypeVar("T", bound=BaseModel)

READ_ONLY_TOOLS = ["Read", "Grep", "Glob"]
DECISION_TIMEOUT_SECONDS = 600.0
HEALING_TIMEOUT_SECONDS = 1800.0
_DEFAULT_BUDGET = BudgetConfig()

Preset = Literal["decision", "healing", "custom"]


@dataclass
class HelperResult(Generic[T]):
    """A typed call's result: ``value`` when it succeeded, else ``failure`` and ``failure_message``."""

    value: T | None
    cost_usd: float = 0.0
    num_turns: int = 0
    session_id: str | None = None
    duration_s: float | None = None
    failure: FailureKind | None = None
    failure_message: str | None = None
    outcome: AgentOutcome | None = None
    run_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.value is not None


def preset_options(
    preset: Preset, *, session_id: str | None = None, budget: BudgetConfig = _DEFAULT_BUDGET
) -> dict[str, Any]:
    """The AgentOptions fields a preset sets (callers' overrides win)."""
    if preset == "decision":
        return {
            "tools": list(READ_ONLY_TOOLS),
            "allowed_tools": list(READ_ONLY_TOOLS),
            "no_session_persistence": True,
            "max_budget_usd": budget.decision_budget,
            "timeout_seconds": DECISION_TIMEOUT_SECONDS,
        }
    if preset == "healing":
        return {
            "session_mode": SessionMode.FORK if session_id else SessionMode.NEW,
            "session_id": session_id,
            "max_budget_usd": budget.healing_budget,
            "timeout_seconds": HEALING_TIMEOUT_SECONDS,
        }
    return {"session_id": session_id, "session_mode": SessionMode.RESUME if session_id else SessionMode.NEW}


async def claude_helper(
    message: str,
    project: Path,
    output_model: type[T],
    *,
    preset: Preset = "decision",
    command: str = "claude",
    session_id: str | None = None,
    model: str | None = None,
    fallback_model: str | None = None,
    max_budget_usd: float | None = None,
    timeout_seconds: float | None = None,
    max_turns: int | None = None,
    append_system_prompt: str | None = None,
    env: dict[str, str] | None = None,
    run_dir: Path | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    stale_after: float | None = None,
    on_stall: Callable[[], Awaitable[None] | None] | None = None,
    **overrides: Any,
) -> HelperResult[T]:
    """Run one agent call whose structured output must validate against ``output_model``.

    ``overrides`` are further :class:`AgentOptions` fields (e.g. ``tools``, ``allowed_tools``, ``session_mode``,
    ``extra_args``). The run's folder (default ``{project}/.specflow/workflows/helper-…``) holds the prompt, the
    exact argv (no secrets), the output stream and stderr.
    """
    project = Path(project)
    fields: dict[str, Any] = preset_options(preset, session_id=session_id)
    explicit = {
        "model": model,
        "fallback_model": fallback_model,
        "max_budget_usd": max_budget_usd,
        "timeout_seconds": timeout_seconds,
        "max_turns": max_turns,
        "append_system_prompt": append_system_prompt,
    }
    fields.update({k: v for k, v in explicit.items() if v is not None})
    fields.update(overrides)
    opts = AgentOptions(
        command=command,
        cwd=project,
        prompt=message,
        output_format="stream-json",
        output_schema=output_model.model_json_schema(),
        env=dict(env or {}),
        **fields,
    )
    run_dir = Path(run_dir) if run_dir is not None else project / ".specflow" / "workflows" / new_execution_id("helper")
    warnings: list[str] = []
    if preset == "healing" and not session_id:
        warnings.append("no session to fork for healing; the healer starts a new session")

    outcome = await _run(run_dir, opts, on_event, stale_after, on_stall)
    if isinstance(outcome, AgentOutcome) and outcome.failure is FailureKind.INVALID_SESSION and opts.session_id:
        # The session is gone (or busy): the work can still be done from scratch, so retry once, and say so.
        warnings.append(
            f"session {opts.session_id} could not be used ({outcome.failure_message}); retried as a new session"
        )
        retry = opts.model_copy(update={"session_mode": SessionMode.NEW, "session_id": None})
        retry_dir = run_dir.with_name(run_dir.name + "-new-session")
        first_cost = outcome.cost_usd
        outcome = await _run(retry_dir, retry, on_event, stale_after, on_stall)
        if isinstance(outcome, AgentOutcome):
            outcome.cost_usd += first_cost  # both runs are paid for
            run_dir = retry_dir
    if isinstance(outcome, AgentRunError):
        return HelperResult(
            value=None,
            failure=outcome.kind,
            failure_message=str(outcome),
            run_dir=run_dir,
            warnings=warnings,
        )
    return _result(outcome, output_model, run_dir, warnings)


def _result(outcome: AgentOutcome, output_model: type[T], run_dir: Path, warnings: list[str]) -> HelperResult[T]:
    """A finished run's outcome as a typed result: its structured output validated against ``output_model``."""
    outcome.warnings = [*warnings, *outcome.warnings]
    result: HelperResult[T] = HelperResult(
        value=None,
        cost_usd=outcome.cost_usd,
        num_turns=outcome.num_turns,
        session_id=outcome.session_id,
        duration_s=outcome.duration_s,
        failure=outcome.failure,
        failure_message=outcome.failure_message,
        outcome=outcome,
        run_dir=run_dir,
        warnings=outcome.warnings,
    )
    if outcome.failure is not None:
        return result
    try:
        result.value = output_model.model_validate(outcome.structured_output)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        result.failure = FailureKind.SCHEMA_VALIDATION_FAILED
        result.failure_message = (
            f"The structured output does not match {output_model.__name__}: {problems}. "
            f"Got {json.dumps(outcome.structured_output)[:300]}. Retry the call."
        )
    return result


async def _run(
    run_dir: Path,
    opts: AgentOptions,
    on_event: Callable[[StreamEvent], None] | None,
    stale_after: float | None,
    on_stall: Callable[[], Awaitable[None] | None] | None,
) -> AgentOutcome | AgentRunError:
    try:
        run = await start_run(run_dir, opts)
    except AgentRunError as exc:
        return exc
    return await run.wait(on_event=on_event, stale_after=stale_after, on_stall=on_stall)


async def adopt_helper(
    run_dir: Path, output_model: type[T], *, on_event: Callable[[StreamEvent], None] | None = None
) -> HelperResult[T] | None:
    """The result of a helper run started earlier (e.g. before a host restart) in ``run_dir``: waited for if it
    still runs, read from its files if it ended. None when no run was ever started there."""
    run_dir = Path(run_dir)
    live = await anyio.to_thread.run_sync(attach_run, run_dir)
    if live is not None:
        return _result(await live.wait(on_event=on_event), output_model, run_dir, ["adopted after a restart"])
    if not (run_dir / PID_FILE).exists():
        return None
    try:
        outcome = await anyio.to_thread.run_sync(read_outcome, run_dir)
    except (AgentRunError, OSError, ValueError) as exc:
        return HelperResult(value=None, failure=FailureKind.PROCESS_FAILED, failure_message=str(exc), run_dir=run_dir)
    return _result(outcome, output_model, run_dir, [])


# --------------------------------------------------------------------------------------------------------------
# The diagnosis at needs_attention (issue 15.5)

#: The first line of every diagnosis prompt (the demo agent recognises a decision-helper prompt by it).
DIAGNOSIS_HEADING = "# Diagnose a stopped orchestration (read only)"


class DiagnosisOutput(BaseModel):
    """What the decision helper answers: why the run failed, in plain words, and what the person should choose."""

    diagnosis: str = Field(
        description="What went wrong and why, in at most three short plain-language sentences (under 800 characters)."
    )
    suggestion: Literal["retry", "skip", "abort", "fix"] = Field(
        description="The option to choose: retry, skip or abort (only one the person is offered), or fix when "
        "something must be fixed before a retry can succeed."
    )
    fix: str | None = Field(None, description="With suggestion fix: what to fix, in one sentence; else null.")


def diagnosis_prompt(
    *,
    issue: str,
    options: list[str],
    failed_run_folder: str | None,
    issue_kind: str | None = None,
    step: str | None = None,
    remaining_task_ids: list[str] | None = None,
    feature_dir: str | None = None,
    additional_context: str = "",
) -> str:
    """The decision helper's prompt: the recovery issue, where the failed run's transcript and stderr are, the
    options. Paths are relative to the project (the helper's working folder)."""
    lines = [
        DIAGNOSIS_HEADING,
        "",
        "An automated spec-driven orchestration stopped and a person must now decide what to do. Read the failed "
        "run's files and tell them, in plain language, why it failed and what to choose. Do not change any file.",
        "",
        f"## What stopped it{f' ({issue_kind})' if issue_kind else ''}",
        "",
        issue.strip(),
        "",
    ]
    if failed_run_folder:
        folder = failed_run_folder.rstrip("/")
        lines += [
            "## The failed run",
            "",
            f"- `{folder}/{STREAM_FILE}`: its transcript, one JSON message per line (the agent's text, its tool "
            'calls and their results, and a final `"type": "result"` message). Read its end first.',
            f"- `{folder}/{STDERR_FILE}`: the agent's error output.",
            f"- `{folder}/{PROMPT_FILE}`: what it was asked to do.",
            "",
        ]
    if step:
        lines.append(f"Step: {step}.")
    if remaining_task_ids:
        where = f" in `{feature_dir.rstrip('/')}/tasks.md`" if feature_dir else " in tasks.md"
        lines.append(f"Tasks still unchecked{where}: {', '.join(remaining_task_ids)}.")
    if additional_context.strip():
        lines += ["", "## Context the person gave for every run", "", additional_context.strip(), ""]
    lines += [
        f"The person may choose: {', '.join(options) or 'retry or abort'} (retry runs it again, skip moves on "
        "without it, abort ends the orchestration).",
        "",
        "## Answer",
        "",
        "- diagnosis: what went wrong and why, at most three short sentences a person reads in ten seconds.",
        f"- suggestion: one of {', '.join([*options, 'fix'])} (fix: something must be fixed before a retry can "
        "succeed, such as a missing tool, a wrong setting or a broken test).",
        "- fix: with suggestion fix, what to fix in one sentence; otherwise null.",
    ]
    return "\n".join(lines) + "\n"
