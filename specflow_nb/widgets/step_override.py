"""StepOverride: go back to an earlier step (e.g. re-run design after editing the spec)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb.models import STEP_ORDER, OrchestrationExecution, OrchestrationPhase, OrchestrationStatus

Command = dict[str, Any]

#: Going back is offered while the orchestration is stopped at a point a person looks at it.
_OFFERED_IN = frozenset(
    {OrchestrationStatus.PAUSED, OrchestrationStatus.NEEDS_ATTENTION, OrchestrationStatus.WAITING_MERGE}
)


def earlier_steps(execution: OrchestrationExecution) -> list[OrchestrationPhase]:
    if execution.current_phase is OrchestrationPhase.COMPLETE:
        return list(STEP_ORDER)
    return list(STEP_ORDER[: STEP_ORDER.index(execution.current_phase) + 1])


class StepOverride(w.HBox):
    """A step dropdown and "Go back", issuing ``{"action": "go_back", "step": ...}``."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        self.step = w.Dropdown(description="Go back to", style={"description_width": "initial"})
        self.step.add_class("specflow-go-back-step")
        self.go = w.Button(description="Go back", icon="undo")
        self.go.add_class("specflow-go-back")
        self._on_command = on_command
        self.go.on_click(lambda _b: self.submit())
        super().__init__([self.step, self.go])
        self.add_class("specflow-step-override")

    def submit(self) -> None:
        if self.step.value:
            self._on_command({"action": "go_back", "step": self.step.value})

    def render(self, execution: OrchestrationExecution) -> None:
        steps = earlier_steps(execution)
        show = execution.status in _OFFERED_IN and bool(steps)
        self.layout.display = "flex" if show else "none"
        options = [(s.value.capitalize(), s.value) for s in steps]
        if options != list(self.step.options):
            self.step.options = options
            self.step.value = options[-1][1] if options else None
