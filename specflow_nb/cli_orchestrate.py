"""``specflow-nb orchestrate …`` and ``specflow-nb demo``: drive orchestrations from a terminal.

By default the commands talk to the Jupyter server that hosts the engine (found like the notebook panel finds it:
``--server``/``--token``, ``SPECFLOW_SERVER_URL``, JupyterHub's variables, then the running servers' files). With
``--local`` (or when ``start`` finds no server) the engine runs in this process instead: its agent runs are
detached, so stopping the command never stops an agent, and the next engine (a server, or another ``--local``
command) takes the orchestration over once this one is gone.

Several hosts, one project: whichever engine owns an orchestration drives it; a ``--local`` command on a project
another engine owns is handed to that owner (and reports what it did), ``start --local`` there is refused naming
the owner, and ``watch`` without ``--local`` only ever observes the project's files (it never drives).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb import cli as _cli

if TYPE_CHECKING:
    from rich.console import RenderableType

    from specflow_nb.client import SpecflowClient
    from specflow_nb.models import OrchestrationConfig, OrchestrationExecution

#: Statuses where nothing more happens until a person acts (or never again).
_SETTLED = ("paused", "waiting_merge", "needs_attention", "completed", "failed", "cancelled")
#: How long a local engine stays for a pending diagnosis (the decision helper's own limit is 10 minutes).
DIAGNOSIS_WAIT_SECONDS = 600.0


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

    live = ex.status.value == "running" and matches(activity, ex)
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

    status = ex.status.value
    if status == "waiting_merge":
        return f"Merge ready: run `specflow-nb orchestrate merge{flag}` (or go back with `go-back STEP`)."
    if status == "needs_attention":
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
    if status == "paused" and ex.waiting_for_input:
        questions = "\n".join(f"  {q.id}: {q.question}" for q in ex.questions)
        return f"Waiting for input:\n{questions}\nAnswer: `specflow-nb orchestrate answer ID=ANSWER …{flag}`."
    if status == "paused":
        return f"Paused: run `specflow-nb orchestrate resume{flag}` to continue."
    if status == "completed":
        return f"Phase complete: ${ex.total_cost_usd:.2f} spent."
    if status == "running":
        return f"Still running: `specflow-nb orchestrate watch{flag}` shows it live."
    return f"Orchestration {status}" + (f": {ex.error_message}" if ex.error_message else ".")


def live_footer(ex: OrchestrationExecution, *, local: bool = False) -> str:
    """The live view's last line: how to leave it, and the command that acts on what it shows."""
    flag = " --local" if local else ""
    status = ex.status.value
    if status == "running":
        act = "pause" if not ex.pause_requested else "resume (withdraws the pause)"
        return f"Ctrl+C leaves this view; the run goes on. Next: specflow-nb orchestrate {act}{flag} · cancel{flag}"
    command = {
        "paused": "resume",
        "waiting_merge": "merge",
        "needs_attention": "recover retry|skip|abort",
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
                if self.ex is not None and self.ex.status.value == "running":
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
                f"{_cli._escape(summary.decision_text(ex, entry))}",
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
        self.console.print(f"[bold]» {_cli._escape(message[:1].upper() + message[1:])}[/]", highlight=False)

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
            if ex is None or ex.status.value != "running" or not activity.now or activity.now == self._said_now:
                return
            self._said_now = activity.now
            self.console.print(f"  now: {_cli._escape(activity.now)}", highlight=False)

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


# --------------------------------------------------------------------------------------------------------------
# Configuration from the command line


def apply_sets(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Every ``--set key=value`` (dot paths, typed values) into ``data``."""
    from specflow_nb.errors import ConfigError
    from specflow_nb.store import parse_value, split_key

    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not key=value.", hint="e.g. --set budget.maxTotal=10")
        parts = split_key(key.strip())
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not an object.", hint="Check the key's dot path.")
        node[parts[-1]] = parse_value(value)
    return data


def budget_set(text: str) -> str:
    """argparse type of ``recover``/``resume --set``: only the budget's limits (anything else is a usage error)."""
    from specflow_nb.budget_raise import KEYS

    key, sep, _value = text.partition("=")
    parts = key.strip().split(".")
    if sep and parts[0] == "budget" and (len(parts) == 1 or (len(parts) == 2 and parts[1] in KEYS)):
        return text
    limits = ", ".join(f"budget.{k}" for k in KEYS)
    raise argparse.ArgumentTypeError(
        f"{text!r}: only the budget can be changed here ({limits}, e.g. --set budget.maxTotal=20); "
        "the other settings are chosen when an orchestration starts"
    )


def build_config(args: argparse.Namespace) -> OrchestrationConfig:
    """``--config FILE|JSON`` then every ``--set key=value`` (dot paths, typed values) on top."""
    from pydantic import ValidationError

    from specflow_nb.errors import ConfigError
    from specflow_nb.models import OrchestrationConfig

    data: dict[str, Any] = {}
    if args.config:
        text = args.config
        path = Path(text).expanduser()
        if not text.lstrip().startswith("{") and path.is_file():
            text = path.read_text(encoding="utf-8")
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"--config is neither a JSON object nor a readable JSON file: {exc}",
                hint="Pass e.g. --config '{\"autoMerge\": true}' or --config config.json.",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError("--config must be a JSON object.", hint="e.g. --config '{\"autoMerge\": true}'")
        data.update(loaded)
    apply_sets(data, args.set or [])
    try:
        return OrchestrationConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(
            f"Invalid configuration: {problems}",
            hint="Field names are the camelCase ones of the form (e.g. maxHealAttempts, budget.maxTotal).",
        ) from None


# --------------------------------------------------------------------------------------------------------------
# Engines: the server (through the client) or this process


def _client(args: argparse.Namespace) -> SpecflowClient:
    from specflow_nb.client import SpecflowClient

    return SpecflowClient(url=args.server, token=args.token, cwd=_cli.project_path(args))


def _remote_project_id(args: argparse.Namespace, client: SpecflowClient) -> str:
    if args.project_id is not None:
        return str(args.project_id)
    return client.project_id_for(_cli.project_path(args))


def _use_local(args: argparse.Namespace) -> bool:
    """--local, or (for start/watch) no reachable server."""
    if args.local:
        return True
    if args.orchestrate_command not in ("start", "watch", "status", "list"):
        return False
    from specflow_nb.client import NoServerFound

    try:
        _client(args).close()
    except NoServerFound:
        if args.orchestrate_command in ("status", "list"):
            pass  # read from the project's files; nothing is driven
        elif args.orchestrate_command == "watch":
            _cli.console(stderr=True).print(
                "No Jupyter server with specflow_nb found: watching the project's files here "
                "(this terminal only observes; `watch --local` would drive an orchestration nobody drives)."
            )
        else:
            _cli.console(stderr=True).print(
                "No Jupyter server with specflow_nb found: running the engine here (--local)."
            )
        return True
    return False


def _engine_settings(*, observer: bool = False, command_timeout: float | None = None) -> Any:
    from specflow_nb.orchestrator import EngineSettings

    extra = {"command_timeout_seconds": command_timeout} if command_timeout else {}
    return EngineSettings(host_kind="cli", may_take_over=not observer, **extra)


def _run_local(
    project: Path,
    action: Callable[[Any], Any],
    view: LiveView,
    *,
    settings: Any = None,
    follow: bool = True,
    notes: list[str] | None = None,
) -> OrchestrationExecution | None:
    """Run the engine on ``project`` (as its own root), do ``action(orchestrator)``, then show changes until the
    orchestration settles (paused, waiting for merge, needs attention or finished).

    When this process ends up owning the orchestration it must stay until it settles (it drives it); when another
    engine owns it (the command was handed to that owner) it follows only with ``follow``. What the owner did goes
    into ``notes``."""
    import asyncio

    import anyio

    from specflow_nb.orchestrator import Orchestrator

    async def main() -> OrchestrationExecution | None:
        async with Orchestrator(project, settings or _engine_settings()) as orch:
            ex = await action(orch)
            if ex is None:
                ex = orch.status("")
            if ex is None:
                return None
            owns = orch.owns("")
            if not owns and ex.status.is_active and notes is not None:
                notes.append(orch.who_drives("", ex.id))
            view.update(ex)
            if not owns and not follow:
                return ex
            now = asyncio.ensure_future(view.follow_local(project, orch))  # the Now line
            while ex.status.value not in _SETTLED:
                ex = await orch.wait_for_change("", ex.version, 30, known_id=ex.id) or ex
                view.update(ex)
            now.cancel()
            # A killed run's end (cancel) is one more change: let it land so its cost is counted.
            with anyio.move_on_after(10):
                while ex.killed_run_ids:
                    ex = await orch.wait_for_change("", ex.version, 10, known_id=ex.id) or ex
            # The diagnosis the decision helper is writing (needs attention): this engine collects it (its answer
            # and cost) before it lets the orchestration go; Ctrl+C leaves it to the next host, which adopts it.
            with anyio.move_on_after(DIAGNOSIS_WAIT_SECONDS):
                while ex.pending_diagnoses and orch.owns(""):
                    ex = await orch.wait_for_change("", ex.version, 30, known_id=ex.id) or ex
                    view.update(ex)
            return ex

    return anyio.run(main)


def _watch_remote(client: SpecflowClient, project_id: str, ex: OrchestrationExecution, view: LiveView) -> Any:
    view.update(ex)
    if ex.status.value in _SETTLED:
        return ex
    view.follow_remote(client, project_id)
    for update in client.iter_updates(project_id, ex.version, until_finished=True):
        view.update(update)
        ex = update
        if ex.status.value in _SETTLED:
            break
    return ex


def _finish(args: argparse.Namespace, ex: OrchestrationExecution | None, *, local: bool) -> int:
    if ex is None:
        _cli.console(stderr=True).print("No orchestration in this project yet: start one with `orchestrate start`.")
        return 1
    if args.json:
        if not getattr(args, "follow", False):
            _cli.print_json(ex.model_dump(mode="json"))
    else:
        _cli.console().print(_cli._escape(next_step_hint(ex, local=local)))
    return 1 if ex.status.value in ("needs_attention", "failed") else 0


@contextmanager
def _view(args: argparse.Namespace) -> Iterator[LiveView]:
    with LiveView(json_lines=bool(args.json and getattr(args, "follow", False))) as view:
        yield view


# --------------------------------------------------------------------------------------------------------------
# Commands

_COMMANDS = {
    "cancel": lambda a: {"action": "cancel"},
    "pause": lambda a: {"action": "pause"},
    "resume": lambda a: {"action": "resume"},
    "merge": lambda a: {"action": "merge"},
    "recover": lambda a: {"action": "recover", "option": a.option},
    "go-back": lambda a: {"action": "go_back", "step": a.step},
    "answer": lambda a: {"action": "answer", "answers": _answers(a.answers)},
}


def _command(name: str, args: argparse.Namespace, ex: OrchestrationExecution | None, *, local: bool) -> Any:
    """The typed command ``name`` sends; ``recover``/``resume`` carry the budget from ``--set budget.…`` (merged
    over the current limits of ``ex``, the orchestration it goes to). A budget stop retried without ``--set`` that
    would stop again at once is refused here, with the limits, what was spent and the command that raises them;
    one that can go on is sent, with that same report (``args.notes``)."""
    from specflow_nb import budget_raise
    from specflow_nb.errors import ConfigError
    from specflow_nb.machine import parse_command

    data = _COMMANDS[name](args)
    sets = getattr(args, "set", None) or []
    if ex is None or name not in ("recover", "resume"):
        return parse_command(data)
    option = data.get("option")
    action: budget_raise.Action = "recover" if option == "retry" else "resume"
    flags = _raise_flags(args, local)
    if not sets:
        if option == "retry" and budget_raise.is_budget_stop(ex):
            limits = "\n".join(budget_raise.report(ex, "recover"))
            command = f"specflow-nb orchestrate recover retry {budget_raise.set_flags(budget_raise.suggestion(ex))}"
            short = budget_raise.shortfall(ex, ex.config.budget, "recover")
            if short is not None:
                raise ConfigError(
                    f"Budget reached: not retried, the same limits would stop it again at once ({short}).\n"
                    f"Budget limits of {ex.id}:\n{limits}",
                    hint=f"Raise them: {command}{flags}",
                )
            args.notes.append(
                f"Retrying after a budget stop with the same limits:\n{limits}\nTo give it more: {command}{flags}"
            )
        return parse_command(data)
    if name == "resume" and ex.status.value == "needs_attention":
        raise ConfigError(
            f"{ex.id} needs attention (it is not paused): raise the budget with recover.",
            hint=f"specflow-nb orchestrate recover retry {' '.join(f'--set {item}' for item in sets)}{flags}",
        )
    changes = apply_sets({}, sets).get("budget")
    if not isinstance(changes, dict):
        raise ConfigError("--set budget=… takes a JSON object of limits.", hint="e.g. --set budget.maxTotal=20")
    budget = budget_raise.merged(ex.config.budget, changes)
    if option != "abort":
        refused = budget_raise.refusal(ex, budget, action)
        if refused is not None:
            limits = "\n".join(budget_raise.report(ex, action))
            raise_flags = budget_raise.set_flags(budget_raise.suggestion(ex, action))
            what = f"recover {option}" if option else "resume"
            raise ConfigError(
                f"Not sent: {refused}\nBudget limits of {ex.id}:\n{limits}",
                hint=f"e.g. specflow-nb orchestrate {what} {raise_flags}{flags}",
            )
    data["budget"] = budget.model_dump(mode="json", by_alias=True)
    return parse_command(data)


def _raise_flags(args: argparse.Namespace, local: bool) -> str:
    """The options a suggested command repeats: the orchestration, and where the engine runs."""
    return (f" --id {args.id}" if args.id else "") + (" --local" if local else "")


def _answers(items: list[str]) -> dict[str, str]:
    from specflow_nb.errors import ConfigError

    answers = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Answer {item!r} is not ID=ANSWER.", hint="e.g. answer q1=yes 'q2=use sqlite'")
        answers[key] = value
    return answers


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value <= 600):
        raise argparse.ArgumentTypeError("give a number of seconds between 0 and 600")
    return value


def cmd_orchestrate(args: argparse.Namespace) -> int:
    name = args.orchestrate_command
    args.notes = []  # what a command says before it is sent (see _command)
    if name == "start" and getattr(args, "dry_run", False):
        return _dry_run(args)
    local = _use_local(args)
    if local:
        return _orchestrate_local(args, name)
    return _orchestrate_remote(args, name)


def _dry_run(args: argparse.Namespace) -> int:
    """``start --dry-run``: what a start would do (plan, estimate, checks, each step's prompt source), starting
    nothing."""
    config = build_config(args)
    preview: dict[str, Any]
    if args.local:
        preview = _local_preview(args, config)
    else:
        from specflow_nb.client import NoServerFound

        try:
            with _client(args) as client:
                preview = client.preview(_remote_project_id(args, client), config).model_dump(mode="json")
        except NoServerFound:
            preview = _local_preview(args, config)
    if args.json:
        _cli.print_json(preview)
        return 0 if (preview.get("preflight") or {}).get("ok") else 1
    con = _cli.console()
    plan = preview.get("batchPlan") or {}
    con.print(f"[bold]{_cli._escape(plan.get('summary') or 'No batch plan (design writes tasks.md).')}[/bold]")
    for batch in plan.get("batches") or []:
        con.print(f"  {batch['index'] + 1}. {_cli._escape(batch['section'])}: {' '.join(batch['taskIds'])}")
    for warning in plan.get("warnings") or []:  # the plan's own (fallback sizing); the checks' come below
        con.print(f"[yellow]warning:[/yellow] {_cli._escape(warning)}")
    if preview.get("estimate"):
        _print_estimate(con, preview["estimate"])
    preflight = preview.get("preflight") or {}
    for problem in preflight.get("problems") or []:
        con.print(f"[red]problem:[/red] {_cli._escape(problem)}")
    for warning in preflight.get("warnings") or []:
        con.print(f"[yellow]warning:[/yellow] {_cli._escape(warning)}")
    con.print("Prompts:")
    from specflow_nb.agent.prompts import PromptSource

    for source in preview.get("promptSources") or []:
        con.print(f"  {_cli._escape(PromptSource.model_validate(source).describe())}")
    ok = bool(preflight.get("ok"))
    con.print("Nothing was started (--dry-run)." if ok else "Nothing was started: fix the problems above first.")
    return 0 if ok else 1


#: ``--dry-run`` lists at most this many batches of an estimate (``--json`` has them all).
ESTIMATE_ROWS = 50
HEAD = ("Batch", "Tasks", "Time", "Cost")


def _print_estimate(con: Any, data: dict[str, Any]) -> None:
    """The estimate as a table that fits the terminal (80 columns): batch, tasks, time, cost, the steps, a total row;
    then its basis, what it leaves out and where it exceeds the budget."""
    from rich.table import Table

    from specflow_nb.estimate import fmt_seconds, fmt_usd
    from specflow_nb.models import Estimate

    est = Estimate.model_validate(data)
    rows = [
        (_cli._escape(f"{b.index + 1}. {b.title}"), str(b.task_count), f"~{fmt_seconds(b.seconds)}", fmt_usd(b.usd))
        for b in est.batches[:ESTIMATE_ROWS]
    ]
    hidden = est.batches[ESTIMATE_ROWS:]
    if hidden:
        rows.append(
            (
                f"… {len(hidden)} more batches (--json lists them)",
                str(sum(b.task_count for b in hidden)),
                f"~{fmt_seconds(sum(b.seconds for b in hidden))}",
                fmt_usd(sum(b.usd for b in hidden)),
            )
        )
    for s in est.steps:
        basis = {"history": "past runs", "defaults": "default", "builtin": "built-in"}[s.basis]
        rows.append((f"{s.step.value} step ({basis})", "", f"~{fmt_seconds(s.seconds)}", fmt_usd(s.usd)))
    footer = ("Total", str(est.task_count), f"~{fmt_seconds(est.total_seconds)}", fmt_usd(est.total_usd))
    title = "Estimate (from this project's past runs)" if est.basis == "history" else "Estimate (defaults)"
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, show_footer=True)
    # the numbers never shrink: only the batch's title is cut (with …) to fit the terminal
    widths = [max(len(name), len(footer[i]), *(len(r[i]) for r in rows)) for i, name in enumerate(HEAD) if i]
    title_width = max(8, con.width - sum(widths) - 3 * len(widths))  # each number column: its width + " │ "
    table.add_column("Batch", footer=footer[0], overflow="ellipsis", no_wrap=True, max_width=title_width)
    for name, foot, width in zip(HEAD[1:], footer[1:], widths, strict=True):
        table.add_column(name, footer=foot, justify="right", no_wrap=True, min_width=width, max_width=width)
    for row in rows:
        table.add_row(*row)
    con.print(table)
    con.print(_cli._escape(est.basis_label), soft_wrap=False)
    for note in est.notes:
        con.print(_cli._escape(note), soft_wrap=False)
    for warning in est.warnings:
        con.print(f"[yellow]over budget:[/yellow] {_cli._escape(warning)}", soft_wrap=False)


