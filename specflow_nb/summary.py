"""The words every host shows for an orchestration (panel, project cards, terminal view): one source, always true.

Pure functions of an ``OrchestrationExecution``: no I/O, no Jupyter, no rich — each host styles the strings itself.
What the record does not say directly (where a cancel happened, which batch a pause follows) is derived from what
it does hold: the batches, the step record, the pending pause and the decision log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from specflow_nb.models import (
    STEP_ORDER,
    BatchItem,
    DecisionLogEntry,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
    StepState,
    utcnow,
)

S = OrchestrationStatus
P = OrchestrationPhase

#: The label of each status (the badge refines Running into Healing, Pausing or Waiting for input).
STATUS_LABELS = {
    S.RUNNING: "Running",
    S.PAUSED: "Paused",
    S.WAITING_MERGE: "Merge ready",
    S.NEEDS_ATTENTION: "Needs attention",
    S.COMPLETED: "Complete",
    S.FAILED: "Failed",
    S.CANCELLED: "Cancelled",
}
#: Every badge label, in the order a legend lists them.
BADGE_LABELS = (
    "Running",
    "Healing",
    "Pausing",
    "Waiting for input",
    "Paused",
    "Needs attention",
    "Merge ready",
    "Complete",
    "Failed",
    "Cancelled",
)
#: The tone of each badge label (hosts map tones to colours: the panel to JupyterLab's theme, the terminal to rich).
BADGE_TONES = {
    "Running": "info",
    "Healing": "info",
    "Pausing": "neutral",
    "Waiting for input": "warn",
    "Paused": "neutral",
    "Needs attention": "warn",
    "Merge ready": "success",
    "Complete": "success",
    "Failed": "error",
    "Cancelled": "neutral",
}

_DOING = {
    P.DESIGN: "Designing (spec, plan, tasks)",
    P.ANALYZE: "Analyzing the design",
    P.VERIFY: "Verifying",
    P.MERGE: "Merging",
    P.COMPLETE: "Phase complete",
}


def status_label(ex: OrchestrationExecution) -> str:
    """One of :data:`BADGE_LABELS`: Running, Healing, Pausing, Waiting for input, Paused, Needs attention, …"""
    if ex.status.is_active and ex.waiting_for_input:
        return "Waiting for input"
    if ex.status is S.RUNNING and ex.pause_requested:
        return "Pausing"
    run = ex.current_run
    if ex.status is S.RUNNING and run is not None and run.kind is RunKind.HEALER:
        return "Healing"
    return STATUS_LABELS[ex.status]


def tone(label: str) -> str:
    """info, success, warn, error or neutral (a label outside :data:`BADGE_LABELS` is neutral)."""
    return BADGE_TONES.get(label, "neutral")


def current_batch(ex: OrchestrationExecution) -> BatchItem | None:
    items = ex.batches.items
    return items[ex.batches.current] if 0 <= ex.batches.current < len(items) else None


def task_counts(ex: OrchestrationExecution) -> tuple[int, int]:
    """(tasks done, tasks in tasks.md): "12/35 tasks" counts EVERY task, those done before the start included.

    The engine records tasks.md's counts on the execution as it reads the project (``batches.tasksTotal`` and
    ``batches.tasksDone``: done or deferred, the one all-done rule's "settled"). An execution saved without them
    (older records, or before implement was planned) falls back to the plan's tasks: those of finished batches
    over those planned.
    """
    planned = sum(len(b.task_ids) for b in ex.batches.items)
    finished = sum(len(b.task_ids) for b in ex.batches.items if b.status.is_done)
    total = int(getattr(ex.batches, "tasks_total", 0) or 0)
    if total <= 0:
        return finished, planned
    done = int(getattr(ex.batches, "tasks_done", 0) or 0)
    return min(max(done, 0), total), total


def tasks_text(ex: OrchestrationExecution) -> str:
    """ "12/35 tasks (34%)"; "" when there are no tasks yet."""
    done, total = task_counts(ex)
    if not total:
        return ""
    return f"{done}/{total} tasks ({round(100 * done / total)}%)"


# ---- where things stand ----------------------------------------------------------------------------------------


def _batch_name(ex: OrchestrationExecution, b: BatchItem, *, section: bool = True) -> str:
    name = f"batch {b.index + 1} of {ex.batches.total}"
    return f"{name}: {b.section}" if section and b.section else name


def _batch_at(ex: OrchestrationExecution, index: int | None) -> BatchItem | None:
    items = ex.batches.items
    return items[index] if index is not None and 0 <= index < len(items) else None


def _last_done_batch(ex: OrchestrationExecution) -> BatchItem | None:
    done = [b for b in ex.batches.items if b.status.is_done]
    return max(done, key=lambda b: (b.completed_at is not None, b.completed_at or ex.started_at, b.index), default=None)


def _next_batch(ex: OrchestrationExecution) -> BatchItem | None:
    return next((b for b in ex.batches.items if not b.status.is_done), None)


def _step_after(ex: OrchestrationExecution, step: OrchestrationPhase) -> OrchestrationPhase | None:
    """The next step that will run after ``step`` (skipped ones passed over)."""
    if step not in STEP_ORDER:
        return None
    for s in STEP_ORDER[STEP_ORDER.index(step) + 1 :]:
        if ex.step_status.get(s) is not StepState.SKIPPED:
            return s
    return None


def _run_phrase(ex: OrchestrationExecution, run_id: str) -> str:
    """ "the run of batch 2", "the healer of batch 2", "the design run", "the merge" — from a run id's label."""
    label = run_id.rsplit("-", 1)[-1]
    if m := re.fullmatch(r"batch(\d+)", label):
        return f"the run of batch {m.group(1)}"
    if m := re.fullmatch(r"heal(\d+)", label):
        return f"the healer of batch {m.group(1)}"
    if label == "merge":
        return "the merge"
    if label == "diagnose":
        return "the diagnosis helper"
    if label in {s.value for s in STEP_ORDER}:
        return f"the {label} run"
    return "an agent run"


