"""StepOverride: go back to an earlier step (e.g. re-run design after editing the spec)."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.machine import Command, GoBackCommand
from specflow_nb.models import STEP_ORDER, OrchestrationExecution, OrchestrationPhase, OrchestrationStatus
from specflow_nb.widgets.theme import show

#: Going back is offered while the orchestration is stopped at a point a person looks at it.
_OFFERED_IN = frozenset(
    {OrchestrationStatus.PAUSED, OrchestrationStatus.NEEDS_ATTENTION, OrchestrationStatus.WAITING_MERGE}
)


def earlier_steps(execution: OrchestrationExecution) -> list[OrchestrationPhase]:
    """The steps one may go back to: those up to the current one (re-running the current step included)."""
    if execution.current_phase is OrchestrationPhase.COMPLETE:
        return list(STEP_ORDER)
    return list(STEP_ORDER[: STEP_ORDER.index(execution.current_phase) + 1])


def default_step(execution: OrchestrationExecution, steps: list[OrchestrationPhase]) -> OrchestrationPhase | None:
    """The step before the current one (going back to where one already is is rarely what is meant)."""
    before = [s for s in steps if s is not execution.current_phase]
    return before[-1] if before else (steps[-1] if steps else None)


class StepOverride(w.HBox):
    """A step dropdown and "Go back", issuing ``{"action": "go_back", "step": ...}``."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        self.label = w.HTML('<span class="sf-field-label">Go back to</span>')
        self.step = w.Dropdown(layout=w.Layout(width="130px"))
        self.step.add_class("specflow-go-back-step")
        self.go = w.Button(description="Go back", icon="undo", tooltip="Run again from the chosen step")
        self.go.add_class("specflow-go-back")
        self._on_command = on_command
        self.go.on_click(lambda _b: self.submit())
        super().__init__([self.label, self.step, self.go])
        self.add_class("specflow-step-override")
        self.add_class("sf-actions")

    def submit(self) -> None:
        if self.step.value:
            self._on_command(GoBackCommand(step=OrchestrationPhase(self.step.value)))

    def render(self, execution: OrchestrationExecution) -> None:
        steps = earlier_steps(execution)
        show(self, execution.status in _OFFERED_IN and bool(steps))
        options = [(s.value.capitalize(), s.value) for s in steps]
        if options != list(self.step.options):
            self.step.options = options
            default = default_step(execution, steps)
            self.step.value = default.value if default else None
