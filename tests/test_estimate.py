"""The estimate before start (specflow_nb.estimate): from the defaults on a fresh project, from this project's past
runs after a real demo phase, the budget check, records other hosts wrote, and a 200,000-task plan."""

from __future__ import annotations

import json
import math
import statistics
import time
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.estimate import budget_warnings, estimate_plan, read_history
from specflow_nb.machine import new_execution
from specflow_nb.models import (
    BatchItem,
    BatchPlan,
    BatchStatus,
    BatchTracking,
    BudgetConfig,
    OrchestrationConfig,
    OrchestrationPhase,
    PlannedBatch,
    StepState,
    utcnow,
)
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore
from tests.support.orch_helpers import DEMO_AGENT, big_project, feature_tasks, settle, write_script

P = OrchestrationPhase
#: The sample's four sections (tasks per batch).
SAMPLE_SIZES = [3, 5, 8, 4]


def _steps(estimate) -> dict[str, tuple[float, float, str]]:
    return {s.step.value: (s.seconds, s.usd, s.basis) for s in estimate.steps}


def _finite(data: object) -> None:
    """Every number of a JSON document is finite (json.dumps refuses NaN/inf with allow_nan=False)."""
    json.dumps(data, allow_nan=False)


# ---------------------------------------------------------------------------------------------------- defaults


def test_a_fresh_project_is_estimated_from_the_defaults_which_are_settings(tmp_path: Path) -> None:
    prepare_sample(tmp_path / "todo")
    config = {"agentCommand": DEMO_AGENT}
    est = Orchestrator(tmp_path).preview("todo", config).estimate
    assert est is not None and est.basis == "defaults" and est.history_batches == 0
    assert "Defaults" in est.basis_label
    assert "estimate_seconds_per_task" in est.basis_label and "estimate_usd_per_task" in est.basis_label
    assert "estimate_step_seconds" in est.basis_label and "estimate_step_usd" in est.basis_label
    assert [b.task_count for b in est.batches] == SAMPLE_SIZES and est.task_count == 20
    assert est.batches[0].title == "Phase 1: Setup" and [b.index for b in est.batches] == [0, 1, 2, 3]
    assert [b.usd for b in est.batches] == [0.45, 0.75, 1.2, 0.6]  # $0.15 a task
    assert [b.seconds for b in est.batches] == [360, 600, 960, 480]  # 2 minutes a task
    # the sample has spec, plan and tasks: design is skipped (smart config), so it is not counted
    assert _steps(est) == {
        "analyze": (180, 0.3, "defaults"),
        "verify": (300, 0.5, "defaults"),
        "merge": (5, 0.0, "builtin"),
    }
    assert est.total_usd == pytest.approx(3.0 + 0.8) and est.total_seconds == 2400 + 480 + 5
    assert est.warnings == [] and any("Healing is not counted" in n for n in est.notes)
    _finite(est.model_dump(mode="json"))

    # the defaults are the host's settings; a step left out of the per-step table keeps its default
    settings = EngineSettings(
        estimate_seconds_per_task=30, estimate_usd_per_task=0.5, estimate_step_usd={"verify": 2.0}
    )
    est = Orchestrator(tmp_path, settings).preview("todo", {**config, "skipAnalyze": True}).estimate
    assert est is not None and [b.usd for b in est.batches] == [1.5, 2.5, 4.0, 2.0]
    assert [b.seconds for b in est.batches] == [90, 150, 240, 120]
    assert _steps(est) == {"verify": (300, 2.0, "defaults"), "merge": (5, 0.0, "builtin")}
    assert "30s and $0.50 per task" in est.basis_label


def test_settings_refuse_figures_that_are_not_finite_or_negative() -> None:
    from pydantic import ValidationError

    for bad in (
        {"estimate_usd_per_task": float("nan")},
        {"estimate_seconds_per_task": -1},
        {"estimate_step_seconds": {"design": float("inf")}},
        {"estimate_step_usd": {"implement": 1.0}},  # implement is the batches: per task
    ):
        with pytest.raises(ValidationError):
            EngineSettings(**bad)


def test_the_design_step_counts_when_design_will_run_and_without_tasks_md_implement_is_unknown(
    tmp_path: Path,
) -> None:
    project = prepare_sample(tmp_path / "todo")
    feature_tasks(project).unlink()  # design will write tasks.md
    est = Orchestrator(tmp_path).preview("todo", {"agentCommand": DEMO_AGENT}).estimate
    assert est is not None and not est.implement_known and est.batches == []
    assert list(_steps(est)) == ["design", "analyze", "verify", "merge"]
    assert est.total_usd == pytest.approx(1.0 + 0.3 + 0.5)
    assert any("No tasks.md yet" in n for n in est.notes)


# ---------------------------------------------------------------------------------------------------- history


