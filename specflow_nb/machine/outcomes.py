"""Runs and their outcomes: a run ends (``RunFinished``), the project is re-read (``ProjectRead``), and dual
confirmation decides (step verdicts, batch confirmation, questions, stalls, a lost session's one retry).

The structured output of analyze, verify and merge is read through its typed output model.
"""

from __future__ import annotations

from specflow_nb.machine.actions import KillRun, Notify, ReadProject
from specflow_nb.machine.budget import budget_exceeded_issue, exceeded_limit
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import ProjectRead, ProjectSnapshot, RunFinished, RunStalled
from specflow_nb.machine.forward import batch_done, move_on, note_tasks, step_done
from specflow_nb.machine.healing import confirm_heal, heal_or_attention
from specflow_nb.machine.outputs import analyze_output, merge_output, verify_output
from specflow_nb.machine.recovery import resume_answered
from specflow_nb.machine.spawning import spawn_batch, spawn_healer, spawn_merge, spawn_step
from specflow_nb.machine.stopping import needs_attention
from specflow_nb.machine.tx import Tx, batch_at, failure_text, outcome_error, run_label, unchecked
from specflow_nb.models import (
    BatchStatus,
    CurrentRun,
    OrchestrationConfig,
    OrchestrationPhase,
    OrchestrationStatus,
    Question,
    RecoveryOption,
    RunKind,
    RunOutcome,
    StepState,
)
from specflow_nb.taskids import compact as compact_ids

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption


#: Stalls of one run before the machine kills it (each RunStalled = another ``stale_after`` of silence).
STALL_KILL_AFTER = 2


def on_run_finished(tx: Tx, ev: RunFinished) -> None:
    ex = tx.ex
    if ev.run_execution_id in ex.killed_run_ids:
        ex.killed_run_ids.remove(ev.run_execution_id)
        ex.total_cost_usd += ev.outcome.cost_usd
        tx.log(
            Decision.KILLED_RUN_ENDED,
            f"killed run {ev.run_execution_id} ended; its cost ${ev.outcome.cost_usd:.2f} is counted",
            runId=ev.run_execution_id,
            costUsd=ev.outcome.cost_usd,
        )
        return
    run = ex.current_run
    if run is None or run.execution_id != ev.run_execution_id or not run.live:
        current = run.execution_id if run and run.live else "none"
        raise tx.illegal(f"run {ev.run_execution_id} is not the run in flight ({current})")
    apply_outcome(tx, run, ev.outcome)


def apply_outcome(tx: Tx, run: CurrentRun, out: RunOutcome) -> None:
    ex = tx.ex
    ex.total_cost_usd += out.cost_usd
    batch = batch_at(ex, run.batch_index) if run.batch_index is not None else None
    if run.kind is RunKind.HEALER:
        ex.healing_cost_usd += out.cost_usd
    elif batch is not None:
        batch.cost_usd += out.cost_usd
    if out.session_id and out.failure != "invalid_session":  # a lost session is never a batch's newest session
        run.session_id = out.session_id
        if batch is not None:
            batch.session_id = out.session_id
    run.outcome = out
    label = run_label(ex, run)

    if out.failure == "budget_exceeded":
        ex.current_run = None
        if batch is not None:
            batch.status = BatchStatus.FAILED
        else:
            ex.step_status[run.step] = StepState.FAILED
        tx.log(
            Decision.BUDGET_EXCEEDED,
            f"{label} stopped at its budget (${out.cost_usd:.2f}): {out.message or 'error_max_budget_usd'}",
            runId=run.execution_id,
            limit=exceeded_limit(ex, healer=run.kind is RunKind.HEALER),
        )
        needs_attention(
            tx,
            kind="budget",
            issue=budget_exceeded_issue(ex, label, run.kind is RunKind.HEALER, batch),
            options=[R.RETRY, R.SKIP, R.ABORT] if batch is not None else [R.RETRY, R.ABORT],
            run=run,
            remaining=run.task_ids,
        )
        return

    questions = questions_asked(out) if out.ok else []
    if questions:
        ex.current_run = None
        ex.status = S.PAUSED
        ex.waiting_for_input = True
        ex.questions = questions
        ex.question_run = run
        tx.log(
            Decision.WAITING_INPUT,
            f"{label} asks {len(questions)} question(s); waiting for answers",
            runId=run.execution_id,
            questions=[q.question for q in questions],
        )
        tx.emit(Notify(event="waiting_input", message=f"{label} needs your input: {questions[0].question}"))
        return

    verify_cmd = ex.config.verify_command if (run.step is P.VERIFY and run.kind is RunKind.STEP and out.ok) else None
    tx.emit(ReadProject(reason=f"confirm {label}", verify_command=verify_cmd, read_git=run.step is P.MERGE))


