"""OrchestrationBadge: the status of one orchestration as a label with a coloured dot (panel header and cards).

The words come from :mod:`specflow_nb.summary` (shared with the terminal view and the server's project badges);
the colours from :mod:`specflow_nb.widgets.theme` (JupyterLab's theme variables).
"""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.widgets import theme

current_batch = summary.current_batch
#: Every label the badge can show.
BADGE_LABELS = summary.BADGE_LABELS


def badge_label(execution: OrchestrationExecution) -> str:
    """The panel's badge text for an execution (one of :data:`BADGE_LABELS`): :func:`specflow_nb.summary.status_label`."""
    return summary.status_label(execution)


def card_label(execution: OrchestrationExecution | None) -> str:
    """The longer text of a project card: "Completing phase (batch 2/4)", "Waiting for merge", …"""
    if execution is None:
        return "No orchestration yet"
    return summary.badge_text(execution)


def badge_html(label: str, status: OrchestrationStatus | None = None) -> str:
    """A badge for any label (a card's "Completing phase (batch 2/4)"); its tone from the label, else from the
    status's plain label."""
    plain = label if label in summary.BADGE_TONES else (summary.STATUS_LABELS[status] if status else label)
    return theme.badge(label, tone=summary.tone(plain), live=plain in ("Running", "Healing"))


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
        self.value = badge_html(self._label, execution.status) if self._long else theme.badge(short)
