"""ProjectPanel: one project's Complete Phase panel (summary → form → live progress → summary with past runs).

What the panel shows and what its buttons do; its live updates (the record, the Now line, the clock) are its
:class:`~specflow_nb.widgets.live.LiveFollower`'s, in :mod:`specflow_nb.widgets.live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import Command
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution
from specflow_nb.server.api import DiffResponse
from specflow_nb.transcript import Transcript, run_ids
from specflow_nb.widgets import notify, settings, theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.backend import Backend
from specflow_nb.widgets.badge import OrchestrationBadge
from specflow_nb.widgets.complete_button import CompletePhaseButton
from specflow_nb.widgets.errors import error_text
from specflow_nb.widgets.form_flow import PREVIEW_DEBOUNCE, PlanPreviewer
from specflow_nb.widgets.live import CLOCK_SECONDS, NOW_SECONDS, RECONNECT_DELAYS, LiveFollower
from specflow_nb.widgets.past_runs import PastRuns
from specflow_nb.widgets.plan import PlanPreview
from specflow_nb.widgets.progress import OrchestrationProgress
from specflow_nb.widgets.start_modal import StartOrchestrationModal
from specflow_nb.widgets.sync import held
from specflow_nb.widgets.transcript_view import RunPicker, TranscriptView

log = logging.getLogger(__name__)

__all__ = [
    "CLOCK_SECONDS",
    "NOW_SECONDS",
    "PREVIEW_DEBOUNCE",
    "RECONNECT_DELAYS",
    "ProjectPanel",
    "error_text",
    "past_run_options",
]


def past_run_options(runs: list[OrchestrationExecution]) -> list[tuple[str, str]]:
    """Every agent run of the past orchestrations, for the Past runs transcript picker (oldest first)."""
    options: list[tuple[str, str]] = []
    for ex in reversed(runs[:20]):
        when = ex.started_at.astimezone().strftime("%m-%d %H:%M")
        options += [(run_id, f"{when} · {label}") for run_id, label in run_ids(ex)]
    return options


class ProjectPanel(w.VBox):
    """The panel of one project. Build it with :func:`specflow_nb.panel`.

    Button handlers never block: each schedules a task on the kernel's event loop. The live-update task consumes
    ``backend.watch`` and redraws inside ``hold_sync``; it stops when the panel is closed.
    """

    def __init__(
        self,
        backend: Backend | None,
        project_id: str,
        *,
        title: str | None = None,
        connect_local: Callable[[], tuple[Backend, str]] | None = None,
        no_server_reason: str | None = None,
        not_found: str | None = None,
    ) -> None:
        self.backend = backend
        self.project_id = project_id
        self.execution: OrchestrationExecution | None = None
        self.runs: list[OrchestrationExecution] = []
        self.mode = "summary"
        self._connect_local = connect_local
        self._tasks: set[asyncio.Task[Any]] = set()
        self.follower = LiveFollower(self)
        self.previewer = PlanPreviewer(self)
        #: Notifications (needs attention, questions, merge ready, completed, failed): one per kernel and event.
        self.notifier = notify.shared()
        self._closed = False
        self.shell_panel: Any = None

        self.name = title or (project_id.rsplit("/", 1)[-1] if project_id else "") or "Project"
        self.title = w.HTML(f'<div class="sf-title" title="{esc(project_id or ".")}">{esc(self.name)}</div>')
        self.title.add_class("specflow-title")
        self.badge = OrchestrationBadge()
        self.status_line = w.HTML()
        self.status_line.add_class("specflow-status-line")
        # summary
        self.complete = CompletePhaseButton(self.open_form)
        self.last_run = w.HTML()
        self.last_run.add_class("specflow-last-run")
        self.past_runs = PastRuns()
        self.past_picker = RunPicker(self._open_past_transcript)
        self.past_transcript = TranscriptView()
        self.past = w.Accordion(
            children=[w.VBox([self.past_runs, self.past_picker, self.past_transcript])], titles=("Past runs",)
        )
        self.past.selected_index = None
        self.summary = w.VBox([self.complete, self.last_run, self.past])
        self.summary.add_class("specflow-summary")
        # form and progress
        self.form = StartOrchestrationModal(
            on_start=self._start, on_cancel=self.show_summary, on_change=self.previewer.changed
        )
        self.progress = OrchestrationProgress(
            on_command=self.send_command,
            on_view_diff=self._view_diff,
            on_done=self.show_summary,
            on_transcript=self._open_transcript,
        )
        # no server: offer the in-kernel engine
        self.local_button = w.Button(
            description="Run the engine in this kernel", icon="microchip", tooltip="Runs stop when the kernel stops"
        )
        self.local_button.add_class("specflow-run-local")
        self.local_button.on_click(lambda _b: self.use_local())
        reason = f": {no_server_reason}" if no_server_reason else ""
        self.no_server = w.VBox(
            [
                w.HTML(
                    theme.note(
                        f"No Jupyter server with specflow_nb is reachable{reason}. You can run the engine inside "
                        "this kernel instead: runs stop when the kernel stops.",
                        "warn",
                    )
                ),
                self.local_button,
            ]
        )
        self.not_found = w.HTML(theme.note(not_found or "", "error", title="Project not found."))
        self.not_found.add_class("specflow-not-found")
        self._not_found = not_found
        self.footer = w.HTML()
        self.header = w.HBox(
            [self.title, self.badge],
            layout=w.Layout(align_items="center", justify_content="space-between", flex_flow="row wrap"),
        )
        self.header.add_class("specflow-header")
        self.style = theme.stylesheet()
        super().__init__([self.style, self.header, self.status_line])
        self.add_class("specflow-panel")
        self.add_class("specflow-root")
        self._layout()
        if backend is not None and not_found is None:
            self.schedule(self.refresh(), start_watch=True)

    # ---- views ---------------------------------------------------------------------------------------------

    def _layout(self) -> None:
        if self._not_found is not None:
            body: w.Widget = self.not_found
        elif self.backend is None:
            body = self.no_server
        else:
            body = {"summary": self.summary, "form": self.form, "progress": self.progress}[self.mode]
        self.footer.value = (
            f'<span class="sf-muted">via {esc(self.backend.description)}</span>' if self.backend is not None else ""
        )
        self.children = (self.style, self.header, self.status_line, body, self.footer)

    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            self.mode = mode
            self._layout()

    def show_summary(self) -> None:
        self._set_mode("summary")
        self.schedule(self.refresh())

    def open_form(self) -> None:
        """Complete Phase: the form, with the last settings this user started this project with (or the
        defaults), and the plan loading."""
        if self.backend is None or self._not_found is not None:
            return
        remembered = settings.load(self.settings_key)
        self.form.reset(*(remembered or (None, "")))
        self._set_mode("form")
        self.previewer.schedule(0.0)

    @property
    def settings_key(self) -> str:
        """Where this project's remembered settings are filed (its folder when this kernel sees it)."""
        folder = None
        if self.backend is not None:
            try:
                folder = self.backend.project_path(self.project_id)
            except Exception:  # a project that is gone: the id still names it
                folder = None
        where = self.backend.description if self.backend is not None else ""
        return settings.project_key(folder, where, self.project_id)

    def set_status(self, text: str, *, error: bool = False) -> None:
        if not text:
            self.status_line.value = ""
        elif error:
            self.status_line.value = f'<div class="sf-error" role="alert">{esc(text)}</div>'
        else:
            self.status_line.value = f'<div class="sf-muted">{esc(text)}</div>'

    # ---- rendering -----------------------------------------------------------------------------------------

    def apply(self, execution: OrchestrationExecution | None) -> None:
        """Show an execution (ignored when older than the one shown). Active ones switch to the progress view."""
        current = self.execution
        if (
            execution is not None
            and current is not None
            and execution.id == current.id
            and execution.version < current.version
        ):
            return
        with held(self):
            self.execution = execution
            self.badge.render(execution)
            self.last_run.value = (
                f'<div class="sf-muted">Latest run: {esc(summary.headline(execution))} · '
                f"{esc(summary.time_text(execution))}</div>"
                if execution
                else '<div class="sf-muted">No run yet: Complete Phase designs, implements and verifies it.</div>'
            )
            if execution is None:
                return
            if execution.status.is_active:
                self._set_mode("progress")
            if self.mode == "progress":
                self.progress.render(execution)

    def render_runs(self, runs: list[OrchestrationExecution]) -> None:
        with held(self.past):
            self.runs = runs
            self.past_runs.render(runs)
            self.past.set_title(0, f"Past runs ({len(runs)})")
            self.past_picker.set_runs(past_run_options(runs))

    # ---- actions -------------------------------------------------------------------------------------------

    def schedule(self, coro: Coroutine[Any, Any, Any], *, start_watch: bool = False) -> asyncio.Task[Any] | None:
        """Run ``coro`` on the kernel's loop without blocking the caller (a button handler or a cell)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            self.set_status("No running event loop: live updates are off (call `await panel.refresh()`).")
            return None
        task = loop.create_task(self._guard(coro))
        # a task cancelled before it ran never started ``coro``: close it (no "never awaited" warning)
        task.add_done_callback(lambda _t: coro.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if start_watch:
            self.start_live()
        return task

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("panel action failed", exc_info=True)
            self.set_status(error_text(exc), error=True)
            return None

    async def refresh(self) -> None:
        """Fetch the newest orchestration and the past runs."""
        backend = self._require()
        execution = await backend.status(self.project_id)
        runs = await backend.list(self.project_id)
        self.apply(execution)
        self.render_runs(runs)

    async def wait_preview(self) -> None:
        """Wait until the form's pending preview (after opening it or changing a field) has been shown."""
        await self.previewer.wait()

    async def load_preview(self) -> PlanPreview | None:
        """Preview the plan with the form's current options and show it (``None`` when the options are invalid)."""
        return await self.previewer.load()

    def _start(self, body: dict[str, Any]) -> None:
        self.schedule(self.start(OrchestrationConfig.model_validate(body)))

    async def start(self, config: OrchestrationConfig) -> OrchestrationExecution | None:
        """Start an orchestration with ``config`` (what the form's Start does); the settings are remembered."""
        backend = self._require()
        try:
            execution = await backend.start(self.project_id, config)
        except Exception as exc:
            with held(self.form):
                self.form.start_refused(error_text(exc))
            return None
        settings.save(self.settings_key, config)
        self.set_status("")
        self.apply(execution)
        self.start_live()
        return execution

    def send_command(self, command: Command) -> None:
        self.schedule(self.command(command))

    async def command(self, command: Command) -> OrchestrationExecution:
        """Send pause / resume / cancel / merge / recover / go_back / answer to the shown orchestration."""
        backend = self._require()
        orchestration_id = self.execution.id if self.execution else None
        execution = await backend.command(self.project_id, command, orchestration_id)
        self.set_status("")
        self.apply(execution)
        return execution

    def _view_diff(self) -> None:
        self.schedule(self.view_diff())

    async def view_diff(self) -> DiffResponse | str:
        """Fetch what the merge brings in (files, +/− counts, patches) and show it under Merge ready."""
        backend = self._require()
        orchestration_id = self.execution.id if self.execution else None
        result: DiffResponse | str
        try:
            result = await backend.diff(self.project_id, orchestration_id)
        except Exception as exc:
            result = f"No diff: {error_text(exc)}"
        with held(self.progress.merge):
            self.progress.merge.show_diff(result)
        return result

    def use_local(self) -> None:
        """Switch to the engine inside this kernel (the button shown when no server is reachable)."""
        if self._connect_local is None:
            return
        try:
            self.backend, self.project_id = self._connect_local()
        except Exception as exc:
            self.set_status(error_text(exc), error=True)
            return
        self.set_status("Running the engine in this kernel.")
        self._layout()
        self.schedule(self.refresh(), start_watch=True)

    def _require(self) -> Backend:
        if self.backend is None:
            raise SpecflowError("No backend: no server is reachable.", hint="Click 'Run the engine in this kernel'.")
        return self.backend

    # ---- live updates --------------------------------------------------------------------------------------

    def start_live(self) -> None:
        """Start the live-update, activity and clock tasks (idempotent; needs a running loop)."""
        self.follower.start()

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- transcripts ----------------------------------------------------------------------------------------

    def _open_transcript(self, run_id: str, label: str) -> None:
        self.schedule(self.open_transcript(run_id, label, self.progress.transcript))

    def _open_past_transcript(self, run_id: str, label: str) -> None:
        self.schedule(self.open_transcript(run_id, label, self.past_transcript))

    async def open_transcript(
        self, run_id: str, label: str = "", view: TranscriptView | None = None
    ) -> Transcript | str:
        """Fetch a run's transcript (the API redacts it) and show it in ``view`` (the progress view's by default)."""
        view = view or self.progress.transcript
        result: Transcript | str
        try:
            result = await self._require().transcript(self.project_id, run_id)
        except Exception as exc:
            result = f"No transcript: {error_text(exc)}"
        with held(view):
            view.render(result, label)
        return result

    @property
    def live(self) -> bool:
        """The live-update task runs."""
        return self.follower.live

    def close(self) -> None:
        """Close the widget and stop its background tasks."""
        self._closed = True
        self.follower.cancel()
        for task in self._tasks:
            task.cancel()
        super().close()

    async def aclose(self) -> None:
        """Close and wait for the background tasks to end."""
        tasks = [*self.follower.tasks, *self._tasks]
        self.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def show(self, area: str = "right") -> None:
        """Put the panel in the JupyterLab shell (default: the right side panel) via ipylab and show it there.

        Returns nothing, so a cell ending with ``panel.show()`` does not also display the panel in its output;
        the shell's holder is kept as ``panel.shell_panel``.
        """
        from specflow_nb.widgets.shell import show_in_shell

        self.shell_panel = show_in_shell(self, area=area, label="Specflow")
