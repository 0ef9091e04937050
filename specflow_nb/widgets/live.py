"""The panel's live updates: the record's changes, the Now line's activity and the clock, each a task on the kernel's
event loop that reconnects after a failure and ends when the panel closes.

Apart from :mod:`specflow_nb.widgets.panel` (what the panel shows and what its buttons do) because following a
project is a concern of its own: three long-lived tasks with their reconnection policy. The follower reads the
panel through :class:`FollowedPanel` only; it renders nothing itself except through the panel's views.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets.backend import Backend
from specflow_nb.widgets.errors import error_text
from specflow_nb.widgets.notify import Notifier
from specflow_nb.widgets.progress import OrchestrationProgress
from specflow_nb.widgets.sync import held

log = logging.getLogger(__name__)

#: Waits between reconnection attempts of the live channel (seconds), the last one repeating.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
#: How often elapsed / remaining time is redrawn while a run is active.
CLOCK_SECONDS = 5.0
#: How often the Now line's "last output 4s ago" is redrawn.
NOW_SECONDS = 1.0


class FollowedPanel(Protocol):
    """What the follower reads and calls of the panel (:class:`specflow_nb.widgets.panel.ProjectPanel`)."""

    backend: Backend | None
    project_id: str
    name: str
    mode: str
    execution: OrchestrationExecution | None
    progress: OrchestrationProgress
    notifier: Notifier

    @property
    def closed(self) -> bool: ...

    def apply(self, execution: OrchestrationExecution | None) -> None: ...

    def render_runs(self, runs: list[OrchestrationExecution]) -> None: ...

    def set_status(self, text: str, *, error: bool = False) -> None: ...

    def schedule(self, coro: Coroutine[Any, Any, Any], *, start_watch: bool = False) -> asyncio.Task[Any] | None: ...


def reconnect_delay(failures: int) -> float:
    """How long to wait before reconnecting after ``failures`` failures in a row."""
    return RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]


class LiveFollower:
    """The live-update, activity and clock tasks of one panel (started together, idempotently; cancelled on close)."""

    def __init__(self, panel: FollowedPanel) -> None:
        self.panel = panel
        self.watch_task: asyncio.Task[None] | None = None
        self.clock_task: asyncio.Task[None] | None = None
        self.activity_task: asyncio.Task[None] | None = None

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.watch_task, self.clock_task, self.activity_task) if t is not None]

    @property
    def live(self) -> bool:
        """The live-update task runs."""
        return self.watch_task is not None and not self.watch_task.done()

    def start(self) -> None:
        """Start the tasks that are not running (needs a running loop; nothing once the panel is closed)."""
        if self.panel.closed or self.panel.backend is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.watch_task is None or self.watch_task.done():
            self.watch_task = loop.create_task(self._watch())
        if self.clock_task is None or self.clock_task.done():
            self.clock_task = loop.create_task(self._clock())
        if self.activity_task is None or self.activity_task.done():
            self.activity_task = loop.create_task(self._follow_activity())

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def _watch(self) -> None:
        panel = self.panel
        failures = 0
        while not panel.closed and panel.backend is not None:
            try:
                # since=-1: every (re)connection first gets the current state, whatever happened meanwhile
                async for execution in panel.backend.watch(panel.project_id, -1):
                    if failures:
                        failures = 0
                        panel.set_status("Reconnected.")
                    panel.apply(execution)
                    panel.notifier.observe(execution, panel.name)
                    if not execution.status.is_active:
                        panel.schedule(self._refresh_runs())
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = reconnect_delay(failures)
                failures += 1
                panel.set_status(f"Live updates interrupted ({error_text(exc)}); retrying in {delay:g}s…", error=True)
                await asyncio.sleep(delay)

    async def _refresh_runs(self) -> None:
        backend = self.panel.backend
        if backend is not None:
            self.panel.render_runs(await backend.list(self.panel.project_id))

    async def _clock(self) -> None:
        panel = self.panel
        ticks = 0
        while not panel.closed:
            await asyncio.sleep(NOW_SECONDS)
            ticks += 1
            if panel.mode == "progress" and panel.execution is not None and panel.execution.status.is_active:
                progress = panel.progress
                if progress.activity is not None:  # "last output 4s ago" moves every second
                    with held(progress.now):
                        progress.now.render(progress.activity)
                if ticks % round(CLOCK_SECONDS / NOW_SECONDS) == 0:
                    with held(progress.time):
                        progress.render_time()

    async def _follow_activity(self) -> None:
        """The Now line: the live run's latest tool call, turns, cost, last output and tasks.md counts."""
        panel = self.panel
        failures = 0
        while not panel.closed and panel.backend is not None:
            try:
                async for activity in panel.backend.watch_activity(panel.project_id):
                    failures = 0
                    with held(panel.progress.now), held(panel.progress.batch):
                        panel.progress.render_activity(activity)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("activity channel interrupted", exc_info=True)
                await asyncio.sleep(reconnect_delay(failures))
                failures += 1
