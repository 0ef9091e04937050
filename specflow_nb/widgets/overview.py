"""The projects overview: every project under the server root as a card, Complete Phase first in its actions."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.widgets._html import esc, pill
from specflow_nb.widgets.backend import Backend, ProjectCard
from specflow_nb.widgets.badge import badge_color
from specflow_nb.widgets.panel import ProjectPanel, error_text
from specflow_nb.widgets.sync import held


def card_badge_html(card: ProjectCard) -> str:
    if card.status is None:
        return pill("No orchestration", "#9e9e9e")
    return pill(card.badge or card.status.value.replace("_", " ").capitalize(), badge_color(card.status, card.badge))


class ProjectCardWidget(w.VBox):
    """Name, badge, actions (Complete Phase, then Open panel); the project's panel opens inside the card."""

    def __init__(self, card: ProjectCard, open_panel: Callable[[ProjectCard, bool], ProjectPanel]) -> None:
        self.card = card
        self._open_panel = open_panel
        self.heading = w.HTML()
        self.complete = w.Button(description="Complete Phase", button_style="primary", icon="forward")
        self.complete.add_class("specflow-card-complete-phase")
        self.open_button = w.Button(description="Open panel", icon="window-maximize")
        self.complete.on_click(lambda _b: self.show_panel(form=True))
        self.open_button.on_click(lambda _b: self.show_panel(form=False))
        self.body = w.VBox()
        super().__init__(
            [self.heading, w.HBox([self.complete, self.open_button]), self.body],
            layout=w.Layout(border="1px solid #ddd", padding="6px", margin="4px 0"),
        )
        self.add_class("specflow-project-card")
        self.render(card)

    @property
    def actions(self) -> list[str]:
        return [self.complete.description, self.open_button.description]

    def render(self, card: ProjectCard) -> None:
        self.card = card
        error = f'<div style="color:#c62828;font-size:12px">{esc(card.status_error)}</div>' if card.status_error else ""
        self.heading.value = (
            f"<b>{esc(card.name)}</b> <code style='font-size:11px'>{esc(card.project_id or '.')}</code> "
            f"{card_badge_html(card)}{error}"
        )
        active = card.status is not None and card.status.is_active
        # an active orchestration is watched, not started again
        self.complete.disabled = active
        self.complete.tooltip = "An orchestration is in progress: open the panel" if active else "Complete this phase"

    def show_panel(self, *, form: bool) -> ProjectPanel:
        panel = self._open_panel(self.card, form)
        self.body.children = (panel,)
        return panel


class Overview(w.VBox):
    """Build it with :func:`specflow_nb.overview`; ``await overview.refresh()`` reloads the cards."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.status_line = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="sync")
        self.refresh_button.on_click(lambda _b: self._schedule_refresh())
        self.cards: dict[str, ProjectCardWidget] = {}
        self.list = w.VBox()
        self.panels: list[ProjectPanel] = []
        super().__init__(
            [
                w.HBox([w.HTML("<h3 style='margin:4px 0'>Projects</h3>"), self.refresh_button]),
                self.status_line,
                self.list,
            ]
        )
        self.add_class("specflow-overview")
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        import asyncio

        try:
            asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:
            self.status_line.value = "No running event loop: call `await overview.refresh()`."

    async def refresh(self) -> list[ProjectCard]:
        try:
            cards = await self.backend.projects()
        except Exception as exc:
            self.status_line.value = f'<span style="color:#c62828">{esc(error_text(exc))}</span>'
            return []
        with held(self):
            self.status_line.value = "" if cards else "No projects (folders with specs/) under the root."
            widgets = []
            for card in cards:
                widget = self.cards.get(card.project_id)
                if widget is None:
                    widget = self.cards[card.project_id] = ProjectCardWidget(card, self._panel_for)
                else:
                    widget.render(card)
                widgets.append(widget)
            self.list.children = tuple(widgets)
        return cards

    def _panel_for(self, card: ProjectCard, form: bool) -> ProjectPanel:
        panel = ProjectPanel(self.backend, card.project_id, title=card.name)
        self.panels.append(panel)
        if form:
            panel.open_form()
        return panel

    def close(self) -> None:
        for panel in self.panels:
            panel.close()
        super().close()

    def show(self, area: str = "right") -> None:
        """Put the overview in the JupyterLab shell (default: the right side panel) via ipylab and show it there."""
        from specflow_nb.widgets.shell import show_in_shell

        self.shell_panel = show_in_shell(self, area=area, label="Projects")
