"""The terminal view of an orchestration: the live box, the one-line hints, the JSON-lines mode.

Apart from the commands (:mod:`specflow_nb.cli_orchestrate`) because it only renders an execution (the same words
as the panel, from :mod:`specflow_nb.summary`); it decides nothing and talks to no engine.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb import cli_common as _cli
from specflow_nb.models import OrchestrationStatus

if TYPE_CHECKING:
    from rich.console import RenderableType

    from specflow_nb.client import SpecflowClient
    from specflow_nb.models import OrchestrationExecution


# --------------------------------------------------------------------------------------------------------------
# The terminal view


#: The live view's widest box: wider terminals keep this width, narrower ones use their own (never a width that
#: changes with the content between two refreshes).
MAX_VIEW_WIDTH = 100


def view_width(console_width: int) -> int:
    return max(40, min(MAX_VIEW_WIDTH, console_width))


def project_title(ex: OrchestrationExecution) -> str:
    """The project's name for a title: its folder's name (the root's own name when the id is the root)."""
    name = Path(ex.project_id).name if ex.project_id not in ("", ".") else ""
    return name or Path.cwd().resolve().name or "project"


def render(
    ex: OrchestrationExecution,
    *,
    decisions: int = 6,
    width: int | None = None,
    footer: str | None = None,
    now: Any = None,
    activity: Any = None,
) -> RenderableType:
    """The live view: phase bar, what is happening, tasks, time, cost against budget, the last decisions.

    The same words as the panel (:mod:`specflow_nb.summary`). The box is exactly ``width`` wide (default: the
    console's, at most :data:`MAX_VIEW_WIDTH`) and text wraps between words.
    """
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    from specflow_nb import summary

    box_width = view_width(width if width is not None else _cli.console().width)
    done, total = summary.task_counts(ex)
    from specflow_nb.activity import matches

    live = ex.status is OrchestrationStatus.RUNNING and matches(activity, ex)
    if live and activity.tasks_total and not activity.finished:
        done, total = activity.tasks_done or 0, activity.tasks_total  # tasks.md as it is, between saves
    budget = ex.config.budget
    lines: list[Any] = [
        Text(summary.phase_bar(ex)),
        Text(summary.headline(ex), style="bold"),
    ]
    if live:
        from specflow_nb.activity import now_text

        lines.append(Text.assemble(("Now ", "bold cyan"), (now_text(activity), "")))
    if total:
        row = Table.grid(padding=(0, 1))
        row.add_column(no_wrap=True)
        row.add_column()
        percent = round(100 * done / total)
        row.add_row(ProgressBar(total=total, completed=done, width=24), Text(f"{done}/{total} tasks ({percent}%)"))
        lines.append(row)
    lines.append(Text(summary.time_text(ex, now), style="dim"))
    lines.append(
        Text(
            f"Cost ${ex.total_cost_usd:.2f} of ${budget.max_total:.2f} total"
            f" · healing ${ex.healing_cost_usd:.2f} of ${budget.healing_budget:.2f}"
            + (f" · diagnosis ${ex.decision_cost_usd:.2f}" if ex.decision_cost_usd else "")
        )
    )
    if ex.decision_log:
        log = Table.grid(padding=(0, 1))
        log.add_column(no_wrap=True, style="dim")
        log.add_column(no_wrap=True, style="cyan")
        log.add_column(ratio=1, overflow="fold")
        for entry in ex.decision_log[-decisions:]:
            log.add_row(
                Text(entry.timestamp.astimezone().strftime("%H:%M:%S")),
                Text(summary.decision_title(entry.decision)),
                Text(summary.decision_text(ex, entry)),
            )
        lines.append(Text(""))
        lines.append(log)
    if footer:
        lines.append(Text(""))
        lines.append(Text(footer, style="dim"))
    title = f"specflow_nb · {project_title(ex)}"
    return Panel(
        Group(*lines),
        title=title,
        subtitle=f"[bold]{summary.status_label(ex)}[/]",
        width=box_width,
        expand=True,
    )


def next_step_hint(ex: OrchestrationExecution, *, local: bool) -> str:
    """What the person at the terminal does next, as a command line."""
    flag = " --local" if local else ""
    from specflow_nb import summary

    status = ex.status
    if status is OrchestrationStatus.WAITING_MERGE:
        return f"Merge ready: run `specflow-nb orchestrate merge{flag}` (or go back with `go-back STEP`)."
    if status is OrchestrationStatus.NEEDS_ATTENTION:
        issue = ex.recovery_context.issue if ex.recovery_context else "needs attention"
        issue = summary.name_run_folder(issue, ex.recovery_context.failed_workflow_id if ex.recovery_context else None)
        options = "|".join(o.value for o in ex.recovery_context.options) if ex.recovery_context else "retry|abort"
        diagnosis = "".join(f"\n{line}" for line in summary.diagnosis_lines(ex))
        choose = f"Needs attention: {issue}{diagnosis}\nChoose: `specflow-nb orchestrate recover {options}{flag}`."
        from specflow_nb import budget_raise

        if budget_raise.is_budget_stop(ex):
            limits = "\n".join(budget_raise.report(ex, "recover"))
            sets = budget_raise.set_flags(budget_raise.suggestion(ex, "recover"))
            choose += (
                f"\nBudget limits:\n{limits}\n"
                f"Raise them and retry: `specflow-nb orchestrate recover retry {sets}{flag}`."
            )
        return choose
    if status is OrchestrationStatus.PAUSED and ex.waiting_for_input:
        questions = "\n".join(f"  {q.id}: {q.question}" for q in ex.questions)
        return f"Waiting for input:\n{questions}\nAnswer: `specflow-nb orchestrate answer ID=ANSWER …{flag}`."
    if status is OrchestrationStatus.PAUSED:
        return f"Paused: run `specflow-nb orchestrate resume{flag}` to continue."
    if status is OrchestrationStatus.COMPLETED:
        return f"Phase complete: ${ex.total_cost_usd:.2f} spent."
    if status is OrchestrationStatus.RUNNING:
        return f"Still running: `specflow-nb orchestrate watch{flag}` shows it live."
    return f"Orchestration {status.value}" + (f": {ex.error_message}" if ex.error_message else ".")


def live_footer(ex: OrchestrationExecution, *, local: bool = False) -> str:
    """The live view's last line: how to leave it, and the command that acts on what it shows."""
    flag = " --local" if local else ""
    status = ex.status
    if status is OrchestrationStatus.RUNNING:
        act = "pause" if not ex.pause_requested else "resume (withdraws the pause)"
        return f"Ctrl+C leaves this view; the run goes on. Next: specflow-nb orchestrate {act}{flag} · cancel{flag}"
    command = {
        OrchestrationStatus.PAUSED: "resume",
        OrchestrationStatus.WAITING_MERGE: "merge",
        OrchestrationStatus.NEEDS_ATTENTION: "recover retry|skip|abort",
    }.get(status)
    if ex.waiting_for_input:
        command = "answer ID=TEXT"
    if command:
        return f"Ctrl+C leaves this view. Next: specflow-nb orchestrate {command}{flag}"
    return "The orchestration has ended: specflow-nb orchestrate start begins the next one."


class LiveView:
    """Shows an orchestration as it changes: a rich Live panel on a terminal, one line per decision otherwise."""

    def __init__(self, *, json_lines: bool = False) -> None:
        self.console = _cli.console()
        self.json_lines = json_lines
        self._live: Any = None
        self._seen: tuple[str, int] = ("", 0)
        self.ex: OrchestrationExecution | None = None
        self.activity: Any = None
        self._said_now = ""
        #: notifications already announced (needs attention, questions, merge ready, completed, failed)
        self.announced: set[str] = set()
        #: orchestration id -> the newest recorded notification already announced (or there when the view opened)
        self._notified: dict[str, int] = {}
        self._first = True
        self._lock = threading.RLock()

    def __enter__(self) -> LiveView:
        if self.console.is_terminal and not self.json_lines:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=8, transient=False)
            self._live.__enter__()
            threading.Thread(target=self._tick, name="specflow-view-clock", daemon=True).start()
        return self

    def _tick(self) -> None:
        """Redraw every second while live: "last output 4s ago" and the elapsed time move on their own."""
        while self._live is not None:
            time.sleep(1.0)
            with self._lock:
                if self.ex is not None and self.ex.status is OrchestrationStatus.RUNNING:
                    self._redraw()

    def __exit__(self, *exc: object) -> None:
        live, self._live = self._live, None
        if live is not None:
            with self._lock:
                live.__exit__(None, None, None)

    def update(self, ex: OrchestrationExecution) -> None:
        with self._lock:
            self._update(ex)

    def _update(self, ex: OrchestrationExecution) -> None:
        self.ex = ex
        if self.json_lines:
            sys.stdout.write(ex.model_dump_json() + "\n")
            sys.stdout.flush()
            return
        self._announce(ex)
        if self._live is not None:
            self._redraw()
            return
        seen_id, seen_count = self._seen
        start = seen_count if seen_id == ex.id else 0
        from specflow_nb import summary

        for entry in ex.decision_log[start:]:
            self.console.print(
                f"{entry.timestamp:%H:%M:%S} {summary.decision_title(entry.decision)}: "
                f"{_cli.escape(summary.decision_text(ex, entry))}",
                highlight=False,
            )
        self._seen = (ex.id, len(ex.decision_log))

    def _redraw(self) -> None:
        ex = self.ex
        if self._live is not None and ex is not None:
            self._live.update(render(ex, width=self.console.width, footer=live_footer(ex), activity=self.activity))

    def _announce(self, ex: OrchestrationExecution) -> None:
        """A line and the terminal bell when the orchestration needs the person (or ended); once per event. The
        state shown when the view opens is not news."""
        from specflow_nb import summary

        first, self._first = self._first, False
        if ex.notifications or ex.notification_seq:  # what the machine recorded since the last state shown
            seen = self._notified.get(ex.id, ex.notification_seq if first else 0)
            self._notified[ex.id] = max(seen, ex.notification_seq)
            for recorded in summary.notifications_since(ex, seen):
                if recorded.key not in self.announced:
                    self.announced.add(recorded.key)
                    self._say(recorded)
            return
        event = summary.event_of(ex)  # a record written before notifications were kept
        if event is None or event.key in self.announced:
            return
        self.announced.add(event.key)
        if not first:
            self._say(event)

    def _say(self, event: Any) -> None:
        from specflow_nb import summary

        message = summary.name_run_folder(event.message, event.run_id)
        if event.run_id and ".specflow/workflows/" not in message:
            message += f" What the run did: .specflow/workflows/{event.run_id}/ (its transcript in the panel)."
        with contextlib.suppress(OSError, ValueError):  # the bell, also when the output is a log file
            self.console.file.write("\a")
            self.console.file.flush()
        self.console.print(f"[bold]» {_cli.escape(message[:1].upper() + message[1:])}[/]", highlight=False)

    def update_activity(self, activity: Any) -> None:
        """The Now line changed (the activity channel): redraw the live box, or print the new line."""
        with self._lock:
            self.activity = activity
            if self.json_lines or activity is None:
                return
            if self._live is not None:
                self._redraw()
                return
            ex = self.ex
            if (
                ex is None
                or ex.status is not OrchestrationStatus.RUNNING
                or not activity.now
                or activity.now == self._said_now
            ):
                return
            self._said_now = activity.now
            self.console.print(f"  now: {_cli.escape(activity.now)}", highlight=False)

    def follow_remote(self, client: SpecflowClient, project_id: str) -> None:
        """Follow the server's activity channel in a daemon thread (the state's long-poll keeps the main thread)."""

        def loop() -> None:
            etag: str | None = None
            while True:
                try:
                    response = client.activity(project_id, since=etag, timeout=25)
                except Exception:
                    time.sleep(2)
                    continue
                if response.etag != etag:
                    etag = response.etag
                    self.update_activity(response.activity)

        threading.Thread(target=loop, name="specflow-activity", daemon=True).start()

    async def follow_local(self, project: Path, orch: Any) -> None:
        """Follow the run folder in this process (engine here, owner or observer): until cancelled."""
        from specflow_nb.activity import wait_activity

        etag: str | None = None
        while True:
            act = await wait_activity(project, lambda: orch.status(""), etag, 25)
            new = act.etag if act is not None else ""
            if new != etag:
                etag = new
                self.update_activity(act)
