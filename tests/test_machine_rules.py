"""Rules defined once, in the machine, and every reader agreeing with them (issue 17).

"All tasks done" (settled = done or deferred) and "design complete" are the machine's functions; ``status``
(project.py) and the engine (a ``ProjectSnapshot`` read the way the orchestrator reads it) must never disagree, on
real files. Before issue 17 ``status`` counted deferred tasks as done while the snapshot's own rule could be fed
another set: ``status`` said run_verify while the engine stopped with no_tasks.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from specflow_nb.machine import (
    GoBackCommand,
    ProjectRead,
    ProjectSnapshot,
    Started,
    UserCommand,
    all_tasks_done,
    design_complete,
    new_execution,
    planned_steps,
    transition,
)
from specflow_nb.models import OrchestrationConfig, OrchestrationPhase, OrchestrationStatus, StepState
from specflow_nb.project import collect_artifacts, find_feature_dir, project_status
from specflow_nb.tasks import all_done, plan_batches, read_tasks

P = OrchestrationPhase
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)

VARIANTS = {
    # name: (spec, plan, tasks.md or None)
    "done_and_deferred": (True, True, "## A\n- [x] T001 a\n- [~] T002 later\n- [-] T003 dropped\n"),
    "only_deferred": (True, True, "## A\n- [~] T001 later\n"),
    "done_and_blocked": (True, True, "## A\n- [x] T001 a\n- [b] T002 waits (needs a key)\n"),
    "one_pending": (True, True, "## A\n- [x] T001 a\n- [ ] T002 b\n- [~] T003 later\n"),
    "all_done": (True, True, "## A\n- [x] T001 a\n## B\n- [X] T002 b\n"),
    "no_tasks": (True, True, "## A\nnothing yet\n"),
    "no_plan": (True, False, "## A\n- [x] T001 a\n"),
    "no_tasks_file": (True, True, None),
}


def project(tmp_path: Path, spec: bool, plan: bool, tasks: str | None) -> Path:
    d = tmp_path / "specs" / "001-demo"
    d.mkdir(parents=True)
    if spec:
        (d / "spec.md").write_text("# Spec\n")
    if plan:
        (d / "plan.md").write_text("# Plan\n")
    if tasks is not None:
        (d / "tasks.md").write_text(tasks)
    return tmp_path


def engine_snapshot(root: Path) -> ProjectSnapshot:
    """What the orchestrator's ReadProject feeds the machine (the plan from the same file)."""
    art = collect_artifacts(find_feature_dir(root))
    parsed = art.parsed_tasks
    return ProjectSnapshot.of_artifacts(art, batch_plan=plan_batches(parsed) if parsed else None)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_status_and_engine_agree_on_all_tasks_done_and_design_complete(tmp_path: Path, variant: str) -> None:
    root = project(tmp_path, *VARIANTS[variant])
    snap = engine_snapshot(root)
    status = project_status(root)
    parsed = collect_artifacts(find_feature_dir(root)).parsed_tasks

    # design complete: one rule for status and the engine
    assert (status.step.current != "design") == snap.design_complete, variant
    assert collect_artifacts(find_feature_dir(root)).design_complete == snap.design_complete
    # all tasks done: status's next action, the tasks module's rule and the engine's snapshot
    if snap.design_complete:
        assert (status.next_action == "run_verify") == snap.all_tasks_done, (variant, status.next_action)
    assert all_done(parsed) == snap.all_tasks_done, variant
    # the engine's decisions with that snapshot: smart config and the estimate skip implement exactly then
    assert (P.IMPLEMENT not in planned_steps(OrchestrationConfig(), snap)) == snap.all_tasks_done
    ex, _ = transition(new_execution("o1", "p", OrchestrationConfig(), T0), Started(at=T0, snapshot=snap))
    assert (ex.step_status[P.IMPLEMENT] is StepState.SKIPPED) == snap.all_tasks_done


