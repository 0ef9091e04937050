"""Healing's I/O side (MISSION §6): what went wrong in a failed batch run, read from its folder, for the healer.

The healing *decisions* are the machine's (``specflow_nb.machine.healing``: when a batch gets a healer, what it may
spend (``healer_budget``), when it healed (``heal_confirmed``); the machine's ``SpawnHealer`` resumes and forks the
failed session). The orchestrator, performing a ``SpawnHealer``, calls:

1. :func:`capture_failure_context` for the failed run (bad exit, or tasks left unchecked). It never raises: a
   missing stream, stderr or outcome only leaves that part of the context empty.
2. :func:`specflow_nb.agent.prompts.build_heal_prompt` for the prompt (limited to the batch's remaining tasks).

:func:`lost_session_context` serves a run retrying a session that could no longer be resumed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from specflow_nb.agent.failure_context import FailureContext, TranscriptMessage
from specflow_nb.models import BatchItem, Task

#: How many transcript messages the healer is shown, and how long each may be.
TRANSCRIPT_MESSAGES = 10
MESSAGE_CHARS = 600
#: How much of stderr the healer is shown.
STDERR_CHARS = 4000
#: How much of a lost session's last messages the new session that retries it is shown (MISSION §5).
LOST_SESSION_CHARS = 3000


class _TasksView(Protocol):
    """What healing needs of :class:`specflow_nb.tasks.ParsedTasks`."""

    def by_id(self) -> dict[str, Task]: ...


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