def on_project_read(tx: Tx, ev: ProjectRead) -> None:
    ex, snap = tx.ex, ev.snapshot
    ex.has_user_gate = snap.has_user_gate
    note_tasks(ex, snap)
    run = ex.current_run
    if run is None and ex.question_run is not None and ex.pending_answers is not None:
        resume_answered(tx, snap)
        return
    if run is None:
        move_on(tx, snap)
        return
    if run.live:
        raise tx.illegal(f"run {run.execution_id} is still in flight; its RunFinished comes first")
    ex.current_run = None
    if retry_lost_session(tx, run, snap):
        return
    if run.kind is RunKind.BATCH:
        _confirm_batch(tx, run, snap)
    elif run.kind is RunKind.HEALER:
        confirm_heal(tx, run, snap)
    else:
        _confirm_step(tx, run, snap)


def on_run_stalled(tx: Tx, ev: RunStalled) -> None:
    ex = tx.ex
    run = ex.current_run
    if run is None or run.execution_id != ev.run_execution_id or not run.live:
        raise tx.illegal(f"run {ev.run_execution_id} is not the run in flight")
    run.stall_count += 1
    kill = run.stall_count >= STALL_KILL_AFTER and run.kill_reason is None
    label = run_label(ex, run)
    tx.log(
        Decision.STALLED,
        f"{label} has written nothing for {ev.silent_for_seconds:.0f} s"
        + ("; killing it (a stalled batch is healed like a failed one)" if kill else ""),
        runId=run.execution_id,
        stallCount=run.stall_count,
        killed=kill,
    )
    tx.emit(Notify(event="stalled", message=f"{label} seems stalled (no output for {ev.silent_for_seconds:.0f} s)"))
    if kill:
        run.kill_reason = "stalled"
        tx.emit(KillRun(run_id=run.execution_id, reason="stalled"))


def retry_lost_session(tx: Tx, run: CurrentRun, snap: ProjectSnapshot) -> bool:
    """A run that resumed (or forked) a session and ended with ``invalid_session``: the session is lost, the work is
    not. Run it again once as a new session (same kind, same step or batch, the tasks still unchecked, the same
    answers), told what the lost session did (``lost_run_id``). The retry resumes nothing, so it is never retried
    again: its failure goes the normal way. True when handled here."""
    out = run.outcome
    if out is None or out.failure != "invalid_session" or run.resumed_session_id is None or run.builtin:
        return False
    ex = tx.ex
    label = run_label(ex, run)
    lost_run = run.resumed_from_run or run.execution_id
    tx.log(
        Decision.SESSION_LOST,
        f"{label} could not resume session {run.resumed_session_id} ({out.message or 'invalid_session'}); "
        "retrying once as a new session told what the lost session did",
        level="warning",
        runId=run.execution_id,
        lostSession=run.resumed_session_id,
        lostRun=lost_run,
    )
    tx.emit(Notify(event="session_lost", message=f"{label}: its session was lost; retrying it as a new session"))
    if run.kind is RunKind.STEP:
        spawn_step(tx, run.step, answers=run.answers, lost_run=lost_run)
        return True
    b = batch_at(ex, run.batch_index)
    if b.session_id == run.resumed_session_id:
        b.session_id = None  # never forked again by a healer
    remaining = unchecked(run.task_ids, snap)
    if not remaining:
        status = BatchStatus.HEALED if run.kind is RunKind.HEALER else BatchStatus.COMPLETED
        batch_done(tx, b, status, "tasks.md confirms every task (nothing was left for the lost session)", snap)
    elif run.kind is RunKind.BATCH:
        spawn_batch(tx, b, remaining, None, answers=run.answers, lost_run=lost_run)
    else:
        failed_run = b.workflow_execution_id or lost_run  # the batch run whose failure is being healed
        spawn_healer(
            tx, b, remaining, failed_run, None, fork=False, answers=run.answers, recount=False, lost_run=lost_run
        )
    return True


