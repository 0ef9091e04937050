"""Diagnosis when a person must decide (issue 15.5): asking the read-only helper for a reading of the failed run,
keeping its answer only for the context it was asked for, and asking again after a restart.
"""

from __future__ import annotations

from specflow_nb.machine.actions import Diagnose, Notify
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import DiagnosisFinished
from specflow_nb.machine.tx import Tx
from specflow_nb.models import (
    DIAGNOSIS_MAX_CHARS,
    CurrentRun,
    Diagnosis,
    OrchestrationExecution,
    OrchestrationStatus,
)

S = OrchestrationStatus


def _diagnosis_budget(ex: OrchestrationExecution) -> float:
    """min(decisionBudget, maxTotal left), never below 0."""
    budget = ex.config.budget
    return max(0.0, round(min(budget.decision_budget, budget.max_total - ex.total_cost_usd), 6))


def ask_diagnosis(tx: Tx, run: CurrentRun | None) -> None:
    """Number the new recovery context and, when a failed run can be read and money is left, ask for a diagnosis."""
    ex = tx.ex
    rc = ex.recovery_context
    assert rc is not None
    ex.recovery_seq += 1
    rc.seq = ex.recovery_seq
    if ex.config.budget.decision_budget <= 0 or run is None:
        return  # turned off (decisionBudget 0), or no run whose transcript could tell why
    left = _diagnosis_budget(ex)
    if left <= 0:
        tx.log(
            Decision.DIAGNOSIS,
            f"no diagnosis: nothing is left of maxTotal ${ex.config.budget.max_total:.2f} for the decision helper",
            status="skipped",
        )
        return
    ex.run_seq += 1
    run_id = f"{ex.id}-{ex.run_seq:03d}-diagnose"
    rc.diagnosis = Diagnosis(run_id=run_id, status="pending", started_at=tx.at)
    ex.pending_diagnoses = [*ex.pending_diagnoses, run_id]
    tx.emit(_diagnose_action(ex, run_id, left))


def _diagnose_action(ex: OrchestrationExecution, run_id: str, budget: float, *, start: bool = True) -> Diagnose:
    rc = ex.recovery_context
    if rc is None or rc.diagnosis is None or rc.diagnosis.run_id != run_id:
        return Diagnose(run_id=run_id, recovery_seq=0, start=False)  # a stale helper: only its result is wanted
    return Diagnose(
        run_id=run_id,
        recovery_seq=rc.seq,
        failed_run_id=rc.failed_workflow_id,
        max_budget_usd=budget,
        start=start and budget > 0,
        issue=rc.issue,
        issue_kind=rc.kind,
        options=list(rc.options),
        step=rc.step,
        batch_index=rc.batch_index,
        remaining_task_ids=list(rc.remaining_task_ids),
    )


def resume_diagnoses(tx: Tx) -> bool:
    """After a restart: ask again for every pending diagnosis (adopted or read if its helper started). True if any."""
    ex = tx.ex
    if not ex.pending_diagnoses:
        return False
    left = _diagnosis_budget(ex)
    for run_id in ex.pending_diagnoses:
        tx.emit(_diagnose_action(ex, run_id, left))
    tx.log(
        Decision.DIAGNOSIS,
        f"host restarted with {len(ex.pending_diagnoses)} diagnosis helper(s) pending: adopting each that still "
        "runs, reading the result of each that ended",
        status="resumed",
        runIds=list(ex.pending_diagnoses),
    )
    return True


_SUGGESTION_WORDS = {
    "retry": "retry",
    "skip": "skip",
    "abort": "abort",
    "fix": "fix something first",
}


def _clip(text: str, limit: int = DIAGNOSIS_MAX_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def on_diagnosis_finished(tx: Tx, ev: DiagnosisFinished) -> None:
    ex = tx.ex
    if ev.run_id not in ex.pending_diagnoses:
        raise tx.illegal(f"no diagnosis {ev.run_id} is pending")
    ex.pending_diagnoses = [r for r in ex.pending_diagnoses if r != ev.run_id]
    ex.total_cost_usd += ev.cost_usd
    ex.decision_cost_usd += ev.cost_usd
    rc = ex.recovery_context
    pending = rc.diagnosis if rc is not None else None
    if (
        ex.status is not S.NEEDS_ATTENTION
        or rc is None
        or pending is None
        or rc.seq != ev.recovery_seq
        or pending.run_id != ev.run_id
    ):
        if rc is not None and pending is not None and pending.run_id == ev.run_id and pending.status == "pending":
            # the context is still shown (e.g. the orchestration was cancelled from needs_attention): never "pending"
            rc.diagnosis = pending.model_copy(
                update={
                    "status": "failed",
                    "error": "it arrived after the orchestration moved on",
                    "cost_usd": ev.cost_usd,
                    "finished_at": tx.at,
                }
            )
        tx.log(
            Decision.DIAGNOSIS,
            f"a diagnosis arrived after the choice was made: ignored; its cost ${ev.cost_usd:.2f} is counted",
            status="late",
            runId=ev.run_id,
            costUsd=ev.cost_usd,
        )
        return
    if ev.failure is not None or not ev.diagnosis.strip():
        error = _clip(f"{ev.failure or 'empty answer'}: {ev.message}" if ev.message else (ev.failure or "empty"))
        rc.diagnosis = pending.model_copy(
            update={
                "status": "failed",
                "error": error,
                "cost_usd": ev.cost_usd,
                "model": ev.model,
                "finished_at": tx.at,
            }
        )
        tx.log(
            Decision.DIAGNOSIS,
            f"no diagnosis: the decision helper failed ({error}); its cost ${ev.cost_usd:.2f} is counted",
            status="failed",
            runId=ev.run_id,
            costUsd=ev.cost_usd,
        )
        return
    offered = {o.value for o in rc.options}
    suggestion = ev.suggestion if ev.suggestion == "fix" or ev.suggestion in offered else None
    fix = _clip(ev.fix) if ev.fix and ev.fix.strip() and suggestion == "fix" else None
    text = _clip(ev.diagnosis)
    rc.diagnosis = pending.model_copy(
        update={
            "status": "ready",
            "text": text,
            "suggestion": suggestion,
            "fix": fix,
            "cost_usd": ev.cost_usd,
            "model": ev.model,
            "finished_at": tx.at,
        }
    )
    advice = f"fix first: {fix}" if fix else _SUGGESTION_WORDS[suggestion] if suggestion else "no suggestion"
    tx.log(
        Decision.DIAGNOSIS,
        f"{text} Suggested: {advice}.",
        status="ready",
        runId=ev.run_id,
        suggestion=suggestion,
        fix=fix,
        costUsd=ev.cost_usd,
        model=ev.model,
        dropped=ev.suggestion if ev.suggestion and suggestion is None else None,
    )
    tx.emit(Notify(event="diagnosis", message=f"{text} Suggested: {advice}."))
