"""Spawning: the only source of Spawn actions (a step, a batch, a healer, the built-in merge).

Each spawn takes its budget from ``budget`` first (nothing left: a budget stop, never a spawn with ``<= 0``) and
records the run in ``current_run`` before the action leaves the machine (write-ahead).
"""

from __future__ import annotations

from typing import Any

from specflow_nb.machine.actions import RunMerge, SpawnBatch, SpawnHealer, SpawnStep
from specflow_nb.machine.budget import budget_left, budget_stop, healer_budget
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import ProjectSnapshot
from specflow_nb.machine.tx import Tx
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    CurrentRun,
    OrchestrationPhase,
    RecoveryOption,
    RunKind,
    StepState,
)
from specflow_nb.taskids import describe as describe_ids

P = OrchestrationPhase
R = RecoveryOption


def new_run(tx: Tx, kind: RunKind, step_: P, label: str, **kw: Any) -> CurrentRun:
    ex = tx.ex
    ex.run_seq += 1
    run = CurrentRun(execution_id=f"{ex.id}-{ex.run_seq:03d}-{label}", kind=kind, step=step_, started_at=tx.at, **kw)
    ex.current_run = run
    return run


def spawn_step(
    tx: Tx,
    s: P,
    *,
    resume: str | None = None,
    answers: dict[str, str] | None = None,
    session_run: str | None = None,
    lost_run: str | None = None,
) -> None:
    ex = tx.ex
    left, limit = budget_left(ex, ex.config.budget.max_per_batch, "maxPerBatch", 0.0)
    if left <= 0:
        ex.step_status[s] = StepState.PENDING
        budget_stop(tx, f"the {s.value} step", limit, [R.RETRY, R.ABORT])
        return
    ex.current_phase = s
    ex.step_status[s] = StepState.RUNNING
    run = new_run(tx, RunKind.STEP, s, s.value, **_session_fields(resume, session_run, answers))
    setattr(ex.executions, s.value, run.execution_id)
    tx.emit(
        SpawnStep(
            run_id=run.execution_id,
            step=s,
            output_kind=s.value,
            max_budget_usd=left,
            additional_context=ex.config.additional_context,
            resume_session_id=resume,
            answers=answers,
            lost_run_id=lost_run,
        )
    )


def _session_fields(resume: str | None, session_run: str | None, answers: dict[str, str] | None) -> dict[str, Any]:
    """What a run keeps of how it was started, so a retry of its lost session can be built from the record."""
    return {
        "session_id": resume,
        "resumed_session_id": resume,
        "resumed_from_run": session_run if resume else None,
        "answers": answers,
    }


def spawn_merge(tx: Tx, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    if snap.has_merge_command:
        spawn_step(tx, P.MERGE)
        return
    ex.current_phase = P.MERGE
    ex.step_status[P.MERGE] = StepState.RUNNING
    run = new_run(tx, RunKind.STEP, P.MERGE, "merge", builtin=True)
    ex.executions.merge = run.execution_id
    tx.emit(RunMerge(run_id=run.execution_id, target_branch=ex.config.target_branch))


def spawn_batch(
    tx: Tx,
    b: BatchItem,
    task_ids: list[str],
    resume: str | None,
    *,
    answers: dict[str, str] | None = None,
    session_run: str | None = None,
    lost_run: str | None = None,
) -> None:
    ex = tx.ex
    left, limit = budget_left(ex, ex.config.budget.max_per_batch, "maxPerBatch", b.cost_usd)
    if left <= 0:
        # Not started, so not failed: it stays pending (a retry runs it; a skip marks it failed).
        b.status = BatchStatus.PENDING
        budget_stop(tx, f"batch {b.index + 1}", limit, [R.RETRY, R.SKIP, R.ABORT], batch=b)
        return
    b.status = BatchStatus.RUNNING
    b.started_at = b.started_at or tx.at
    ex.batches.current = b.index
    run = new_run(
        tx,
        RunKind.BATCH,
        P.IMPLEMENT,
        f"batch{b.index + 1}",
        batch_index=b.index,
        task_ids=task_ids,
        **_session_fields(resume, session_run, answers),
    )
    b.workflow_execution_id = run.execution_id
    ex.executions.implement.append(run.execution_id)
    if answers is None and resume is None and lost_run is None:
        tx.log(
            Decision.NEXT_BATCH,
            f"Implementing batch {b.index + 1} of {ex.batches.total}: {b.section} ({describe_ids(task_ids)})",
            batch=b.index,
            runId=run.execution_id,
            maxBudgetUsd=left,
        )
    tx.emit(
        SpawnBatch(
            run_id=run.execution_id,
            batch_index=b.index,
            batch_total=ex.batches.total,
            section=b.section,
            task_ids=task_ids,
            max_budget_usd=left,
            additional_context=ex.config.additional_context,
            resume_session_id=resume,
            answers=answers,
            lost_run_id=lost_run,
        )
    )


def spawn_healer(
    tx: Tx,
    b: BatchItem,
    remaining: list[str],
    failed_run_id: str,
    session: str | None,
    *,
    fork: bool,
    error: str = "",
    done: list[str] | None = None,
    answers: dict[str, str] | None = None,
    recount: bool = True,
    session_run: str | None = None,
    lost_run: str | None = None,
) -> None:
    ex = tx.ex
    left = healer_budget(ex.config, healing_spent_usd=ex.healing_cost_usd, total_spent_usd=ex.total_cost_usd)
    if left <= 0:
        _, limit = budget_left(ex, ex.config.budget.healing_budget, "healingBudget", ex.healing_cost_usd)
        b.status = BatchStatus.FAILED
        budget_stop(tx, f"a healer for batch {b.index + 1}", limit, [R.RETRY, R.SKIP, R.ABORT], batch=b)
        return
    if answers is None and recount:
        b.heal_attempts += 1  # counted (and persisted) before the healer starts
        tx.log(
            Decision.HEAL_STARTED,
            f"healing batch {b.index + 1} (attempt {b.heal_attempts} of {ex.config.max_heal_attempts}): "
            f"{describe_ids(remaining)} left",
            batch=b.index,
            attempt=b.heal_attempts,
            maxBudgetUsd=left,
        )
    b.status = BatchStatus.RUNNING
    ex.batches.current = b.index
    run = new_run(
        tx,
        RunKind.HEALER,
        P.IMPLEMENT,
        f"heal{b.index + 1}",
        batch_index=b.index,
        task_ids=remaining,
        **_session_fields(session, session_run or failed_run_id, answers),
    )
    b.healer_execution_id = run.execution_id
    ex.executions.healers.append(run.execution_id)
    tx.emit(
        SpawnHealer(
            run_id=run.execution_id,
            batch_index=b.index,
            section=b.section,
            failed_run_id=failed_run_id,
            attempt=b.heal_attempts,
            task_ids=remaining,
            completed_task_ids=done if done is not None else [t for t in b.task_ids if t not in remaining],
            error=error,
            max_budget_usd=left,
            additional_context=ex.config.additional_context,
            resume_session_id=session,
            fork_session=fork and session is not None,
            answers=answers,
            lost_run_id=lost_run,
        )
    )