def _confirm_batch(tx: Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    b = batch_at(ex, run.batch_index)
    remaining = unchecked(b.task_ids, snap)
    if run.lost:
        if not remaining:
            batch_done(tx, b, BatchStatus.COMPLETED, "confirmed by tasks.md after a restart", snap)
            return
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"batch {b.index + 1} resumes after a restart with {len(remaining)} unchecked task(s)",
            runId=run.execution_id,
            resumeSession=run.session_id,
        )
        spawn_batch(tx, b, remaining, run.session_id, session_run=run.execution_id)
        return
    out = run.outcome
    assert out is not None
    if out.ok and not remaining:
        batch_done(tx, b, BatchStatus.COMPLETED, "agent finished and tasks.md confirms every task", snap)
        return
    b.status = BatchStatus.FAILED
    error = failure_text(out, run, remaining)
    tx.log(
        Decision.BATCH_FAILED, f"batch {b.index + 1} ({b.section}) failed: {error}", remaining=compact_ids(remaining)
    )
    heal_or_attention(tx, b, run, remaining, error, snap)


def _confirm_step(tx: Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    s = run.step
    if run.lost:
        if (s is P.DESIGN and snap.design_complete) or (s is P.MERGE and snap.merged):
            step_done(tx, s, "confirmed on disk after a restart", snap)
            return
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"step {s.value} runs again after a restart",
            runId=run.execution_id,
            resumeSession=run.session_id,
        )
        if s is P.MERGE:
            spawn_merge(tx, snap)
        else:
            spawn_step(tx, s, resume=run.session_id, session_run=run.execution_id)
        return
    out = run.outcome
    assert out is not None
    ok, why = _step_verdict(s, out, snap, ex.config)
    if ok:
        step_done(tx, s, why, snap)
        return
    ex.step_status[s] = StepState.FAILED
    if s is P.MERGE:
        kind = "merge_conflict" if snap.merge_conflicts else "step_failed"
        options = [R.RETRY, R.ABORT]
    else:
        kind, options = "step_failed", [R.RETRY, R.SKIP, R.ABORT]
    needs_attention(tx, kind=kind, issue=why, options=options, run=run)


def _step_verdict(s: P, out: RunOutcome, snap: ProjectSnapshot, cfg: OrchestrationConfig) -> tuple[bool, str]:
    """Dual confirmation for a step: (confirmed?, a readable sentence why)."""
    if s is P.MERGE and snap.merge_conflicts:
        return False, (
            f"Merge conflict in {', '.join(snap.merge_conflicts)}: resolve them on the feature branch, then retry."
        )
    if not out.ok:
        return False, f"The {s.value} run failed: {outcome_error(out)}"
    said = verify_output(out) if s is P.VERIFY else merge_output(out) if s is P.MERGE else None
    if said is not None and said.status == "needs_input":  # with questions it waited for answers
        return False, (
            f"The {s.value} run said it needs input but asked no question, so it is neither passed nor failed: "
            "retry the step."
        )
    if s is P.DESIGN:
        if snap.design_complete:
            return True, f"design confirmed: spec.md, plan.md and tasks.md ({len(snap.task_ids)} tasks) exist"
        return False, f"Design finished but the feature folder lacks {', '.join(snap.missing_design_artifacts())}."
    if s is P.ANALYZE:
        analysis = analyze_output(out)
        if analysis is not None and analysis.status == "completed":
            return True, "analyze reported completed"
        return False, f"Analyze did not report completed (status {analysis.status if analysis else None!r})."
    if s is P.VERIFY:
        verdict = verify_output(out)
        if verdict is None or verdict.passed is not True:
            failures = verdict.failures if verdict else []
            return False, "Verify failed: " + ("; ".join(failures) or "the agent did not report passed")
        if cfg.verify_command:
            if snap.verify_exit_code != 0:
                tail = f": {snap.verify_output_tail.strip()[-500:]}" if snap.verify_output_tail.strip() else ""
                code = "did not run" if snap.verify_exit_code is None else f"exited {snap.verify_exit_code}"
                return False, (f"Verify failed: `{cfg.verify_command}` {code} although the agent reported passed{tail}")
            return True, f"verify passed and `{cfg.verify_command}` exited 0"
        return True, "verify passed"
    if s is P.MERGE:
        if snap.merged:
            return True, "git shows the feature branch merged"
        return False, "The merge run ended but git does not show the feature branch merged."
    raise AssertionError(s)


def questions_asked(out: RunOutcome) -> list[Question]:
    so = out.structured_output or {}
    if so.get("status") != "needs_input":
        return []
    result = []
    for i, q in enumerate(so.get("questions") or [], start=1):
        if isinstance(q, str):
            result.append(Question(id=f"q{i}", question=q))
        elif isinstance(q, dict) and (q.get("question") or q.get("text")):
            result.append(
                Question(
                    id=str(q.get("id") or f"q{i}"),
                    question=str(q.get("question") or q.get("text")),
                    options=[str(o.get("label", o)) if isinstance(o, dict) else str(o) for o in q.get("options") or []],
                )
            )
    return result
