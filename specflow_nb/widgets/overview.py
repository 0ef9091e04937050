"""The projects overview: every project under the server root as a card that updates live.

Each card shows the project's name (its path only when it differs), its badge and the same headline the panel and
the terminal show; Complete Phase and Open panel open that project's panel in JupyterLab's side panel (in the card
when the frontend has no side panel).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.activity import Activity, matches
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.widgets import notify, theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.backend import Backend, ProjectCard
from specflow_nb.widgets.now import NowLine
from specflow_nb.widgets.panel import RECONNECT_DELAYS, ProjectPanel, error_text
from specflow_nb.widgets.sync import held

#: Cards followed live (one long-poll each); the rest update on Refresh.
MAX_LIVE_CARDS = 30


def card_badge_html(card: ProjectCard, execution: OrchestrationExecution | None = None) -> str:
    if execution is not None:
        label = summary.status_label(execution)
        return theme.badge(summary.badge_text(execution), tone=summary.tone(label))
    if card.status is None:
        return theme.badge("No orchestration", tone="neutral", live=False)
    plain = summary.STATUS_LABELS[card.status]
    return theme.badge(card.badge or plain, tone=summary.tone(plain), live=card.status is OrchestrationStatus.RUNNING)


class ProjectCardWidget(w.VBox):
    """Name, badge, headline, actions (Complete Phase, then Open panel)."""

    def __init__(self, card: ProjectCard, open_panel: Callable[[ProjectCard, bool], ProjectPanel]) -> None:
        self.card = card
        self.execution: OrchestrationExecution | None = None
        self._open_panel = open_panel
        self.heading = w.HTML()
        self.heading.add_class("specflow-card-heading")
        self.detail = w.HTML()
        self.detail.add_class("specflow-card-detail")
        self.complete = w.Button(description="Complete Phase", button_style="primary", icon="forward")
        self.complete.add_class("specflow-card-complete-phase")
        self.open_button = w.Button(description="Open panel", icon="external-link-alt", tooltip="In the side panel")
        self.open_button.add_class("specflow-card-open")
        self.complete.on_click(lambda _b: self.show_panel(form=True))
        self.open_button.on_click(lambda _b: self.show_panel(form=False))
        self.body = w.VBox()
        actions = w.HBox([self.complete, self.open_button])
        actions.add_class("sf-actions")
        self.now = NowLine()
        super().__init__([self.heading, self.detail, self.now, actions, self.body])
        self.add_class("specflow-project-card")
        self.add_class("specflow-card")
        self.render(card)

    @property
    def actions(self) -> list[str]:
        return [self.complete.description, self.open_button.description]

    def render(self, card: ProjectCard, execution: OrchestrationExecution | None = None) -> None:
        self.card = card
        if execution is not None:
            self.execution = execution
        ex = self.execution if self.execution is not None and card.status is not None else execution
        path = card.project_id or "."
        shown_path = f' <code class="sf-muted">{esc(path)}</code>' if path != card.name else ""
        self.heading.value = (
            f'<div class="sf-actions" style="display:flex;justify-content:space-between;flex-wrap:wrap;gap:6px">'
            f'<span><span class="sf-section-title">{esc(card.name)}</span>{shown_path}</span>'
            f"{card_badge_html(card, ex)}</div>"
        )
        lines = []
        if ex is not None:
            lines.append(f'<div class="sf-muted">{esc(summary.headline(ex))} · {esc(summary.tasks_text(ex))}</div>')
        if card.status_error:
            lines.append(f'<div class="sf-error">{esc(card.status_error)}</div>')
        self.detail.value = "".join(lines)
        status = ex.status if ex is not None else card.status
        active = status is not None and status.is_active
        # an active orchestration is watched, not started again
        self.complete.disabled = active
        self.complete.tooltip = "An orchestration is in progress: open the panel" if active else "Complete this phase"

    def render_activity(self, activity: Activity | None) -> None:
        """The Now line of the project's live run (hidden when none, or when the orchestration is not active)."""
        ex = self.execution
        live = ex is not None and ex.status is OrchestrationStatus.RUNNING and matches(activity, ex)
        self.now.render(activity if live else None)

    def apply(self, execution: OrchestrationExecution) -> None:
        """A newer state of the project's orchestration (from the live channel)."""
        badge = summary.badge_text(execution)
        card = ProjectCard(
            project_id=self.card.project_id,
            name=self.card.name,
            status=execution.status,
            badge=badge,
            status_error=self.card.status_error,
        )
        self.execution = execution
        self.render(card, execution)
        if not execution.status.is_active:
            self.now.render(None)

    def show_panel(self, *, form: bool) -> ProjectPanel:
        panel = self._open_panel(self.card, form)
        try:
            panel.show(area="right")
        except Exception:  # no JupyterLab shell here (ipylab missing, another frontend): show it in the card
            self.body.children = (panel,)
        return panel


