"""An estimate before Start (issue 15.4): how long the plan should take and what it should cost, per batch, per step
and in total, and whether that fits the budget.

Where the figures come from (``Estimate.basis``):

- **history**: this project's past orchestrations, read from their records in ``.specflow/workflows/`` (whichever
  host wrote them) — the median of the per-task seconds and USD of every *completed* batch (failed, healed, skipped
  and zero-task batches, and batches completed without a run, are left out; the median shrugs off a batch that
  waited on a question), and per step the median of the past runs of that step (``outcome.json`` of the step's run
  folder: ``duration_s`` and ``cost_usd``). Only records of the same agent (claude or codex) count: prices differ.
- **defaults**: while the project has no completed batch, the host's settings ``estimate_seconds_per_task``,
  ``estimate_usd_per_task``, ``estimate_step_seconds`` and ``estimate_step_usd`` (EngineSettings; the server's
  ``SpecflowExtension`` traitlets of the same names), labelled as such.

Which steps count is the machine's rule (:func:`specflow_nb.machine.planned_steps`: skip flags and smart config).
The built-in git merge runs no agent: a few seconds, no cost. Healing is not counted (a note says so).

:func:`budget_warnings` is pure: the engine uses it for the preview and the Start form calls it again with the
budget fields as the user types (no new request). Nothing here is per task: a 200,000-task plan gives one
:class:`~specflow_nb.models.BatchEstimate` per batch and reads no more history than a small one.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import Field

from specflow_nb.machine import ProjectSnapshot, planned_steps
from specflow_nb.models import (
    MAX_BUDGET_USD,
    BatchEstimate,
    BatchPlan,
    BatchStatus,
    BudgetConfig,
    Estimate,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    StepEstimate,
    StepState,
)

logger = logging.getLogger("specflow_nb.estimate")

P = OrchestrationPhase

# ---- defaults (the settings' defaults; a host replaces them) ---------------------------------------------------

#: The keys of the per-step settings, and their values' ranges (a week; the largest budget).
EstimatedStep = Literal["design", "analyze", "verify", "merge"]
EstimateSeconds = Annotated[float, Field(ge=0, le=604_800, allow_inf_nan=False)]
EstimateUsd = Annotated[float, Field(ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)]

#: One task of a batch: about two minutes and fifteen cents of a Claude Code run (sonnet).
DEFAULT_SECONDS_PER_TASK = 120.0
DEFAULT_USD_PER_TASK = 0.15
#: Each step's run (the built-in git merge is not an agent run: see BUILTIN_MERGE_SECONDS).
DEFAULT_STEP_SECONDS: dict[EstimatedStep, float] = {"design": 600.0, "analyze": 180.0, "verify": 300.0, "merge": 120.0}
DEFAULT_STEP_USD: dict[EstimatedStep, float] = {"design": 1.0, "analyze": 0.3, "verify": 0.5, "merge": 0.2}
#: The engine's own git merge: no agent, no cost.
BUILTIN_MERGE_SECONDS = 5.0
#: The steps an estimate names (implement is the batches).
ESTIMATED_STEPS: tuple[OrchestrationPhase, ...] = (P.DESIGN, P.ANALYZE, P.VERIFY, P.MERGE)
#: How many of the project's newest orchestrations the history reads.
HISTORY_RECORDS = 50
#: outcome.json files larger than this are not read (a run's outcome is a few KB).
MAX_OUTCOME_BYTES = 256 * 1024
#: No figure exceeds this (about 30 years, or 10¹² USD): whatever a record or setting says, numbers stay finite.
_CEILING = 1e12
#: A batch title in a warning is cut to this many characters.
_TITLE_CHARS = 60

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_SETTINGS_NAMES = "estimate_seconds_per_task and estimate_usd_per_task"
_STEP_SETTINGS_NAMES = "estimate_step_seconds and estimate_step_usd"


# ---- words -----------------------------------------------------------------------------------------------------


def fmt_usd(value: float) -> str:
    """``$4.50``, ``$1,234.00``; ``<$0.01`` for a positive amount under a cent."""
    if 0 < value < 0.005:
        return "<$0.01"
    return f"${value:,.2f}"


def fmt_seconds(value: float) -> str:
    """An estimate's duration, no more precise than an estimate is: ``12s``, ``6 min``, ``1h 02m``, ``3d 04h``."""
    seconds = int(max(0.0, min(value, _CEILING)))
    if seconds < 60:
        return f"{seconds}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60}h {minutes % 60:02d}m"
    hours = round(seconds / 3600)
    return f"{hours // 24}d {hours % 24:02d}h"


