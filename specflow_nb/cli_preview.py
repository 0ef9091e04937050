"""``orchestrate start --dry-run``: what a start would do (plan, estimate, checks, prompts), starting nothing.

Apart from the commands because it only reads a preview and prints it; nothing it does changes a project.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from specflow_nb import cli_common as _cli

if TYPE_CHECKING:
    from specflow_nb.models import OrchestrationConfig

from specflow_nb.cli_config import build_config
from specflow_nb.cli_engine import _client, _engine_settings, _remote_project_id


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
    con.print(f"[bold]{_cli.escape(plan.get('summary') or 'No batch plan (design writes tasks.md).')}[/bold]")
    for batch in plan.get("batches") or []:
        con.print(f"  {batch['index'] + 1}. {_cli.escape(batch['section'])}: {' '.join(batch['taskIds'])}")
    for warning in plan.get("warnings") or []:  # the plan's own (fallback sizing); the checks' come below
        con.print(f"[yellow]warning:[/yellow] {_cli.escape(warning)}")
    if preview.get("estimate"):
        _print_estimate(con, preview["estimate"])
    preflight = preview.get("preflight") or {}
    for problem in preflight.get("problems") or []:
        con.print(f"[red]problem:[/red] {_cli.escape(problem)}")
    for warning in preflight.get("warnings") or []:
        con.print(f"[yellow]warning:[/yellow] {_cli.escape(warning)}")
    con.print("Prompts:")
    from specflow_nb.agent.prompts import PromptSource

    for source in preview.get("promptSources") or []:
        con.print(f"  {_cli.escape(PromptSource.model_validate(source).describe())}")
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
        (_cli.escape(f"{b.index + 1}. {b.title}"), str(b.task_count), f"~{fmt_seconds(b.seconds)}", fmt_usd(b.usd))
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
    con.print(_cli.escape(est.basis_label), soft_wrap=False)
    for note in est.notes:
        con.print(_cli.escape(note), soft_wrap=False)
    for warning in est.warnings:
        con.print(f"[yellow]over budget:[/yellow] {_cli.escape(warning)}", soft_wrap=False)


def _local_preview(args: argparse.Namespace, config: OrchestrationConfig) -> dict[str, Any]:
    from specflow_nb.orchestrator import Orchestrator

    # No loop, no reconcile: a dry run never takes anything over.
    orch = Orchestrator(_cli.project_path(args), _engine_settings(observer=True))
    preview: dict[str, Any] = orch.preview("", config).model_dump(mode="json")
    return preview
