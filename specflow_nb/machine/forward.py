"""Moving forward: the start, the walk through design → analyze → implement (batches) → verify → merge, the batch
plan, and what a start would run (``planned_steps``, for the estimate).

``move_on`` is "nothing in flight: do the next thing the project needs"; every path that goes on ends here.
"""

from __future__ import annotations

from typing import Any

from specflow_nb.machine.actions import Notify
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import ProjectSnapshot, Started
from specflow_nb.machine.spawning import spawn_batch, spawn_merge, spawn_step
from specflow_nb.machine.stopping import complete, needs_attention, pause_if_requested
from specflow_nb.machine.tx import Tx, config_skips, unchecked
from specflow_nb.models import (
    STEP_ORDER,
    BatchItem,
    BatchPlan,
    BatchStatus,
    BatchTracking,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    PlannedBatch,
    RecoveryOption,
    StepState,
)
from specflow_nb.taskids import compact as compact_ids

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption


def on_started(tx: Tx, ev: Started) -> None:
    ex, snap = tx.ex, ev.snapshot
    if ex.version != 0 or ex.decision_log:
        raise tx.illegal("it has already started")
    ex.has_user_gate = snap.has_user_gate
    note_tasks(ex, snap)
    cfg = ex.config
    tx.log(
        Decision.START,
        f"Orchestration started: {plan_summary(snap)}",
        autoMerge=cfg.auto_merge,
        skip={s.value: config_skips(cfg, s) for s in STEP_ORDER if s is not P.MERGE},
        budget=cfg.budget.model_dump(),
        hasUserGate=snap.has_user_gate,
    )
    # smart config: the project's state decides what is already done
    if not cfg.skip_design and snap.design_complete:
        ex.step_status[P.DESIGN] = StepState.SKIPPED
        tx.log(
            Decision.STEP_SKIPPED,
            f"design skipped: spec.md, plan.md and tasks.md ({len(snap.task_ids)} tasks) already exist (smart config)",
            step="design",
            smart=True,
        )
    if not cfg.skip_implement and snap.all_tasks_done:
        ex.step_status[P.IMPLEMENT] = StepState.SKIPPED
        tx.log(
            Decision.STEP_SKIPPED,
            f"implement skipped: all {len(snap.task_ids)} tasks in tasks.md are already done (smart config)",
            step="implement",
            smart=True,
        )
    move_on(tx, snap)


def note_tasks(ex: OrchestrationExecution, snap: ProjectSnapshot) -> None:
    """Progress counts every task of tasks.md (those settled before the start included), as last read."""
    ex.batches.tasks_total = len(snap.task_ids)
    ex.batches.tasks_done = len(set(snap.done_task_ids) & set(snap.task_ids))


def move_on(tx: Tx, snap: ProjectSnapshot) -> None:
    """Nothing in flight: do the next thing the project needs, from the current step on."""
    ex = tx.ex
    while True:
        s = ex.current_phase
        if s is P.COMPLETE:
            complete(tx)
            return
        st = ex.step_status[s]
        if st in (StepState.COMPLETED, StepState.SKIPPED):
            next_step(tx, s, f"{s.value} {st.value}")
            continue
        if st is StepState.PENDING and config_skips(ex.config, s) and ex.forced_step is not s:
            ex.step_status[s] = StepState.SKIPPED
            tx.log(Decision.STEP_SKIPPED, f"{s.value} skipped (skip{s.value.title()} is set)", step=s.value)
            continue
        if s is P.IMPLEMENT:
            if _advance_implement(tx, snap):
                continue
            return
        if s is P.MERGE and not ex.merge_approved:
            if ex.has_user_gate or not ex.config.auto_merge:
                ex.status = S.WAITING_MERGE
                ex.pause_requested = False  # already stopped: a pending pause is satisfied
                why = (
                    "the phase has a USER GATE: check it by hand, then merge"
                    if ex.has_user_gate
                    else "autoMerge is off: waiting for you to merge"
                )
                tx.log(Decision.WAITING_MERGE, f"ready to merge; {why}")
                tx.emit(Notify(event="waiting_merge", message=f"Phase ready to merge ({why})"))
                return
            ex.merge_approved = True
        if pause_if_requested(tx):
            return
        if s is P.MERGE:
            spawn_merge(tx, snap)
        else:
            spawn_step(tx, s)
        return


