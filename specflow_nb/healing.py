"""Healing a failed batch (MISSION §6): capture what went wrong, brief a healer, confirm its claim against tasks.md.

The orchestrator calls, in order:

1. :func:`capture_failure_context` right after a batch run ends badly (bad exit, or tasks left unchecked). It never
   raises: a missing stream, stderr or outcome only leaves that part of the context empty.
2. :func:`healer_options` for the healer run: resume the failed session and fork it (the healer sees everything
   the failed run did, and the failed session stays intact for a human), the healing budget that is left (capped by
   the total budget), and a long timeout (30 minutes by default; the original cut healers off after 120 s).
3. :func:`specflow_nb.agent.prompts.build_heal_prompt` for the prompt (limited to the batch's remaining tasks).
4. :func:`heal_confirmed` when the healer ends: healed only when the healer says ``fixed`` AND tasks.md, re-read
   from disk, shows every task of the batch checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from specflow_nb.errors import AgentError
from specflow_nb.models import BatchItem, CamelModel, OrchestrationConfig, Task

if TYPE_CHECKING:
    from specflow_nb.agent.claude import AgentOptions
    from specflow_nb.agent.prompts import HealOutput, StepPrompt

#: How many transcript messages the healer is shown, and how long each may be.
TRANSCRIPT_MESSAGES = 10
MESSAGE_CHARS = 600
#: How much of stderr the healer is shown.
STDERR_CHARS = 4000
#: The healer's default timeout (seconds): long, because a healer does real work (never the original's 120 s).
HEALER_TIMEOUT_SECONDS = 30 * 60.0
#: How much of a lost session's last messages the new session that retries it is shown (MISSION §5).
LOST_SESSION_CHARS = 3000


class _TasksView(Protocol):
    """What healing needs of :class:`specflow_nb.tasks.ParsedTasks`."""

    def by_id(self) -> dict[str, Task]: ...


class TranscriptMessage(CamelModel):
    """One message of a run's stream, reduced to what a healer (or a human) needs to read."""

    role: str  # assistant | user | result
    text: str


class FailureContext(CamelModel):
    """Everything known about a failed batch run, for the healer's prompt and for needs_attention."""

    batch_index: int
    section: str
    error_message: str
    failure_kind: str = Field(description="process_failed, tasks_unchecked, timeout, budget_exceeded, …")
    exit_code: int | None = None
    stderr_tail: str = ""
    transcript: list[TranscriptMessage] = Field(default_factory=list)
    completed_task_ids: list[str] = Field(default_factory=list)
    remaining_task_ids: list[str] = Field(default_factory=list)
    failed_run_id: str | None = None
    session_id: str | None = None

    def describe_failure(self) -> str:
        """A few lines for the healer's prompt and the recovery panel."""
        lines = [f"- Failure: {self.failure_kind}", f"- Error: {self.error_message}"]
        if self.exit_code is not None:
            lines.append(f"- Exit code: {self.exit_code}")
        done = ", ".join(self.completed_task_ids) or "none"
        left = ", ".join(self.remaining_task_ids) or "none"
        lines += [f"- Tasks of the batch already checked: {done}", f"- Tasks of the batch remaining: {left}"]
        return "\n".join(lines)

    def describe_transcript(self) -> str:
        if not self.transcript:
            return "(no transcript was recorded)"
        return "\n".join(f"- **{m.role}**: {m.text}" for m in self.transcript)


# --------------------------------------------------------------------------------------------------------------
# Reading the run folder


def _clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_input_summary(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("command", "file_path", "path", "pattern", "url", "description"):
            if isinstance(data.get(key), str):
                return str(data[key])
        return json.dumps(data, ensure_ascii=False, default=str)
    return str(data)


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _summarize(event: dict[str, Any]) -> TranscriptMessage | None:
    """One stream-json line as a transcript message; None for lines that are not conversation."""
    kind = event.get("type")
    if kind == "result":
        status = "error" if event.get("is_error") else "ok"
        text = f"[{event.get('subtype', 'result')}, {status}] {event.get('result') or ''}".strip()
        return TranscriptMessage(role="result", text=_clip(text))
    if kind not in ("assistant", "user"):
        return None
    message = event.get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    blocks: list[Any] = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    parts: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text" and str(block.get("text", "")).strip():
            parts.append(str(block["text"]).strip())
        elif btype == "tool_use":
            parts.append(f"[tool {block.get('name', '?')}] {_clip(_tool_input_summary(block.get('input')), 200)}")
        elif btype == "tool_result":
            flag = " error" if block.get("is_error") else ""
            parts.append(f"[tool result{flag}] {_clip(_block_text(block.get('content')), 300)}")
    if event.get("error"):
        parts.append(f"[error: {event['error']}]")
    if not parts:
        return None
    return TranscriptMessage(role=str(kind), text=_clip("\n".join(parts)))


def _read_tail(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - max_bytes))
            return fh.read()
    except OSError:
        return b""


