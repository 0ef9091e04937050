"""Helpers for the orchestrator tests: sample projects, the demo agent, scripts, and bounded waits."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample
from specflow_nb.models import OrchestrationExecution
from specflow_nb.orchestrator import Orchestrator

DEMO_AGENT = str(Path(sys.executable).parent / "specflow-nb-demo-agent")
WORKFLOWS = Path(".specflow") / "workflows"

#: Statuses in which an orchestration waits for a person (or is finished).
RESTING = ("paused", "waiting_merge", "needs_attention", "completed", "failed", "cancelled")


def tasks_md(sections: int, total: int, *, title: str = "Tasks: big feature") -> str:
    """A tasks.md with ``total`` tasks spread over ``sections`` ``##`` sections (in order, T001…)."""
    per, extra = divmod(total, sections)
    lines = [f"# {title}", ""]
    n = 0
    for s in range(sections):
        lines += [f"## Phase {s + 1}: Part {s + 1}", ""]
        for _ in range(per + (1 if s < extra else 0)):
            n += 1
            lines.append(f"- [ ] T{n:03d} Do thing {n} in `src/mod{n}.py`")
        lines.append("")
    return "\n".join(lines)


def big_project(dest: Path, sections: int = 6, total: int = 50) -> Path:
    """The sample project with its tasks.md replaced by ``total`` tasks in ``sections`` sections (committed)."""
    import subprocess

    root = prepare_sample(dest)
    (root / "specs" / SAMPLE_FEATURE / "tasks.md").write_text(tasks_md(sections, total), encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "commit", "-qam", "50 tasks"], cwd=root, check=True, capture_output=True)
    return root


def feature_tasks(project: Path) -> Path:
    return project / "specs" / SAMPLE_FEATURE / "tasks.md"


def write_script(path: Path, rules: list[dict[str, Any]], default: str = "success") -> Path:
    path.write_text(json.dumps({"default": default, "rules": rules}), encoding="utf-8")
    return path


def run_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def agent_runs(path: Path) -> list[dict[str, Any]]:
    """The demo agent's runs of steps, batches and healers (the decision helper's diagnosis runs left out)."""
    return [r for r in run_log(path) if not r.get("diagnosis")]


def run_folder(project: Path, run_id: str) -> Path:
    return project / WORKFLOWS / run_id


def argv_of(project: Path, run_id: str) -> list[str]:
    return list(json.loads((run_folder(project, run_id) / "argv.json").read_text())["argv"])


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def base_config(**extra: Any) -> dict[str, Any]:
    """Design and analyze skipped (the sample has its artifacts), the demo agent, no verify command."""
    return {"agentCommand": DEMO_AGENT, "skipDesign": True, "skipAnalyze": True, **extra}


async def wait_until(
    orch: Orchestrator,
    project_id: str,
    until: Callable[[OrchestrationExecution], bool],
    *,
    since: int = 0,
    timeout: float = 60,
) -> OrchestrationExecution:
    """The first state (version > since) for which ``until`` holds; fails after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while True:
            ex = orch.status(project_id)
            if ex is not None and ex.version > since and until(ex):
                return ex
            version = ex.version if ex is not None else 0
            await orch.wait_for_change(project_id, version, 5)


async def settle(orch: Orchestrator, project_id: str, *, timeout: float = 60) -> OrchestrationExecution:
    """Wait until the orchestration rests (needs a person or is finished) with no run in flight (a diagnosis
    helper included: its answer and cost have landed)."""
    return await wait_until(
        orch,
        project_id,
        lambda ex: ex.status.value in RESTING and ex.current_run is None and not ex.pending_diagnoses,
        timeout=timeout,
    )


def decisions(ex: OrchestrationExecution) -> list[str]:
    return [d.decision for d in ex.decision_log]