def total_text(estimate: Estimate) -> str:
    """ "~1h 02m · $4.50 for 9 tasks in 3 batches and 2 steps" (the headline of an estimate)."""
    parts = []
    if estimate.batches:
        noun = "batch" if len(estimate.batches) == 1 else "batches"
        parts.append(f"{estimate.task_count} tasks in {len(estimate.batches)} {noun}")
    if estimate.steps:
        parts.append(f"{len(estimate.steps)} step{'s' if len(estimate.steps) != 1 else ''}")
    what = " and ".join(parts) or "nothing to run"
    return f"~{fmt_seconds(estimate.total_seconds)} · {fmt_usd(estimate.total_usd)} for {what}"


def batch_text(batch: BatchEstimate) -> str:
    """ "Batch 2 · Phase 2: Core · 4 tasks · ~8m 00s · $0.60" (one line per batch)."""
    tasks = f"{batch.task_count} task{'s' if batch.task_count != 1 else ''}"
    return f"Batch {batch.index + 1} · {batch.title} · {tasks} · ~{fmt_seconds(batch.seconds)} · {fmt_usd(batch.usd)}"


def step_text(step: StepEstimate) -> str:
    """ "verify · ~5m 00s · $0.50 (default)" (one line per step)."""
    basis = {
        "history": f"median of {step.runs} past run{'s' if step.runs != 1 else ''}",
        "defaults": "default",
        "builtin": "built-in git merge",
    }[step.basis]
    return f"{step.step.value} · ~{fmt_seconds(step.seconds)} · {fmt_usd(step.usd)} ({basis})"


def _title(text: str) -> str:
    return text if len(text) <= _TITLE_CHARS else text[: _TITLE_CHARS - 1] + "…"


# ---- the budget check (pure: the form runs it again as the budget fields change) --------------------------------


def budget_warnings(estimate: Estimate, budget: BudgetConfig) -> list[str]:
    """Where ``estimate`` exceeds ``budget``: the total over maxTotal, batches and steps over maxPerBatch (each run
    is started with at most maxPerBatch), each saying by how much and which setting to raise."""
    warnings: list[str] = []
    if estimate.total_usd > budget.max_total:
        over = estimate.total_usd - budget.max_total
        warnings.append(
            f"The estimated total {fmt_usd(estimate.total_usd)} is {fmt_usd(over)} over Max total (budget.maxTotal "
            f"{fmt_usd(budget.max_total)}): the orchestration would stop at 'Budget reached' before the end. Raise "
            "Max total or plan fewer tasks."
        )
    over_batches = [b for b in estimate.batches if b.usd > budget.max_per_batch]
    if over_batches:
        worst = max(over_batches, key=lambda b: b.usd)
        by = fmt_usd(worst.usd - budget.max_per_batch)
        name = f"batch {worst.index + 1} ({_title(worst.title)})"
        if len(over_batches) == 1:
            head = f"Batch {worst.index + 1} ({_title(worst.title)}) is estimated at {fmt_usd(worst.usd)}, {by} over"
        else:
            head = (
                f"{len(over_batches)} batches are estimated over Max per batch; the largest, {name}, at "
                f"{fmt_usd(worst.usd)} is {by} over"
            )
        warnings.append(
            f"{head} Max per batch (budget.maxPerBatch {fmt_usd(budget.max_per_batch)}): its run would stop at its "
            "budget. Raise Max per batch or split the section into smaller ones."
        )
    for step in estimate.steps:
        if step.usd > budget.max_per_batch:
            warnings.append(
                f"The {step.step.value} step is estimated at {fmt_usd(step.usd)}, "
                f"{fmt_usd(step.usd - budget.max_per_batch)} over Max per batch (budget.maxPerBatch "
                f"{fmt_usd(budget.max_per_batch)}), which also caps each step's run. Raise Max per batch."
            )
    return warnings


# ---- history ---------------------------------------------------------------------------------------------------


@dataclass
class History:
    """The per-task and per-step figures of a project's past orchestrations (one agent's)."""

    task_seconds: list[float] = field(default_factory=list)
    task_usd: list[float] = field(default_factory=list)
    orchestrations: int = 0
    batches: int = 0
    tasks: int = 0
    step_seconds: dict[str, list[float]] = field(default_factory=dict)
    step_usd: dict[str, list[float]] = field(default_factory=dict)
    #: Agents of past records that did not count (another agent than the one asked about).
    other_agents: set[str] = field(default_factory=set)