def transcript_messages(run_dir: Path, n: int = TRANSCRIPT_MESSAGES) -> list[TranscriptMessage]:
    """The last ``n`` conversation messages of a run's stream, summarized (empty when there is no stream).

    Reading the stream is the runner's job (:func:`specflow_nb.agent.claude.transcript_tail`); this only turns its
    raw messages into short role + text lines (tool calls and results as one-line summaries).
    """
    return [m for m in (_summarize(e) for e in _raw_transcript(run_dir, n)) if m is not None]


def _raw_transcript(run_dir: Path, n: int = TRANSCRIPT_MESSAGES) -> list[dict[str, Any]]:
    from specflow_nb.agent.claude import transcript_tail  # lazy: healing's models must import without the runner

    try:
        return transcript_tail(Path(run_dir), n=n) if n > 0 else []
    except OSError:
        return []


def lost_session_context(run_dir: Path, max_chars: int = LOST_SESSION_CHARS) -> str:
    """What a session that can no longer be resumed did: the last messages of the stream of ``run_dir`` (the run
    that last ran in it), summarized as a healer's failure context shows them, redacted like everything served,
    newest kept within ``max_chars`` characters, oldest first. '' when nothing was recorded. Never raises."""
    from specflow_nb.redact import redact_data

    try:
        raw = [redact_data(e) for e in _raw_transcript(run_dir, 2 * TRANSCRIPT_MESSAGES)]
    except Exception:  # a retry must start even when the lost run's stream cannot be read
        return ""
    lines: list[str] = []
    used = 0
    for message in reversed([m for m in (_summarize(e) for e in raw) if m is not None]):
        line = f"- **{message.role}**: {message.text}"
        if used + len(line) + 1 > max_chars:
            if not lines:
                lines.append(_clip(line, max_chars))
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(reversed(lines))


def stderr_tail(run_dir: Path, max_chars: int = STDERR_CHARS) -> str:
    """The end of the run's stderr file ('' when there is none)."""
    from specflow_nb.agent.claude import STDERR_FILE

    return _read_tail(Path(run_dir) / STDERR_FILE, max_chars * 4).decode("utf-8", errors="replace")[-max_chars:]


def _read_outcome(run_dir: Path) -> Any:
    """The runner's outcome of a finished run, or None (missing folder, still live, unreadable)."""
    from specflow_nb.agent.claude import read_outcome

    try:
        return read_outcome(run_dir)
    except Exception:  # capture_failure_context never raises: the outcome is one part among others
        return None


# --------------------------------------------------------------------------------------------------------------
# Failure context


def _get(outcome: Any, *names: str) -> Any:
    """A field of an AgentOutcome model or of a dict (snake_case or camelCase), else None."""
    for name in names:
        camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
        for key in (name, camel):
            value = outcome.get(key) if isinstance(outcome, Mapping) else getattr(outcome, key, None)
            if value is not None:
                return getattr(value, "value", value)  # enums → their value
    return None


