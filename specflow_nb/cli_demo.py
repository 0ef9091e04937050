"""``specflow-nb demo``: complete the bundled sample project's phase with the demo agent, in this process.

Apart from the orchestrate commands (which it reuses to run a local engine) because it prepares its own project.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb import cli_common as _cli
from specflow_nb.models import OrchestrationStatus

if TYPE_CHECKING:
    pass

from specflow_nb.cli_config import build_config
from specflow_nb.cli_engine import _engine_settings
from specflow_nb.cli_orchestrate import _run_local
from specflow_nb.cli_view import LiveView
from specflow_nb.demo import demo_agent_command

# --------------------------------------------------------------------------------------------------------------
# The demo


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
    return 0 if ex.status is OrchestrationStatus.COMPLETED else 1


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="complete the bundled sample project's phase with the demo agent")
    p.add_argument("--dest", metavar="PATH", help="where to put the sample project (default: a new temp folder)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config field, e.g. maxHealAttempts=2")
    p.add_argument("--json", action="store_true", help="one JSON state per change instead of the live view")
    p.add_argument("--no-heal", action="store_true", help="no failed batch (by default batch 2 fails and is healed)")
    p.set_defaults(func=cmd_demo)
