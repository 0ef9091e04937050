"""The Start form's plan preview: asked again when an option changes (debounced while typing), the newest options
winning over a preview still waiting or running for older ones.

Apart from :mod:`specflow_nb.widgets.panel` because the preview is the form's own conversation with the backend
(one task at a time, cancelled when superseded); the panel only opens the form and starts what the form says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol

from specflow_nb.widgets.backend import Backend
from specflow_nb.widgets.errors import error_text
from specflow_nb.widgets.plan import PlanPreview
from specflow_nb.widgets.start_modal import StartOrchestrationModal
from specflow_nb.widgets.sync import held

#: Quiet time after the last change of a form field before the plan is previewed again (typing in a text box).
PREVIEW_DEBOUNCE = 0.4


class PreviewingPanel(Protocol):
    """What the preview reads and calls of the panel (:class:`specflow_nb.widgets.panel.ProjectPanel`)."""

    backend: Backend | None
    project_id: str
    mode: str
    form: StartOrchestrationModal

    def schedule(self, coro: Coroutine[Any, Any, Any], *, start_watch: bool = False) -> asyncio.Task[Any] | None: ...

    def _require(self) -> Backend: ...


class PlanPreviewer:
    """The form's pending preview: at most one task, the newest options'."""

    def __init__(self, panel: PreviewingPanel) -> None:
        self.panel = panel
        self.task: asyncio.Task[Any] | None = None

    def changed(self) -> None:
        """A field changed: the plan and preflight depend on the options (batch size, skips, agent command)."""
        panel = self.panel
        if panel.mode != "form" or panel.backend is None:
            return
        if panel.form.form.valid:
            panel.form.set_loading()  # Start stays disabled until the new preview is in
        self.schedule(PREVIEW_DEBOUNCE)

    def schedule(self, delay: float) -> None:
        """Preview after ``delay`` seconds; a preview still waiting or running for older options is dropped."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = self.panel.schedule(self._after(delay))

    async def _after(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self.load()

    async def wait(self) -> None:
        """Wait until the pending preview (after opening the form or changing a field) has been shown."""
        while self.task is not None and not self.task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.task)

    async def load(self) -> PlanPreview | None:
        """Preview the plan with the form's current options and show it (``None`` when the options are invalid)."""
        backend = self.panel._require()
        form = self.panel.form
        config = form.form.validate()
        if config is None:
            with held(form):
                form.render_invalid()
            return None
        try:
            preview = await backend.preview(self.panel.project_id, config)
        except Exception as exc:
            with held(form):
                form.render_plan_error(error_text(exc))
            return None
        with held(form):
            form.render_preview(preview)
        return preview
