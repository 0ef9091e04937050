"""BudgetLimitsSection: the budget fields of the form, generated from BudgetConfig."""

from __future__ import annotations

import ipywidgets as w
from pydantic import BaseModel

from specflow_nb.widgets.fields import FieldControl, make_control


class BudgetLimitsSection(w.VBox):
    """One row per field of a budget model (``BudgetConfig``), with a short explanation on top."""

    def __init__(self, model: type[BaseModel], *, path: tuple[str, ...] = ("budget",)) -> None:
        self.controls: dict[tuple[str, ...], FieldControl] = {
            (*path, name): make_control(name, info) for name, info in model.model_fields.items()
        }
        note = w.HTML(
            '<span style="color:#666;font-size:12px">Limits in USD, enforced: each agent run is started with '
            "what is left of them.</span>"
        )
        super().__init__([note, *(c.row for c in self.controls.values())])
        self.add_class("specflow-budget-section")