def run_label(ex: OrchestrationExecution, run_id: str) -> str:
    """A run's name in a list: "Batch 2 of 4: Core · #005", "Healer of batch 2 · #006", "Design · #001"."""
    parts = run_id.rsplit("-", 2)
    seq = f" · #{parts[-2]}" if len(parts) == 3 and parts[-2].isdigit() else ""
    label = parts[-1]
    if m := re.fullmatch(r"batch(\d+)", label):
        b = _batch_at(ex, int(m.group(1)) - 1)
        return _sentence(_batch_name(ex, b) if b else f"batch {m.group(1)}") + seq
    if m := re.fullmatch(r"heal(\d+)", label):
        return f"Healer of batch {m.group(1)}{seq}"
    if label == "diagnose":
        return f"Diagnosis helper{seq}"
    return _sentence(label.replace("_", " ")) + seq


def _where_stopped(ex: OrchestrationExecution, run_id: str | None, *, during: str = "during") -> str | None:
    """ "during batch 2 of 4: Core", "while healing batch 2 of 4", "during the verify step" for a run id."""
    if not run_id:
        return None
    label = run_id.rsplit("-", 1)[-1]
    if m := re.fullmatch(r"(batch|heal)(\d+)", label):
        b = _batch_at(ex, int(m.group(2)) - 1)
        name = _batch_name(ex, b) if b else f"batch {m.group(2)}"
        return f"while healing {name}" if m.group(1) == "heal" else f"{during} {name}"
    if label == "merge":
        return f"{during} the merge"
    if label in {s.value for s in STEP_ORDER}:
        return f"{during} the {label} step"
    return None


def _last(ex: OrchestrationExecution, decision: str) -> tuple[int, DecisionLogEntry] | None:
    for i in range(len(ex.decision_log) - 1, -1, -1):
        if ex.decision_log[i].decision == decision:
            return i, ex.decision_log[i]
    return None


def _cancelled_where(ex: OrchestrationExecution) -> str:
    found = _last(ex, "cancel")
    if found is not None:
        i, entry = found
        killed = (entry.data or {}).get("killedRun")
        where = _where_stopped(ex, killed if isinstance(killed, str) else None)
        if where:
            return where
        before = ex.decision_log[i - 1].decision if i > 0 else ""
        if before in ("pause",):
            return "while paused"
        if before == "waiting_merge":
            return "at merge ready"
        if before in ("needs_attention", "budget_exceeded"):
            return "while it needed attention"
        if before == "waiting_input":
            return "while waiting for input"
    if ex.current_phase is P.IMPLEMENT and (b := current_batch(ex)) is not None:
        return f"at {_batch_name(ex, b)}"
    return f"at the {ex.current_phase.value} step"


