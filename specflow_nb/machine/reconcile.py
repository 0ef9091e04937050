"""After a restart or a takeover (``HostRestarted``) and after a lost record (``StateRebuilt``): adopt, apply, resume
or re-read, so a host killed at any instant goes on from what the record and the disk say.
"""

from __future__ import annotations

from specflow_nb.machine.actions import ReadProject
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.diagnosis import resume_diagnoses
from specflow_nb.machine.events import HostRestarted
from specflow_nb.machine.outcomes import apply_outcome
from specflow_nb.machine.tx import Tx, run_label
from specflow_nb.models import (
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
)

S = OrchestrationStatus
P = OrchestrationPhase


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
