"""StartOrchestrationModal: the form, what the preview detected, and Start / Cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb.widgets._html import esc
from specflow_nb.widgets.config_form import OrchestrationConfigForm
from specflow_nb.widgets.plan import NO_SECTIONS_WARNING, PlanPreview, batches_text

_NOTE = '<div style="padding:6px 8px;border-radius:4px;background:{bg};color:{fg};margin:4px 0">{text}</div>'


def _note(text: str, *, kind: str) -> str:
    bg, fg = {"warn": ("#fff8e1", "#8d6e00"), "error": ("#ffebee", "#b71c1c"), "info": ("#e3f2fd", "#0d47a1")}[kind]
    return _NOTE.format(bg=bg, fg=fg, text=esc(text))


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
        self.plan_line.add_class("specflow-plan")
        self.notes = w.HTML()
        self.notes.add_class("specflow-plan-notes")
        self.start = w.Button(description="Start", button_style="success", icon="play", disabled=True)
        self.start.add_class("specflow-start")
        self.cancel = w.Button(description="Cancel", icon="times")
        self.cancel.add_class("specflow-form-cancel")
        self._on_start = on_start
        self.start.on_click(lambda _b: self.submit())
        self.cancel.on_click(lambda _b: on_cancel())
        self._on_change = on_change
        self._resetting = False
        self.form.on_change(self._field_changed)
        self.loading = False
        self.plan_error: str | None = None
        self.preview: PlanPreview | None = None
        super().__init__(
            [
                w.HTML("<h4 style='margin:4px 0'>Complete Phase</h4>"),
                self.plan_line,
                self.notes,
                self.form,
                w.HBox([self.start, self.cancel]),
            ]
        )
        self.add_class("specflow-start-modal")

    # --- the plan ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Reset to defaults and show "loading" until :meth:`render_preview` or :meth:`render_plan_error`."""
        self._resetting = True
        try:
            self.form.reset()
        finally:
            self._resetting = False
        self.set_loading()

    def _field_changed(self) -> None:
        self._refresh_start()
        if not self._resetting and self._on_change is not None:
            self._on_change()

    def set_loading(self) -> None:
        self.loading = True
        self.plan_error = None
        self.preview = None
        self.plan_line.value = "<i>Reading tasks.md…</i>"
        self.notes.value = ""
        self._refresh_start()

    def render_preview(self, preview: PlanPreview) -> None:
        self.loading = False
        self.plan_error = None
        self.preview = preview
        notes: list[str] = []
        plan = preview.batch_plan
        if plan is not None:
            self.plan_line.value = f"<b>{esc(batches_text(plan))}</b>"
            if plan.used_fallback:
                size = self.form.values().get("batch_size_fallback", "")
                notes.append(_note(NO_SECTIONS_WARNING.format(size=size), kind="warn"))
            notes += [_note(warning, kind="warn") for warning in plan.warnings]
        else:
            self.plan_line.value = "<i>No tasks.md yet: design will write it.</i>"
        if preview.phase_not_open:
            notes.append(
                _note(
                    "No phase is open: this project has no feature folder (specs/NNNN-name/). "
                    "Open the phase first (create the folder with its spec.md), then complete it here.",
                    kind="info",
                )
            )
        notes += [_note(p, kind="error") for p in preview.preflight_problems]
        notes += [_note(p, kind="warn") for p in preview.preflight_warnings]
        self.notes.value = "".join(notes)
        self._refresh_start()

    def render_invalid(self) -> None:
        """The options are invalid (each error is beside its field): no preview until they are fixed."""
        self.loading = False
        self.preview = None
        self.plan_line.value = "<i>Fix the options to see the plan.</i>"
        self.notes.value = ""
        self._refresh_start()

    def render_plan_error(self, message: str) -> None:
        self.loading = False
        self.plan_error = message
        self.preview = None
        self.plan_line.value = ""
        self.notes.value = _note(f"Could not read the plan: {message}", kind="error")
        self._refresh_start()

    # --- start ---------------------------------------------------------------------------------------------

    @property
    def blocked_reason(self) -> str | None:
        """Why Start is disabled (``None`` when it is enabled)."""
        if not self.form.valid:
            return "some options are invalid"
        if self.loading:
            return "the plan is loading"
        if self.plan_error is not None:
            return "the plan could not be read"
        if self.preview is None:
            return "the plan is not loaded"
        if self.preview.phase_not_open:
            return "the phase is not open"
        if self.preview.preflight_problems:
            return "the preflight found problems"
        return None

    def _refresh_start(self) -> None:
        reason = self.blocked_reason
        self.start.disabled = reason is not None
        self.start.tooltip = f"Start is disabled: {reason}" if reason else "Start completing the phase"

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
