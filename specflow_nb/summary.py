"""The words every host shows for an orchestration (panel, project cards, terminal view): one source, always true.

Pure functions of an ``OrchestrationExecution``: no I/O, no Jupyter, no rich — each host styles the strings itself.
What the record does not say directly (where a cancel happened, which batch a pause follows) is derived from what
it does hold: the batches, the step record, the pending pause and the decision log.

This module holds the status words (label, badge, headline, step marks, task counts) and the notifications; the
other words live beside it, one concern each, and are re-exported here so ``summary.X`` keeps naming every one:
:mod:`specflow_nb.run_names` (what batches and runs are called), :mod:`specflow_nb.durations` (elapsed, remaining),
:mod:`specflow_nb.log_words` (the decision log) and :mod:`specflow_nb.diagnosis_words` (the needs-attention
diagnosis).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from specflow_nb.diagnosis_words import SUGGESTION_WORDS, DiagnosisView, diagnosis_lines, diagnosis_view
from specflow_nb.durations import elapsed, fmt_duration, remaining, time_text
from specflow_nb.log_words import (
    DECISION_TITLES,
    STDERR_HINT,
    decision_details,
    decision_text,
    decision_title,
    name_run_folder,
)
from specflow_nb.models import (
    STEP_ORDER,
    BatchItem,
    DecisionLogEntry,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
    StepState,
)
from specflow_nb.run_names import batch_at, batch_name, current_batch, run_label, where_stopped

__all__ = [
    "ANNOUNCED",
    "BADGE_LABELS",
    "BADGE_TONES",
    "DECISION_TITLES",
    "MARK_WORDS",
    "STATUS_LABELS",
    "STDERR_HINT",
    "SUGGESTION_WORDS",
    "DiagnosisView",
    "Notification",
    "badge_text",
    "batch_line",
    "current_batch",
    "decision_details",
    "decision_text",
    "decision_title",
    "diagnosis_lines",
    "diagnosis_view",
    "elapsed",
    "event_of",
    "fmt_duration",
    "headline",
    "name_run_folder",
    "notifications_since",
    "phase_bar",
    "phase_marks",
    "remaining",
    "run_label",
    "status_label",
    "task_counts",
    "tasks_text",
    "time_text",
    "tone",
]

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


def _last_done_batch(ex: OrchestrationExecution) -> BatchItem | None:
    done = [b for b in ex.batches.items if b.status.is_done]
    return max(done, key=lambda b: (b.completed_at is not None, b.completed_at or ex.started_at, b.index), default=None)


def _next_batch(ex: OrchestrationExecution) -> BatchItem | None:
    return next((b for b in ex.batches.items if not b.status.is_done), None)


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
        where = where_stopped(ex, killed if isinstance(killed, str) else None)
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
        return f"at {batch_name(ex, b)}"
    return f"at the {ex.current_phase.value} step"


def _paused_line(ex: OrchestrationExecution) -> str:
    step = ex.current_phase
    if step is P.IMPLEMENT and ex.batches.items:
        after, nxt = _last_done_batch(ex), _next_batch(ex)
        if after is not None and nxt is not None:
            return f"Paused after {batch_name(ex, after, section=False)} — next: {nxt.section}"
        if nxt is not None:
            return f"Paused — next: {batch_name(ex, nxt)}"
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
            return f"Failed during {batch_name(ex, b)}"
        return f"Failed at the {step.value} step"
    if status is S.NEEDS_ATTENTION:
        rc = ex.recovery_context
        b = batch_at(ex, rc.batch_index if rc else None)
        if b is not None:
            return f"Needs attention: {batch_name(ex, b)}"
        at = rc.step if rc and rc.step else step
        return f"Needs attention at the {at.value} step"
    if ex.waiting_for_input:
        n = len(ex.questions)
        return f"Waiting for your answer{'s' if n != 1 else ''} ({n} question{'s' if n != 1 else ''})"
    if status is S.PAUSED:
        return _paused_line(ex)
    # running
    if ex.pause_requested:
        after = where_stopped(ex, run.execution_id if run and run.live else None, during="after")
        if after and after.startswith("while healing"):
            after = "after healing " + after.removeprefix("while healing ")
        return f"Pausing {after or 'after the current step'}…"
    if step is P.IMPLEMENT:
        b = current_batch(ex)
        if b is None or not ex.batches.items:
            return "Planning batches"
        verb = "Healing" if run is not None and run.kind is RunKind.HEALER else "Implementing"
        return f"{verb} {batch_name(ex, b)}"
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