def _local_preview(args: argparse.Namespace, config: OrchestrationConfig) -> dict[str, Any]:
    from specflow_nb.orchestrator import Orchestrator

    # No loop, no reconcile: a dry run never takes anything over.
    orch = Orchestrator(_cli.project_path(args), _engine_settings(observer=True))
    preview: dict[str, Any] = orch.preview("", config).model_dump(mode="json")
    return preview


def _orchestrate_local(args: argparse.Namespace, name: str) -> int:
    project = _cli.project_path(args)
    if name in ("status", "list"):
        return _show_local(args, project, name)
    if name == "start":
        config = build_config(args)

        async def action(orch: Any) -> Any:
            return await orch.start("", config)

    elif name == "watch":

        async def action(orch: Any) -> Any:
            return orch.status("", args.id)

    else:
        from specflow_nb.store import OrchestrationStore

        store = OrchestrationStore(project)
        current = store.load(args.id) if args.id else (store.active() or next(iter(store.list()), None))
        command = _command(name, args, current, local=True)

        async def action(orch: Any) -> Any:
            return await orch.command("", command, args.id)

    _say_notes(args)
    # `watch` without --local only observes; every other local command may drive an orchestration nobody drives.
    observer = name == "watch" and not args.local
    notes: list[str] = []
    with _view(args) as view:
        ex = _run_local(
            project,
            action,
            view,
            settings=_engine_settings(observer=observer, command_timeout=args.command_timeout),
            follow=name in ("start", "watch") or bool(args.follow),
            notes=notes,
        )
    if not args.json:
        for note in notes:
            _cli.console(stderr=True).print(_cli._escape(note))
    return _finish(args, ex, local=True)