def _advance_implement(tx: Tx, snap: ProjectSnapshot) -> bool:
    """Plan (on entry) and spawn the next batch. True when implement is complete and the walk continues."""
    ex = tx.ex
    if ex.step_status[P.IMPLEMENT] is StepState.PENDING:
        plan = snap.batch_plan or BatchPlan()
        ex.batches = BatchTracking(
            total=len(plan.batches),
            current=0,
            items=[
                BatchItem(index=i, section=b.section, task_ids=list(b.task_ids)) for i, b in enumerate(plan.batches)
            ],
        )
        ex.step_status[P.IMPLEMENT] = StepState.RUNNING
        tx.log(
            Decision.BATCH_PLAN,
            f"implement planned: {plan.summary}",
            batches=[logged_batch(b, plan.task_count) for b in plan.batches],
            warnings=plan.warnings,
        )
    if not ex.batches.items:
        if snap.all_tasks_done:
            ex.step_status[P.IMPLEMENT] = StepState.COMPLETED
            tx.log(Decision.TRANSITION, f"implement complete: all {len(snap.task_ids)} tasks are done")
            return True
        blocked = len(snap.task_ids) - len(set(snap.done_task_ids) & set(snap.task_ids))
        detail = (
            f"{blocked} of {len(snap.task_ids)} task(s) are not done but none is pending (blocked?)"
            if snap.task_ids
            else "tasks.md has no tasks"
        )
        ex.step_status[P.IMPLEMENT] = StepState.PENDING  # a retry plans again from the file
        needs_attention(
            tx,
            kind="no_tasks",
            issue=f"No incomplete tasks found, yet implement is not done: {detail}. Fix tasks.md, then retry.",
            options=[R.RETRY, R.SKIP, R.ABORT],
        )
        return False
    for b in ex.batches.items:
        if b.status not in (BatchStatus.PENDING, BatchStatus.RUNNING):
            continue
        remaining = unchecked(b.task_ids, snap)
        if not remaining:
            batch_done(tx, b, BatchStatus.COMPLETED, "every task is already checked in tasks.md", snap, advance=False)
            continue
        if pause_if_requested(tx):
            return False
        spawn_batch(tx, b, remaining, None)
        return False
    ex.step_status[P.IMPLEMENT] = StepState.COMPLETED
    counts = {st.value: sum(1 for b in ex.batches.items if b.status is st) for st in BatchStatus}
    tx.log(
        Decision.TRANSITION,
        f"implement complete: {counts['completed']} batch(es) completed, {counts['healed']} healed, "
        f"{counts['failed']} failed and skipped",
        **counts,
    )
    return True


def next_step(tx: Tx, done: P, why: str) -> None:
    ex = tx.ex
    if ex.forced_step is done:
        ex.forced_step = None
    i = STEP_ORDER.index(done)
    nxt = STEP_ORDER[i + 1] if i + 1 < len(STEP_ORDER) else P.COMPLETE
    ex.current_phase = nxt
    tx.log(Decision.TRANSITION, f"{done.value} → {nxt.value}: {why}", **{"from": done.value, "to": nxt.value})


def step_done(tx: Tx, s: P, why: str, snap: ProjectSnapshot) -> None:
    tx.ex.step_status[s] = StepState.COMPLETED
    if s is P.MERGE:
        tx.ex.current_phase = P.COMPLETE
        tx.ex.forced_step = None
        complete(tx, why)
        return
    next_step(tx, s, why)
    move_on(tx, snap)


def batch_done(
    tx: Tx, b: BatchItem, status: BatchStatus, why: str, snap: ProjectSnapshot, *, advance: bool = True
) -> None:
    ex = tx.ex
    if b.status is not BatchStatus.HEALED:  # healed stays healed (MISSION §9)
        b.status = status
    b.completed_at = tx.at
    decision = Decision.BATCH_HEALED if status is BatchStatus.HEALED else Decision.BATCH_COMPLETE
    tx.log(decision, f"batch {b.index + 1} of {ex.batches.total} ({b.section}) {status.value}: {why}", batch=b.index)
    if not advance:
        return
    more = any(x.status is BatchStatus.PENDING for x in ex.batches.items)
    if ex.config.pause_between_batches and more:
        ex.status = S.PAUSED
        ex.pause_requested = False
        tx.log(Decision.PAUSE, f"paused after batch {b.index + 1} (pauseBetweenBatches)")
        tx.emit(Notify(event="paused", message=f"Paused after batch {b.index + 1}: review it, then resume"))
        return
    move_on(tx, snap)


#: A plan with more task ids than this is logged with counts; its ids are in ``batches.items`` of the same record.
LOG_PLAN_IDS = 1000


def logged_batch(b: PlannedBatch, plan_tasks: int) -> dict[str, Any]:
    if plan_tasks <= LOG_PLAN_IDS:
        return {"section": b.section, "taskIds": compact_ids(b.task_ids)}
    ids = b.task_ids
    return {"section": b.section, "tasks": len(ids), "first": ids[0] if ids else None, "last": ids[-1] if ids else None}


def plan_summary(snap: ProjectSnapshot) -> str:
    if snap.batch_plan is not None:
        return snap.batch_plan.summary
    return "no tasks.md yet" if not snap.has_tasks else f"{len(snap.task_ids)} task(s)"


def planned_steps(config: OrchestrationConfig, snap: ProjectSnapshot) -> list[OrchestrationPhase]:
    """The steps a start with ``config`` runs on the project as ``snap`` shows it, in order: the skip flags, then
    smart config (design when spec, plan and tasks exist; implement when every task is done). Merge always runs
    (the project's merge command as an agent step, else the built-in git merge)."""
    steps = []
    for s in STEP_ORDER:
        if config_skips(config, s):
            continue
        if (s is P.DESIGN and snap.design_complete) or (s is P.IMPLEMENT and snap.all_tasks_done):
            continue
        steps.append(s)
    return steps
