"""BatchProgress: "Implementing batch 2 of 4: Core Components", "12/35 tasks (34%)" and a progress bar."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.widgets._html import esc


def step_line(execution: OrchestrationExecution) -> str:
    """What is happening now, in words (:func:`specflow_nb.summary.batch_line`; merge ready says so)."""
    if execution.status is OrchestrationStatus.WAITING_MERGE:
        return "Verified: ready to merge"
    return summary.batch_line(execution)


task_counts = summary.task_counts


def tasks_text(done: int, total: int) -> str:
    percent = round(100 * done / total) if total else 0
    return f"{done}/{total} tasks ({percent}%)"


class BatchProgress(w.VBox):
    """The current step or batch, and the task progress bar (shown once there are batches)."""

    def __init__(self) -> None:
        self.line = w.HTML()
        self.line.add_class("specflow-step-line")
        self.tasks = w.HTML()
        self.tasks.add_class("specflow-task-count")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="98%"))
        super().__init__([self.line, self.tasks, self.bar])
        self.add_class("specflow-batch-progress")

    def render(self, execution: OrchestrationExecution) -> None:
        self.line.value = f"<b>{esc(step_line(execution))}</b>"
        done, total = task_counts(execution)
        has_tasks = total > 0
        self.tasks.value = esc(tasks_text(done, total)) if has_tasks else ""
        self.bar.value = done / total if has_tasks else 0.0
        self.bar.layout.display = "flex" if has_tasks else "none"
        self.bar.bar_style = "success" if has_tasks and done == total else "info"
