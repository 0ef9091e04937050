"""OrchestrationProgress: the view that replaces the buttons while an orchestration is active (or just ended).

Top to bottom, as in a CI run view: the steps, the headline ("Implementing batch 2 of 4: Core Components"), task
progress and time; then what needs the person (questions, recovery, merge ready) with its actions; Pause/Resume;
cost and the decision log; and last, apart from every primary action, Go back and Cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.activity import Activity, matches
from specflow_nb.machine import Command
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.transcript import run_ids
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.batch_progress import BatchProgress
from specflow_nb.widgets.controls import OrchestrationControls
from specflow_nb.widgets.cost import CostDisplay
from specflow_nb.widgets.decision_log import DecisionLogPanel
from specflow_nb.widgets.merge_ready import MergeReadyPanel
from specflow_nb.widgets.now import NowLine
from specflow_nb.widgets.phase_bar import PhaseProgressBar
from specflow_nb.widgets.questions import QuestionsForm
from specflow_nb.widgets.recovery import RecoveryPanel
from specflow_nb.widgets.step_override import StepOverride
from specflow_nb.widgets.theme import show
from specflow_nb.widgets.transcript_view import RunPicker, TranscriptView


class OrchestrationProgress(w.VBox):
    """Phase bar, headline, tasks, time, state panels, controls, cost, decision log, Go back and Cancel.

    ``render(execution)`` is the only way it changes; it never talks to a backend (the callbacks do). The status
    badge is the panel's (one badge, in the header); ``badge`` is kept for the label's tests.
    """

    def __init__(
        self,
        on_command: Callable[[Command], None],
        on_view_diff: Callable[[], None],
        on_done: Callable[[], None],
        on_transcript: Callable[[str, str], None] | None = None,
    ) -> None:
        from specflow_nb.widgets.badge import OrchestrationBadge

        self.badge = OrchestrationBadge()  # not shown: the panel's header has the one badge
        self.phase_bar = PhaseProgressBar()
        self.batch = BatchProgress()
        self.now = NowLine()
        self.activity: Activity | None = None
        self.time = w.HTML()
        self.time.add_class("specflow-time")
        self.cost = CostDisplay()
        self.error = w.HTML()
        self.error.add_class("specflow-error-message")
        self.controls = OrchestrationControls(on_command)
        self.merge = MergeReadyPanel(on_command, on_view_diff)
        self.recovery = RecoveryPanel(on_command, on_transcript)
        self.questions = QuestionsForm(on_command)
        self.go_back = StepOverride(on_command)
        self.decision_log = DecisionLogPanel()
        self.runs = RunPicker(on_transcript or (lambda _r, _l: None))
        self.transcript = TranscriptView()
        self.done = w.Button(description="Back to summary", icon="arrow-left", tooltip="The project's summary")
        self.done.add_class("specflow-done")
        self.done.on_click(lambda _b: on_done())
        self.cost_title = w.HTML('<div class="sf-section-title">Cost</div>')
        self.bottom = w.VBox([self.go_back, self.controls.danger])
        self.bottom.add_class("sf-danger-zone")
        super().__init__(
            [
                self.phase_bar,
                self.batch,
                self.now,
                self.time,
                self.error,
                self.questions,
                self.recovery,
                self.transcript,
                self.merge,
                self.controls,
                self.done,
                self.cost_title,
                self.cost,
                self.decision_log,
                self.runs,
                self.bottom,
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
        self.error.value = theme.note(message, "error") if message else ""
        self.questions.render(execution)
        self.recovery.render(execution)
        self.merge.render(execution)
        self.controls.render(execution)
        self.go_back.render(execution)
        show(self.bottom, execution.status.is_active)
        show(self.done, not execution.status.is_active)
        self.decision_log.render(execution)
        self.runs.set_runs(run_ids(execution))
        self.render_activity(self.activity)

    def render_activity(self, activity: Activity | None, now: datetime | None = None) -> None:
        """The Now line and the live task counts (tasks.md as it is), between saved states of the record."""
        ex = self.execution
        if activity is not None and ex is not None and activity.orchestration_id not in (None, ex.id):
            activity = None  # another orchestration's run (a new start not shown yet)
        self.activity = activity
        live = ex is not None and ex.status is OrchestrationStatus.RUNNING and matches(activity, ex)
        self.now.render(activity if live else None, now)
        if live and activity is not None and activity.tasks_total and not activity.finished:
            self.batch.render_tasks(activity.tasks_done or 0, activity.tasks_total)

    def render_time(self, now: datetime | None = None) -> None:
        """Elapsed / remaining; also called every few seconds by the panel's clock while active."""
        if self.execution is None:
            return
        self.time.value = f'<span class="sf-muted">{esc(summary.time_text(self.execution, now))}</span>'
