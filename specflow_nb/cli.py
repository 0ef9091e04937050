"""``specflow-nb``: the terminal host.

Human output by default (rich), ``--json`` for machines (camelCase, the models' aliases). Exit codes: 0 ok, 1 a
user error (one ``error:`` line and a ``hint:`` line on stderr, no traceback), 2 a usage error (argparse's own).

Extending: each subcommand is one ``add_<name>(subparsers)`` function that registers its parser and sets
``func=cmd_<name>``; :data:`REGISTRARS` lists them in one place and :func:`build_parser` calls them in order. A
``cmd_*`` function takes the parsed ``argparse.Namespace`` and returns an exit code. Engine imports stay inside the
``cmd_*`` functions so ``specflow-nb --help`` starts fast and the CLI never imports Jupyter.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb.cli_common import common_options, console, print_json, project_path
from specflow_nb.cli_common import escape as _escape
from specflow_nb.cli_demo import add_demo
from specflow_nb.cli_orchestrate import add_orchestrate

if TYPE_CHECKING:
    from specflow_nb.tasks import ParsedTasks

__all__ = ["REGISTRARS", "build_parser", "common_options", "console", "main", "print_json", "project_path"]

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_NEXT_ACTION_TEXT = {
    "start_phase": "Start a phase: create a feature folder under specs/ (e.g. run /speckit.specify)",
    "run_design": "Run the design step (spec.md, plan.md and tasks.md)",
    "run_analyze": "Run the analyze step",
    "continue_implement": "Continue implementing tasks",
    "run_verify": "Run the verify step",
    "ready_to_merge": "Ready to merge",
    "fix_health": "Fix the health issues first",
    "awaiting_user_gate": "Awaiting your verification (USER GATE)",
    "archive_phase": "Archive the completed phase",
}


# --------------------------------------------------------------------------------------------------------------
# Helpers shared by commands


def tasks_file(project: Path, feature: str | None) -> Path:
    """The active feature's tasks.md; :class:`TasksFileMissing` when there is no feature folder or no tasks.md."""
    from specflow_nb.errors import TasksFileMissing
    from specflow_nb.project import find_feature_dir

    feature_dir = find_feature_dir(project, feature)
    if feature_dir is None:
        raise TasksFileMissing(
            f"No feature folder under {project / 'specs'}",
            hint="Create one (specs/0001-name/ with tasks.md) or pass --project to the right folder.",
        )
    path = feature_dir / "tasks.md"
    if not path.is_file():
        raise TasksFileMissing(
            f"No tasks.md in {feature_dir}", hint="Run the design step (or /speckit.tasks) to create tasks.md."
        )
    return path


def _progress_line(parsed: ParsedTasks) -> str:
    pct = round(parsed.done * 100 / parsed.total) if parsed.total else 0
    extra = f", {parsed.blocked} blocked" if parsed.blocked else ""
    return f"{parsed.done}/{parsed.total} tasks done ({pct}%{extra})"


# --------------------------------------------------------------------------------------------------------------
# status


def add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", parents=[common_options()], help="the phase's status: step, progress, next action")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from specflow_nb.project import no_project_status, project_status

    if args.json and not Path(getattr(args, "project", ".") or ".").expanduser().is_dir():
        # The original's NO_PROJECT answer: a status document (exit 0) that says what is wrong.
        folder = Path(getattr(args, "project", ".") or ".").expanduser()
        print_json(no_project_status(f"Project folder not found: {folder}").model_dump(mode="json"))
        return 0
    status = project_status(project_path(args), getattr(args, "feature", None))
    if args.json:
        print_json(status.model_dump(mode="json"))
        return 0
    out = console()
    ph, st, pr = status.phase, status.step, status.progress
    if ph.number is not None or ph.name:
        title = f"Phase {ph.number if ph.number is not None else '?'}: {ph.name or 'unnamed'}"
        out.print(f"[bold]{_escape(title)}[/bold]  (branch {_escape(ph.branch or '-')}, {_escape(ph.status or '-')})")
    else:
        out.print("[bold]No active phase[/bold]")
    out.print(f"Step: {_escape(st.current or '-')} ({st.index + 1}/5) · {_escape(st.status or '-')}")
    if pr.tasks_total:
        blocked = f", {pr.tasks_blocked} blocked" if pr.tasks_blocked else ""
        out.print(f"Tasks: {pr.tasks_completed}/{pr.tasks_total} ({pr.percentage}%{blocked})")
    color = {"ready": "green", "warning": "yellow", "error": "red"}[status.health.status]
    out.print(f"Health: [{color}]{status.health.status}[/{color}]")
    for issue in status.health.issues:
        out.print(f"  - [{color}]{issue.severity}[/{color}] {issue.code}: {_escape(issue.message)}")
    for blocker in status.blockers:
        out.print(f"Blocker: {_escape(blocker)}")
    out.print(f"Next: [bold]{_escape(_NEXT_ACTION_TEXT[status.next_action])}[/bold] ({status.next_action})")
    return 0


