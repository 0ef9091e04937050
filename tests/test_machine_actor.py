"""Shared projects: every decision a user command causes records who sent it (issue 8)."""

from datetime import datetime, timedelta, timezone

from specflow_nb.machine import PauseCommand, ProjectSnapshot, Started, UserCommand, new_execution, transition
from specflow_nb.models import BatchPlan, OrchestrationConfig, PlannedBatch

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_command_decisions_name_the_actor():
    snap = ProjectSnapshot(
        has_spec=True,
        has_plan=True,
        has_tasks=True,
        task_ids=["T001"],
        batch_plan=BatchPlan(batches=[PlannedBatch(index=0, section="Setup", task_ids=["T001"])], total_incomplete=1),
    )
    ex = new_execution("o1", "p", OrchestrationConfig(), T0)
    ex, _ = transition(ex, Started(at=T0, snapshot=snap))
    before = len(ex.decision_log)
    ex, _ = transition(ex, UserCommand(at=T0 + timedelta(seconds=1), command=PauseCommand(), actor="alice"))
    new = ex.decision_log[before:]
    assert new and all(e.data and e.data["actor"] == "alice" for e in new)
    assert all(not (e.data or {}).get("actor") for e in ex.decision_log[:before])