def _number(value: Any) -> float | None:
    """A finite, non-negative number from a file, else None (a hand-edited or half-written file counts for nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0 <= number <= _CEILING else None


def _run_figures(project: Path, run_id: str | None) -> tuple[float, float] | None:
    """(seconds, USD) of a finished, successful run from its ``outcome.json``; None when there is none."""
    if not run_id or not _RUN_ID.match(run_id) or ".." in run_id:
        return None
    folder = project / ".specflow" / "workflows" / run_id
    path = folder / "outcome.json"
    try:
        if folder.is_symlink() or path.is_symlink() or path.stat().st_size > MAX_OUTCOME_BYTES:
            return None  # nothing is read through a link (the run folder may be linked out of the project)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("failure") or data.get("is_error") or data.get("exit_code") not in (0,):
        return None
    seconds, usd = _number(data.get("duration_s")), _number(data.get("cost_usd"))
    if seconds is None or usd is None:
        return None
    return seconds, usd


def read_history(project: Path, records: Sequence[OrchestrationExecution], agent: str) -> History:
    """What the newest :data:`HISTORY_RECORDS` orchestrations of ``agent`` in ``records`` say per task and step."""
    history = History()
    for ex in list(records)[:HISTORY_RECORDS]:
        if ex.config.agent != agent:
            history.other_agents.add(ex.config.agent)
            continue
        counted = False
        for batch in ex.batches.items:
            n = len(batch.task_ids)
            if batch.status is not BatchStatus.COMPLETED or n == 0 or not batch.workflow_execution_id:
                continue
            if batch.started_at is None or batch.completed_at is None:
                continue
            seconds = _number((batch.completed_at - batch.started_at).total_seconds())
            usd = _number(batch.cost_usd)
            if seconds is None or usd is None:
                continue
            history.task_seconds.append(seconds / n)
            history.task_usd.append(usd / n)
            history.batches += 1
            history.tasks += n
            counted = True
        for step in ESTIMATED_STEPS:
            if ex.step_status.get(step) is not StepState.COMPLETED:
                continue
            figures = _run_figures(project, getattr(ex.executions, step.value))
            if figures is None:
                continue
            history.step_seconds.setdefault(step.value, []).append(figures[0])
            history.step_usd.setdefault(step.value, []).append(figures[1])
        history.orchestrations += counted
    return history


# ---- the estimate ----------------------------------------------------------------------------------------------


def _setting(settings: Any, name: str, default: float) -> float:
    value = _number(getattr(settings, name, None))
    return default if value is None else value


def _step_setting(settings: Any, name: str, step: EstimatedStep, defaults: dict[EstimatedStep, float]) -> float:
    table = getattr(settings, name, None) or {}
    value = _number(table.get(step)) if isinstance(table, dict) else None
    return defaults[step] if value is None else value


def _snapshot_of(project: Path) -> ProjectSnapshot:
    """The facts :func:`planned_steps` decides on, read from the project's active feature folder."""
    from specflow_nb.project import collect_artifacts, find_feature_dir

    try:
        art = collect_artifacts(find_feature_dir(project))
    except Exception:  # no project: nothing is complete, every step counts
        return ProjectSnapshot()
    return ProjectSnapshot.of_artifacts(art)


def _merge_by_agent(project: Path, config: OrchestrationConfig, settings: Any) -> bool:
    import os

    from specflow_nb.agent.prompts import has_project_command, prompt_agent

    env = {**os.environ, **(getattr(settings, "agent_env", None) or {})}
    with prompt_agent(config.agent):
        return has_project_command(project, "merge", env)


def _records_of(project: Path) -> list[OrchestrationExecution]:
    from specflow_nb.store import OrchestrationStore

    try:
        return OrchestrationStore(project).list()
    except Exception as exc:  # an unreadable folder: no history, the defaults apply
        logger.info("estimate: no history for %s: %s", project, exc)
        return []


def _round_usd(value: float) -> float:
    return round(min(max(value, 0.0), _CEILING), 2)


def _round_seconds(value: float) -> float:
    return float(round(min(max(value, 0.0), _CEILING)))


