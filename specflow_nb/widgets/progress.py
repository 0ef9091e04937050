"""OrchestrationProgress: the view that replaces the buttons while an orchestration is active (or just ended)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationPhase, OrchestrationStatus
from specflow_nb.widgets._html import esc, fmt_duration
from specflow_nb.widgets.badge import OrchestrationBadge
from specflow_nb.widgets.batch_progress import BatchProgress
from specflow_nb.widgets.controls import OrchestrationControls
from specflow_nb.widgets.cost import CostDisplay
from specflow_nb.widgets.decision_log import DecisionLogPanel
from specflow_nb.widgets.merge_ready import MergeReadyPanel
from specflow_nb.widgets.phase_bar import PhaseProgressBar
from specflow_nb.widgets.questions import QuestionsForm
from specflow_nb.widgets.recovery import RecoveryPanel
from specflow_nb.widgets.step_override import StepOverride
from specflow_nb.widgets.timing import elapsed, remaining

Command = dict[str, Any]

_ESTIMATED = (OrchestrationPhase.DESIGN, OrchestrationPhase.ANALYZE, OrchestrationPhase.IMPLEMENT)


class OrchestrationProgress(w.VBox):
    """Phase bar, step/batch line, tasks, badge, time, cost, controls, state panels, decision log.

    ``render(execution)`` is the only way it changes; it never talks to a backend (the callbacks do).
    """

    def __init__(
        self,
        on_command: Callable[[Command], None],
        on_view_diff: Callable[[], None],
        on_done: Callable[[], None],
    ) -> None:
        self.badge = OrchestrationBadge()
        self.phase_bar = PhaseProgressBar()
        self.batch = BatchProgress()
        self.time = w.HTML()
        self.time.add_class("specflow-time")
        self.cost = CostDisplay()
        self.error = w.HTML()
        self.error.add_class("specflow-error-message")
        self.controls = OrchestrationControls(on_command)
        self.merge = MergeReadyPanel(on_command, on_view_diff)
        self.recovery = RecoveryPanel(on_command)
        self.questions = QuestionsForm(on_command)
        self.go_back = StepOverride(on_command)
        self.decision_log = DecisionLogPanel()
        self.done = w.Button(description="Back to summary", icon="arrow-left")
        self.done.add_class("specflow-done")
        self.done.on_click(lambda _b: on_done())
        super().__init__(
            [
                w.HBox([self.badge, self.time], layout=w.Layout(justify_content="space-between")),
                self.phase_bar,
                self.batch,
                self.cost,
                self.error,
                self.questions,
                self.recovery,
                self.merge,
                self.controls,
                self.go_back,
                self.done,
                self.decision_log,
            ]
        )
        self.add_class("specflow-progress")
        self.execution: OrchestrationExecution | None = None

    def render(self, execution: OrchestrationExecution, now: datetime | None = None) -> None:
        self.execution = execution
        self.badge.render(execution)
        self.phase_bar.render(execution)
        self.batch.render(execution)
        self.render_time(now)
        self.cost.render(execution)
        message = (
            execution.error_message if not execution.status.is_active or execution.recovery_context is None else None
        )
        self.error.value = f'<div style="color:#c62828;font-size:12px">{esc(message)}</div>' if message else ""
        self.questions.render(execution)
        self.recovery.render(execution)
        self.merge.render(execution)
        self.controls.render(execution)
        self.go_back.render(execution)
        self.done.layout.display = "none" if execution.status.is_active else "flex"
        self.decision_log.render(execution)

    def render_time(self, now: datetime | None = None) -> None:
        """Elapsed / remaining; also called every few seconds by the panel's clock while active."""
        if self.execution is None:
            return
        spent = fmt_duration(elapsed(self.execution, now))
        left = remaining(self.execution, now)
        text = f"Elapsed {spent}"
        # an estimate only while work is left that batch times can predict (not while waiting on a person)
        if self.execution.status is OrchestrationStatus.RUNNING and self.execution.current_phase in _ESTIMATED:
            text += f" · Remaining {'~' + fmt_duration(left) if left is not None else 'estimating…'}"
        self.time.value = f'<span style="color:#555;font-size:12px">{esc(text)}</span>'
