"""OrchestrationControls: Pause / Resume (the run's actions) and Cancel (apart, asking first).

Pause answers at once: the button turns into a disabled "Pausing…" the moment it is clicked, before the server
has answered; the next state the panel shows (``pauseRequested``) keeps it so until the batch ends.

While paused, "Change budget…" opens the budget limits (:class:`~specflow_nb.widgets.recovery.BudgetEditor`) and
Resume then sends them; they open by themselves when nothing is left of the total (resuming would stop at once).
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb import budget_raise
from specflow_nb.machine import CancelCommand, Command, PauseCommand, ResumeCommand, allowed_commands
from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets.recovery import BudgetEditor
from specflow_nb.widgets.theme import show


class OrchestrationControls(w.VBox):
    """``actions`` (Pause while running, Resume while paused) and ``danger`` (Cancel while active, with a
    confirmation): the panel places them apart, so a destructive button never sits beside a primary one."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        self._on_command = on_command
        self._budget_open = False
        self.pause = w.Button(description="Pause", icon="pause", tooltip="Pause after the current batch finishes")
        self.resume = w.Button(description="Resume", icon="play", button_style="primary", tooltip="Continue the run")
        self.cancel = w.Button(
            description="Cancel orchestration", icon="ban", tooltip="Stop the orchestration now (asks first)"
        )
        self.cancel.add_class("sf-quiet")
        self.confirm_yes = w.Button(description="Yes, cancel", icon="ban", button_style="danger")
        self.confirm_no = w.Button(description="Keep going")
        self.confirm_text = w.HTML("<b>Cancel this orchestration?</b> The running agent is stopped now.")
        self.confirm = w.HBox([self.confirm_text, self.confirm_yes, self.confirm_no])
        self.confirm.add_class("sf-actions")
        for button, name in (
            (self.pause, "pause"),
            (self.resume, "resume"),
            (self.cancel, "cancel"),
            (self.confirm_yes, "confirm-cancel"),
            (self.confirm_no, "keep-going"),
        ):
            button.add_class(f"specflow-{name}")
        self.change_budget = w.Button(
            description="Change budget…", icon="dollar", tooltip="Raise the budget limits before resuming"
        )
        self.change_budget.add_class("sf-quiet")
        self.change_budget.add_class("specflow-change-budget")
        self.change_budget.on_click(lambda _b: self._open_budget(not self._budget_open))
        self.budget = BudgetEditor("resume")
        show(self.budget, False)
        self.pause.on_click(lambda _b: self._pause())
        self.resume.on_click(lambda _b: self._resume())
        self.cancel.on_click(lambda _b: self._ask_cancel(True))
        self.confirm_no.on_click(lambda _b: self._ask_cancel(False))
        self.confirm_yes.on_click(lambda _b: self._confirmed())
        show(self.confirm, False)
        self.actions = w.HBox([self.pause, self.resume, self.change_budget])
        self.actions.add_class("sf-actions")
        self.danger = w.VBox([self.cancel, self.confirm])
        super().__init__([self.budget, self.actions])
        self.add_class("specflow-controls")

    def _pause(self) -> None:
        self._show_pausing(True)
        self._on_command(PauseCommand())

    def _resume(self) -> None:
        """Resume; with the budget limits open, they go with it (nothing is sent while one is refused)."""
        budget = None
        if self.budget.layout.display != "none":
            budget = self.budget.read()
            if budget is None:
                return
        self._on_command(ResumeCommand(budget=budget))

    def _open_budget(self, open_: bool) -> None:
        self._budget_open = open_
        if self.budget.execution is not None:
            self.render(self.budget.execution)

    def _show_pausing(self, pausing: bool) -> None:
        self.pause.disabled = pausing
        self.pause.description = "Pausing…" if pausing else "Pause"
        self.pause.tooltip = (
            "Pausing: the current batch finishes first" if pausing else "Pause after the current batch finishes"
        )

    def _ask_cancel(self, ask: bool) -> None:
        show(self.confirm, ask)
        show(self.cancel, not ask)

    def _confirmed(self) -> None:
        self._ask_cancel(False)
        self._on_command(CancelCommand())

    @property
    def visible_buttons(self) -> list[str]:
        return [b.description for b in (self.pause, self.resume, self.cancel) if b.layout.display != "none"]

    def render(self, execution: OrchestrationExecution) -> None:
        """Offer what the machine allows now (:func:`specflow_nb.machine.allowed_commands`): Pause, Resume (not
        while waiting for answers: the answers resume), Cancel. A pause already requested shows as "Pausing…" in
        Pause's place (the machine's ``resume`` then only withdraws it; the panel does not offer that)."""
        allowed = allowed_commands(execution)
        pausing = execution.pause_requested
        show(self.pause, "pause" in allowed or pausing)
        self._show_pausing(pausing)
        resumable = "resume" in allowed and not pausing
        show(self.resume, resumable)
        self._render_budget(execution, resumable)
        show(self.actions, "pause" in allowed or pausing or resumable)
        cancellable = "cancel" in allowed
        run = execution.current_run
        self.confirm_text.value = "<b>Cancel this orchestration?</b> " + (
            "The running agent is stopped now." if run is not None and run.live else "It ends here: no resuming it."
        )
        asking = self.confirm.layout.display != "none"
        show(self.cancel, cancellable and not asking)
        show(self.danger, cancellable)
        if not cancellable:
            self._ask_cancel(False)
            show(self.cancel, False)

    def _render_budget(self, execution: OrchestrationExecution, resumable: bool) -> None:
        if not resumable:
            self._budget_open = False
            self.budget.execution = execution
            show(self.budget, False)
            show(self.change_budget, False)
            return
        self.budget.render(execution)
        used_up = budget_raise.budget_state(execution, "resume").stopped_by is not None
        open_ = self._budget_open or used_up
        show(self.budget, open_)
        show(self.change_budget, not used_up)
        self.change_budget.description = "Keep the budget" if open_ else "Change budget…"
        self.change_budget.icon = "times" if open_ else "dollar"
