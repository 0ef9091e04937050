"""The words every host shows (panel, project cards, terminal): one line per status, true at every moment."""

from datetime import datetime, timedelta, timezone

import pytest

from specflow_nb import summary
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    BatchTracking,
    CurrentRun,
    DecisionLogEntry,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    Question,
    RecoveryContext,
    RunKind,
    StepState,
)

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
S = OrchestrationStatus
P = OrchestrationPhase


def execution(status=S.RUNNING, phase=P.IMPLEMENT, **kw) -> OrchestrationExecution:
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


def run(label: str, kind: RunKind = RunKind.BATCH, index: int | None = 1) -> CurrentRun:
    return CurrentRun(execution_id=f"o1-004-{label}", kind=kind, step=P.IMPLEMENT, batch_index=index, started_at=T)


def log(decision: str, reason: str = "", **data) -> DecisionLogEntry:
    return DecisionLogEntry(timestamp=T, decision=decision, reason=reason, data=data or None)


def test_implementing_views() -> None:
    ex = execution(current_run=run("batch2"))
    assert summary.headline(ex) == "Implementing batch 2 of 3: Core"
    assert summary.task_counts(ex) == (2, 5)
    assert summary.tasks_text(ex) == "2/5 tasks (40%)"
    assert summary.badge_text(ex) == "Completing phase (batch 2/3)"
    assert summary.status_label(ex) == "Running"


def test_healing_and_questions_refine_running() -> None:
    ex = execution(current_run=run("heal2", RunKind.HEALER))
    assert summary.status_label(ex) == "Healing"
    assert summary.headline(ex) == "Healing batch 2 of 3: Core"
    waiting = execution(status=S.PAUSED, waiting_for_input=True, questions=[Question(id="q1", question="Which?")])
    assert summary.status_label(waiting) == "Waiting for input"
    assert summary.headline(waiting) == "Waiting for your answer (1 question)"


def test_pausing_is_said_the_moment_it_is_asked() -> None:
    ex = execution(current_run=run("batch2"), pause_requested=True)
    assert summary.status_label(ex) == "Pausing"
    assert summary.headline(ex) == "Pausing after batch 2 of 3: Core…"
    assert summary.badge_text(ex) == "Pausing (batch 2/3)"
    healing = execution(current_run=run("heal2", RunKind.HEALER), pause_requested=True)
    assert summary.headline(healing) == "Pausing after healing batch 2 of 3: Core…"
    design = execution(phase=P.DESIGN, pause_requested=True)
    design.current_run = CurrentRun(execution_id="o1-001-design", kind=RunKind.STEP, step=P.DESIGN, started_at=T)
    assert summary.headline(design) == "Pausing after the design step…"


def test_paused_says_after_which_batch_and_what_is_next() -> None:
    ex = execution(status=S.PAUSED)
    ex.batches.items[1].status = BatchStatus.COMPLETED
    ex.batches.items[1].completed_at = T + timedelta(minutes=5)
    ex.batches.items[0].completed_at = T
    assert summary.headline(ex) == "Paused after batch 2 of 3 — next: Polish"
    assert summary.status_label(ex) == "Paused" and summary.badge_text(ex) == "Paused"
    before_implement = execution(status=S.PAUSED, phase=P.VERIFY, step_status={P.IMPLEMENT: StepState.COMPLETED})
    assert summary.headline(before_implement) == "Paused after the implement step — next: verify"


def test_cancelled_says_where_and_the_step_is_not_to_do_again() -> None:
    ex = execution(status=S.CANCELLED, step_status={P.DESIGN: StepState.SKIPPED, P.IMPLEMENT: StepState.RUNNING})
    ex.batches.items[1].status = BatchStatus.PENDING  # the engine resets the killed batch
    ex.decision_log = [
        log("next_batch", "…"),
        log("cancel", "cancelled by the user; run o1-004-batch2 killed", killedRun="o1-004-batch2"),
    ]
    assert summary.headline(ex) == "Cancelled during batch 2 of 3: Core"
    marks = dict(summary.phase_marks(ex))
    assert marks == {"Design": "–", "Analyze": "○", "Implement": "■", "Verify": "○", "Merge": "○"}
    assert summary.decision_text(ex, ex.decision_log[-1]) == "Cancelled by the user; the run of batch 2 was stopped"
    at_merge = execution(status=S.CANCELLED, phase=P.MERGE, decision_log=[log("waiting_merge"), log("cancel", "x")])
    assert summary.headline(at_merge) == "Cancelled at merge ready"
    paused = execution(status=S.CANCELLED, decision_log=[log("pause"), log("cancel", "x")])
    assert summary.headline(paused) == "Cancelled while paused"


