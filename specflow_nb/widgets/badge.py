"""OrchestrationBadge: the status of one orchestration as a coloured label (panel header and project cards).

The words come from :mod:`specflow_nb.summary` (shared with the terminal view); this module only adds colours.
"""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.widgets._html import pill

#: Every label the badge can show, with its colour. Healing and Waiting for input are sub-states of running/paused.
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

current_batch = summary.current_batch


def badge_label(execution: OrchestrationExecution) -> str:
    """The panel's badge text for an execution (one of :data:`BADGE_COLORS`): :func:`specflow_nb.summary.status_label`."""
    return summary.status_label(execution)


def badge_color(status: OrchestrationStatus | None, label: str | None = None) -> str:
    """The colour of a label, else of the status's plain label (grey when idle)."""
    if label in BADGE_COLORS:
        return BADGE_COLORS[label]
    return BADGE_COLORS[summary.STATUS_LABELS[status]] if status is not None else "#9e9e9e"


def card_label(execution: OrchestrationExecution | None) -> str:
    """The longer text of a project card: "Completing phase (batch 2/4)", "Waiting for merge", …"""
    if execution is None:
        return "No orchestration yet"
    return summary.badge_text(execution)


class OrchestrationBadge(w.HTML):
    """A badge widget; ``render(execution)`` updates it (``None`` hides it)."""

    def __init__(self, *, long: bool = False) -> None:
        super().__init__()
        self._long = long
        self._label = ""
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
