"""DecisionLogPanel: the orchestration's decisions and their reasons, collapsed by default, newest first."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets._html import esc

#: Entries shown; older ones are summarised by a count (a long run logs hundreds).
MAX_SHOWN = 200


class DecisionLogPanel(w.Accordion):
    """An accordion titled "Decision log (N)". Reasons come from agents: they are escaped, never markup."""

    def __init__(self) -> None:
        self.body = w.HTML()
        super().__init__(children=[self.body], titles=("Decision log (0)",))
        self.selected_index = None
        self.add_class("specflow-decision-log")
        self._shown_count = -1

    def render(self, execution: OrchestrationExecution) -> None:
        entries = execution.decision_log
        self.set_title(0, f"Decision log ({len(entries)})")
        if len(entries) == self._shown_count:
            return  # the log only grows: nothing new to draw
        self._shown_count = len(entries)
        rows = []
        for entry in reversed(entries[-MAX_SHOWN:]):
            when = entry.timestamp.strftime("%H:%M:%S")
            rows.append(
                '<div style="margin:2px 0;font-size:12px">'
                f'<span style="color:#888">{esc(when)}</span> <b>{esc(entry.decision)}</b> — {esc(entry.reason)}</div>'
            )
        hidden = len(entries) - MAX_SHOWN
        if hidden > 0:
            rows.append(f'<div style="color:#888;font-size:12px">… {hidden} older entries</div>')
        self.body.value = "".join(rows) or '<span style="color:#888">No decisions yet.</span>'
