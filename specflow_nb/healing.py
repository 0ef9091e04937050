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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import Field

from specflow_nb.models import BatchItem, CamelModel, OrchestrationConfig, Task

if TYPE_CHECKING:
    from specflow_nb.agent.prompts import HealOutput

#: How many transcript messages the healer is shown, and how long each may be.
TRANSCRIPT_MESSAGES = 10
MESSAGE_CHARS = 600
#: How much of stderr the healer is shown.
STDERR_CHARS = 4000
#: Only the end of a (possibly huge) stream file is read.
STREAM_TAIL_BYTES = 2 * 1024 * 1024
#: The healer's default timeout (seconds): long, because a healer does real work (never the original's 120 s).
HEALER_TIMEOUT_SECONDS = 30 * 60.0

STREAM_FILE = "stream.jsonl"
STDERR_FILES = ("stderr.log", "stderr.txt", "stderr")

#: Outcome failure kinds from the CLI's result subtypes.
_SUBTYPE_KINDS = {"error_max_budget_usd": "budget_exceeded", "error_max_turns": "max_turns"}


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
    text = " ".join(text.split()) if "\n" not in text.strip() else text.strip()
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
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
            if size > max_bytes:  # the first line is probably cut: drop it
                data = data.split(b"\n", 1)[1] if b"\n" in data else b""
            return data
    except OSError:
        return b""


def _stream_events(run_dir: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for line in _read_tail(run_dir / STREAM_FILE, STREAM_TAIL_BYTES).decode("utf-8", errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # a torn last line, a stray print: the rest still counts
        if isinstance(obj, dict):
            events.append(obj)
    return events


def transcript_messages(run_dir: Path, n: int = TRANSCRIPT_MESSAGES) -> list[TranscriptMessage]:
    """The last ``n`` conversation messages of a run's ``stream.jsonl`` (empty when it is missing or unreadable)."""
    messages = [m for m in (_summarize(e) for e in _stream_events(Path(run_dir))) if m is not None]
    return messages[-n:] if n > 0 else []


def stderr_tail(run_dir: Path, max_chars: int = STDERR_CHARS) -> str:
    """The end of the run's stderr file ('' when there is none)."""
    for name in STDERR_FILES:
        path = Path(run_dir) / name
        if path.is_file():
            return _read_tail(path, max_chars * 4).decode("utf-8", errors="replace")[-max_chars:]
    return ""


# --------------------------------------------------------------------------------------------------------------
# Failure context


def _get(outcome: Any, *names: str) -> Any:
    """A field of a RunOutcome model or of a dict (snake_case or camelCase), else None."""
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

    ``outcome`` is the runner's RunOutcome (or its dict, or None); fields read when present: ``failure``/``kind``,
    ``error``/``message``, ``exit_code``, ``session_id``, ``is_error``, ``subtype``, ``result``, ``run_id``.
    Never raises for missing or malformed parts.
    """
    run_dir = Path(run_dir)
    by_id: dict[str, Task] = {}
    try:
        by_id = tasks.by_id()
    except Exception:  # a half-written tasks.md must not stop the healing path
        by_id = {}
    completed = [t for t in batch.task_ids if t in by_id and by_id[t].done]
    remaining = [t for t in batch.task_ids if t not in completed]

    events = _stream_events(run_dir)
    result = next((e for e in reversed(events) if e.get("type") == "result"), None) or {}
    session_id = _get(outcome, "session_id") or result.get("session_id")
    if not session_id:
        session_id = next((e["session_id"] for e in events if isinstance(e.get("session_id"), str)), None)

    exit_code = _get(outcome, "exit_code", "returncode")
    subtype = _get(outcome, "subtype") or result.get("subtype")
    is_error = _get(outcome, "is_error")
    if is_error is None:
        is_error = result.get("is_error")
    kind = _get(outcome, "failure", "failure_kind", "error_kind", "kind")
    if not kind:
        if isinstance(subtype, str) and subtype in _SUBTYPE_KINDS:
            kind = _SUBTYPE_KINDS[subtype]
        elif is_error or (isinstance(exit_code, int) and exit_code != 0):
            kind = "process_failed"
        elif not result and outcome is None:
            kind = "no_result"
        else:
            kind = "tasks_unchecked" if remaining else "unknown"

    message = _get(outcome, "error_message", "error", "message")
    if not message and is_error:
        message = _get(outcome, "result") or result.get("result")
    if not message:
        if kind == "tasks_unchecked":
            message = f"The run ended with {len(remaining)} task(s) of the batch unchecked: {', '.join(remaining)}"
        elif kind == "no_result":
            message = "The run left no final result (it was killed or crashed)"
        else:
            message = f"The run failed ({kind})"

    return FailureContext(
        batch_index=batch.index,
        section=batch.section,
        error_message=_clip(str(message), 2000),
        failure_kind=str(kind),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        stderr_tail=stderr_tail(run_dir),
        transcript=transcript_messages(run_dir),
        completed_task_ids=completed,
        remaining_task_ids=remaining,
        failed_run_id=_get(outcome, "run_id", "execution_id") or batch.workflow_execution_id or run_dir.name,
        session_id=session_id if isinstance(session_id, str) else None,
    )


def heal_confirmed(output: HealOutput | None, tasks_after: _TasksView, batch: BatchItem) -> bool:
    """Healed = the healer says ``fixed`` AND tasks.md (re-read) shows every task of the batch checked."""
    if output is None or output.status != "fixed" or not batch.task_ids:
        return False
    by_id = tasks_after.by_id()
    return all(t in by_id and by_id[t].done for t in batch.task_ids)


# --------------------------------------------------------------------------------------------------------------
# The healer run


@dataclass(frozen=True)
class HealerOptions:
    """How to run a healer; the orchestrator maps it onto the runner's options.

    ``max_budget_usd`` is what is left of the healing budget, capped by what is left of the total; the
    orchestrator must not spawn when :attr:`can_run` is false (MISSION §6: never spawn with nothing left).
    """

    resume_session_id: str | None
    fork_session: bool
    max_budget_usd: float
    timeout_seconds: float
    model: str
    fallback_model: str | None
    agent_command: str

    @property
    def can_run(self) -> bool:
        return self.max_budget_usd > 0


def healer_options(
    config: OrchestrationConfig,
    *,
    session_id: str | None,
    healing_spent_usd: float,
    total_spent_usd: float,
    timeout_seconds: float | None = None,
) -> HealerOptions:
    """Options of a healer run: resume + fork the failed session (a new session when it has none), the healing
    budget left (never more than the total left), and a long timeout (:data:`HEALER_TIMEOUT_SECONDS` by default)."""
    left = min(
        config.budget.healing_budget - healing_spent_usd,
        config.budget.max_total - total_spent_usd,
    )
    return HealerOptions(
        resume_session_id=session_id,
        fork_session=session_id is not None,
        max_budget_usd=round(max(0.0, left), 6),
        timeout_seconds=HEALER_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds,
        model=config.model,
        fallback_model=config.fallback_model,
        agent_command=config.agent_command,
    )