@pytest.mark.parametrize(
    ("status", "phase", "extra", "label", "headline", "badge"),
    [
        (S.RUNNING, P.DESIGN, {}, "Running", "Designing (spec, plan, tasks)", "Completing phase (design)"),
        (S.RUNNING, P.ANALYZE, {}, "Running", "Analyzing the design", "Completing phase (analyze)"),
        (S.RUNNING, P.VERIFY, {}, "Running", "Verifying", "Completing phase (verify)"),
        (S.RUNNING, P.MERGE, {}, "Running", "Merging", "Completing phase (merge)"),
        (S.WAITING_MERGE, P.MERGE, {}, "Merge ready", "Verified: ready to merge", "Waiting for merge"),
        (
            S.WAITING_MERGE,
            P.MERGE,
            {"config": OrchestrationConfig(target_branch="main")},
            "Merge ready",
            "Verified: ready to merge into main",
            "Waiting for merge",
        ),
        (
            S.NEEDS_ATTENTION,
            P.IMPLEMENT,
            {"recovery_context": RecoveryContext(issue="x", batch_index=1)},
            "Needs attention",
            "Needs attention: batch 2 of 3: Core",
            "Needs attention",
        ),
        (
            S.NEEDS_ATTENTION,
            P.VERIFY,
            {"recovery_context": RecoveryContext(issue="tests fail", step=P.VERIFY)},
            "Needs attention",
            "Needs attention at the verify step",
            "Needs attention",
        ),
        (S.COMPLETED, P.COMPLETE, {}, "Complete", "Phase complete", "Complete"),
        (S.FAILED, P.VERIFY, {"error_message": "x"}, "Failed", "Failed at the verify step", "Failed"),
        (S.FAILED, P.IMPLEMENT, {}, "Failed", "Failed during batch 2 of 3: Core", "Failed"),
    ],
)
def test_every_status_in_words(status, phase, extra, label, headline, badge) -> None:
    ex = execution(status=status, phase=phase, **extra)
    assert summary.status_label(ex) == label
    assert summary.headline(ex) == headline
    assert summary.badge_text(ex) == badge
    assert label in summary.BADGE_LABELS and summary.tone(label) in ("info", "success", "warn", "error", "neutral")
    assert summary.batch_line(ex) == headline  # the old name says the same
    assert summary.badge_text(None) == ""


def test_skipped_steps_stay_skipped_to_the_end() -> None:
    ex = execution(phase=P.IMPLEMENT)
    ex.step_status[P.DESIGN] = StepState.SKIPPED
    ex.step_status[P.ANALYZE] = StepState.COMPLETED
    assert summary.phase_bar(ex) == "Design – Analyze ● Implement ◐ Verify ○ Merge ○"
    done = execution(status=S.COMPLETED, phase=P.COMPLETE)
    done.step_status = {P.DESIGN: StepState.SKIPPED, **{s: StepState.COMPLETED for s in (P.ANALYZE, P.IMPLEMENT)}}
    done.step_status[P.VERIFY] = StepState.COMPLETED
    assert summary.headline(done) == "Phase complete"
    assert summary.phase_bar(done) == "Design – Analyze ● Implement ● Verify ● Merge ●"
    failed = execution(status=S.FAILED, phase=P.VERIFY)
    assert dict(summary.phase_marks(failed))["Verify"] == "✗"


def test_log_entries_in_words_with_ids_behind() -> None:
    ex = execution()
    killed = log(
        "killed_run_ended",
        "killed run o1-004-heal2 ended; its cost $0.10 is counted",
        runId="o1-004-heal2",
        costUsd=0.1,
    )
    assert summary.decision_title("killed_run_ended") == "Stopped run ended"
    assert (
        summary.decision_text(ex, killed)
        == "The healer of batch 2 ended after it was stopped; its cost $0.10 is counted"
    )
    assert ("runId", "o1-004-heal2") in summary.decision_details(ex, killed)
    lost = log("reconcile_lost", "batch 2 of 3 is gone without a result (run o1-007-batch2)")
    assert "o1-007" not in summary.decision_text(ex, lost) and "the run of batch 2" in summary.decision_text(ex, lost)
    assert summary.decision_title("something_new") == "Something new"
    for decision in summary.DECISION_TITLES:
        assert "_" not in summary.decision_title(decision)


def test_time_words() -> None:
    ex = execution()
    ex.batches.items[0].started_at, ex.batches.items[0].completed_at = T, T + timedelta(minutes=10)
    ex.batches.items[1].started_at = T + timedelta(minutes=10)
    now = T + timedelta(minutes=15)
    assert summary.time_text(ex, now) == "Elapsed 15m 00s · Remaining ~15m 00s"
    paused = execution(status=S.PAUSED)
    assert "Remaining" not in summary.time_text(paused, now)
    assert summary.fmt_duration(timedelta(hours=1, minutes=2)) == "1h 02m" and summary.fmt_duration(None) == "—"