def _paused_line(ex: OrchestrationExecution) -> str:
    step = ex.current_phase
    if step is P.IMPLEMENT and ex.batches.items:
        after, nxt = _last_done_batch(ex), _next_batch(ex)
        if after is not None and nxt is not None:
            return f"Paused after {_batch_name(ex, after, section=False)} — next: {nxt.section}"
        if nxt is not None:
            return f"Paused — next: {_batch_name(ex, nxt)}"
        return "Paused — next: verify"
    done = [s for s in STEP_ORDER if ex.step_status.get(s) is StepState.COMPLETED]
    previous = [s for s in done if STEP_ORDER.index(s) < STEP_ORDER.index(step)] if step in STEP_ORDER else done
    if previous:
        return f"Paused after the {previous[-1].value} step — next: {step.value}"
    return f"Paused — next: {step.value}"


def headline(ex: OrchestrationExecution) -> str:
    """What is happening now, in one line, true at every moment.

    "Implementing batch 2 of 4: Core Components", "Pausing after batch 2 of 4…", "Paused after batch 2 of 4 — next:
    Phase 3: Integration", "Cancelled during batch 2 of 4: Core Components", "Verified: ready to merge into main", …
    """
    status, step, run = ex.status, ex.current_phase, ex.current_run
    if status is S.COMPLETED:
        return "Phase complete"
    if status is S.WAITING_MERGE:
        target = ex.config.target_branch
        return f"Verified: ready to merge into {target}" if target else "Verified: ready to merge"
    if status is S.CANCELLED:
        return f"Cancelled {_cancelled_where(ex)}"
    if status is S.FAILED:
        b = current_batch(ex)
        if step is P.IMPLEMENT and b is not None:
            return f"Failed during {_batch_name(ex, b)}"
        return f"Failed at the {step.value} step"
    if status is S.NEEDS_ATTENTION:
        rc = ex.recovery_context
        b = _batch_at(ex, rc.batch_index if rc else None)
        if b is not None:
            return f"Needs attention: {_batch_name(ex, b)}"
        at = rc.step if rc and rc.step else step
        return f"Needs attention at the {at.value} step"
    if ex.waiting_for_input:
        n = len(ex.questions)
        return f"Waiting for your answer{'s' if n != 1 else ''} ({n} question{'s' if n != 1 else ''})"
    if status is S.PAUSED:
        return _paused_line(ex)
    # running
    if ex.pause_requested:
        after = _where_stopped(ex, run.execution_id if run and run.live else None, during="after")
        if after and after.startswith("while healing"):
            after = "after healing " + after.removeprefix("while healing ")
        return f"Pausing {after or 'after the current step'}…"
    if step is P.IMPLEMENT:
        b = current_batch(ex)
        if b is None or not ex.batches.items:
            return "Planning batches"
        verb = "Healing" if run is not None and run.kind is RunKind.HEALER else "Implementing"
        return f"{verb} {_batch_name(ex, b)}"
    return _DOING[step]


#: The old name of :func:`headline`.
batch_line = headline


def phase_marks(ex: OrchestrationExecution) -> list[tuple[str, str]]:
    """[(step title, mark)] with mark ● done, ◐ current, ○ pending, – skipped, ✗ failed, ■ stopped there.

    A skipped step stays skipped to the end; the step an orchestration was cancelled or failed in says so.
    """
    marks = []
    finished = not ex.status.is_active
    for s in STEP_ORDER:
        state = ex.step_status.get(s, StepState.PENDING)
        if state is StepState.SKIPPED:
            mark = "–"
        elif state is StepState.COMPLETED or (ex.status is S.COMPLETED and s is P.MERGE):
            mark = "●"
        elif state is StepState.FAILED or (ex.status is S.FAILED and s is ex.current_phase):
            mark = "✗"
        elif s is ex.current_phase and ex.status.is_active:
            mark = "◐"
        elif finished and (s is ex.current_phase or state is StepState.RUNNING):
            mark = "■"
        else:
            mark = "○"
        marks.append((s.value.capitalize(), mark))
    return marks


