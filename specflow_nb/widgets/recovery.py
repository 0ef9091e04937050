"""RecoveryPanel: the orchestration needs attention; show the issue (and the helper's diagnosis, when one was
asked for) and offer Retry, Skip and (apart) Abort."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus, RecoveryOption
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show

Command = dict[str, Any]

_LABELS = {
    RecoveryOption.RETRY: ("Retry", "redo", "primary", "Run the failed step or batch again"),
    RecoveryOption.SKIP: ("Skip", "step-forward", "", "Mark it skipped and continue with the next"),
    RecoveryOption.ABORT: ("Abort", "ban", "", "End the orchestration as failed"),
}


class RecoveryPanel(w.VBox):
    """Shown in ``needs_attention``: ``recoveryContext.issue`` and one button per offered option."""

    def __init__(
        self, on_command: Callable[[Command], None], on_transcript: Callable[[str, str], None] | None = None
    ) -> None:
        self.issue = w.HTML()
        self.failed_run: str | None = None
        self.transcript_button = w.Button(
            description="Why? Read the transcript",
            icon="file-text",
            tooltip="What the failing run did: its tool calls, result and stderr",
            layout=w.Layout(align_self="flex-start"),
        )
        self.transcript_button.add_class("sf-quiet")
        self.transcript_button.add_class("specflow-recovery-transcript")
        self.transcript_button.on_click(
            lambda _b: (
                on_transcript(self.failed_run, "the failing run")
                if on_transcript is not None and self.failed_run
                else None
            )
        )
        self.issue.add_class("specflow-recovery-issue")
        self.buttons: dict[RecoveryOption, w.Button] = {}
        for option, (label, icon, style, tip) in _LABELS.items():
            button = w.Button(description=label, icon=icon, button_style=style, tooltip=tip)
            button.add_class(f"specflow-recover-{option.value}")
            button.on_click(lambda _b, o=option: on_command({"action": "recover", "option": o.value}))
            self.buttons[option] = button
        self.buttons[RecoveryOption.ABORT].add_class("sf-quiet")
        row = w.HBox([self.buttons[RecoveryOption.RETRY], self.buttons[RecoveryOption.SKIP]])
        row.add_class("sf-actions")
        # Abort ends the run: on its own line, below the way forward
        abort = w.HBox([self.buttons[RecoveryOption.ABORT]])
        abort.add_class("sf-danger-zone")
        self.diagnosis = diagnosis_block()
        super().__init__([self.issue, self.diagnosis, self.transcript_button, row, abort])
        self.add_class("specflow-recovery")

    def render(self, execution: OrchestrationExecution) -> None:
        visible = execution.status is OrchestrationStatus.NEEDS_ATTENTION
        show(self, visible)
        if not visible:
            return
        context = execution.recovery_context
        issue = context.issue if context else (execution.error_message or "The orchestration needs your attention.")
        options = set(context.options) if context else set(RecoveryOption)
        self.failed_run = context.failed_workflow_id if context else None
        issue = summary.name_run_folder(issue, self.failed_run)
        self.issue.value = theme.note(issue, "warn", title="Needs attention:")
        render_diagnosis(self.diagnosis, execution)
        show(self.transcript_button, self.failed_run is not None)
        for option, button in self.buttons.items():
            show(button, option in options)


# ---- the diagnosis block (issue 15.5) ----------------------------------------------------------------------------


def diagnosis_block() -> w.HTML:
    """The recovery panel's "Diagnosis" block: the decision helper's reading of the failed run and its suggestion."""
    block = w.HTML()
    block.add_class("specflow-recovery-diagnosis")
    show(block, False)
    return block


def render_diagnosis(block: w.HTML, execution: OrchestrationExecution) -> None:
    view = summary.diagnosis_view(execution)
    show(block, view is not None)
    if view is None:
        block.value = ""
        return
    suggestion = f"<div><b>{esc(view.suggestion)}</b></div>" if view.suggestion else ""
    block.value = (
        f'<div class="sf-note sf-tone-{esc(view.tone)}" data-status="{esc(view.status)}">'
        f"<b>{esc(view.title)}</b><div>{esc(view.text)}</div>{suggestion}</div>"
    )
