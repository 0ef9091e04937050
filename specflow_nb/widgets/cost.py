"""The cost display: spending against each budget of the run's config."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationPhase
from specflow_nb.widgets._html import esc, fmt_usd
from specflow_nb.widgets.badge import current_batch


def cost_rows(execution: OrchestrationExecution) -> list[tuple[str, float | None, float]]:
    """(label, spent or None when not tracked separately, limit) for every budget."""
    budget = execution.config.budget
    rows: list[tuple[str, float | None, float]] = [("Total", execution.total_cost_usd, budget.max_total)]
    item = current_batch(execution)
    if execution.current_phase is OrchestrationPhase.IMPLEMENT and item is not None:
        rows.append((f"Batch {item.index + 1}", item.cost_usd, budget.max_per_batch))
    else:
        rows.append(("Per batch", None, budget.max_per_batch))
    healing = getattr(execution, "healing_cost_usd", None)
    rows.append(("Healing", healing, budget.healing_budget))
    rows.append(("Per decision", None, budget.decision_budget))
    return rows


class CostDisplay(w.HTML):
    """A small table: spent / limit per budget; a reached limit is bold and says so (not only a colour)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-cost")

    def render(self, execution: OrchestrationExecution) -> None:
        lines = []
        for label, spent, limit in cost_rows(execution):
            if spent is None:
                cell = f'<td class="sf-num sf-muted">{esc(f"limit {fmt_usd(limit)}")}</td>'
            elif limit and spent >= limit:
                # the amounts stay on one line; the marker goes under them where the panel is narrow (side panel)
                amounts = esc(f"{fmt_usd(spent)} of {fmt_usd(limit)}")
                cell = (
                    f'<td class="sf-num sf-over"><span class="sf-nowrap">{amounts}</span> '
                    '<span class="sf-over-mark">▲ limit reached</span></td>'
                )
            else:
                cell = f'<td class="sf-num">{esc(f"{fmt_usd(spent)} of {fmt_usd(limit)}")}</td>'
            lines.append(f"<tr><td>{esc(label)}</td>{cell}</tr>")
        self.value = '<table class="sf-table" aria-label="Cost against budget">' + "".join(lines) + "</table>"