def test_deferred_tasks_never_hold_implement_back_where_status_says_run_verify(tmp_path: Path) -> None:
    """The case that disagreed: done + deferred tasks. status says run_verify, and the engine entering implement
    with the empty plan completes implement and runs verify (it used to stop with no_tasks)."""
    root = project(tmp_path, *VARIANTS["done_and_deferred"])
    assert project_status(root).next_action == "run_verify"
    snap = engine_snapshot(root)
    assert snap.batch_plan is not None and snap.batch_plan.batches == []
    cfg = OrchestrationConfig(skip_design=True, skip_analyze=True)
    ex = new_execution("o1", "p", cfg, T0)
    # a go-back to implement forces the step even though smart config skipped it: the empty plan must complete it
    ex, _ = transition(ex, Started(at=T0, snapshot=snap))
    assert ex.current_phase is P.VERIFY and ex.status is OrchestrationStatus.RUNNING
    ex, _ = transition(ex, UserCommand(at=T0, command=GoBackCommand(step=P.IMPLEMENT)))
    ex, actions = transition(ex, ProjectRead(at=T0, snapshot=snap))
    assert ex.status is OrchestrationStatus.RUNNING and ex.recovery_context is None
    assert ex.step_status[P.IMPLEMENT] is StepState.COMPLETED and ex.current_phase is P.VERIFY
    assert [a.kind for a in actions][-1] == "spawn_step"
    # blocked instead of deferred: both say "not done", and the engine asks a person (no_tasks)
    blocked = engine_snapshot(project(tmp_path / "b", *VARIANTS["done_and_blocked"]))
    ex, _ = transition(new_execution("o2", "p", cfg, T0), Started(at=T0, snapshot=blocked))
    assert ex.status is OrchestrationStatus.NEEDS_ATTENTION and ex.recovery_context is not None
    assert ex.recovery_context.kind == "no_tasks"
    assert project_status(tmp_path / "b").next_action == "continue_implement"


def test_the_rules_themselves() -> None:
    assert all_tasks_done(["T001", "T002"], ["T002", "T001", "T009"])
    assert not all_tasks_done(["T001", "T002"], ["T001"])
    assert not all_tasks_done([], [])  # no task: nothing is done
    assert design_complete(has_spec=True, has_plan=True, task_count=1)
    assert not design_complete(has_spec=True, has_plan=True, task_count=0)
    assert not design_complete(has_spec=False, has_plan=True, task_count=3)
    assert not design_complete(has_spec=True, has_plan=False, task_count=3)
    # the snapshot's has_tasks flag without task ids (an unreadable tasks.md) is no design
    assert not ProjectSnapshot(has_spec=True, has_plan=True, has_tasks=True).design_complete
    assert ProjectSnapshot(has_spec=True, has_plan=True, has_tasks=True, task_ids=["T001"]).design_complete


def test_read_tasks_settled_ids_are_the_engines_done(tmp_path: Path) -> None:
    root = project(tmp_path, *VARIANTS["one_pending"])
    parsed = read_tasks(next(root.glob("specs/*/tasks.md")))
    snap = engine_snapshot(root)
    assert snap.done_task_ids == parsed.settled_ids == ["T001", "T003"]
    assert not snap.all_tasks_done


# --------------------------------------------------------------------------------------------------------------
# Healing decisions and typed outputs, in the machine


def test_heal_confirmed_reads_the_snapshot_the_machine_reads() -> None:
    from specflow_nb.agent.prompts import HealOutput
    from specflow_nb.machine import heal_confirmed, healer_budget
    from specflow_nb.models import BatchItem, BudgetConfig

    batch = BatchItem(index=0, section="A", task_ids=["T001", "T002"])
    fixed = HealOutput(status="fixed")
    settled = ProjectSnapshot(task_ids=["T001", "T002"], done_task_ids=["T001", "T002"])
    assert heal_confirmed(fixed, settled, batch)
    assert not heal_confirmed(fixed, ProjectSnapshot(task_ids=["T001", "T002"], done_task_ids=["T001"]), batch)
    assert not heal_confirmed(HealOutput(status="partial"), settled, batch)
    cfg = OrchestrationConfig(budget=BudgetConfig(healing_budget=2.0, max_total=10.0))
    assert healer_budget(cfg, healing_spent_usd=1.5, total_spent_usd=3.0) == 0.5
    assert healer_budget(cfg, healing_spent_usd=0.0, total_spent_usd=9.75) == 0.25


def test_structured_outputs_are_read_typed_and_as_leniently_as_before() -> None:
    from specflow_nb.machine.outputs import analyze_output, heal_output, verify_output
    from specflow_nb.models import RunOutcome

    def out(data: object) -> RunOutcome:
        return RunOutcome(exit_ok=True, structured_output=data)  # type: ignore[arg-type]

    # a field that does not validate is dropped; the rule's field still counts
    analysis = analyze_output(out({"status": "completed", "findings": "one string, not a list"}))
    assert analysis is not None and analysis.status == "completed" and analysis.findings == []
    healed = heal_output(out({"status": "fixed", "tasksCompleted": [1, 2]}))
    assert healed is not None and healed.status == "fixed"
    # a required field missing or invalid: no output (not confirmed), as `.get(...) == ...` never matched
    assert analyze_output(out({"findings": []})) is None
    assert analyze_output(out({"status": "done"})) is None
    assert verify_output(out({"passed": "true"})) is None  # strict: only a real true passes, as `is True` did
    assert verify_output(out({"passed": True, "failures": []})) is not None
    assert verify_output(None) is None and verify_output(out(None)) is None
