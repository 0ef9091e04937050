"""The plain-text views every host shows (terminal, project cards, badges)."""

from datetime import datetime, timezone

import pytest

from specflow_nb import summary
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    BatchTracking,
    CurrentRun,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
    StepState,
)

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def execution(status=OrchestrationStatus.RUNNING, phase=OrchestrationPhase.IMPLEMENT, **kw) -> OrchestrationExecution:
    batches = BatchTracking(
        total=3,
        current=1,
        items=[
            BatchItem(index=0, section="Setup", task_ids=["T001", "T002"], status=BatchStatus.COMPLETED),
            BatchItem(index=1, section="Core", task_ids=["T003"], status=BatchStatus.RUNNING),
            BatchItem(index=2, section="Polish", task_ids=["T004", "T005"]),
        ],
    )
    return OrchestrationExecution(
        id="o1", project_id="p", status=status, current_phase=phase, batches=batches, started_at=T, updated_at=T, **kw
    )


def test_implementing_views() -> None:
    ex = execution()
    assert summary.batch_line(ex) == "Implementing batch 2 of 3: Core"
    assert summary.task_counts(ex) == (2, 5)
    assert summary.badge_text(ex) == "Completing phase (batch 2/3)"
    assert summary.status_label(ex) == "Running"


def test_healing_and_questions_refine_running() -> None:
    healer = CurrentRun(execution_id="r", kind=RunKind.HEALER, step=OrchestrationPhase.IMPLEMENT, started_at=T)
    ex = execution(current_run=healer)
    assert summary.status_label(ex) == "Healing"
    assert summary.batch_line(ex) == "Healing batch 2 of 3: Core"
    waiting = execution(status=OrchestrationStatus.PAUSED, waiting_for_input=True)
    assert summary.status_label(waiting) == "Waiting for input"


@pytest.mark.parametrize(
    ("status", "badge"),
    [
        (OrchestrationStatus.WAITING_MERGE, "Waiting for merge"),
        (OrchestrationStatus.NEEDS_ATTENTION, "Needs attention"),
        (OrchestrationStatus.PAUSED, "Paused"),
        (OrchestrationStatus.COMPLETED, "Complete"),
        (OrchestrationStatus.CANCELLED, "Cancelled"),
    ],
)
def test_card_badges(status: OrchestrationStatus, badge: str) -> None:
    assert summary.badge_text(execution(status=status)) == badge
    assert summary.badge_text(None) == ""


def test_phase_bar_marks_each_step() -> None:
    ex = execution(phase=OrchestrationPhase.IMPLEMENT)
    ex.step_status[OrchestrationPhase.DESIGN] = StepState.SKIPPED
    ex.step_status[OrchestrationPhase.ANALYZE] = StepState.COMPLETED
    assert summary.phase_bar(ex) == "Design – Analyze ● Implement ◐ Verify ○ Merge ○"
    done = execution(status=OrchestrationStatus.COMPLETED, phase=OrchestrationPhase.COMPLETE)
    assert summary.batch_line(done) == "Phase complete"
    assert all(mark == "●" for _, mark in summary.phase_marks(done))
