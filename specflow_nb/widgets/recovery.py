"""RecoveryPanel: the orchestration needs attention; show the issue and offer Retry, Skip and Abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationStatus, RecoveryOption
from specflow_nb.widgets._html import esc

Command = dict[str, Any]

_LABELS = {
    RecoveryOption.RETRY: ("Retry", "redo", "primary", "Run the failed step again"),
    RecoveryOption.SKIP: ("Skip", "forward", "warning", "Mark it skipped and continue with the next"),
    RecoveryOption.ABORT: ("Abort", "times", "danger", "End the orchestration as failed"),
}


class RecoveryPanel(w.VBox):
    """Shown in ``needs_attention``: ``recoveryContext.issue`` and one button per offered option."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        self.issue = w.HTML()
        self.issue.add_class("specflow-recovery-issue")
        self.buttons: dict[RecoveryOption, w.Button] = {}
        for option, (label, icon, style, tip) in _LABELS.items():
            button = w.Button(description=label, icon=icon, button_style=style, tooltip=tip)
            button.add_class(f"specflow-recover-{option.value}")
            button.on_click(lambda _b, o=option: on_command({"action": "recover", "option": o.value}))
            self.buttons[option] = button
        super().__init__([self.issue, w.HBox(list(self.buttons.values()))])
        self.add_class("specflow-recovery")

    def render(self, execution: OrchestrationExecution) -> None:
        show = execution.status is OrchestrationStatus.NEEDS_ATTENTION
        self.layout.display = "flex" if show else "none"
        if not show:
            return
        context = execution.recovery_context
        issue = context.issue if context else (execution.error_message or "The orchestration needs your attention.")
        options = set(context.options) if context else set(RecoveryOption)
        self.issue.value = (
            '<div style="padding:6px 8px;border-radius:4px;background:#fff3e0;color:#7f3b00">'
            f"<b>Needs attention:</b> {esc(issue)}</div>"
        )
        for option, button in self.buttons.items():
            button.layout.display = "flex" if option in options else "none"