#: What each mark means, for a legend or a screen reader.
MARK_WORDS = {"●": "done", "◐": "current", "○": "to do", "–": "skipped", "✗": "failed", "■": "stopped"}


def phase_bar(ex: OrchestrationExecution) -> str:
    """Design – Analyze ● Implement ◐ Verify ○ Merge ○ (the mark follows its step)."""
    return " ".join(f"{title} {mark}" for title, mark in phase_marks(ex))


def badge_text(ex: OrchestrationExecution | None) -> str:
    """A project card's badge: "Completing phase (batch 2/4)", "Pausing (batch 2/4)", "Waiting for merge", …;
    "" when idle."""
    if ex is None:
        return ""
    if ex.status is S.WAITING_MERGE:
        return "Waiting for merge"
    label = status_label(ex)
    b = current_batch(ex)
    in_batch = ex.current_phase is P.IMPLEMENT and b is not None
    if label in ("Running", "Healing"):
        return (
            f"Completing phase (batch {b.index + 1}/{ex.batches.total})"
            if in_batch and b
            else (f"Completing phase ({ex.current_phase.value})")
        )
    if label == "Pausing" and in_batch and b:
        return f"Pausing (batch {b.index + 1}/{ex.batches.total})"
    return label


# ---- time ------------------------------------------------------------------------------------------------------


def fmt_duration(delta: timedelta | None) -> str:
    """``1h 02m``, ``4m 10s``, ``12s``; ``—`` when unknown."""
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def elapsed(ex: OrchestrationExecution, now: datetime | None = None) -> timedelta:
    end = ex.completed_at or (None if ex.status.is_active else ex.updated_at)
    return (end or now or utcnow()) - ex.started_at


_ESTIMATED = (P.DESIGN, P.ANALYZE, P.IMPLEMENT)


def remaining(ex: OrchestrationExecution, now: datetime | None = None) -> timedelta | None:
    """The average finished batch's duration times the batches left (minus the running one's time so far).

    ``None`` while nothing has finished yet (no honest estimate) and once the orchestration is over.
    """
    if not ex.status.is_active or ex.current_phase not in _ESTIMATED:
        return None
    finished = [
        item.completed_at - item.started_at
        for item in ex.batches.items
        if item.status.is_done and item.started_at and item.completed_at
    ]
    if not finished:
        return None
    average = sum(finished, timedelta()) / len(finished)
    left = [item for item in ex.batches.items if not item.status.is_done]
    estimate = average * len(left)
    running = next((item for item in left if item.started_at is not None and item.completed_at is None), None)
    if running is not None and running.started_at is not None:
        estimate -= min(average, (now or utcnow()) - running.started_at)
    return max(estimate, timedelta())


def time_text(ex: OrchestrationExecution, now: datetime | None = None) -> str:
    """ "Elapsed 4m 10s · Remaining ~3m 00s" (remaining only while batch times can predict it)."""
    text = f"Elapsed {fmt_duration(elapsed(ex, now))}"
    if ex.status is S.RUNNING and ex.current_phase in _ESTIMATED:
        left = remaining(ex, now)
        text += f" · Remaining {'~' + fmt_duration(left) if left is not None else 'estimating…'}"
    return text


# ---- the decision log in words ---------------------------------------------------------------------------------

DECISION_TITLES = {
    "start": "Started",
    "step_skipped": "Step skipped",
    "transition": "Step finished",
    "batch_plan": "Batches planned",
    "next_batch": "Batch started",
    "batch_complete": "Batch done",
    "batch_failed": "Batch failed",
    "heal_started": "Healing started",
    "heal_failed": "Healing failed",
    "batch_healed": "Batch healed",
    "pause_requested": "Pause requested",
    "pause": "Paused",
    "resume": "Resumed",
    "cancel": "Cancelled",
    "waiting_merge": "Ready to merge",
    "merge_triggered": "Merge started",
    "needs_attention": "Needs attention",
    "recovery_retry": "Retry",
    "recovery_skip": "Skipped",
    "recovery_abort": "Aborted",
    "budget_exceeded": "Budget reached",
    "waiting_input": "Question for you",
    "answers_received": "Answers sent",
    "go_back": "Went back",
    "stalled": "Run stalled",
    "killed_run_ended": "Stopped run ended",
    "reconcile_adopted": "Run adopted after a restart",
    "reconcile_finished": "Run finished during a restart",
    "reconcile_lost": "Run lost in a restart",
    "reconcile_resumed": "Resumed after a restart",
    "takeover": "Taken over",
    "complete": "Phase complete",
    "fail": "Failed",
    "session_lost": "Session lost: retried as a new session",
    "diagnosis": "Diagnosis",
}


