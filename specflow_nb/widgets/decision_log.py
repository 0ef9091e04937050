"""DecisionLogPanel: the orchestration's decisions in words a person reads, newest first, ids behind a detail row.

Titles and texts come from :mod:`specflow_nb.summary` ("Stopped run ended: the healer of batch 2 ended after it was
stopped …"); the machine's names and run ids stay one click away for whoever debugs.
"""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets._html import esc

#: Entries shown; older ones are summarised by a count (a long run logs hundreds).
MAX_SHOWN = 200


def entry_html(execution: OrchestrationExecution, index: int) -> str:
    entry = execution.decision_log[index]
    when = entry.timestamp.astimezone().strftime("%H:%M:%S")
    details = "".join(
        f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>" for key, value in summary.decision_details(execution, entry)
    )
    return (
        f'<details data-decision="{esc(entry.decision)}"><summary><span class="sf-when">{esc(when)}</span>'
        f"<b>{esc(summary.decision_title(entry.decision))}</b> — {esc(summary.decision_text(execution, entry))}"
        f"</summary><dl>{details}</dl></details>"
    )


class DecisionLogPanel(w.Accordion):
    """An accordion titled "Decision log (N)". Reasons come from agents: they are escaped, never markup."""

    def __init__(self) -> None:
        self.body = w.HTML(layout=w.Layout(max_height="420px", overflow="auto"))
        self.body.add_class("specflow-log-body")
        super().__init__(children=[self.body], titles=("Decision log (0)",))
        self.selected_index = None
        self.add_class("specflow-decision-log")
        self._shown: tuple[str, int] = ("", -1)

    def render(self, execution: OrchestrationExecution) -> None:
        entries = execution.decision_log
        self.set_title(0, f"Decision log ({len(entries)})")
        if (execution.id, len(entries)) == self._shown:
            return  # the log only grows: nothing new to draw
        self._shown = (execution.id, len(entries))
        first = max(0, len(entries) - MAX_SHOWN)
        rows = [entry_html(execution, i) for i in range(len(entries) - 1, first - 1, -1)]
        if first:
            rows.append(f'<div class="sf-muted">… {first} older entries</div>')
        self.body.value = (
            f'<div class="sf-log">{"".join(rows)}</div>' if rows else '<span class="sf-muted">No decisions yet.</span>'
        )