# --------------------------------------------------------------------------------------------------------------
# plan


def _batch_size(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= n <= 50:
        raise argparse.ArgumentTypeError(f"must be between 1 and 50, got {n}")
    return n


def add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", parents=[common_options()], help="the implement batches planned from tasks.md")
    p.add_argument("--json", action="store_true", help="machine-readable output (the BatchPlan)")
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=15,
        metavar="N",
        help="tasks per batch when tasks.md has no ## sections (1-50, default 15)",
    )
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    from specflow_nb.agent.prompts import prompt_sources
    from specflow_nb.tasks import plan_batches, read_tasks

    project = project_path(args)
    path = tasks_file(project, getattr(args, "feature", None))
    plan = plan_batches(read_tasks(path), batch_size_fallback=args.batch_size)
    # Which prompt each step will use: the project's command, the user's (CLAUDE_CONFIG_DIR or ~/.claude), built-in.
    sources = prompt_sources(project)
    if args.json:
        print_json({**plan.model_dump(mode="json"), "promptSources": [s.model_dump(mode="json") for s in sources]})
        return 0
    from rich.table import Table

    out = console()
    out.print(f"[bold]{_escape(plan.summary)}[/bold]")
    if plan.batches:
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("#", justify="right")
        table.add_column("Section")
        table.add_column("Tasks", justify="right")
        table.add_column("IDs")
        for b in plan.batches:
            table.add_row(str(b.index + 1), _escape(b.section), str(len(b.task_ids)), " ".join(b.task_ids))
        out.print(table)
    for w in plan.warnings:
        out.print(f"[yellow]warning:[/yellow] {_escape(w)}")
    out.print("Prompts:")
    for source in sources:
        out.print(f"  {_escape(source.describe())}")
    return 0


# --------------------------------------------------------------------------------------------------------------
# state set / state get


def add_state(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("state", parents=[common_options()], help="read or write .specflow/orchestration-state.json")
    verbs = p.add_subparsers(dest="state_command", metavar="{set,get}", required=True)
    s = verbs.add_parser("set", parents=[common_options()], help="set key=value pairs (dot paths, typed values)")
    s.add_argument("assignments", nargs="+", metavar="key=value", help="e.g. orchestration.step.current=implement")
    s.add_argument(
        "--json",
        action="store_true",
        help="print {status, command, updates[{key, value, previousValue}], state} (the original's shape)",
    )
    s.set_defaults(func=cmd_state_set)
    g = verbs.add_parser("get", parents=[common_options()], help="print the state, or one key's value")
    g.add_argument("key", nargs="?", help="a dot path, e.g. orchestration.step")
    g.add_argument("--json", action="store_true", help="print JSON")
    g.set_defaults(func=cmd_state_get)


def cmd_state_set(args: argparse.Namespace) -> int:
    from specflow_nb.contract import error_json, set_state
    from specflow_nb.errors import SpecflowError

    try:
        result = set_state(project_path(args), args.assignments)
    except SpecflowError as exc:
        if args.json:  # the original's error shape on stdout; the one-line error on stderr as always
            print_json(error_json("state set", exc.message, exc.hint, updates=[]))
        raise
    if args.json:
        print_json(result)
        return 0
    out = console()
    for item in args.assignments:
        key, _, value = item.partition("=")
        out.print(f"Set {_escape(key)} = {_escape(value)}")
    return 0


def cmd_state_get(args: argparse.Namespace) -> int:
    from specflow_nb.store import StateFile

    value = StateFile(project_path(args)).get(args.key)
    if args.json or isinstance(value, (dict, list)):
        print_json(value)
    else:
        sys.stdout.write(
            ("null" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)) + "\n"
        )
    return 0


# --------------------------------------------------------------------------------------------------------------
# mark


