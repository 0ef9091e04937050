"""Plain-text views of an orchestration shared by the hosts (terminal view, project cards, badges).

Pure functions of an ``OrchestrationExecution``: no I/O, no Jupyter, no rich — each host styles the strings itself.
"""

from __future__ import annotations

from specflow_nb.models import (
    STEP_ORDER,
    BatchItem,
    BatchStatus,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
    StepState,
)

#: The label of each status (the badge refines Running into Healing or Waiting for input).
STATUS_LABELS = {
    OrchestrationStatus.RUNNING: "Running",
    OrchestrationStatus.PAUSED: "Paused",
    OrchestrationStatus.WAITING_MERGE: "Merge ready",
    OrchestrationStatus.NEEDS_ATTENTION: "Needs attention",
    OrchestrationStatus.COMPLETED: "Complete",
    OrchestrationStatus.FAILED: "Failed",
    OrchestrationStatus.CANCELLED: "Cancelled",
}


def status_label(ex: OrchestrationExecution) -> str:
    """Running, Healing, Waiting for input, Paused, Needs attention, Merge ready, Complete, Failed, Cancelled."""
    if ex.status.is_active and ex.waiting_for_input:
        return "Waiting for input"
    run = ex.current_run
    if ex.status is OrchestrationStatus.RUNNING and run is not None and run.kind is RunKind.HEALER:
        return "Healing"
    return STATUS_LABELS[ex.status]


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


def batch_line(ex: OrchestrationExecution) -> str:
    """ "Implementing batch 2 of 4: Core Components" while implementing; the step otherwise."""
    if ex.status is OrchestrationStatus.COMPLETED:
        return "Phase complete"
    step = ex.current_phase
    if step is OrchestrationPhase.IMPLEMENT:
        b = current_batch(ex)
        if b is not None:
            verb = "Healing" if status_label(ex) == "Healing" else "Implementing"
            return f"{verb} batch {b.index + 1} of {ex.batches.total}: {b.section}"
        return "Planning batches"
    return {
        OrchestrationPhase.DESIGN: "Designing (spec, plan, tasks)",
        OrchestrationPhase.ANALYZE: "Analyzing the design",
        OrchestrationPhase.VERIFY: "Verifying",
        OrchestrationPhase.MERGE: "Merging",
        OrchestrationPhase.COMPLETE: "Phase complete",
    }[step]


def phase_marks(ex: OrchestrationExecution) -> list[tuple[str, str]]:
    """[(step title, mark)] with mark ● done, ◐ current, ○ pending, – skipped, ✗ failed."""
    marks = []
    for s in STEP_ORDER:
        state = ex.step_status.get(s, StepState.PENDING)
        if state is StepState.COMPLETED or ex.status is OrchestrationStatus.COMPLETED:
            mark = "●"
        elif state is StepState.SKIPPED:
            mark = "–"
        elif state is StepState.FAILED:
            mark = "✗"
        elif s is ex.current_phase and ex.status.is_active:
            mark = "◐"
        else:
            mark = "○"
        marks.append((s.value.capitalize(), mark))
    return marks


def phase_bar(ex: OrchestrationExecution) -> str:
    """Design ─●─ Analyze ─●─ Implement ─◐─ Verify ─○─ Merge (the mark follows its step)."""
    return " ".join(f"{title} {mark}" for title, mark in phase_marks(ex))


def badge_text(ex: OrchestrationExecution | None) -> str:
    """A project card's badge: "Completing phase (batch 2/4)", "Waiting for merge", …; "" when idle."""
    if ex is None:
        return ""
    if ex.status is OrchestrationStatus.WAITING_MERGE:
        return "Waiting for merge"
    if ex.status is OrchestrationStatus.RUNNING and ex.current_phase is OrchestrationPhase.IMPLEMENT:
        b = current_batch(ex)
        if b is not None:
            return f"Completing phase (batch {b.index + 1}/{ex.batches.total})"
    if ex.status is OrchestrationStatus.RUNNING:
        return f"Completing phase ({ex.current_phase.value})"
    return status_label(ex)


def healed_count(ex: OrchestrationExecution) -> int:
    return sum(1 for b in ex.batches.items if b.status is BatchStatus.HEALED)
