"""User commands: pause, resume, cancel, merge, recover (retry/skip/abort), go_back and answer, and resuming the
run that asked questions once the project is re-read.
"""

from __future__ import annotations

from typing import Any

from specflow_nb.errors import ConfigError
from specflow_nb.machine.actions import Notify, ReadProject
from specflow_nb.machine.budget import apply_budget
from specflow_nb.machine.commands import (
    AnswerCommand,
    CancelCommand,
    GoBackCommand,
    MergeCommand,
    PauseCommand,
    RecoverCommand,
    ResumeCommand,
)
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import ProjectSnapshot, UserCommand
from specflow_nb.machine.forward import batch_done
from specflow_nb.machine.spawning import spawn_batch, spawn_healer, spawn_step
from specflow_nb.machine.stopping import clear_waits, fail, kill_current
from specflow_nb.machine.tx import Tx, batch_at, run_label, unchecked
from specflow_nb.models import (
    STEP_ORDER,
    BatchStatus,
    BatchTracking,
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryOption,
    RunKind,
    StepState,
)

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption


def on_user_command(tx: Tx, ev: UserCommand) -> None:
    COMMAND_HANDLERS[type(ev.command)](tx, ev.command)


def _cmd_pause(tx: Tx, cmd: PauseCommand) -> None:
    ex = tx.ex
    if ex.pause_requested:
        raise tx.illegal("a pause is already requested (the current run finishes first)")
    ex.pause_requested = True
    what = run_label(ex, ex.current_run) if ex.current_run else "the current step"
    tx.log(Decision.PAUSE_REQUESTED, f"pause requested: {what} finishes first, then the orchestration pauses")


def _cmd_resume(tx: Tx, cmd: ResumeCommand) -> None:
    ex = tx.ex
    if ex.status is S.RUNNING and not ex.pause_requested:
        raise tx.illegal("it is not paused and no pause is pending")
    if ex.waiting_for_input:
        raise tx.illegal("it waits for answers to its questions; send them with answer")
    apply_budget(tx, cmd.budget)
    if ex.status is S.RUNNING:
        ex.pause_requested = False
        tx.log(Decision.RESUME, "pause request withdrawn; continuing")
        return
    ex.status = S.RUNNING
    tx.log(Decision.RESUME, f"resumed at step {ex.current_phase.value}")
    tx.emit(ReadProject(reason="resume"))


def _cmd_cancel(tx: Tx, cmd: CancelCommand) -> None:
    ex = tx.ex
    killed = kill_current(tx, "cancelled")
    clear_waits(ex)
    ex.status = S.CANCELLED
    ex.completed_at = tx.at
    tx.log(Decision.CANCEL, "cancelled by the user" + (f"; run {killed} killed" if killed else ""), killedRun=killed)
    tx.emit(Notify(event="cancelled", message="Orchestration cancelled"))


def _cmd_merge(tx: Tx, cmd: MergeCommand) -> None:
    ex = tx.ex
    ex.status = S.RUNNING
    ex.merge_approved = True
    tx.log(Decision.MERGE_TRIGGERED, "merge triggered by the user")
    tx.emit(ReadProject(reason="merge"))


def _cmd_recover(tx: Tx, cmd: RecoverCommand) -> None:
    ex = tx.ex
    rc = ex.recovery_context
    offered = rc.options if rc else [R.RETRY, R.SKIP, R.ABORT]
    if cmd.option not in offered:
        raise tx.illegal(f"{cmd.option.value} is not offered here (choose {', '.join(o.value for o in offered)})")
    apply_budget(tx, cmd.budget)
    batch = batch_at(ex, rc.batch_index) if rc and rc.batch_index is not None else None
    step_ = rc.step if rc and rc.step else ex.current_phase
    ex.recovery_context = None
    if cmd.option is R.ABORT:
        tx.log(Decision.RECOVERY_ABORT, "aborted by the user")
        fail(tx, f"Aborted by the user after: {rc.issue if rc else 'needs attention'}")
        return
    ex.status = S.RUNNING
    if cmd.option is R.RETRY:
        if batch is not None:
            batch.status = BatchStatus.PENDING
            what = f"batch {batch.index + 1} ({batch.section})"
        else:
            ex.step_status[step_] = StepState.PENDING
            if step_ is P.MERGE:
                ex.merge_approved = True
            what = f"step {step_.value}"
        tx.log(Decision.RECOVERY_RETRY, f"retrying {what}")
    else:
        if batch is not None:
            if not batch.status.is_done:
                batch.status = BatchStatus.FAILED  # skipped: the walk moves past it
            what = f"batch {batch.index + 1} ({batch.section}) stays failed"
        else:
            ex.step_status[step_] = StepState.SKIPPED
            what = f"step {step_.value} skipped"
        tx.log(Decision.RECOVERY_SKIP, f"{what}; moving on")
    tx.emit(ReadProject(reason=f"recover {cmd.option.value}"))


