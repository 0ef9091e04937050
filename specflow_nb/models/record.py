"""The orchestration record (MISSION §4): :class:`OrchestrationExecution` and everything it holds.

This is what ``.specflow/workflows/orchestration-{id}.json`` stores and what the machine reads and returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from specflow_nb.models.base import (
    STEP_ORDER,
    BatchStatus,
    CamelModel,
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryOption,
    RunKind,
    StepState,
)
from specflow_nb.models.config import OrchestrationConfig
from specflow_nb.taskids import TaskIds

# Orchestration state (MISSION §4)


class BatchItem(CamelModel):
    index: int = Field(ge=0)
    section: str
    task_ids: TaskIds = Field(default_factory=list)
    status: BatchStatus = BatchStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    heal_attempts: int = 0
    workflow_execution_id: str | None = None
    healer_execution_id: str | None = None
    cost_usd: float = 0.0
    #: The newest agent session that worked on this batch (batch run or healer): what a healer resumes and forks.
    session_id: str | None = None


class BatchTracking(CamelModel):
    total: int = 0
    current: int = 0
    items: list[BatchItem] = Field(default_factory=list)
    #: tasks.md as last read: every task, and those settled (done or deferred), before the start included.
    tasks_total: int = 0
    tasks_done: int = 0


class ExecutionRefs(CamelModel):
    """Ids of the agent runs of each step (a run's folder is ``.specflow/workflows/{id}/``)."""

    design: str | None = None
    analyze: str | None = None
    implement: list[str] = Field(default_factory=list)
    verify: str | None = None
    merge: str | None = None
    healers: list[str] = Field(default_factory=list)


class DecisionLogEntry(CamelModel):
    """One line of the decision log. Frozen, like the log (entries are only appended): copies of a record share
    them (``machine.copy_execution``)."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    decision: str
    reason: str
    data: dict[str, Any] | None = None


class RecoveryContext(CamelModel):
    issue: str
    options: list[RecoveryOption] = Field(
        default_factory=lambda: [RecoveryOption.RETRY, RecoveryOption.SKIP, RecoveryOption.ABORT]
    )
    failed_workflow_id: str | None = None
    #: What went wrong, for programs: batch_failed, step_failed, budget, no_tasks, merge_conflict, run_lost.
    kind: str | None = None
    step: OrchestrationPhase | None = None
    batch_index: int | None = None
    remaining_task_ids: TaskIds = Field(default_factory=list)
    # ---- the diagnosis (issue 15.5): appended fields
    #: This context's number (``OrchestrationExecution.recovery_seq`` when it was made): a diagnosis is kept only
    #: by the context it was asked for.
    seq: int = 0
    #: A read-only helper's reading of the failed run (pending while it runs); None when none was asked for.
    diagnosis: Diagnosis | None = None


#: The longest diagnosis text a record keeps (a longer answer is cut at a word).
DIAGNOSIS_MAX_CHARS = 1000
#: What a diagnosis may suggest: one of the recovery options, or "fix" (something must be fixed first).
DiagnosisSuggestion = Literal["retry", "skip", "abort", "fix"]


class Diagnosis(CamelModel):
    """Why a run failed, in plain words, and what to do: the decision helper's answer at needs_attention."""

    #: The helper run (its folder is ``.specflow/workflows/{run_id}/``).
    run_id: str
    status: Literal["pending", "ready", "failed"] = "pending"
    text: str = Field("", max_length=DIAGNOSIS_MAX_CHARS)
    suggestion: DiagnosisSuggestion | None = None
    #: What to fix first (with suggestion "fix").
    fix: str | None = Field(None, max_length=DIAGNOSIS_MAX_CHARS)
    cost_usd: float = Field(0.0, ge=0)
    model: str | None = None
    #: Why there is no diagnosis (status "failed").
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunOutcome(CamelModel):
    """How an agent run ended, as the agent runner reports it (the CLI's final ``result`` message and the exit)."""

    exit_ok: bool
    is_error: bool = False
    #: A typed failure of the agent runner (budget_exceeded, max_turns, timeout, process_failed, ...) or None.
    failure: str | None = None
    cost_usd: float = Field(0.0, ge=0)
    session_id: str | None = None
    structured_output: dict[str, Any] | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """The agent half of dual confirmation: the process exited well and the result is not an error."""
        return self.exit_ok and not self.is_error and self.failure is None


class CurrentRun(CamelModel):
    """The one agent run an orchestration is waiting for (at most one at a time)."""

    execution_id: str
    kind: RunKind
    step: OrchestrationPhase
    batch_index: int | None = None
    #: The session this run resumed or, once known, the session it ran in.
    session_id: str | None = None
    started_at: datetime
    #: The task ids this run was asked to complete (batch and healer runs).
    task_ids: TaskIds = Field(default_factory=list)
    #: True for the built-in git merge (no agent, no cost).
    builtin: bool = False
    stall_count: int = 0
    #: Why the machine asked for this run to be killed (e.g. "stalled"), if it did.
    kill_reason: str | None = None
    #: Set when the run has finished; the run stays current until the project re-read confirms (or not) its work.
    outcome: RunOutcome | None = None
    #: Set after a host restart found the run gone without a result.
    lost: bool = False
    #: The session this run was started to resume (``session_id`` later becomes the session it ran in).
    resumed_session_id: str | None = None
    #: The run whose session this run resumed: its stream holds what that session did (for a lost session's retry).
    resumed_from_run: str | None = None
    #: The answers this run was started with (a retry of its lost session carries them too).
    answers: dict[str, str] | None = None

    @property
    def live(self) -> bool:
        return self.outcome is None and not self.lost


class Question(CamelModel):
    """A question the agent needs a human to answer before it can go on (in its structured output and the record)."""

    id: str = Field(description="Short stable identifier, e.g. q1")
    question: str
    options: list[str] = Field(default_factory=list, description="Suggested answers, if any")


def _pending_steps() -> dict[OrchestrationPhase, StepState]:
    return {s: StepState.PENDING for s in STEP_ORDER}


class NotificationRecord(CamelModel):
    """Something a person should hear of (the machine's Notify), kept in the record with a sequence number so a
    client that skipped versions on the live channel still sees each one, once. Frozen: copies of a record share
    them (``machine.copy_execution``)."""

    model_config = ConfigDict(frozen=True)

    seq: int
    event: str
    message: str
    at: datetime
    #: The run whose transcript says why (needs attention).
    run_id: str | None = None


class OrchestrationExecution(CamelModel):
    id: str
    project_id: str
    status: OrchestrationStatus = OrchestrationStatus.RUNNING
    config: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    current_phase: OrchestrationPhase = OrchestrationPhase.DESIGN
    batches: BatchTracking = Field(default_factory=BatchTracking)
    executions: ExecutionRefs = Field(default_factory=ExecutionRefs)
    started_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    decision_log: list[DecisionLogEntry] = Field(default_factory=list)
    total_cost_usd: float = 0.0
    error_message: str | None = None
    recovery_context: RecoveryContext | None = None
    #: Increases by one on every saved change; clients wait for ``version > n`` on the live channel.
    version: int = 0
    # ---- state of the machine (see specflow_nb.machine) ----
    step_status: dict[OrchestrationPhase, StepState] = Field(default_factory=_pending_steps)
    current_run: CurrentRun | None = None
    #: Runs the machine asked to kill whose final outcome (and cost) has not been reported yet.
    killed_run_ids: list[str] = Field(default_factory=list)
    #: Pause asked while a run is in flight: the run finishes, then the orchestration pauses.
    pause_requested: bool = False
    #: A run ended asking questions: status is ``paused`` until the ``answer`` command.
    waiting_for_input: bool = False
    questions: list[Question] = Field(default_factory=list)
    #: The run that asked the questions; answers resume its session.
    question_run: CurrentRun | None = None
    #: Answers received, waiting for the project re-read that comes before the run resumes with them.
    pending_answers: dict[str, str] | None = None
    #: The phase has a USER GATE: the orchestration always stops in waiting_merge before merging.
    has_user_gate: bool = False
    #: The user (merge command, or retry of a failed merge) or autoMerge allowed the merge.
    merge_approved: bool = False
    #: A step the user went back to: it runs even if the config skips it.
    forced_step: OrchestrationPhase | None = None
    healing_cost_usd: float = 0.0
    #: Counter behind deterministic run ids (``{id}-{seq:03d}-{label}``).
    run_seq: int = 0
    #: The git branch and feature folder (relative to the project) the phase runs on, recorded at start.
    feature_branch: str | None = None
    feature_dir: str | None = None
    #: Ids of the last commands applied (newest last): a command id is applied at most once, even across a crash
    #: of its owner between applying and acknowledging it.
    applied_command_ids: list[str] = Field(default_factory=list)
    #: The last notifications (newest last; the last 50 kept) and the sequence number of the newest one ever.
    notifications: list[NotificationRecord] = Field(default_factory=list)
    notification_seq: int = 0
    # ---- diagnoses (issue 15.5): appended fields
    #: Counter behind ``RecoveryContext.seq`` (one more for every needs_attention).
    recovery_seq: int = 0
    #: Helper runs asked for a diagnosis whose result (and cost) has not been reported yet.
    pending_diagnoses: list[str] = Field(default_factory=list)
    #: What the diagnoses cost together (also counted in ``total_cost_usd``).
    decision_cost_usd: float = Field(0.0, ge=0)
