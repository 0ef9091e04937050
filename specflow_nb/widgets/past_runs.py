"""Past runs: the project's earlier orchestrations, newest first."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc, fmt_duration, fmt_usd
from specflow_nb.widgets.timing import elapsed

MAX_ROWS = 20


class PastRuns(w.HTML):
    """A table: started, status, where it ended, tasks, duration, cost."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-past-runs")
        self.count = 0

    def render(self, runs: list[OrchestrationExecution]) -> None:
        self.count = len(runs)
        if not runs:
            self.value = '<span class="sf-muted">No runs yet.</span>'
            return
        head = "".join(f"<th>{h}</th>" for h in ("Started", "Status", "Where", "Duration", "Cost"))
        rows = []
        for run in runs[:MAX_ROWS]:
            cells = (
                esc(run.started_at.astimezone().strftime("%Y-%m-%d %H:%M")),
                theme.badge(summary.status_label(run), live=False),
                esc(summary.headline(run)),
                esc(fmt_duration(elapsed(run))),
                esc(fmt_usd(run.total_cost_usd)),
            )
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        more = f'<div class="sf-muted">… {len(runs) - MAX_ROWS} more</div>' if len(runs) > MAX_ROWS else ""
        self.value = f'<table class="sf-table"><tr>{head}</tr>{"".join(rows)}</table>{more}'
