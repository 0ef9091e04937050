"""The machine's rules for commands from other hosts (ids applied at most once) and for takeovers."""

from datetime import datetime, timedelta, timezone

import pytest

from specflow_nb.machine import (
    APPLIED_IDS_KEPT,
    HostRestarted,
    IllegalTransition,
    PauseCommand,
    ProjectSnapshot,
    ResumeCommand,
    Started,
    UserCommand,
    new_execution,
    transition,
)
from specflow_nb.models import BatchPlan, OrchestrationConfig, OrchestrationExecution, PlannedBatch

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def running() -> OrchestrationExecution:
    snap = ProjectSnapshot(
        has_spec=True,
        has_plan=True,
        has_tasks=True,
        task_ids=["T001"],
        batch_plan=BatchPlan(batches=[PlannedBatch(index=0, section="Setup", task_ids=["T001"])], total_incomplete=1),
    )
    ex, _ = transition(new_execution("o1", "p", OrchestrationConfig(), T0), Started(at=T0, snapshot=snap))
    return ex


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_command_id_is_applied_at_most_once_and_logged() -> None:
    ex = running()
    ex1, actions = transition(ex, UserCommand(at=at(1), command=PauseCommand(), actor="bob", command_id="c1"))
    assert actions and ex1.applied_command_ids == ["c1"] and ex1.version == ex.version + 1
    entry = ex1.decision_log[-1]
    assert entry.decision == "pause_requested" and entry.data == {"actor": "bob", "commandId": "c1"}
    # the same id again (its owner crashed before answering): nothing changes, nothing is refused
    ex2, again = transition(ex1, UserCommand(at=at(2), command=PauseCommand(), actor="bob", command_id="c1"))
    assert again == [] and ex2.version == ex1.version and ex2.decision_log == ex1.decision_log
    # another id is a new command (here refused: a pause is already requested)
    with pytest.raises(IllegalTransition):
        transition(ex1, UserCommand(at=at(3), command=PauseCommand(), command_id="c2"))
    # a local command (no id) leaves the list alone
    ex3, _ = transition(ex1, UserCommand(at=at(4), command=ResumeCommand()))
    assert ex3.applied_command_ids == ["c1"]


def test_applied_ids_are_bounded() -> None:
    ex = running()
    ex.applied_command_ids = [f"old{i}" for i in range(APPLIED_IDS_KEPT)]
    ex1, _ = transition(ex, UserCommand(at=at(1), command=PauseCommand(), command_id="new"))
    assert len(ex1.applied_command_ids) == APPLIED_IDS_KEPT and ex1.applied_command_ids[-1] == "new"
    assert "old0" not in ex1.applied_command_ids


def test_a_takeover_is_logged_in_every_active_status() -> None:
    ex = running()
    paused, _ = transition(ex, UserCommand(at=at(1), command=PauseCommand()))
    assert paused.status.value == "running"  # a pause request waits for the run
    for state in (ex, paused):
        nxt, actions = transition(
            state, HostRestarted(at=at(5), run_alive=True, took_over_from="cli pid 7 is gone", new_owner="server")
        )
        assert nxt.decision_log[-2 if len(actions) > 1 else -1].decision in ("takeover", "reconcile_adopted")
        assert any(e.decision == "takeover" and "cli pid 7" in e.reason for e in nxt.decision_log)
    # a plain restart of a paused orchestration changes nothing; a takeover of one is still logged
    ex.status = ex.status.__class__("paused")
    ex.current_run = None
    same, none = transition(ex, HostRestarted(at=at(6)))
    assert none == [] and same.version == ex.version
    logged, persist = transition(ex, HostRestarted(at=at(6), took_over_from="x is gone", new_owner="y"))
    assert len(persist) == 1 and logged.decision_log[-1].decision == "takeover"
