"""BatchProgress: "Implementing batch 2 of 4: Core Components", "12/35 tasks (34%)" and a progress bar."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationPhase, OrchestrationStatus
from specflow_nb.widgets._html import esc

_DOING = {
    OrchestrationPhase.DESIGN: "Designing: writing spec, plan and tasks",
    OrchestrationPhase.ANALYZE: "Analyzing the artifacts",
    OrchestrationPhase.VERIFY: "Verifying the implementation",
    OrchestrationPhase.MERGE: "Merging the feature branch",
    OrchestrationPhase.COMPLETE: "Phase complete",
}


def step_line(execution: OrchestrationExecution) -> str:
    """What is happening now, in words."""
    if execution.current_phase is OrchestrationPhase.IMPLEMENT:
        batches = execution.batches
        if not batches.total:
            return "Implementing"
        shown = min(batches.current + 1, batches.total)
        section = batches.items[batches.current].section if batches.current < len(batches.items) else ""
        line = f"Implementing batch {shown} of {batches.total}"
        return f"{line}: {section}" if section else line
    if execution.status is OrchestrationStatus.WAITING_MERGE:
        return "Verified: ready to merge"
    return _DOING[execution.current_phase]


def task_counts(execution: OrchestrationExecution) -> tuple[int, int]:
    """(tasks done, tasks planned) over the orchestration's batches; a healed batch counts as done."""
    total = sum(len(item.task_ids) for item in execution.batches.items)
    done = sum(len(item.task_ids) for item in execution.batches.items if item.status.is_done)
    return done, total


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
