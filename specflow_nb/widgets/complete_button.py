"""CompletePhaseButton: the primary action of a project."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w


class CompletePhaseButton(w.Button):
    def __init__(self, on_click: Callable[[], None]) -> None:
        super().__init__(
            description="Complete Phase",
            icon="forward",
            button_style="primary",
            tooltip="Design, implement batch by batch, verify and get ready to merge",
            layout=w.Layout(width="auto"),
        )
        self.add_class("specflow-complete-phase")
        self.on_click(lambda _b: on_click())