def _say_notes(args: argparse.Namespace) -> None:
    """What a command says before it is sent (e.g. a retry after a budget stop with the same limits), on stderr."""
    for note in args.notes:
        _cli.console(stderr=True).print(_cli._escape(note), highlight=False)


def _show_local(args: argparse.Namespace, project: Path, name: str) -> int:
    from specflow_nb.store import OrchestrationStore

    store = OrchestrationStore(project)
    if name == "list":
        items = store.list()
        if args.json:
            _cli.print_json([ex.model_dump(mode="json") for ex in items])
        else:
            _print_list(items)
        return 0
    ex = store.load(args.id) if args.id else (store.active() or next(iter(store.list()), None))
    return _show_one(args, ex, local=True, driver=_driver_line(store, ex))


def _driver_line(store: Any, ex: OrchestrationExecution | None) -> str | None:
    """Who drives an active orchestration, as read from its owner record (status never takes anything over)."""
    if ex is None or not ex.status.is_active:
        return None
    from specflow_nb import ownership, procs

    return ownership.who_drives(store.folder, ex.id, host_id=procs.host_id())


def _print_list(items: list[OrchestrationExecution]) -> None:
    from specflow_nb import summary

    con = _cli.console()
    if not items:
        con.print("No orchestrations yet.")
    for ex in items:
        done, total = summary.task_counts(ex)
        con.print(
            f"{ex.id}  {summary.status_label(ex):<17} {ex.current_phase.value:<9} "
            f"{done}/{total} tasks  ${ex.total_cost_usd:.2f}  started {ex.started_at:%Y-%m-%d %H:%M}"
        )