def test_after_a_real_demo_phase_the_estimate_follows_this_projects_runs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = big_project(root / "big", sections=3, total=9)
    costs = {1: 0.3, 2: 0.6, 3: 0.9}  # per task: 0.10, 0.20, 0.30 -> median 0.20
    script = write_script(
        tmp_path / "script.json",
        [
            {"match": f'Execute only the "Phase {n}: Part {n}" section', "scenario": "slow", "cost": cost}
            for n, cost in costs.items()
        ],
    )
    env = {"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_COST": "0.07", "SPECFLOW_DEMO_DELAY": "0.05"}

    async def phase() -> None:
        async with Orchestrator(root, EngineSettings(agent_env=env)) as orch:
            await orch.start("big", {"agentCommand": DEMO_AGENT, "autoMerge": True})
            ex = await settle(orch, "big", timeout=120)
            assert ex.status.value == "completed", ex.recovery_context

    anyio.run(phase)
    (record,) = OrchestrationStore(project).list()
    per_task_seconds = [
        (b.completed_at - b.started_at).total_seconds() / len(b.task_ids)  # type: ignore[operator]
        for b in record.batches.items
    ]
    assert [b.cost_usd for b in record.batches.items] == pytest.approx(list(costs.values()))

    # new work in the same project: a fourth section of 4 tasks
    with feature_tasks(project).open("a", encoding="utf-8") as fh:
        fh.write("\n## Phase 4: More\n\n" + "".join(f"- [ ] T{n:03d} More {n}\n" for n in range(10, 14)))

    # a fresh engine (another host) reads the record the first one wrote
    est = Orchestrator(root).preview("big", {"agentCommand": DEMO_AGENT}).estimate
    assert est is not None and est.basis == "history"
    assert (est.history_orchestrations, est.history_batches, est.history_tasks) == (1, 3, 9)
    assert "9 tasks in 3 completed batches of 1 orchestration" in est.basis_label
    assert est.usd_per_task == pytest.approx(0.2)
    assert [(b.title, b.task_count, b.usd) for b in est.batches] == [("Phase 4: More", 4, pytest.approx(0.8))]
    median_seconds = statistics.median(per_task_seconds)
    assert median_seconds > 0.1  # the slow batches took measurable time
    assert abs(est.batches[0].seconds - 4 * median_seconds) <= 0.5
    # the steps from their own runs (outcome.json of the analyze and verify runs), merge built in
    steps = _steps(est)
    assert steps["analyze"][1:] == (pytest.approx(0.07), "history")
    assert steps["verify"][1:] == (pytest.approx(0.07), "history")
    assert steps["merge"] == (5, 0.0, "builtin")
    analyze_run = json.loads(
        (project / ".specflow" / "workflows" / str(record.executions.analyze) / "outcome.json").read_text()
    )
    assert steps["analyze"][0] == round(analyze_run["duration_s"])
    assert est.total_usd == pytest.approx(0.8 + 0.07 + 0.07)
    _finite(est.model_dump(mode="json"))

    # a start with the other agent has no history of its own: the defaults, saying why
    codex = Orchestrator(root).preview("big", {"agent": "codex", "agentCommand": DEMO_AGENT}).estimate
    assert codex is not None and codex.basis == "defaults" and "used claude, not codex" in codex.basis_label


def _record(project: Path, record_id: str, *, agent: str = "claude", batches: list[BatchItem], verify: str | None):
    ex = new_execution(record_id, project.name, OrchestrationConfig(agent=agent), utcnow())
    ex.batches = BatchTracking(total=len(batches), items=batches)
    ex.status = ex.status.__class__.COMPLETED
    if verify:
        ex.executions.verify = verify
        ex.step_status[P.VERIFY] = StepState.COMPLETED
    OrchestrationStore(project).save(ex)


def _batch(index: int, n: int, seconds: float, usd: float, status: BatchStatus = BatchStatus.COMPLETED, run=True):
    start = utcnow() - timedelta(hours=1)
    return BatchItem(
        index=index,
        section=f"S{index}",
        task_ids=[f"T{index}{i}" for i in range(n)],
        status=status,
        started_at=start,
        completed_at=start + timedelta(seconds=seconds),
        cost_usd=usd,
        workflow_execution_id=f"run-{index}" if run else None,
    )


