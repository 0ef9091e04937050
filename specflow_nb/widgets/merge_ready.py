"""MergeReadyPanel: verify passed; run the merge or look at the diff first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.widgets._html import esc

Command = dict[str, Any]


class MergeReadyPanel(w.VBox):
    """Shown in ``waiting_merge``. ``on_view_diff()`` asks the panel to fetch the diff and hand it to :meth:`show_diff`."""

    def __init__(self, on_command: Callable[[Command], None], on_view_diff: Callable[[], None]) -> None:
        self.merge = w.Button(description="Run merge", icon="code-branch", button_style="success")
        self.merge.add_class("specflow-merge")
        self.view_diff = w.Button(description="View diff", icon="file-alt")
        self.view_diff.add_class("specflow-view-diff")
        self.merge.on_click(lambda _b: on_command({"action": "merge"}))
        self.view_diff.on_click(lambda _b: on_view_diff())
        self.message = w.HTML()
        self.diff = w.HTML()
        self.diff.add_class("specflow-diff")
        super().__init__([self.message, w.HBox([self.merge, self.view_diff]), self.diff])
        self.add_class("specflow-merge-ready")

    def render(self, execution: OrchestrationExecution) -> None:
        ready = execution.status is OrchestrationStatus.WAITING_MERGE
        self.layout.display = "flex" if ready else "none"
        if ready:
            target = execution.config.target_branch or "the default branch"
            self.message.value = (
                f"<b>Merge ready.</b> Verify passed; the feature branch can be merged into {esc(target)}."
            )
        else:
            self.diff.value = ""

    def show_diff(self, text: str) -> None:
        self.diff.value = (
            '<pre style="max-height:300px;overflow:auto;font-size:11px;background:#f7f7f7;padding:6px">'
            f"{esc(text or '(no changes)')}</pre>"
        )
