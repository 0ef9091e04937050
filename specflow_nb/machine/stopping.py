"""Stopping: needs_attention (with its recovery context), pause, complete, fail, and killing the live run.

Every rule that stops goes through here, so a stop always logs, notifies and asks for a diagnosis the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from specflow_nb.machine.actions import KillRun, Notify
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.diagnosis import ask_diagnosis
from specflow_nb.machine.tx import Tx, batch_at
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    CurrentRun,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryContext,
    RecoveryOption,
)

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption


def needs_attention(
    tx: Tx,
    *,
    kind: str,
    issue: str,
    options: list[R] | None = None,
    run: CurrentRun | None = None,
    remaining: Iterable[str] = (),
    batch: BatchItem | None = None,
    **data: Any,
) -> None:
    ex = tx.ex
    batch_index = batch.index if batch else (run.batch_index if run else None)
    ex.status = S.NEEDS_ATTENTION
    ex.pause_requested = False
    ex.recovery_context = RecoveryContext(
        issue=issue,
        options=options or [R.RETRY, R.SKIP, R.ABORT],
        failed_workflow_id=run.execution_id if run else None,
        kind=kind,
        step=run.step if run else ex.current_phase,
        batch_index=batch_index,
        remaining_task_ids=list(remaining),
    )
    options_ = [o.value for o in ex.recovery_context.options]
    tx.log(Decision.NEEDS_ATTENTION, issue, kind=kind, options=options_, **data)
    tx.emit(Notify(event="needs_attention", message=issue))
    ask_diagnosis(tx, run)


def pause_if_requested(tx: Tx) -> bool:
    ex = tx.ex
    if not ex.pause_requested:
        return False
    ex.pause_requested = False
    ex.status = S.PAUSED
    tx.log(Decision.PAUSE, f"paused before the next run (step {ex.current_phase.value}), as requested")
    tx.emit(Notify(event="paused", message="Orchestration paused"))
    return True


def complete(tx: Tx, why: str = "") -> None:
    ex = tx.ex
    ex.status = S.COMPLETED
    ex.current_phase = P.COMPLETE
    ex.completed_at = tx.at
    ex.recovery_context = None
    tx.log(Decision.COMPLETE, "phase complete" + (f": {why}" if why else ""), totalCostUsd=round(ex.total_cost_usd, 6))
    tx.emit(Notify(event="completed", message="Phase complete"))


def fail(tx: Tx, message: str) -> None:
    ex = tx.ex
    ex.status = S.FAILED
    ex.error_message = message
    ex.completed_at = tx.at
    clear_waits(ex)
    tx.log(Decision.FAIL, message)
    tx.emit(Notify(event="failed", message=message))


def kill_current(tx: Tx, reason: str) -> str | None:
    ex = tx.ex
    run = ex.current_run
    ex.current_run = None
    if run is None or not run.live:
        return None
    ex.killed_run_ids.append(run.execution_id)
    if run.batch_index is not None:
        b = batch_at(ex, run.batch_index)
        if b.status is BatchStatus.RUNNING:
            b.status = BatchStatus.PENDING
    tx.emit(KillRun(run_id=run.execution_id, reason=reason))
    return run.execution_id


def clear_waits(ex: OrchestrationExecution) -> None:
    ex.pause_requested = False
    ex.waiting_for_input = False
    ex.questions = []
    ex.question_run = None
    ex.pending_answers = None
