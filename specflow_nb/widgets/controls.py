"""OrchestrationControls: Pause, Resume and Cancel (with a confirmation), shown according to the status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb.models import OrchestrationExecution, OrchestrationStatus

Command = dict[str, Any]


class OrchestrationControls(w.VBox):
    """Pause while running, Resume while paused, Cancel while active (asks first: it stops the running agent)."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        self._on_command = on_command
        self.pause = w.Button(description="Pause", icon="pause", tooltip="Pause after the current batch finishes")
        self.resume = w.Button(description="Resume", icon="play", button_style="primary")
        self.cancel = w.Button(description="Cancel", icon="stop", button_style="danger")
        self.confirm_yes = w.Button(description="Yes, cancel", button_style="danger")
        self.confirm_no = w.Button(description="Keep going")
        self.confirm = w.HBox(
            [w.HTML("Cancel this orchestration? The running agent is stopped now."), self.confirm_yes, self.confirm_no]
        )
        for button, name in (
            (self.pause, "pause"),
            (self.resume, "resume"),
            (self.cancel, "cancel"),
            (self.confirm_yes, "confirm-cancel"),
            (self.confirm_no, "keep-going"),
        ):
            button.add_class(f"specflow-{name}")
        self.pause.on_click(lambda _b: self._on_command({"action": "pause"}))
        self.resume.on_click(lambda _b: self._on_command({"action": "resume"}))
        self.cancel.on_click(lambda _b: self._ask_cancel(True))
        self.confirm_no.on_click(lambda _b: self._ask_cancel(False))
        self.confirm_yes.on_click(lambda _b: self._confirmed())
        self.confirm.layout.display = "none"
        super().__init__([w.HBox([self.pause, self.resume, self.cancel]), self.confirm])
        self.add_class("specflow-controls")

    def _ask_cancel(self, ask: bool) -> None:
        self.confirm.layout.display = "flex" if ask else "none"

    def _confirmed(self) -> None:
        self._ask_cancel(False)
        self._on_command({"action": "cancel"})

    @property
    def visible_buttons(self) -> list[str]:
        return [b.description for b in (self.pause, self.resume, self.cancel) if b.layout.display != "none"]

    def render(self, execution: OrchestrationExecution) -> None:
        status = execution.status
        self.pause.layout.display = "flex" if status is OrchestrationStatus.RUNNING else "none"
        # a run waiting for answers is resumed by the answers, not by Resume
        waiting = bool(getattr(execution, "waiting_for_input", False))
        self.resume.layout.display = "flex" if status is OrchestrationStatus.PAUSED and not waiting else "none"
        self.cancel.layout.display = "flex" if status.is_active else "none"
        if not status.is_active:
            self._ask_cancel(False)