def _show_one(
    args: argparse.Namespace, ex: OrchestrationExecution | None, *, local: bool, driver: str | None = None
) -> int:
    if args.json:
        _cli.print_json(ex.model_dump(mode="json") if ex else None)
        return 0
    if ex is None:
        _cli.console().print("No orchestration in this project yet: start one with `orchestrate start`.")
        return 0
    _cli.console().print(render(ex, decisions=10))
    if driver:
        _cli.console().print(_cli._escape(driver))
    _cli.console().print(_cli._escape(next_step_hint(ex, local=local)))
    return 0


def _orchestrate_remote(args: argparse.Namespace, name: str) -> int:
    with _client(args) as client:
        project_id = _remote_project_id(args, client)
        if name == "status":
            response = client.status_with_owner(project_id, args.id)
            driver = f"Driven by {response.owner.describe()}." if response.owner else None
            return _show_one(args, response.orchestration, local=False, driver=driver)
        if name == "list":
            items = client.list(project_id)
            if args.json:
                _cli.print_json([ex.model_dump(mode="json") for ex in items])
            else:
                _print_list(items)
            return 0
        ex: OrchestrationExecution | None
        if name == "start":
            ex = client.start(project_id, build_config(args)).orchestration
        elif name == "watch":
            ex = client.status(project_id, args.id)
        else:
            # the current limits: a --set is merged over them, a budget stop is checked before a retry
            needs_record = bool(getattr(args, "set", None)) or (name == "recover" and args.option == "retry")
            current = client.status(project_id, args.id) if needs_record else None
            command = _command(name, args, current, local=False)
            _say_notes(args)
            ex = client.command(project_id, command, args.id)
        if ex is not None and (args.follow or name == "watch"):
            with _view(args) as view:
                ex = _watch_remote(client, project_id, ex, view)
        return _finish(args, ex, local=False)