def decision_title(decision: str) -> str:
    """A log entry's title a person reads: ``killed_run_ended`` → "Stopped run ended"."""
    return DECISION_TITLES.get(decision) or decision.replace("_", " ").capitalize()


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def decision_text(ex: OrchestrationExecution, entry: DecisionLogEntry) -> str:
    """A log entry's reason with run ids replaced by what they are ("the healer of batch 2")."""
    data = entry.data or {}
    if entry.decision == "killed_run_ended" and isinstance(data.get("runId"), str):
        cost = float(data.get("costUsd") or 0.0)
        return (
            f"{_sentence(_run_phrase(ex, data['runId']))} ended after it was stopped; its cost ${cost:.2f} is counted"
        )
    if entry.decision == "cancel":
        killed = data.get("killedRun")
        return "Cancelled by the user" + (f"; {_run_phrase(ex, killed)} was stopped" if isinstance(killed, str) else "")
    text = entry.reason
    ids = re.compile(rf"(?:killed )?(?:run )?{re.escape(ex.id)}-\d{{3}}-\w+")
    text = ids.sub(lambda m: _run_phrase(ex, m.group(0).split()[-1]), text)
    return _sentence(text)


def decision_details(ex: OrchestrationExecution, entry: DecisionLogEntry) -> list[tuple[str, str]]:
    """The ids and data behind an entry, for a detail row: [("decision", "killed_run_ended"), ("runId", …), …]."""
    rows: list[tuple[str, str]] = [("decision", entry.decision), ("time", entry.timestamp.isoformat())]
    for key, value in (entry.data or {}).items():
        rows.append((key, _short(value)))
    return rows


def _short(value: Any, limit: int = 300) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


STDERR_HINT = "See stderr.log in the run folder."


def name_run_folder(text: str, run_id: str | None) -> str:
    """ "… See stderr.log in the run folder." → "… See .specflow/workflows/<run>/stderr.log (the run's transcript
    shows its end)." — ``.specflow/`` is hidden in JupyterLab's file browser, so the path is spelled out."""
    if not text or not run_id or STDERR_HINT not in text:
        return text
    return text.replace(
        STDERR_HINT, f"See .specflow/workflows/{run_id}/stderr.log (the run's transcript shows its end)."
    )


# ---- the diagnosis at needs_attention (issue 15.5) ---------------------------------------------------------

#: What each suggestion asks the person to do (the recovery panel, the terminal).
SUGGESTION_WORDS = {"retry": "Retry", "skip": "Skip", "abort": "Abort", "fix": "Fix something first, then retry"}


@dataclass(frozen=True)
class DiagnosisView:
    """The diagnosis of the recovery context, in words: ``title`` and ``text`` always, ``suggestion`` when ready."""

    status: str  # pending, ready or failed
    title: str
    text: str
    suggestion: str = ""
    #: info (pending), success (ready) or warn (failed): hosts map it to a colour.
    tone: str = "info"


