"""StartOrchestrationModal: what the preview detected, the form, and Start / Cancel / Reset to defaults.

A failed preflight check sits beside the field it concerns (agent not found → the agent field, with "Use the demo
agent" for a first try); a disabled Start says why, in words, right under it.

The estimate (time and cost per batch, per step and in total) comes with the preview; its budget warning is
recomputed here from that estimate as the budget fields change (:func:`specflow_nb.estimate.budget_warnings`), with
no new preview: the budget changes neither the plan nor the checks.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
from pydantic import ValidationError

from specflow_nb.estimate import budget_warnings
from specflow_nb.models import BudgetConfig, OrchestrationConfig
from specflow_nb.policy import COMMAND_FIELDS
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.config_form import OrchestrationConfigForm
from specflow_nb.widgets.plan import PlanPreview, batches_text, estimate_html
from specflow_nb.widgets.theme import show

AGENT_FIELD = ("agent_command",)


def _note(text: str, *, kind: str) -> str:
    return theme.note(text, {"warn": "warn", "error": "error", "info": "info"}[kind])


def demo_agent_command() -> str:
    """The bundled demo agent (a scripted stand-in for Claude Code: no account, no network)."""
    sibling = Path(sys.executable).with_name("specflow-nb-demo-agent")
    return str(sibling) if sibling.exists() else (shutil.which("specflow-nb-demo-agent") or "specflow-nb-demo-agent")


def _is_agent_problem(preview: PlanPreview, problem: str) -> bool:
    return preview.agent_missing and "agent command" in problem.lower()


class StartOrchestrationModal(w.VBox):
    """The form view. Start is enabled only when the plan has loaded without error and every field is valid.

    ``on_start(config_body)`` receives the validated config as camelCase JSON; ``on_cancel()`` closes the form;
    ``on_change()`` is called when the user changes a field (the panel re-runs the preview, debounced).
    """

    def __init__(
        self,
        on_start: Callable[[dict[str, Any]], None],
        on_cancel: Callable[[], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.form = OrchestrationConfigForm()
        self.plan_line = w.HTML()
        self.prompts_line = w.HTML()
        self.plan_line.add_class("specflow-plan")
        self.estimate_line = w.HTML()
        self.estimate_line.add_class("specflow-estimate")
        self.estimate_warnings = w.HTML()
        self.estimate_warnings.add_class("specflow-estimate-warnings")
        self.notes = w.HTML()
        self.notes.add_class("specflow-plan-notes")
        self.remembered = w.HTML()
        self.remembered.add_class("specflow-remembered")
        self.start = w.Button(description="Start", button_style="primary", icon="play", disabled=True)
        self.start.add_class("specflow-start")
        self.cancel = w.Button(description="Close", icon="times", tooltip="Close the form without starting")
        self.cancel.add_class("specflow-form-cancel")
        self.reset_button = w.Button(
            description="Reset to defaults", icon="undo", tooltip="Every option back to its default"
        )
        self.reset_button.add_class("specflow-reset-defaults")
        self.reset_button.add_class("sf-quiet")
        self.why_disabled = w.HTML()
        self.why_disabled.add_class("specflow-start-blocked")
        self.use_demo = w.Button(
            description="Use the demo agent", icon="magic", tooltip="A scripted stand-in for Claude Code, for a try"
        )
        self.use_demo.add_class("specflow-use-demo-agent")
        self.use_demo.on_click(lambda _b: self.form.controls[AGENT_FIELD].set(demo_agent_command()))
        self._on_start = on_start
        self.start.on_click(lambda _b: self.submit())
        self.cancel.on_click(lambda _b: on_cancel())
        self.reset_button.on_click(lambda _b: self.reset_to_defaults())
        self._on_change = on_change
        self._resetting = False
        #: The options (all but the budget) of the last preview asked for: a change of the budget alone needs none.
        self._previewed: dict[str, Any] | None = None
        self.form.on_change(self._field_changed)
        self.loading = False
        self.plan_error: str | None = None
        self.preview: PlanPreview | None = None
        self.remembered_config: OrchestrationConfig | None = None
        actions = w.HBox([self.start, self.cancel])
        actions.add_class("sf-actions")
        super().__init__(
            [
                w.HTML('<div class="sf-section-title">Complete Phase</div>'),
                self.plan_line,
                self.estimate_line,
                self.estimate_warnings,
                self.prompts_line,
                self.notes,
                self.remembered,
                self.form,
                actions,
                self.why_disabled,
                self.reset_button,
            ]
        )
        self.add_class("specflow-start-modal")

    # --- the plan ------------------------------------------------------------------------------------------

    def reset(self, remembered: OrchestrationConfig | None = None, saved_at: str = "") -> None:
        """Open with ``remembered`` (the last settings started here) or the defaults; "loading" until
        :meth:`render_preview` or :meth:`render_plan_error`."""
        self.remembered_config = remembered
        self._resetting = True
        try:
            self.form.reset(remembered)
        finally:
            self._resetting = False
        self._previewed = self._preview_options()
        when = f" ({saved_at[:10]})" if saved_at else ""
        self.remembered.value = (
            f'<div class="sf-muted">Opened with your last settings for this project{esc(when)}.</div>'
            if remembered is not None and remembered != OrchestrationConfig()
            else ""
        )
        self.set_loading()

    def reset_to_defaults(self) -> None:
        self._resetting = True
        try:
            self.form.reset()
        finally:
            self._resetting = False
        self.remembered.value = '<div class="sf-muted">Every option is back to its default.</div>'
        self._previewed = self._preview_options()
        if self._on_change is not None:
            self._on_change()
        self._refresh_start()

    def _preview_options(self) -> dict[str, Any]:
        """The form's values that the preview depends on: every one but the budget."""
        values = self.form.values()
        values.pop("budget", None)
        return values

    def _field_changed(self) -> None:
        self._refresh_start()
        self._render_estimate_warnings()
        if self._resetting or self._on_change is None:
            return
        options = self._preview_options()
        if options == self._previewed and (self.preview is not None or self.loading):
            # only the budget changed: its warning was recomputed above from the estimate shown (a preview on its
            # way is checked against the budget of the moment it arrives)
            return
        self._previewed = options
        self._on_change()

    # --- the estimate --------------------------------------------------------------------------------------

    def form_budget(self) -> BudgetConfig | None:
        """The budget as the form's fields say now (None while one of them is invalid)."""
        try:
            return BudgetConfig.model_validate(self.form.values().get("budget") or {})
        except ValidationError:
            return None

    def _render_estimate_warnings(self) -> None:
        estimate = self.preview.estimate if self.preview is not None else None
        budget = self.form_budget()
        if estimate is None or budget is None:
            self.estimate_warnings.value = ""
            return
        self.estimate_warnings.value = "".join(_note(text, kind="warn") for text in budget_warnings(estimate, budget))

    def set_loading(self) -> None:
        self.loading = True
        self.plan_error = None
        self.preview = None
        self.plan_line.value = '<span class="sf-muted">Reading tasks.md…</span>'
        self.estimate_line.value = self.estimate_warnings.value = ""
        self.notes.value = ""
        self._refresh_start()

    def render_preview(self, preview: PlanPreview) -> None:
        self.loading = False
        self.plan_error = None
        self.preview = preview
        notes: list[str] = []
        plan = preview.batch_plan
        if plan is not None:
            self.plan_line.value = f'<div class="sf-headline">{esc(batches_text(plan))}</div>'
            notes += [_note(warning, kind="warn") for warning in plan.warnings]  # the plan's own (fallback sizing)
        else:
            self.plan_line.value = '<div class="sf-headline">No tasks.md yet: design will write it.</div>'
        self.estimate_line.value = estimate_html(preview.estimate) if preview.estimate is not None else ""
        self._render_estimate_warnings()
        if preview.phase_not_open:
            notes.append(
                _note(
                    "No phase is open: this project has no feature folder (specs/NNNN-name/). "
                    "Open the phase first (create the folder with its spec.md), then complete it here.",
                    kind="info",
                )
            )
        agent = self.form.controls[AGENT_FIELD]
        locked = preview.locked_fields()
        for key, control in self.form.controls.items():
            if len(key) == 1 and key[0] in COMMAND_FIELDS:
                control.lock(locked.get(key[0]))
        agent_problems = [p for p in preview.preflight_problems if _is_agent_problem(preview, p)]
        if "agent_command" not in locked:
            agent.show_check(agent_problems[0] if agent_problems else None, self.use_demo)
        elif agent_problems:  # the server chooses the agent: only its administrator can fix this
            agent.show_check(f"{agent_problems[0]} The server chooses the agent command: ask its administrator.")
        if agent_problems:
            self.form.open_group(AGENT_FIELD)
        notes += [_note(p, kind="error") for p in preview.preflight_problems if p not in agent_problems]
        notes += [_note(p, kind="warn") for p in preview.preflight_warnings]  # the checks' (each warning once)
        self.notes.value = "".join(notes)
        prompts = preview.prompts_text
        self.prompts_line.value = f'<div class="sf-muted">Prompts: {esc(prompts)}</div>' if prompts else ""
        self._refresh_start()

    def render_invalid(self) -> None:
        """The options are invalid (each error is beside its field): no preview until they are fixed."""
        self.loading = False
        self.preview = None
        self.plan_line.value = '<span class="sf-muted">Fix the options to see the plan.</span>'
        self.estimate_line.value = self.estimate_warnings.value = ""
        self.notes.value = ""
        self._refresh_start()

    def render_plan_error(self, message: str) -> None:
        self.loading = False
        self.plan_error = message
        self.preview = None
        self.plan_line.value = ""
        self.estimate_line.value = self.estimate_warnings.value = ""
        self.notes.value = _note(f"Could not read the plan: {message}", kind="error")
        self._refresh_start()

    # --- start ---------------------------------------------------------------------------------------------

    @property
    def blocked_reason(self) -> str | None:
        """Why Start is disabled (``None`` when it is enabled)."""
        if not self.form.valid:
            fields = self.form.invalid_fields()
            return f"fix {', '.join(fields)}" if fields else "some options are invalid"
        if self.loading:
            return "the plan is loading"
        if self.plan_error is not None:
            return "the plan could not be read"
        if self.preview is None:
            return "the plan is not loaded"
        if self.preview.phase_not_open:
            return "the phase is not open"
        problems = self.preview.preflight_problems
        if problems:
            if any(_is_agent_problem(self.preview, p) for p in problems):
                return "the agent command was not found (see Agent)"
            return "the preflight found problems (see above)"
        return None

    def _refresh_start(self) -> None:
        reason = self.blocked_reason
        self.start.disabled = reason is not None
        self.start.tooltip = f"Start is disabled: {reason}" if reason else "Start completing the phase"
        show(self.why_disabled, reason is not None)
        self.why_disabled.value = f'<div class="sf-muted">Start is disabled: {esc(reason)}.</div>' if reason else ""

    def submit(self) -> None:
        body = self.form.body()
        self._refresh_start()
        if body is None or self.start.disabled:
            return
        self.start.disabled = True  # one click, one start; re-enabled by the next open or a refused start
        self._on_start(body)

    def start_refused(self, message: str) -> None:
        """The backend refused the start (409, 400 …): show why and let the user try again."""
        self.notes.value += _note(message, kind="error")
        self._refresh_start()
