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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb import cli_common as _cli
from specflow_nb.cli_config import _answers, _positive_seconds, apply_sets, budget_set, build_config
from specflow_nb.cli_engine import _client, _engine_settings, _remote_project_id, _use_local
from specflow_nb.cli_preview import _dry_run
from specflow_nb.cli_view import MAX_VIEW_WIDTH, LiveView, live_footer, next_step_hint, render
from specflow_nb.demo import demo_agent_command
from specflow_nb.models import OrchestrationStatus

__all__ = [
    "MAX_VIEW_WIDTH",
    "add_orchestrate",
    "apply_sets",
    "build_config",
    "cmd_orchestrate",
    "demo_agent_command",
    "live_footer",
    "next_step_hint",
    "render",
]

if TYPE_CHECKING:
    from specflow_nb.client import SpecflowClient
    from specflow_nb.models import OrchestrationExecution


#: Statuses where nothing more happens until a person acts (or never again).
def _settled(ex: OrchestrationExecution) -> bool:
    """Nothing more happens until a person acts (or never again): the machine's ``SETTLED_STATUSES``."""
    from specflow_nb.machine import SETTLED_STATUSES  # lazy: the CLI starts without the engine

    return ex.status in SETTLED_STATUSES


#: How long a local engine stays for a pending diagnosis (the decision helper's own limit is 10 minutes).
DIAGNOSIS_WAIT_SECONDS = 600.0


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
            async with anyio.create_task_group() as tg:
                tg.start_soon(view.follow_local, project, orch)  # the Now line, until the orchestration settles
                while not _settled(ex):
                    ex = await orch.wait_for_change("", ex.version, 30, known_id=ex.id) or ex
                    view.update(ex)
                tg.cancel_scope.cancel()
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
    if _settled(ex):
        return ex
    view.follow_remote(client, project_id)
    for update in client.iter_updates(project_id, ex.version, until_finished=True):
        view.update(update)
        ex = update
        if _settled(ex):
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
        _cli.console().print(_cli.escape(next_step_hint(ex, local=local)))
    return 1 if ex.status in (OrchestrationStatus.NEEDS_ATTENTION, OrchestrationStatus.FAILED) else 0


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
    if name == "resume" and ex.status is OrchestrationStatus.NEEDS_ATTENTION:
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


def cmd_orchestrate(args: argparse.Namespace) -> int:
    name = args.orchestrate_command
    args.notes = []  # what a command says before it is sent (see _command)
    if name == "start" and getattr(args, "dry_run", False):
        return _dry_run(args)
    local = _use_local(args)
    if local:
        return _orchestrate_local(args, name)
    return _orchestrate_remote(args, name)


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
            _cli.console(stderr=True).print(_cli.escape(note))
    return _finish(args, ex, local=True)


def _say_notes(args: argparse.Namespace) -> None:
    """What a command says before it is sent (e.g. a retry after a budget stop with the same limits), on stderr."""
    for note in args.notes:
        _cli.console(stderr=True).print(_cli.escape(note), highlight=False)


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
        _cli.console().print(_cli.escape(driver))
    _cli.console().print(_cli.escape(next_step_hint(ex, local=local)))
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
