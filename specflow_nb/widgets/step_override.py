"""StepOverride: go back to an earlier step (e.g. re-run design after editing the spec).

Which steps, and when, is the machine's rule (:func:`specflow_nb.machine.go_back_targets`); this only renders it.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.machine import Command, GoBackCommand, go_back_targets
from specflow_nb.models import OrchestrationExecution, OrchestrationPhase
from specflow_nb.widgets.theme import show


def default_step(execution: OrchestrationExecution, steps: list[OrchestrationPhase]) -> OrchestrationPhase | None:
    """The step before the current one (going back to where one already is is rarely what is meant)."""
    before = [s for s in steps if s is not execution.current_phase]
    return before[-1] if before else (steps[-1] if steps else None)


class StepOverride(w.HBox):
    """A step dropdown and "Go back", issuing a ``GoBackCommand``."""

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
        """Offer the machine's targets (:func:`specflow_nb.machine.go_back_targets`); none: hidden."""
        steps = go_back_targets(execution)
        show(self, bool(steps))
        options = [(s.value.capitalize(), s.value) for s in steps]
        if options != list(self.step.options):
            self.step.options = options
            default = default_step(execution, steps)
            self.step.value = default.value if default else None