def add_orchestrate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False, parents=[_cli.common_options()])
    common.add_argument("--local", action="store_true", help="run the engine in this process (no server)")
    common.add_argument("--server", metavar="URL", help="Jupyter server URL (default: discovered)")
    common.add_argument("--token", metavar="TOKEN", help="Jupyter server token (default: discovered)")
    common.add_argument("--project-id", metavar="ID", help="project id on the server (default: from --project)")
    common.add_argument("--id", metavar="ORCHESTRATION", help="a specific orchestration (default: the current one)")
    common.add_argument("--json", action="store_true", help="machine output (with --follow: one JSON per change)")
    common.add_argument(
        "--command-timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --local: how long a command waits for the engine that owns the orchestration (default 10)",
    )
    common.add_argument(
        "--follow", action="store_true", help="after the command, show changes until the orchestration settles"
    )
    p = sub.add_parser("orchestrate", help="start and control orchestrations (Complete Phase)")
    osub = p.add_subparsers(dest="orchestrate_command", required=True, metavar="COMMAND")
    start = osub.add_parser("start", parents=[common], help="complete the project's open phase")
    start.add_argument("--config", metavar="JSON|FILE", help="OrchestrationConfig as JSON or a JSON file")
    start.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config field, e.g. autoMerge=true")
    start.add_argument(
        "--dry-run", action="store_true", help="show the plan, the checks and each step's prompt source; start nothing"
    )
    for name, text in (
        ("status", "show the current orchestration"),
        ("list", "list the project's orchestrations, newest first"),
        ("watch", "show the orchestration live until it settles"),
        ("cancel", "cancel now (kills the running agent)"),
        ("pause", "pause after the current batch"),
        ("merge", "merge (only when merge is ready)"),
    ):
        osub.add_parser(name, parents=[common], help=text)
    budget_help = (
        "raise a budget limit first, e.g. --set budget.maxTotal=20 --set budget.maxPerBatch=5 (only budget.* keys; "
        "healingBudget is one amount for the whole orchestration, all healers together)"
    )
    res = osub.add_parser("resume", parents=[common], help="resume a paused orchestration")
    res.add_argument("--set", action="append", type=budget_set, metavar="budget.KEY=VALUE", help=budget_help)
    rec = osub.add_parser("recover", parents=[common], help="answer needs-attention: retry, skip or abort")
    rec.add_argument("option", choices=["retry", "skip", "abort"])
    rec.add_argument("--set", action="append", type=budget_set, metavar="budget.KEY=VALUE", help=budget_help)
    back = osub.add_parser("go-back", parents=[common], help="go back to a step and run it again")
    back.add_argument("step", choices=["design", "analyze", "implement", "verify", "merge"])
    ans = osub.add_parser("answer", parents=[common], help="answer the agent's questions")
    ans.add_argument("answers", nargs="+", metavar="ID=ANSWER")
    p.set_defaults(func=cmd_orchestrate, follow=False)
    start.set_defaults(follow=True)


