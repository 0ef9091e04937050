"""OrchestrationBadge: the status of one orchestration as a coloured label (panel header and project cards)."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import BatchStatus, OrchestrationExecution, OrchestrationPhase, OrchestrationStatus
from specflow_nb.widgets._html import pill
from specflow_nb.widgets.questions import pending_questions

#: Every label the badge can show, with its colour. Healing and Waiting for input are running sub-states.
BADGE_COLORS: dict[str, str] = {
    "Running": "#1a73e8",
    "Healing": "#8e24aa",
    "Waiting for input": "#f9a825",
    "Paused": "#757575",
    "Needs attention": "#e65100",
    "Merge ready": "#2e7d32",
    "Complete": "#1b5e20",
    "Failed": "#c62828",
    "Cancelled": "#616161",
}

_STATUS_LABELS = {
    OrchestrationStatus.RUNNING: "Running",
    OrchestrationStatus.PAUSED: "Paused",
    OrchestrationStatus.WAITING_MERGE: "Merge ready",
    OrchestrationStatus.NEEDS_ATTENTION: "Needs attention",
    OrchestrationStatus.COMPLETED: "Complete",
    OrchestrationStatus.FAILED: "Failed",
    OrchestrationStatus.CANCELLED: "Cancelled",
}


def is_healing(execution: OrchestrationExecution) -> bool:
    """A healer is working on the current batch (the batch failed, a heal attempt was counted, a healer run exists)."""
    if (
        execution.status is not OrchestrationStatus.RUNNING
        or execution.current_phase is not OrchestrationPhase.IMPLEMENT
    ):
        return False
    item = current_batch(execution)
    return (
        item is not None
        and item.heal_attempts > 0
        and item.healer_execution_id is not None
        and item.status in (BatchStatus.FAILED, BatchStatus.RUNNING)
    )


def current_batch(execution: OrchestrationExecution):  # -> BatchItem | None
    items = execution.batches.items
    if 0 <= execution.batches.current < len(items):
        return items[execution.batches.current]
    return None


def badge_label(execution: OrchestrationExecution) -> str:
    """The panel's badge text for an execution (one of :data:`BADGE_COLORS`)."""
    if execution.status.is_active and pending_questions(execution):
        return "Waiting for input"
    if execution.status is OrchestrationStatus.RUNNING and is_healing(execution):
        return "Healing"
    return _STATUS_LABELS[execution.status]


def card_label(execution: OrchestrationExecution | None) -> str:
    """The longer text of a project card: "Completing phase (batch 2/4)", "Waiting for merge", …"""
    if execution is None:
        return "No orchestration yet"
    status = execution.status
    label = badge_label(execution)
    if label in ("Waiting for input", "Healing"):
        return label
    if status is OrchestrationStatus.RUNNING:
        if execution.current_phase is OrchestrationPhase.IMPLEMENT and execution.batches.total:
            return f"Completing phase (batch {execution.batches.current + 1}/{execution.batches.total})"
        return f"Completing phase ({execution.current_phase.value})"
    if status is OrchestrationStatus.WAITING_MERGE:
        return "Waiting for merge"
    if status is OrchestrationStatus.COMPLETED:
        return "Phase complete"
    return _STATUS_LABELS[status]


class OrchestrationBadge(w.HTML):
    """A badge widget; ``render(execution)`` updates it (``None`` hides it)."""

    def __init__(self, *, long: bool = False) -> None:
        super().__init__()
        self._long = long
        self.add_class("specflow-status-badge")

    @property
    def label(self) -> str:
        return self._label

    def render(self, execution: OrchestrationExecution | None) -> None:
        if execution is None:
            self._label = ""
            self.value = ""
            return
        short = badge_label(execution)
        self._label = card_label(execution) if self._long else short
        self.value = pill(self._label, BADGE_COLORS[short])

    _label: str = ""