def diagnosis_view(ex: OrchestrationExecution) -> DiagnosisView | None:
    """The needs-attention diagnosis as every host shows it; None when there is none (decisionBudget 0, nothing to
    read, or not needing attention)."""
    rc = ex.recovery_context
    d = rc.diagnosis if rc is not None and ex.status is S.NEEDS_ATTENTION else None
    if d is None:
        return None
    who = f" ({d.model})" if d.model else ""
    if d.status == "pending":
        budget = ex.config.budget.decision_budget
        text = (
            f"A read-only helper is reading the failed run's transcript and stderr (at most ${budget:.2f}). "
            "You need not wait for it."
        )
        return DiagnosisView("pending", "Diagnosing…", text)
    cost = f" · ${d.cost_usd:.2f}"
    if d.status == "failed":
        return DiagnosisView("failed", f"No diagnosis{who}{cost}", d.error or "the helper gave no answer", tone="warn")
    suggestion = ""
    if d.suggestion == "fix":
        suggestion = f"Suggested: fix first — {d.fix}" if d.fix else f"Suggested: {SUGGESTION_WORDS['fix']}"
    elif d.suggestion:
        suggestion = f"Suggested: {SUGGESTION_WORDS[d.suggestion]}"
    return DiagnosisView("ready", f"Diagnosis{who}{cost}", d.text, suggestion, tone="success")


def diagnosis_lines(ex: OrchestrationExecution) -> list[str]:
    """The diagnosis as plain lines (the terminal): "Diagnosis (haiku) · $0.02: …", "Suggested: Retry"."""
    view = diagnosis_view(ex)
    if view is None:
        return []
    return [f"{view.title}: {view.text}", *([view.suggestion] if view.suggestion else [])]


# ---- notifications: what reaches a person who is not looking ----------------------------------------------


@dataclass(frozen=True)
class Notification:
    key: str
    kind: str  # JupyterLab's type: info, success, warning, error
    message: str
    #: The run whose transcript tells why (needs attention, failed).
    run_id: str | None = None


def event_of(execution: OrchestrationExecution, project: str = "") -> Notification | None:
    """The notification an orchestration's state calls for, or None (running, paused by the user, cancelled)."""
    ex = execution
    where = f"{project}: " if project else ""
    n = len(ex.decision_log)
    if ex.status is OrchestrationStatus.NEEDS_ATTENTION:
        issue = ex.recovery_context.issue if ex.recovery_context else (ex.error_message or "")
        run = ex.recovery_context.failed_workflow_id if ex.recovery_context else None
        return Notification(f"{ex.id}:attention:{n}", "error", f"{where}needs attention. {issue}".strip(), run)
    if ex.waiting_for_input and ex.questions:
        k = len(ex.questions)
        return Notification(f"{ex.id}:input:{n}", "warning", f"{where}waiting for your answer(s) to {k} question(s).")
    if ex.status is OrchestrationStatus.WAITING_MERGE:
        return Notification(f"{ex.id}:merge:{n}", "info", f"{where}merge ready: {headline(ex)}")
    if ex.status is OrchestrationStatus.COMPLETED:
        return Notification(f"{ex.id}:completed", "success", f"{where}completed. {headline(ex)}")
    if ex.status is OrchestrationStatus.FAILED:
        return Notification(f"{ex.id}:failed", "error", f"{where}failed. {ex.error_message or ''}".strip())
    return None


#: The notifications a person hears of (a pause they asked for, a stall, a cancel they gave are not news).
ANNOUNCED = ("needs_attention", "waiting_input", "waiting_merge", "completed", "failed", "diagnosis")
_KIND = {
    "needs_attention": "error",
    "waiting_input": "warning",
    "waiting_merge": "info",
    "completed": "success",
    "diagnosis": "info",
}
_WORDS = {
    "diagnosis": "diagnosis:",
    "needs_attention": "needs attention.",
    "waiting_input": "waiting for your answer:",
    "waiting_merge": "merge ready:",
    "completed": "completed.",
    "failed": "failed.",
}


def notifications_since(
    execution: OrchestrationExecution, seq: int, project: str = "", *, not_before: datetime | None = None
) -> list[Notification]:
    """The notifications the machine recorded after number ``seq`` (and not older than ``not_before``), in
    words, oldest first: what a client announces, each once, even if it skipped versions on the live channel."""
    where = f"{project}: " if project else ""
    out = []
    for record in execution.notifications:
        if record.seq <= seq or record.event not in ANNOUNCED:
            continue
        if not_before is not None and record.at < not_before:
            continue
        message = f"{where}{_WORDS[record.event]} {record.message}".strip()
        out.append(
            Notification(f"{execution.id}:n{record.seq}", _KIND.get(record.event, "error"), message, record.run_id)
        )
    return out