# --------------------------------------------------------------------------------------------------------------
# The demo


def demo_agent_command() -> str:
    """The bundled demo agent's console script, next to this Python (installed with the package)."""
    exe = Path(sys.executable).parent / "specflow-nb-demo-agent"
    if exe.exists():
        return str(exe)
    return f"{sys.executable} -m specflow_nb.demo.demo_agent"


def cmd_demo(args: argparse.Namespace) -> int:
    from specflow_nb.demo import prepare_sample

    dest = Path(args.dest).expanduser() if args.dest else Path(tempfile.mkdtemp(prefix="specflow-demo-")) / "todo"
    project = prepare_sample(dest)
    con = _cli.console()
    if not args.json:
        con.print(
            f"specflow_nb demo: the sample project is at {project}\n"
            "The agent is the bundled DEMO agent (a scripted stand-in for Claude Code: no account, no network).\n"
        )
    config = build_config(argparse.Namespace(config=None, set=["autoMerge=true", *(args.set or [])]))
    config = config.model_copy(update={"agent_command": demo_agent_command()})
    settings = _engine_settings()
    if not args.no_heal:
        # Show auto-healing too: the demo agent leaves half of batch 2 undone on its first try.
        script = project / ".specflow" / "demo-script.json"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(json.dumps({"rules": [{"match": "Phase 2", "run": 1, "scenario": "partial"}]}))
        settings.agent_env["SPECFLOW_DEMO_SCRIPT"] = str(script)

    async def action(orch: Any) -> Any:
        return await orch.start("", config)

    with LiveView(json_lines=bool(args.json)) as view:
        ex = _run_local(project, action, view, settings=settings)
    if ex is None:
        return 1
    if not args.json:
        from specflow_nb import summary

        done, total = summary.task_counts(ex)
        con.print(
            f"\n{summary.status_label(ex)}: {done}/{total} tasks in {ex.batches.total} batches, "
            f"${ex.total_cost_usd:.2f} (demo cost), {len(ex.decision_log)} decisions logged.\n"
            f"State: {project / '.specflow' / 'workflows'}"
        )
    return 0 if ex.status.value == "completed" else 1


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="complete the bundled sample project's phase with the demo agent")
    p.add_argument("--dest", metavar="PATH", help="where to put the sample project (default: a new temp folder)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config field, e.g. maxHealAttempts=2")
    p.add_argument("--json", action="store_true", help="one JSON state per change instead of the live view")
    p.add_argument("--no-heal", action="store_true", help="no failed batch (by default batch 2 fails and is healed)")
    p.set_defaults(func=cmd_demo)
