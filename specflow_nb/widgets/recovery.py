"""RecoveryPanel: the orchestration needs attention; show the issue (and the helper's diagnosis, when one was
asked for) and offer Retry, Skip and (apart) Abort.

After a budget stop, Retry comes with the budget: editable limits prefilled with the current ones, what was spent
against each, and a line naming the limit that stopped it (:class:`BudgetEditor`, also under Resume when a paused
orchestration has nothing left). A value the model refuses (not finite, below 0, above 10,000 USD) or one that would
stop again at once (not above what was spent) is shown beside its field and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
from pydantic import ValidationError

from specflow_nb import budget_raise, run_names, summary
from specflow_nb.machine import Command, RecoverCommand
from specflow_nb.models import BudgetConfig, OrchestrationExecution, OrchestrationStatus, RecoveryOption
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc, fmt_usd
from specflow_nb.widgets.fields import FieldControl, make_control
from specflow_nb.widgets.theme import show

_LABELS = {
    RecoveryOption.RETRY: ("Retry", "redo", "primary", "Run the failed step or batch again"),
    RecoveryOption.SKIP: ("Skip", "step-forward", "", "Mark it skipped and continue with the next"),
    RecoveryOption.ABORT: ("Abort", "ban", "", "End the orchestration as failed"),
}
#: Retry's label after a budget stop (the words of the machine's budget messages).
RETRY_WITH_BUDGET = "Retry with a higher budget"


class BudgetEditor(w.VBox):
    """The budget limits a person may raise to go on (maxTotal, maxPerBatch, healingBudget as relevant), each with
    what was spent against it, and one line naming the limit that stopped the orchestration.

    ``render`` prefills the fields with the current limits only when the situation changes (another stop, another
    orchestration, limits changed elsewhere), so what a person types survives every redraw; ``read`` validates with
    :class:`~specflow_nb.models.BudgetConfig` and :func:`specflow_nb.budget_raise.refusal` and returns the budget
    to send, or None with the errors shown.
    """

    FIELDS = ("max_total", "max_per_batch", "healing_budget")

    def __init__(self, action: budget_raise.Action) -> None:
        self.action = action
        self.title = w.HTML('<div class="sf-section-title">Budget limits (USD)</div>')
        self.hint = w.HTML()
        self.hint.add_class("specflow-budget-hint")
        self.controls: dict[str, FieldControl] = {}
        self.spent: dict[str, w.HTML] = {}
        for field in self.FIELDS:
            control = make_control(field, BudgetConfig.model_fields[field])
            spent = w.HTML()
            spent.add_class(f"specflow-budget-spent-{field}")
            label, box, *rest = control.row.children
            control.row.children = (label, box, spent, *rest)
            self.controls[field] = control
            self.spent[field] = spent
        grid = w.Box([c.row for c in self.controls.values()])
        grid.add_class("sf-grid")
        self.error = w.HTML()
        self.error.add_class("specflow-budget-error")
        self.execution: OrchestrationExecution | None = None
        self._prefilled: tuple[Any, ...] | None = None
        super().__init__([self.title, self.hint, grid, self.error])
        self.add_class("specflow-budget-editor")

    def render(self, execution: OrchestrationExecution) -> None:
        self.execution = execution
        state = budget_raise.budget_state(execution, self.action)
        rc = execution.recovery_context
        situation = (
            execution.id,
            execution.status,
            rc.failed_workflow_id if rc else None,
            rc.issue if rc else None,
            execution.config.budget,
        )
        if situation != self._prefilled:
            self._prefilled = situation
            for field, control in self.controls.items():
                control.set(float(getattr(execution.config.budget, field)))
                control.show_error(None)
            self.error.value = ""
        self.hint.value = theme.note(state.hint, "warn" if state.stopped_by else "info")
        for line in state.lines:
            text = f"spent {fmt_usd(line.spent)} by {line.spent_by}" if line.spent is not None else line.spent_by
            if line.key == "healingBudget":
                text += " (one amount for the whole orchestration, not per batch)"
            if line.key == state.stopped_by:
                text = f"▲ stopped it: {text}"
            self.spent[line.field].value = f'<div class="sf-muted">{esc(text)}</div>'
        heal_shown = state.stopped_by == "healingBudget" or execution.config.auto_heal_enabled
        show(self.controls["healing_budget"].row, heal_shown)

    def values(self) -> dict[str, Any]:
        return {field: control.get() for field, control in self.controls.items()}

    def read(self) -> BudgetConfig | None:
        """The budget to send (the shown fields over the current limits), or None with every problem shown."""
        ex = self.execution
        if ex is None:
            return None
        for control in self.controls.values():
            control.show_error(None)
        self.error.value = ""
        try:
            budget = BudgetConfig.model_validate({**ex.config.budget.model_dump(by_alias=False), **self.values()})
        except ValidationError as exc:
            for key, message in budget_raise.problems(exc).items():
                field = budget_raise.KEYS.get(key, key)
                if field in self.controls:
                    self.controls[field].show_error(message)
                else:
                    self._show_error(message)
            return None
        refused = budget_raise.refusal(ex, budget, self.action)
        if refused is not None:
            self._show_error(refused)
            for line in budget_raise.budget_state(ex, self.action).lines:
                new = float(getattr(budget, line.field))
                if line.floor is not None and round(new - line.floor, 6) <= 0:
                    spent = " (already spent)" if line.floor else ""
                    self.controls[line.field].show_error(f"Must be more than {fmt_usd(line.floor)}{spent}.")
            return None
        return budget

    def _show_error(self, message: str) -> None:
        self.error.value = f'<div class="sf-error" role="alert">{esc(message)}</div>'


class RecoveryPanel(w.VBox):
    """Shown in ``needs_attention``: ``recoveryContext.issue`` and one button per offered option."""

    def __init__(
        self, on_command: Callable[[Command], None], on_transcript: Callable[[str, str], None] | None = None
    ) -> None:
        self._on_command = on_command
        self.issue = w.HTML()
        self.failed_run: str | None = None
        #: The failed run's name, as its transcript is titled: true after a retry too ("… · #002 (failed)").
        self.failed_label = ""
        self.budget_stop = False
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
                on_transcript(self.failed_run, self.failed_label)
                if on_transcript is not None and self.failed_run
                else None
            )
        )
        self.issue.add_class("specflow-recovery-issue")
        self.budget = BudgetEditor("recover")
        self.buttons: dict[RecoveryOption, w.Button] = {}
        for option, (label, icon, style, tip) in _LABELS.items():
            button = w.Button(description=label, icon=icon, button_style=style, tooltip=tip)
            button.add_class(f"specflow-recover-{option.value}")
            button.on_click(lambda _b, o=option: self.choose(o))
            self.buttons[option] = button
        self.buttons[RecoveryOption.ABORT].add_class("sf-quiet")
        row = w.HBox([self.buttons[RecoveryOption.RETRY], self.buttons[RecoveryOption.SKIP]])
        row.add_class("sf-actions")
        # Abort ends the run: on its own line, below the way forward
        abort = w.HBox([self.buttons[RecoveryOption.ABORT]])
        abort.add_class("sf-danger-zone")
        self.diagnosis = diagnosis_block()
        super().__init__([self.issue, self.diagnosis, self.transcript_button, self.budget, row, abort])
        self.add_class("specflow-recovery")

    def choose(self, option: RecoveryOption) -> None:
        """What a click on ``option`` sends; Retry after a budget stop carries the budget (or sends nothing while a
        field is refused)."""
        budget = None
        if option is RecoveryOption.RETRY and self.budget_stop:
            budget = self.budget.read()
            if budget is None:
                return
        self._on_command(RecoverCommand(option=option, budget=budget))

    def render(self, execution: OrchestrationExecution) -> None:
        visible = execution.status is OrchestrationStatus.NEEDS_ATTENTION
        show(self, visible)
        if not visible:
            self.budget_stop = False
            return
        context = execution.recovery_context
        issue = context.issue if context else (execution.error_message or "The orchestration needs your attention.")
        options = set(context.options) if context else set(RecoveryOption)
        self.failed_run = context.failed_workflow_id if context else None
        if self.failed_run:
            self.failed_label = f"{run_names.run_label(execution, self.failed_run)} (failed)"
        issue = summary.name_run_folder(issue, self.failed_run)
        self.issue.value = theme.note(issue, "warn", title="Needs attention:")
        render_diagnosis(self.diagnosis, execution)
        show(self.transcript_button, self.failed_run is not None)
        for option, button in self.buttons.items():
            show(button, option in options)
        self.budget_stop = budget_raise.is_budget_stop(execution) and RecoveryOption.RETRY in options
        show(self.budget, self.budget_stop)
        if self.budget_stop:
            self.budget.render(execution)
        retry = self.buttons[RecoveryOption.RETRY]
        retry.description = RETRY_WITH_BUDGET if self.budget_stop else _LABELS[RecoveryOption.RETRY][0]
        retry.tooltip = (
            "Raise the limit above what was spent, then run it again"
            if self.budget_stop
            else _LABELS[RecoveryOption.RETRY][3]
        )


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
