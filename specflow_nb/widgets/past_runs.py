"""Past runs: the project's earlier orchestrations, newest first."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets._html import esc, fmt_duration, fmt_usd, pill
from specflow_nb.widgets.badge import BADGE_COLORS, badge_label
from specflow_nb.widgets.timing import elapsed

MAX_ROWS = 20


class PastRuns(w.HTML):
    """A table: started, status, step reached, batches, duration, cost."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-past-runs")
        self.count = 0

    def render(self, runs: list[OrchestrationExecution]) -> None:
        self.count = len(runs)
        if not runs:
            self.value = '<span style="color:#888;font-size:12px">No runs yet.</span>'
            return
        head = "".join(
            f'<th style="text-align:left;padding-right:10px">{h}</th>'
            for h in ("Started", "Status", "Step", "Batches", "Duration", "Cost")
        )
        rows = []
        for run in runs[:MAX_ROWS]:
            label = badge_label(run)
            done = sum(1 for item in run.batches.items if item.status.is_done)
            cells = (
                esc(run.started_at.strftime("%Y-%m-%d %H:%M")),
                pill(label, BADGE_COLORS[label]),
                esc(run.current_phase.value),
                esc(f"{done}/{run.batches.total}"),
                esc(fmt_duration(elapsed(run))),
                esc(fmt_usd(run.total_cost_usd)),
            )
            rows.append("<tr>" + "".join(f'<td style="padding-right:10px">{c}</td>' for c in cells) + "</tr>")
        more = f"<div style='color:#888'>… {len(runs) - MAX_ROWS} more</div>" if len(runs) > MAX_ROWS else ""
        self.value = f'<table style="font-size:12px"><tr>{head}</tr>{"".join(rows)}</table>{more}'
