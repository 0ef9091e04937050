"""The diagnosis rules (issue 15.5): at needs_attention a read-only helper reads the failed run and suggests an
option. Every transition goes through ``Harness.feed`` (tests/test_machine.py), which checks the machine's
invariants (input not mutated, version + 1, Persist first, the JSON round trip)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from specflow_nb.machine import (
    LEGAL_STATUSES,
    CancelCommand,
    Decision,
    Diagnose,
    DiagnosisFinished,
    IllegalTransition,
    RecoverCommand,
)
from specflow_nb.models import (
    DIAGNOSIS_MAX_CHARS,
    BudgetConfig,
    OrchestrationStatus,
    RecoveryOption,
)
from tests.test_machine import Harness, bad, kinds, ok, three_sections

S = OrchestrationStatus
R = RecoveryOption


def failed_batch(**config: Any) -> Harness:
    """Batch 1 failed and auto-heal is off: the orchestration needs attention (the diagnosis not answered yet)."""
    config.setdefault("auto_heal_enabled", False)
    h = Harness(three_sections(), **config)
    h.start()
    h.run_batch(bad(cost=0.5), check=False)
    assert h.ex.status is S.NEEDS_ATTENTION
    return h


def diagnose_actions(actions: list[Any]) -> list[Diagnose]:
    return [a for a in actions if isinstance(a, Diagnose)]


# --------------------------------------------------------------------------------------------------------------
# Asking


def test_needs_attention_asks_for_a_diagnosis_of_the_failed_run_after_persist():
    h = failed_batch()
    assert kinds(h.actions) == ["persist", "notify", "diagnose"]  # write-ahead: the pending diagnosis is on disk
    (action,) = diagnose_actions(h.actions)
    failed = h.ex.executions.implement[0]
    assert action.failed_run_id == failed == h.rc.failed_workflow_id
    assert action.run_id == f"o1-{h.ex.run_seq:03d}-diagnose" and action.run_id != failed
    assert action.recovery_seq == h.rc.seq == h.ex.recovery_seq == 1
    assert action.max_budget_usd == 0.5 and action.start  # min(decisionBudget 0.5, maxTotal left 49.5)
    assert action.issue == h.rc.issue and action.options == [R.RETRY, R.SKIP, R.ABORT]
    assert action.batch_index == 0 and action.remaining_task_ids == ["T001", "T002"]
    assert h.rc.diagnosis is not None and h.rc.diagnosis.status == "pending"
    assert h.rc.diagnosis.run_id == action.run_id and h.ex.pending_diagnoses == [action.run_id]
    assert h.ex.current_run is None  # the helper never holds the orchestration's one run slot


def test_decision_budget_zero_runs_no_helper():
    h = failed_batch(budget=BudgetConfig(decision_budget=0))
    assert kinds(h.actions) == ["persist", "notify"]
    assert h.rc.diagnosis is None and h.ex.pending_diagnoses == []
    assert Decision.DIAGNOSIS.value not in [d.decision for d in h.ex.decision_log]
    assert h.rc.seq == 1  # contexts are numbered all the same


def test_the_helper_budget_is_capped_by_what_is_left_of_the_total():
    h = failed_batch(budget=BudgetConfig(max_total=0.8, max_per_batch=5, decision_budget=0.5))
    (action,) = diagnose_actions(h.actions)
    assert action.max_budget_usd == pytest.approx(0.3)  # 0.8 - 0.5 spent


def test_a_budget_stop_with_money_left_gets_a_diagnosis():
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=1.0))
    h.start()
    h.finish(bad(cost=1.0, failure="budget_exceeded"))  # the batch's own cap: maxTotal has 49 left
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget"
    assert diagnose_actions(h.actions)[0].max_budget_usd == 0.5


def test_a_budget_stop_with_max_total_used_up_gets_none_and_says_why():
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=5.0, max_total=1.0))
    h.start()
    h.finish(bad(cost=1.0, failure="budget_exceeded"))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget"
    assert diagnose_actions(h.actions) == [] and h.rc.diagnosis is None
    last = h.ex.decision_log[-1]
    assert last.decision == "diagnosis" and (last.data or {})["status"] == "skipped"
    assert "maxTotal" in last.reason


def test_a_stop_without_a_failed_run_has_nothing_to_read():
    h = Harness(three_sections(), budget=BudgetConfig(max_total=0.5, max_per_batch=5.0))
    h.start()
    h.run_batch(ok(cost=0.5))  # batch 1 done; nothing left for batch 2: stopped before it was spawned
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.failed_workflow_id is None
    assert diagnose_actions(h.actions) == [] and h.rc.diagnosis is None


# --------------------------------------------------------------------------------------------------------------
# Answers


def test_a_diagnosis_is_kept_its_cost_counted_and_announced():
    h = failed_batch()
    total = h.ex.total_cost_usd
    actions = h.diagnosed(
        diagnosis="  The agent stopped half-way:\nT002 is unchecked. ", suggestion="retry", cost_usd=0.03
    )
    assert kinds(actions) == ["persist", "notify"] and actions[1].event == "diagnosis"
    d = h.rc.diagnosis
    assert d is not None and d.status == "ready" and d.suggestion == "retry" and d.fix is None
    assert d.text == "The agent stopped half-way: T002 is unchecked." and d.cost_usd == 0.03
    assert h.ex.total_cost_usd == pytest.approx(total + 0.03) and h.ex.decision_cost_usd == pytest.approx(0.03)
    assert h.ex.pending_diagnoses == [] and h.ex.status is S.NEEDS_ATTENTION
    entry = h.ex.decision_log[-1]
    assert entry.decision == "diagnosis" and "Suggested: retry" in entry.reason
    assert h.ex.notifications[-1].event == "diagnosis" and h.ex.notifications[-1].run_id == h.rc.failed_workflow_id


def test_a_fix_suggestion_keeps_what_to_fix():
    h = failed_batch()
    h.diagnosed(diagnosis="The tests need a database.", suggestion="fix", fix="Start postgres, then retry.")
    d = h.rc.diagnosis
    assert d is not None and d.suggestion == "fix" and d.fix == "Start postgres, then retry."
    assert "fix first: Start postgres" in h.ex.decision_log[-1].reason


def test_a_suggested_option_that_is_not_offered_is_dropped_and_the_text_stays():
    # the budget stop of a step offers retry and abort only
    h = Harness(three_sections(), skip_implement=True, budget=BudgetConfig(max_per_batch=1.0))
    h.start()  # verify runs first
    h.finish(bad(cost=1.0, failure="budget_exceeded"))
    assert h.rc.options == [R.RETRY, R.ABORT]
    h.diagnosed(diagnosis="Verify looped on one test.", suggestion="skip")
    d = h.rc.diagnosis
    assert d is not None and d.suggestion is None and d.text == "Verify looped on one test."
    assert (h.ex.decision_log[-1].data or {})["dropped"] == "skip"


def test_a_long_diagnosis_is_cut_to_the_limit():
    h = failed_batch()
    h.diagnosed(diagnosis="word " * 1000, suggestion="abort")
    d = h.rc.diagnosis
    assert d is not None and len(d.text) <= DIAGNOSIS_MAX_CHARS and d.text.endswith("…")


def test_a_failed_helper_leaves_a_reason_and_its_cost_is_counted():
    h = failed_batch()
    total = h.ex.total_cost_usd
    actions = h.diagnosed(failure="timeout", message="no answer in 600 s", cost_usd=0.1)
    assert kinds(actions) == ["persist"]  # nothing to announce
    d = h.rc.diagnosis
    assert d is not None and d.status == "failed" and "timeout" in (d.error or "") and d.text == ""
    assert h.ex.total_cost_usd == pytest.approx(total + 0.1)
    assert (h.ex.decision_log[-1].data or {})["status"] == "failed"


def test_an_empty_answer_counts_as_a_failure():
    h = failed_batch()
    h.diagnosed(diagnosis="   ", suggestion="retry")
    assert h.rc.diagnosis is not None and h.rc.diagnosis.status == "failed"


@pytest.mark.parametrize("bad_cost", [math.inf, math.nan, -0.1])
def test_a_diagnosis_cost_is_a_finite_non_negative_number(bad_cost: float):
    with pytest.raises(ValidationError):
        DiagnosisFinished(at=Harness().now, run_id="x", recovery_seq=1, cost_usd=bad_cost)


# --------------------------------------------------------------------------------------------------------------
# Late answers: the person chose first


@pytest.mark.parametrize(
    ("option", "status"), [(R.RETRY, S.RUNNING), (R.SKIP, S.RUNNING), (R.ABORT, S.FAILED)], ids=lambda v: str(v)
)
def test_a_diagnosis_after_the_choice_is_ignored_but_its_cost_counted(option: RecoveryOption, status: S):
    h = failed_batch()
    action = diagnose_actions(h.actions)[0]
    h.cmd(RecoverCommand(option=option))  # does not wait for the helper
    assert h.ex.status is status and h.ex.pending_diagnoses == [action.run_id]
    total, rc_before = h.ex.total_cost_usd, h.ex.recovery_context
    actions = h.diagnosed(action, cost_usd=0.04)
    assert kinds(actions) == ["persist"] and h.ex.status is status
    assert h.ex.total_cost_usd == pytest.approx(total + 0.04) and h.ex.pending_diagnoses == []
    assert h.ex.recovery_context == rc_before
    entry = h.ex.decision_log[-1]
    assert entry.decision == "diagnosis" and (entry.data or {})["status"] == "late" and "ignored" in entry.reason


def test_a_late_diagnosis_of_an_earlier_context_does_not_land_on_the_next_one():
    h = failed_batch()
    first = diagnose_actions(h.actions)[0]
    h.cmd(RecoverCommand(option=R.RETRY))
    h.read()  # the batch runs again …
    h.run_batch(bad(cost=0.1))  # … and fails again: a new context, a new diagnosis
    second = diagnose_actions(h.actions)[0]
    assert second.recovery_seq == 2 and second.run_id != first.run_id
    assert h.ex.pending_diagnoses == [first.run_id, second.run_id]
    h.diagnosed(first, diagnosis="old news", suggestion="skip")
    assert h.rc.diagnosis is not None and h.rc.diagnosis.status == "pending"
    h.diagnosed(second, diagnosis="new news", suggestion="abort")
    assert h.rc.diagnosis.text == "new news" and h.rc.diagnosis.suggestion == "abort"


def test_a_diagnosis_after_cancel_is_counted():
    h = failed_batch()
    h.cmd(CancelCommand())
    h.diagnosed(cost_usd=0.02)
    assert h.ex.status is S.CANCELLED and h.ex.decision_cost_usd == pytest.approx(0.02)
    # the context a cancelled orchestration still shows never says "pending" for a helper that answered
    diagnosis = h.rc.diagnosis
    assert diagnosis is not None and diagnosis.status == "failed"
    assert diagnosis.error == "it arrived after the orchestration moved on" and diagnosis.cost_usd == 0.02
    assert not h.ex.pending_diagnoses


def test_a_diagnosis_nobody_asked_for_is_illegal():
    h = failed_batch()
    h.diagnosed()
    before = h.ex.model_dump_json()
    with pytest.raises(IllegalTransition) as info:
        h.feed(DiagnosisFinished(at=h.tick(), run_id="o1-099-diagnose", recovery_seq=1, diagnosis="?"))
    assert "no diagnosis o1-099-diagnose is pending" in info.value.message
    assert h.ex.model_dump_json() == before


def test_diagnosis_finished_is_legal_in_every_status():
    assert LEGAL_STATUSES["diagnosis_finished"] == frozenset(S)


# --------------------------------------------------------------------------------------------------------------
# Restart


def test_restart_with_the_current_diagnosis_pending_asks_again_with_the_same_run():
    h = failed_batch()
    action = diagnose_actions(h.actions)[0]
    actions = h.restart()
    assert kinds(actions) == ["persist", "diagnose"]
    again = diagnose_actions(actions)[0]
    assert again.run_id == action.run_id and again.recovery_seq == action.recovery_seq and again.start
    assert again.max_budget_usd == action.max_budget_usd
    entry = h.ex.decision_log[-1]
    assert entry.decision == "diagnosis" and (entry.data or {})["status"] == "resumed"
    h.diagnosed(again)
    assert h.rc.diagnosis is not None and h.rc.diagnosis.status == "ready"


def test_restart_with_a_stale_diagnosis_pending_only_collects_it():
    h = failed_batch()
    action = diagnose_actions(h.actions)[0]
    h.cmd(RecoverCommand(option=R.RETRY))
    h.read()
    assert h.ex.status is S.RUNNING and h.ex.current_run is not None
    actions = h.restart(run_alive=True)
    assert kinds(actions) == ["persist", "diagnose"]
    stale = diagnose_actions(actions)[0]
    assert stale.run_id == action.run_id and not stale.start
    assert [d.decision for d in h.ex.decision_log[-2:]] == ["diagnosis", "reconcile_adopted"]
    h.diagnosed(stale, failure="lost", message="the helper never started", cost_usd=0)
    assert h.ex.pending_diagnoses == [] and h.ex.status is S.RUNNING


def test_restart_with_nothing_pending_changes_nothing_at_needs_attention():
    h = failed_batch()
    h.diagnosed()
    assert h.restart() == []