def capture_failure_context(
    run_dir: Path, *, batch: BatchItem, tasks: _TasksView, outcome: Any = None
) -> FailureContext:
    """Gather the context of a failed batch run from its folder, its outcome and tasks.md as re-read now.

    ``outcome`` is the runner's :class:`~specflow_nb.agent.claude.AgentOutcome` (or its JSON dict); when None it is
    read from the run folder. Never raises: a missing stream, stderr, outcome or tasks file leaves that part empty.
    """
    run_dir = Path(run_dir)
    by_id: dict[str, Task] = {}
    try:
        by_id = tasks.by_id()
    except Exception:  # a half-written tasks.md must not stop the healing path
        by_id = {}
    completed = [t for t in batch.task_ids if t in by_id and by_id[t].done]
    remaining = [t for t in batch.task_ids if t not in completed]

    if outcome is None:
        outcome = _read_outcome(run_dir)
    transcript_raw = _raw_transcript(run_dir)
    session_id = _get(outcome, "session_id")
    if not isinstance(session_id, str) or not session_id:
        session_id = next((e["session_id"] for e in transcript_raw if isinstance(e.get("session_id"), str)), None)
    if not session_id:
        session_id = getattr(batch, "session_id", None)  # the batch record's newest session, when it keeps one

    exit_code = _get(outcome, "exit_code")
    kind = _get(outcome, "failure")
    if not kind:
        if outcome is None:
            kind = "no_result"
        elif _get(outcome, "is_error") or (isinstance(exit_code, int) and exit_code != 0):
            kind = "process_failed"
        else:
            kind = "tasks_unchecked" if remaining else "unknown"

    message = _get(outcome, "failure_message")
    if not message and _get(outcome, "is_error"):
        message = _get(outcome, "result_text")
    if not message:
        if kind == "tasks_unchecked":
            message = f"The run ended with {len(remaining)} task(s) of the batch unchecked: {', '.join(remaining)}"
        elif kind == "no_result":
            message = "No outcome was recorded for the run (its folder is missing or it was killed)"
        else:
            message = f"The run failed ({kind})"

    stderr = _get(outcome, "stderr_tail")
    return FailureContext(
        batch_index=batch.index,
        section=batch.section,
        error_message=_clip(str(message), 2000),
        failure_kind=str(kind),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        stderr_tail=stderr[-STDERR_CHARS:] if isinstance(stderr, str) and stderr else stderr_tail(run_dir),
        transcript=[m for m in (_summarize(e) for e in transcript_raw) if m is not None],
        completed_task_ids=completed,
        remaining_task_ids=remaining,
        failed_run_id=_get(outcome, "execution_id") or batch.workflow_execution_id or run_dir.name,
        session_id=session_id,
    )


def heal_confirmed(output: HealOutput | None, tasks_after: _TasksView, batch: BatchItem) -> bool:
    """Healed = the healer says ``fixed`` AND tasks.md (re-read) shows every task of the batch checked."""
    if output is None or output.status != "fixed" or not batch.task_ids:
        return False
    by_id = tasks_after.by_id()
    return all(t in by_id and by_id[t].done for t in batch.task_ids)


# --------------------------------------------------------------------------------------------------------------
# The healer run


def healer_budget(config: OrchestrationConfig, *, healing_spent_usd: float, total_spent_usd: float) -> float:
    """USD a healer may spend now: what is left of the healing budget, never more than what is left in total.

    Zero means no healer may start (MISSION §6: never spawn with nothing left).
    """
    left = min(config.budget.healing_budget - healing_spent_usd, config.budget.max_total - total_spent_usd)
    return round(max(0.0, left), 6)


def healer_options(
    config: OrchestrationConfig,
    *,
    cwd: Path,
    prompt: StepPrompt,
    session_id: str | None,
    healing_spent_usd: float,
    total_spent_usd: float,
    timeout_seconds: float | None = None,
) -> AgentOptions:
    """The runner's options for a healer run.

    Resumes AND forks the failed session (the healer sees everything the failed run did; the failed session stays
    as it was), or starts a new session when the failed run has none. ``--max-budget-usd`` is
    :func:`healer_budget`; the timeout is long (:data:`HEALER_TIMEOUT_SECONDS` unless given). Raises
    :class:`~specflow_nb.errors.AgentError` when no budget is left, so a healer can never start with nothing left.
    """
    from specflow_nb.agent.claude import AgentOptions, SessionMode

    budget = healer_budget(config, healing_spent_usd=healing_spent_usd, total_spent_usd=total_spent_usd)
    if budget <= 0:
        raise AgentError(
            "No healing budget is left for this orchestration",
            hint="Raise budget.healingBudget (or budget.maxTotal) and retry the batch.",
        )
    return AgentOptions(
        command=config.agent_command,
        cwd=Path(cwd),
        prompt=prompt.text,
        output_schema=prompt.json_schema,
        session_mode=SessionMode.FORK if session_id else SessionMode.NEW,
        session_id=session_id,
        model=config.model,
        fallback_model=config.fallback_model,
        max_budget_usd=budget,
        timeout_seconds=HEALER_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds,
    )
