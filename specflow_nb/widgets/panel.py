"""ProjectPanel: one project's Complete Phase panel (summary → form → live progress → summary with past runs)."""

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
from specflow_nb.widgets.past_runs import PastRuns
from specflow_nb.widgets.plan import PlanPreview
from specflow_nb.widgets.progress import OrchestrationProgress
from specflow_nb.widgets.start_modal import StartOrchestrationModal
from specflow_nb.widgets.sync import held
from specflow_nb.widgets.transcript_view import RunPicker, TranscriptView

log = logging.getLogger(__name__)


#: Waits between reconnection attempts of the live channel (seconds), the last one repeating.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
#: How often elapsed / remaining time is redrawn while a run is active.
CLOCK_SECONDS = 5.0
#: How often the Now line's "last output 4s ago" is redrawn.
NOW_SECONDS = 1.0
#: Quiet time after the last change of a form field before the plan is previewed again (typing in a text box).
PREVIEW_DEBOUNCE = 0.4


def past_run_options(runs: list[OrchestrationExecution]) -> list[tuple[str, str]]:
    """Every agent run of the past orchestrations, for the Past runs transcript picker (oldest first)."""
    options: list[tuple[str, str]] = []
    for ex in reversed(runs[:20]):
        when = ex.started_at.astimezone().strftime("%m-%d %H:%M")
        options += [(run_id, f"{when} · {label}") for run_id, label in run_ids(ex)]
    return options


def error_text(exc: BaseException) -> str:
    """A user-facing line for an error: a SpecflowError's message and hint, else the exception's text."""
    if isinstance(exc, SpecflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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
        self._watch_task: asyncio.Task[None] | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._preview_task: asyncio.Task[Any] | None = None
        self._activity_task: asyncio.Task[None] | None = None
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
            on_start=self._start, on_cancel=self.show_summary, on_change=self._config_changed
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
        self._schedule_preview(0.0)

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

    def _config_changed(self) -> None:
        """A field changed: the plan and preflight depend on the options (batch size, skips, agent command)."""
        if self.mode != "form" or self.backend is None:
            return
        if self.form.form.valid:
            self.form.set_loading()  # Start stays disabled until the new preview is in
        self._schedule_preview(PREVIEW_DEBOUNCE)

    def _schedule_preview(self, delay: float) -> None:
        # the newest options win: a preview still waiting or running for older ones is dropped
        if self._preview_task is not None and not self._preview_task.done():
            self._preview_task.cancel()
        self._preview_task = self.schedule(self._preview_after(delay))

    async def _preview_after(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self.load_preview()

    async def wait_preview(self) -> None:
        """Wait until the form's pending preview (after opening it or changing a field) has been shown."""
        while self._preview_task is not None and not self._preview_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._preview_task)

    async def load_preview(self) -> PlanPreview | None:
        """Preview the plan with the form's current options and show it (``None`` when the options are invalid)."""
        backend = self._require()
        config = self.form.form.validate()
        if config is None:
            with held(self.form):
                self.form.render_invalid()
            return None
        try:
            preview = await backend.preview(self.project_id, config)
        except Exception as exc:
            with held(self.form):
                self.form.render_plan_error(error_text(exc))
            return None
        with held(self.form):
            self.form.render_preview(preview)
        return preview

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
        """Start the live-update and clock tasks (idempotent; needs a running loop)."""
        if self._closed or self.backend is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = loop.create_task(self._watch())
        if self._clock_task is None or self._clock_task.done():
            self._clock_task = loop.create_task(self._clock())
        if self._activity_task is None or self._activity_task.done():
            self._activity_task = loop.create_task(self._follow_activity())

    async def _watch(self) -> None:
        failures = 0
        while not self._closed and self.backend is not None:
            try:
                # since=-1: every (re)connection first gets the current state, whatever happened meanwhile
                async for execution in self.backend.watch(self.project_id, -1):
                    if failures:
                        failures = 0
                        self.set_status("Reconnected.")
                    self.apply(execution)
                    self.notifier.observe(execution, self.name)
                    if not execution.status.is_active:
                        self.schedule(self._refresh_runs())
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                self.set_status(f"Live updates interrupted ({error_text(exc)}); retrying in {delay:g}s…", error=True)
                await asyncio.sleep(delay)

    async def _refresh_runs(self) -> None:
        self.render_runs(await self._require().list(self.project_id))

    async def _clock(self) -> None:
        ticks = 0
        while not self._closed:
            await asyncio.sleep(NOW_SECONDS)
            ticks += 1
            if self.mode == "progress" and self.execution is not None and self.execution.status.is_active:
                if self.progress.activity is not None:  # "last output 4s ago" moves every second
                    with held(self.progress.now):
                        self.progress.now.render(self.progress.activity)
                if ticks % round(CLOCK_SECONDS / NOW_SECONDS) == 0:
                    with held(self.progress.time):
                        self.progress.render_time()

    async def _follow_activity(self) -> None:
        """The Now line: the live run's latest tool call, turns, cost, last output and tasks.md counts."""
        failures = 0
        while not self._closed and self.backend is not None:
            try:
                async for activity in self.backend.watch_activity(self.project_id):
                    failures = 0
                    with held(self.progress.now), held(self.progress.batch):
                        self.progress.render_activity(activity)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("activity channel interrupted", exc_info=True)
                await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])
                failures += 1

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
        return self._watch_task is not None and not self._watch_task.done()

    def close(self) -> None:
        """Close the widget and stop its background tasks."""
        self._closed = True
        for task in (self._watch_task, self._clock_task, self._activity_task, *self._tasks):
            if task is not None:
                task.cancel()
        super().close()

    async def aclose(self) -> None:
        """Close and wait for the background tasks to end."""
        tasks = [t for t in (self._watch_task, self._clock_task, self._activity_task, *self._tasks) if t is not None]
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
