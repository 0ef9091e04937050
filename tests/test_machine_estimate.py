"""``machine.planned_steps`` (what the estimate before start counts) against what the machine really runs.

For every combination of skip flags and project state, a whole phase is driven through ``transition()`` only (every run
succeeds, the project confirms it); the steps that got a run must be exactly those ``planned_steps`` named.
"""

from __future__ import annotations

import itertools

import pytest

from specflow_nb.machine import MergeCommand, ProjectSnapshot, RunMerge, SpawnBatch, SpawnStep, planned_steps
from specflow_nb.models import OrchestrationConfig, OrchestrationPhase, OrchestrationStatus, RunOutcome
from tests.test_machine import FakeProject, Harness, designed, ok, three_sections

P = OrchestrationPhase
S = OrchestrationStatus
FLAGS = ("skip_design", "skip_analyze", "skip_implement", "skip_verify")


def _project(state: str) -> FakeProject:
    if state == "empty":
        return FakeProject(has_spec=False, has_plan=False)
    project = three_sections()
    if state == "all_done":
        project.done = set(project.task_ids)
    return project


def _ran(h: Harness) -> list[P]:
    """Drive the phase to its end; the steps that got a run (a spawn), in order."""
    for _ in range(40):
        ex = h.ex
        if ex.status is S.WAITING_MERGE:
            h.cmd(MergeCommand())
            h.read()
            continue
        if ex.status is not S.RUNNING or ex.current_run is None:
            break
        run = ex.current_run
        if run.step is P.DESIGN:
            h.run_step(ok(), effect=lambda: designed(h))
        elif run.step is P.ANALYZE:
            h.run_step(ok(output={"status": "completed"}))
        elif run.step is P.IMPLEMENT:
            h.run_batch(ok())
        elif run.step is P.VERIFY:
            h.run_step(ok(output={"passed": True}))
        else:
            h.project.merged = True
            h.run_step(RunOutcome(exit_ok=True))
    assert h.ex.status is S.COMPLETED, (h.ex.status, h.ex.recovery_context)
    steps: list[P] = []
    for action in h.all_actions:
        step = P.IMPLEMENT if isinstance(action, SpawnBatch) else P.MERGE if isinstance(action, RunMerge) else None
        if isinstance(action, SpawnStep):
            step = action.step
        if step is not None and step not in steps:
            steps.append(step)
    return steps


#: Every state × every combination of skip flags (but design skipped without tasks.md: the preflight refuses it).
CASES = [
    (state, flags)
    for state in ("empty", "designed", "all_done")
    for flags in itertools.product([False, True], repeat=4)
    if not (state == "empty" and flags[0])
]


@pytest.mark.parametrize(("state", "flags"), CASES)
def test_planned_steps_are_the_steps_the_machine_runs(state: str, flags: tuple[bool, ...]) -> None:
    config = dict(zip(FLAGS, flags, strict=True))
    project = _project(state)
    planned = planned_steps(OrchestrationConfig(**config), project.snapshot())
    h = Harness(project, **config)
    h.start()
    assert _ran(h) == planned


def test_merge_always_runs_and_smart_config_follows_the_project() -> None:
    designed_snap = three_sections().snapshot()
    assert planned_steps(OrchestrationConfig(), ProjectSnapshot()) == [
        P.DESIGN,
        P.ANALYZE,
        P.IMPLEMENT,
        P.VERIFY,
        P.MERGE,
    ]
    assert planned_steps(OrchestrationConfig(), designed_snap) == [P.ANALYZE, P.IMPLEMENT, P.VERIFY, P.MERGE]
    every_skip = OrchestrationConfig(skip_design=True, skip_analyze=True, skip_implement=True, skip_verify=True)
    assert planned_steps(every_skip, designed_snap) == [P.MERGE]