def test_history_counts_completed_batches_only_and_no_broken_figure(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    runs = project / ".specflow" / "workflows"
    _record(
        project,
        "old-1",
        batches=[
            _batch(0, 3, 60, 0.3),  # 20 s and $0.10 a task: the only one that counts
            _batch(1, 2, 9999, 50.0, BatchStatus.FAILED),
            _batch(2, 2, 9999, 50.0, BatchStatus.HEALED),  # its healer's time is in it, its cost is not
            _batch(3, 0, 10, 1.0),  # no tasks
            _batch(4, 2, 0, 0.0, run=False),  # completed without a run (its tasks were already checked)
        ],
        verify="old-1-002-verify",
    )
    # a verify run whose outcome has a cost that is not a number (a hand-edited file): it counts for nothing
    (runs / "old-1-002-verify").mkdir(parents=True)
    (runs / "old-1-002-verify" / "outcome.json").write_text(
        '{"exit_code": 0, "duration_s": 12.0, "cost_usd": NaN, "failure": null, "is_error": false}'
    )
    # another host's record with Codex: other prices, not counted for a Claude start
    _record(project, "old-2", agent="codex", batches=[_batch(0, 1, 1, 9.0)], verify=None)

    history = read_history(project, OrchestrationStore(project).list(), "claude")
    assert (history.batches, history.tasks, history.orchestrations) == (1, 3, 1)
    assert history.other_agents == {"codex"} and history.step_seconds == {}
    est = Orchestrator(tmp_path).preview("todo", {"agentCommand": DEMO_AGENT}).estimate
    assert est is not None and est.basis == "history"
    assert (est.seconds_per_task, est.usd_per_task) == (20, 0.1)
    assert [b.usd for b in est.batches] == [0.3, 0.5, 0.8, 0.4]
    assert [b.seconds for b in est.batches] == [60, 100, 160, 80]
    assert _steps(est)["verify"] == (300, 0.5, "defaults")  # no usable past run of it
    assert "Steps not run here before (analyze, verify) use the defaults" in est.basis_label
    _finite(est.model_dump(mode="json"))

    # the same verify run with a good outcome counts
    (runs / "old-1-002-verify" / "outcome.json").write_text(
        '{"exit_code": 0, "duration_s": 12.4, "cost_usd": 0.25, "failure": null, "is_error": false}'
    )
    est = Orchestrator(tmp_path).preview("todo", {"agentCommand": DEMO_AGENT}).estimate
    assert est is not None and _steps(est)["verify"] == (12, 0.25, "history")


# ---------------------------------------------------------------------------------------------------- the budget


def test_the_budget_warning_says_by_how_much_and_which_setting(tmp_path: Path) -> None:
    prepare_sample(tmp_path / "todo")
    orch = Orchestrator(tmp_path)
    config = {"agentCommand": DEMO_AGENT, "budget": {"maxTotal": 2.0, "maxPerBatch": 1.0}}
    est = orch.preview("todo", config).estimate
    assert est is not None and est.total_usd == pytest.approx(3.8)
    total, batch = est.warnings
    assert "$3.80 is $1.80 over Max total (budget.maxTotal $2.00)" in total
    assert "Batch 3 (Phase 3: User Story 1 - Add and list (Priority: P1)) is estimated at $1.20, $0.20 over" in batch
    assert "Max per batch (budget.maxPerBatch $1.00)" in batch
    assert est.budget == BudgetConfig(max_total=2.0, max_per_batch=1.0)

    # pure: the form runs it again with what the user types, without a new preview
    assert budget_warnings(est, BudgetConfig(max_total=3.8, max_per_batch=1.2)) == []  # exactly at the limits
    many = budget_warnings(est, BudgetConfig(max_total=50, max_per_batch=0.4))
    assert len(many) == 2
    assert many[0].startswith("4 batches are estimated over Max per batch; the largest, batch 3")
    assert "$1.20 is $0.80 over" in many[0]
    assert many[1].startswith("The verify step is estimated at $0.50, $0.10 over Max per batch")


# ---------------------------------------------------------------------------------------------------- scale


def test_a_200000_task_plan_is_estimated_fast_and_small(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    size = 15
    plan = BatchPlan(
        batches=[
            PlannedBatch(
                index=i, section=f"Batch {i + 1}", task_ids=[f"T{n:06d}" for n in range(i * size, (i + 1) * size)]
            )
            for i in range(200_000 // size)
        ]
        + [
            PlannedBatch(index=200_000 // size, section="Rest", task_ids=[f"T{n:06d}" for n in range(199_995, 200_000)])
        ],
    )
    assert plan.task_count == 200_000
    started = time.perf_counter()
    est = estimate_plan(project, plan, OrchestrationConfig(), EngineSettings())
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed
    assert est.task_count == 200_000 and len(est.batches) == len(plan.batches)
    assert est.total_usd == pytest.approx(200_000 * 0.15 + 0.3 + 0.5) and math.isfinite(est.total_seconds)
    text = est.model_dump_json()
    assert "T000001" not in text  # batches, never tasks
    assert len(text) < 130 * len(plan.batches)
    assert est.warnings and "over Max total" in est.warnings[0]
    assert not any("Max per batch" in w for w in est.warnings)  # $2.25 a batch, under $5
