"""After a restart or a takeover (``HostRestarted``) and after a lost record (``StateRebuilt``): adopt, apply, resume
or re-read, so a host killed at any instant goes on from what the record and the disk say.
"""

from __future__ import annotations

from specflow_nb.machine.actions import ReadProject
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.diagnosis import resume_diagnoses
from specflow_nb.machine.events import HostRestarted, StateRebuilt
from specflow_nb.machine.forward import note_tasks
from specflow_nb.machine.outcomes import apply_outcome
from specflow_nb.machine.stopping import needs_attention
from specflow_nb.machine.tx import Tx, run_label
from specflow_nb.models import (
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryOption,
    RunKind,
    StepState,
)

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption


def on_host_restarted(tx: Tx, ev: HostRestarted) -> None:
    ex = tx.ex
    if ev.took_over_from:
        tx.log(Decision.TAKEOVER, f"{ev.new_owner or 'this host'} took over: {ev.took_over_from}")
    diagnosing = resume_diagnoses(tx)
    if ex.status is not S.RUNNING:
        # paused, waiting_merge, needs_attention: nothing in flight, nothing to do (but a takeover is logged)
        tx.changed = bool(ev.took_over_from) or diagnosing
        return
    run = ex.current_run
    if run is None:
        tx.log(Decision.RECONCILE_RESUMED, "host restarted with no run in flight: re-reading the project")
        tx.emit(ReadProject(reason="host restarted"))
    elif run.outcome is not None:
        tx.log(
            Decision.RECONCILE_FINISHED,
            f"host restarted after {run_label(ex, run)} finished: confirming it",
            runId=run.execution_id,
        )
        verify_cmd = (
            ex.config.verify_command if run.step is P.VERIFY and run.kind is RunKind.STEP and run.outcome.ok else None
        )
        tx.emit(
            ReadProject(reason=f"confirm {run_label(ex, run)}", verify_command=verify_cmd, read_git=run.step is P.MERGE)
        )
    elif ev.run_alive:
        tx.log(Decision.RECONCILE_ADOPTED, f"{run_label(ex, run)} is still alive: adopted", runId=run.execution_id)
    elif ev.outcome is not None:
        tx.log(
            Decision.RECONCILE_FINISHED,
            f"{run_label(ex, run)} ended while the host was down: applying its result",
            runId=run.execution_id,
        )
        apply_outcome(tx, run, ev.outcome)
    else:
        run.lost = True
        tx.log(
            Decision.RECONCILE_LOST,
            f"{run_label(ex, run)} is gone without a result: checking the project",
            runId=run.execution_id,
        )
        tx.emit(ReadProject(reason=f"recover lost {run_label(ex, run)}"))


def run_seq_of(run_name: str, execution_id: str) -> int:
    """The sequence number in a run id ``{execution id}-{seq:03d}-{label}`` (0 when it has none)."""
    if not run_name.startswith(execution_id + "-"):
        return 0
    head = run_name[len(execution_id) + 1 :].split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def on_state_rebuilt(tx: Tx, ev: StateRebuilt) -> None:
    """A record rebuilt from the disk stops in needs_attention (retry or abort): the steps the artifacts prove done
    are completed (design complete: design and analyze), run ids go on after the runs found, and the issue says what
    was found. Retry continues from the project's state (checked tasks are not redone)."""
    ex, snap = tx.ex, ev.snapshot
    if ex.version != 0 or ex.decision_log:
        raise tx.illegal("only a fresh execution is rebuilt")
    ex.config = ev.config
    ex.feature_dir = ev.feature_dir
    ex.run_seq = max((run_seq_of(name, ex.id) for name in ev.runs), default=0)
    note_tasks(ex, snap)
    ex.current_phase = P.DESIGN
    if snap.design_complete:
        ex.step_status[P.DESIGN] = StepState.COMPLETED
        ex.step_status[P.ANALYZE] = StepState.COMPLETED
        ex.current_phase = P.IMPLEMENT
    issue = (
        f"The state file was corrupt and was set aside as {ev.set_aside_as}. Rebuilt from the project: "
        f"{ex.batches.tasks_done} of {ex.batches.tasks_total} tasks done, {len(ev.runs)} agent run folder(s) found. "
        "Retry continues from the project's state (done tasks are not redone); abort ends it."
    )
    needs_attention(tx, kind="state_rebuilt", issue=issue, options=[R.RETRY, R.ABORT], runs=list(ev.runs))