class Overview(w.VBox):
    """Build it with :func:`specflow_nb.overview`; ``await overview.refresh()`` reloads the cards."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.status_line = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="sync", tooltip="Look for new projects")
        self.refresh_button.add_class("sf-quiet")
        self.refresh_button.on_click(lambda _b: self._schedule_refresh())
        self.cards: dict[str, ProjectCardWidget] = {}
        self.list = w.VBox()
        self.panels: list[ProjectPanel] = []
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._activity: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        header = w.HBox(
            [w.HTML('<div class="sf-title">Projects</div>'), self.refresh_button],
            layout=w.Layout(justify_content="space-between", align_items="center"),
        )
        super().__init__([theme.stylesheet(), header, self.status_line, self.list])
        self.add_class("specflow-overview")
        self.add_class("specflow-root")
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:
            self.status_line.value = (
                '<div class="sf-muted">No running event loop: call `await overview.refresh()`.</div>'
            )

    async def refresh(self) -> list[ProjectCard]:
        try:
            cards = await self.backend.projects()
        except Exception as exc:
            self.status_line.value = f'<div class="sf-error">{esc(error_text(exc))}</div>'
            return []
        with held(self):
            self.status_line.value = (
                "" if cards else '<div class="sf-muted">No projects (folders with specs/) under the root.</div>'
            )
            widgets = []
            for card in cards:
                widget = self.cards.get(card.project_id)
                if widget is None:
                    widget = self.cards[card.project_id] = ProjectCardWidget(card, self._panel_for)
                else:
                    widget.render(card)
                widgets.append(widget)
            self.list.children = tuple(widgets)
        for card in cards[:MAX_LIVE_CARDS]:
            self._follow(card.project_id)
        return cards

    def _follow(self, project_id: str) -> None:
        task = self._watches.get(project_id)
        if self._closed or (task is not None and not task.done()):
            return
        with contextlib.suppress(RuntimeError):
            self._watches[project_id] = asyncio.get_running_loop().create_task(self._watch(project_id))
            self._activity[project_id] = asyncio.get_running_loop().create_task(self._watch_activity(project_id))

    async def _watch_activity(self, project_id: str) -> None:
        failures = 0
        while not self._closed:
            try:
                async for activity in self.backend.watch_activity(project_id):
                    failures = 0
                    widget = self.cards.get(project_id)
                    if widget is not None:
                        with held(widget.now):
                            widget.render_activity(activity)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
                failures += 1

    async def _watch(self, project_id: str) -> None:
        failures = 0
        while not self._closed:
            try:
                async for execution in self.backend.watch(project_id, -1):
                    failures = 0
                    widget = self.cards.get(project_id)
                    if widget is not None:
                        with held(widget):
                            widget.apply(execution)
                        notify.shared().observe(execution, widget.card.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
                failures += 1

    def _panel_for(self, card: ProjectCard, form: bool) -> ProjectPanel:
        panel = ProjectPanel(self.backend, card.project_id, title=card.name)
        self.panels.append(panel)
        if form:
            panel.open_form()
        return panel

    def close(self) -> None:
        self._closed = True
        for task in (*self._watches.values(), *self._activity.values()):
            task.cancel()
        for panel in self.panels:
            panel.close()
        super().close()

    def show(self, area: str = "right") -> None:
        """Put the overview in the JupyterLab shell (default: the right side panel) via ipylab and show it there."""
        from specflow_nb.widgets.shell import show_in_shell

        self.shell_panel: Any = show_in_shell(self, area=area, label="Projects")