def _cmd_go_back(tx: Tx, cmd: GoBackCommand) -> None:
    ex = tx.ex
    if ex.current_phase is not P.COMPLETE and STEP_ORDER.index(cmd.step) > STEP_ORDER.index(ex.current_phase):
        raise tx.illegal(f"{cmd.step.value} comes after the current step {ex.current_phase.value}")
    killed = kill_current(tx, f"go back to {cmd.step.value}")
    clear_waits(ex)
    ex.recovery_context = None
    ex.merge_approved = False
    start = STEP_ORDER.index(cmd.step)
    for s in STEP_ORDER[start:]:
        ex.step_status[s] = StepState.PENDING
    if start <= STEP_ORDER.index(P.IMPLEMENT):
        ex.batches = BatchTracking()  # recomputed from tasks.md when implement starts again
    ex.current_phase = cmd.step
    ex.forced_step = cmd.step
    ex.status = S.RUNNING
    tx.log(
        Decision.GO_BACK,
        f"going back to {cmd.step.value}" + (f"; run {killed} killed" if killed else ""),
        step=cmd.step.value,
        killedRun=killed,
    )
    tx.emit(ReadProject(reason=f"go back to {cmd.step.value}"))


def _cmd_answer(tx: Tx, cmd: AnswerCommand) -> None:
    ex = tx.ex
    run = ex.question_run
    if not ex.waiting_for_input or run is None:
        raise tx.illegal("there are no questions waiting for answers")
    missing = [q.question for q in ex.questions if q.id not in cmd.answers and q.question not in cmd.answers]
    if missing:
        raise ConfigError(
            f"Unanswered question(s): {'; '.join(missing)}",
            hint="Answer every question, keyed by its id or its text.",
        )
    ex.waiting_for_input = False
    ex.questions = []
    ex.status = S.RUNNING
    ex.pending_answers = dict(cmd.answers)  # the run resumes after the project is re-read (edits made meanwhile count)
    tx.log(Decision.ANSWERS_RECEIVED, f"answers received; resuming {run_label(ex, run)}", answers=dict(cmd.answers))
    tx.emit(ReadProject(reason="answers received: re-read the project, then resume the run that asked"))


def resume_answered(tx: Tx, snap: ProjectSnapshot) -> None:
    """The project re-read after answers: resume the session that asked, with the answers, limited to what is still
    to do (tasks checked while it waited are not asked again; a batch with none left is complete without a run)."""
    ex = tx.ex
    run, answers = ex.question_run, ex.pending_answers or {}
    ex.question_run, ex.pending_answers = None, None
    assert run is not None
    if run.kind in (RunKind.BATCH, RunKind.HEALER):
        b = batch_at(ex, run.batch_index)
        remaining = unchecked(run.task_ids, snap)
        if not remaining:
            status = BatchStatus.HEALED if run.kind is RunKind.HEALER else BatchStatus.COMPLETED
            batch_done(tx, b, status, "tasks.md confirms every task (checked while it waited for answers)", snap)
        elif run.kind is RunKind.BATCH:
            spawn_batch(tx, b, remaining, run.session_id, answers=answers, session_run=run.execution_id)
        else:
            spawn_healer(tx, b, remaining, run.execution_id, run.session_id, fork=False, answers=answers)
        return
    spawn_step(tx, run.step, resume=run.session_id, answers=answers, session_run=run.execution_id)


COMMAND_HANDLERS: dict[type, Any] = {
    PauseCommand: _cmd_pause,
    ResumeCommand: _cmd_resume,
    CancelCommand: _cmd_cancel,
    MergeCommand: _cmd_merge,
    RecoverCommand: _cmd_recover,
    GoBackCommand: _cmd_go_back,
    AnswerCommand: _cmd_answer,
}