def estimate_plan(
    project: Path,
    plan: BatchPlan | None,
    config: OrchestrationConfig,
    settings: Any,
    *,
    snapshot: ProjectSnapshot | None = None,
    records: Sequence[OrchestrationExecution] | None = None,
    merge_by_agent: bool | None = None,
) -> Estimate:
    """The estimate of starting ``plan`` with ``config`` on ``project`` (see the module's docstring).

    ``settings`` is the engine's EngineSettings (any object with the ``estimate_*`` attributes; missing ones take
    the defaults). ``snapshot``, ``records`` and ``merge_by_agent`` are read from the project when not given (the
    preview passes what it has already read)."""
    project = Path(project)
    snap = snapshot if snapshot is not None else _snapshot_of(project)
    steps_run = planned_steps(config, snap)
    history = read_history(project, records if records is not None else _records_of(project), config.agent)

    # per task
    if history.batches:
        basis = "history"
        seconds_per_task = statistics.median(history.task_seconds)
        usd_per_task = statistics.median(history.task_usd)
    else:
        basis = "defaults"
        seconds_per_task = _setting(settings, "estimate_seconds_per_task", DEFAULT_SECONDS_PER_TASK)
        usd_per_task = _setting(settings, "estimate_usd_per_task", DEFAULT_USD_PER_TASK)

    # batches (implement runs and there is a plan)
    implement = P.IMPLEMENT in steps_run
    implement_known = plan is not None or not implement
    batches: list[BatchEstimate] = []
    total_seconds = total_usd = 0.0
    task_count = 0
    if implement and plan is not None:
        for i, planned in enumerate(plan.batches):
            n = len(planned.task_ids)
            task_count += n
            seconds, usd = n * seconds_per_task, n * usd_per_task
            total_seconds += seconds
            total_usd += usd
            batches.append(
                BatchEstimate(
                    index=i, title=planned.section, task_count=n, seconds=_round_seconds(seconds), usd=_round_usd(usd)
                )
            )

    # steps
    merge_agent = (
        merge_by_agent
        if merge_by_agent is not None
        else (P.MERGE in steps_run and _merge_by_agent(project, config, settings))
    )
    steps: list[StepEstimate] = []
    for step in (s for s in steps_run if s in ESTIMATED_STEPS):
        name = cast(EstimatedStep, step.value)
        if step is P.MERGE and not merge_agent:
            item = StepEstimate(step=step, seconds=BUILTIN_MERGE_SECONDS, usd=0.0, basis="builtin")
        elif history.step_seconds.get(name):
            past_seconds, past_usd = history.step_seconds[name], history.step_usd[name]
            item = StepEstimate(
                step=step,
                seconds=_round_seconds(statistics.median(past_seconds)),
                usd=_round_usd(statistics.median(past_usd)),
                basis="history",
                runs=len(past_seconds),
            )
        else:
            item = StepEstimate(
                step=step,
                seconds=_round_seconds(_step_setting(settings, "estimate_step_seconds", name, DEFAULT_STEP_SECONDS)),
                usd=_round_usd(_step_setting(settings, "estimate_step_usd", name, DEFAULT_STEP_USD)),
                basis="defaults",
            )
        steps.append(item)
        total_seconds += item.seconds
        total_usd += item.usd

    per_task = f"{fmt_seconds(seconds_per_task)} and {fmt_usd(usd_per_task)} per task"
    if basis == "history":
        label = (
            f"From this project's past runs: the median of {history.tasks} task{'s' if history.tasks != 1 else ''} "
            f"in {history.batches} completed batch{'es' if history.batches != 1 else ''} of "
            f"{history.orchestrations} orchestration{'s' if history.orchestrations != 1 else ''}, {per_task}."
        )
        defaulted = [s.step.value for s in steps if s.basis == "defaults"]
        if defaulted:
            label += f" Steps not run here before ({', '.join(defaulted)}) use the defaults ({_STEP_SETTINGS_NAMES})."
    else:
        why = "no completed batch in this project's past runs yet"
        if history.other_agents:
            why = f"this project's past runs used {', '.join(sorted(history.other_agents))}, not {config.agent}"
        label = f"Defaults ({why}): {per_task} — the settings {_SETTINGS_NAMES}; steps: {_STEP_SETTINGS_NAMES}."

    notes: list[str] = []
    if not implement_known:
        notes.append("No tasks.md yet: design writes it, so implement's batches are not in the total.")
    elif not implement and not config.skip_implement and snap.all_tasks_done:
        notes.append("Every task in tasks.md is done: implement will be skipped.")
    if implement and batches and config.auto_heal_enabled and config.max_heal_attempts > 0:
        notes.append(
            f"Healing is not counted: failed batches may cost up to Healing budget ({fmt_usd(config.budget.healing_budget)}) more."
        )

    result = Estimate(
        batches=batches,
        steps=steps,
        task_count=task_count,
        seconds_per_task=_round_seconds(seconds_per_task) if seconds_per_task >= 1 else round(seconds_per_task, 3),
        usd_per_task=round(min(usd_per_task, _CEILING), 4),
        total_seconds=_round_seconds(total_seconds),
        total_usd=_round_usd(total_usd),
        basis=basis,
        basis_label=label,
        history_orchestrations=history.orchestrations,
        history_batches=history.batches,
        history_tasks=history.tasks,
        implement_known=implement_known,
        budget=config.budget,
        notes=notes,
    )
    result.warnings = budget_warnings(result, config.budget)
    return result