def add_mark(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mark", parents=[common_options()], help="check off tasks in tasks.md or checklist items (or undo, or block)"
    )
    p.add_argument(
        "ids",
        nargs="+",
        metavar="ID",
        help="task ids (T001, T1000), ranges (T001..T005) or checklist item ids (V-001, I-002) of checklists/*.md",
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--undo", "--incomplete", dest="undo", action="store_true", help="mark as not done")
    how.add_argument("--blocked", metavar="REASON", help="mark tasks as blocked, with a reason")
    p.add_argument("--json", action="store_true", help="machine-readable output (the original's shape)")
    p.set_defaults(func=cmd_mark)


def cmd_mark(args: argparse.Namespace) -> int:
    from specflow_nb.checklists import is_checklist_id
    from specflow_nb.errors import SpecflowError

    checklist_ids = [i for i in args.ids if is_checklist_id(i)]
    if checklist_ids:
        if len(checklist_ids) != len(args.ids):
            raise SpecflowError(
                "Cannot mix task and checklist IDs in one command", hint="Mark tasks and checklist items separately."
            )
        return _mark_checklist(args, checklist_ids)
    return _mark_tasks(args)


def _mark_json(
    *, new_status: str, marked: list[str], progress: dict[str, int], step_complete: bool, **rest: Any
) -> dict[str, Any]:
    """``mark --json``: the original's fields first, then ours (state, changed, unchanged, missing …)."""
    data: dict[str, Any] = {
        "status": "error" if rest.get("missing") else "success",
        "command": "mark",
        "marked": marked,
        "newStatus": new_status,
        "progress": progress,
        "next": rest.pop("next", None),
        "stepComplete": step_complete,
    }
    if step_complete:
        data["nextAction"] = rest.pop("next_action")
        data["message"] = rest.pop("message")
    rest.pop("next_action", None)
    rest.pop("message", None)
    data.update(rest)
    return data


def _mark_tasks(args: argparse.Namespace) -> int:
    from specflow_nb.contract import error_json, mark_next, task_progress
    from specflow_nb.errors import SpecflowError
    from specflow_nb.models import TaskState
    from specflow_nb.tasks import all_done, mark_tasks_file, read_tasks

    path = tasks_file(project_path(args), getattr(args, "feature", None))
    if args.blocked is not None:
        state, label, new_status = TaskState.BLOCKED, "blocked", "blocked"
    elif args.undo:
        state, label, new_status = TaskState.PENDING, "not done", "incomplete"
    else:
        state, label, new_status = TaskState.DONE, "done", "complete"
    result = mark_tasks_file(path, args.ids, state, args.blocked)
    parsed = read_tasks(path)
    done = all_done(parsed)
    problem = None
    if result.missing:
        known = ", ".join(parsed.by_id()) or "none"
        problem = SpecflowError(
            f"Unknown task id(s): {', '.join(result.missing)}",
            hint=f"Task ids look like T001 (ranges T001..T005) and must be in {path} (known: {_shorten(known)}).",
        )
    if args.json:
        data = _mark_json(
            new_status=new_status,
            marked=[*result.changed, *result.unchanged],
            progress=task_progress(parsed),
            step_complete=done,
            next=mark_next(parsed),
            next_action="run_verify",
            message="All tasks complete! Ready for verification.",
            itemType="task",
            state=state.value,
            changed=result.changed,
            unchanged=result.unchanged,
            missing=result.missing,
        )
        if problem is not None:
            data["error"] = error_json("mark", problem.message, problem.hint)["error"]
        print_json(data)
    else:
        out = console()
        if result.changed:
            out.print(f"Marked {', '.join(result.changed)} {label}")
        if result.unchanged:
            out.print(f"Already {label}: {', '.join(result.unchanged)}")
        out.print(_progress_line(parsed))
    if problem is not None:
        raise problem
    return 0


def _mark_checklist(args: argparse.Namespace, ids: list[str]) -> int:
    from specflow_nb.checklists import mark_items
    from specflow_nb.contract import error_json
    from specflow_nb.errors import SpecflowError, TasksFileMissing
    from specflow_nb.project import find_feature_dir

    if args.blocked is not None:
        raise SpecflowError("Checklist items cannot be blocked", hint="Use --blocked with task IDs (T001) only.")
    feature_dir = find_feature_dir(project_path(args), getattr(args, "feature", None))
    if feature_dir is None:
        raise TasksFileMissing("No feature folder under specs/", hint="Start a phase first (specs/NNN-name/).")
    result = mark_items(feature_dir, ids, done=not args.undo)
    total, completed = len(result.items), result.completed
    next_item = next((i for i in result.items if not i.done), None)
    problem = None
    if result.missing:
        problem = SpecflowError(
            f"Unknown checklist item IDs: {', '.join(result.missing)}",
            hint=f"Checklist items are lines like '- [ ] V-001 …' in {feature_dir / 'checklists'}/*.md.",
        )
    if args.json:
        data = _mark_json(
            new_status="incomplete" if args.undo else "complete",
            marked=[*result.changed, *result.unchanged],
            progress={
                "completed": completed,
                "total": total,
                "percentage": round(completed * 100 / total) if total else 0,
            },
            step_complete=result.all_done,
            next={"id": next_item.id, "description": next_item.description} if next_item else None,
            next_action="ready_to_close",
            message="All checklists complete! Ready to close phase.",
            itemType="checklist",
            changed=result.changed,
            unchanged=result.unchanged,
            missing=result.missing,
        )
        if problem is not None:
            data["error"] = error_json("mark", problem.message, problem.hint)["error"]
        print_json(data)
    else:
        out = console()
        label = "not done" if args.undo else "done"
        if result.changed:
            out.print(f"Marked {', '.join(result.changed)} {label}")
        if result.unchanged:
            out.print(f"Already {label}: {', '.join(result.unchanged)}")
        out.print(f"{completed}/{total} checklist items done")
    if problem is not None:
        raise problem
    return 0


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------------------
# next


def add_next(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("next", parents=[common_options()], help="the next task to work on")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_next)


def cmd_next(args: argparse.Namespace) -> int:
    from specflow_nb.contract import next_json, next_none
    from specflow_nb.errors import TasksFileMissing
    from specflow_nb.tasks import all_done, next_task, read_tasks

    try:
        parsed = read_tasks(tasks_file(project_path(args), getattr(args, "feature", None)))
    except TasksFileMissing:
        if not args.json:
            raise
        print_json(next_none("no_feature"))  # the original answers, it does not fail
        return 0
    task = next_task(parsed)
    if task is None:
        reason = (
            "tasks.md holds no tasks"
            if not parsed.tasks
            else "all tasks are done"
            if all_done(parsed)
            else "pending tasks wait on blocked or unfinished tasks"
            if parsed.pending
            else "the remaining tasks are blocked"
        )
    if args.json:
        print_json(next_json(parsed))
        return 0
    out = console()
    if task is None:
        out.print(f"No task to start: {reason}. {_progress_line(parsed)}")
    else:
        markers = " ".join(
            m for m, on in (("[P]", task.parallel), ("[V]", task.verification), ("[W]", task.wiring)) if on
        )
        out.print(f"[bold]{task.id}[/bold] {_escape(markers + ' ' if markers else '')}{_escape(task.description)}")
        out.print(f"Section: {_escape(task.section)} · line {task.line}")
        if task.depends_on:
            out.print(f"Depends on: {', '.join(task.depends_on)} (done)")
        out.print(_progress_line(parsed))
    return 0


# --------------------------------------------------------------------------------------------------------------
# The parser and the entry point

#: Every subcommand's registrar, in help order. Add new subcommands (orchestrate, demo, …) here.
REGISTRARS: list[Registrar] = [add_status, add_plan, add_state, add_mark, add_next]


def build_parser() -> argparse.ArgumentParser:
    """The full ``specflow-nb`` parser (global options, then one subparser per registrar)."""
    parser = argparse.ArgumentParser(
        prog="specflow-nb",
        description="Complete a spec-driven development phase with an AI coding agent.",
    )
    parser.add_argument("--project", metavar="PATH", default=".", help="project folder (default: .)")
    parser.add_argument("--feature", metavar="NAME", default=None, help="feature folder under specs/ (default: newest)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in [*REGISTRARS, add_orchestrate, add_demo]:
        register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("specflow_nb")
    except PackageNotFoundError:
        return "unknown"


def report_error(exc: BaseException) -> None:
    """The one-line user error on stderr (plus a hint line when there is one)."""
    message = getattr(exc, "message", None) or str(exc)
    sys.stderr.write(f"error: {message}\n")
    hint = getattr(exc, "hint", None)
    if hint:
        sys.stderr.write(f"hint: {hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``specflow-nb`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    from specflow_nb.errors import SpecflowError

    try:
        return func(args)
    except SpecflowError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
