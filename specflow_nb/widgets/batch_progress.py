"""BatchProgress: "Implementing batch 2 of 4: Core Components", "12/35 tasks (34%)" and a progress bar."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show


def step_line(execution: OrchestrationExecution) -> str:
    """What is happening now, in words: :func:`specflow_nb.summary.headline` (the terminal says the same)."""
    return summary.headline(execution)


task_counts = summary.task_counts


def tasks_text(done: int, total: int) -> str:
    percent = round(100 * done / total) if total else 0
    return f"{done}/{total} tasks ({percent}%)"


class BatchProgress(w.VBox):
    """The current step or batch, and the task progress bar (shown once there are tasks)."""

    def __init__(self) -> None:
        self.line = w.HTML()
        self.line.add_class("specflow-step-line")
        self.tasks = w.HTML()
        self.tasks.add_class("specflow-task-count")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="100%", height="12px"))
        super().__init__([self.line, self.bar, self.tasks])
        self.add_class("specflow-batch-progress")

    def render(self, execution: OrchestrationExecution) -> None:
        self.line.value = f'<div class="sf-headline">{esc(step_line(execution))}</div>'
        done, total = task_counts(execution)
        has_tasks = total > 0
        self.tasks.value = f'<span class="sf-muted">{esc(tasks_text(done, total))}</span>' if has_tasks else ""
        self.bar.value = done / total if has_tasks else 0.0
        show(self.bar, has_tasks)
        self.bar.bar_style = "success" if has_tasks and done == total else "info"

    def render_tasks(self, done: int, total: int) -> None:
        """Live counts from tasks.md as the agent checks tasks off (the Now channel), between saved states."""
        if total <= 0:
            return
        self.tasks.value = f'<span class="sf-muted">{esc(tasks_text(done, total))}</span>'
        self.bar.value = done / total
        show(self.bar, True)
        self.bar.bar_style = "success" if done == total else "info"
