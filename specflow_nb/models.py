"""The schemas every part of specflow_nb shares.

JSON (files on disk, REST bodies) uses the original system's camelCase names; Python uses snake_case. Every model
accepts both spellings on input and writes camelCase on output (``model_dump()`` / ``model_dump_json()`` already
use the aliases), so a file written by the original can be read here and vice versa.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from pydantic.alias_generators import to_camel

from specflow_nb.taskids import TaskIds


def utcnow() -> datetime:
    """The one clock of the package (the state machine never calls it: time arrives in its events)."""
    return datetime.now(timezone.utc)


class CamelModel(BaseModel):
    """Base of every schema: camelCase JSON, snake_case Python, unknown JSON fields kept out of the way."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        use_enum_values=False,
        # Infinity and NaN are never a value of ours: a request or record holding one is invalid (400 / set aside).
        allow_inf_nan=False,
    )


# --------------------------------------------------------------------------------------------------------------
# Status enums (MISSION §4)


class OrchestrationStatus(str, Enum):
    RUNNING = "running"
    PAUSED = "paused"
    WAITING_MERGE = "waiting_merge"
    NEEDS_ATTENTION = "needs_attention"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        """Active orchestrations block a second start on the same project; finished ones do not."""
        return self in ACTIVE_STATUSES

    @property
    def is_terminal(self) -> bool:
        return not self.is_active


ACTIVE_STATUSES = frozenset(
    {
        OrchestrationStatus.RUNNING,
        OrchestrationStatus.PAUSED,
        OrchestrationStatus.WAITING_MERGE,
        OrchestrationStatus.NEEDS_ATTENTION,
    }
)


class OrchestrationPhase(str, Enum):
    DESIGN = "design"
    ANALYZE = "analyze"
    IMPLEMENT = "implement"
    VERIFY = "verify"
    MERGE = "merge"
    COMPLETE = "complete"


#: The order in which the steps run.
STEP_ORDER: tuple[OrchestrationPhase, ...] = (
    OrchestrationPhase.DESIGN,
    OrchestrationPhase.ANALYZE,
    OrchestrationPhase.IMPLEMENT,
    OrchestrationPhase.VERIFY,
    OrchestrationPhase.MERGE,
)


class BatchStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    HEALED = "healed"  # stays healed: never overwritten by "completed" (MISSION §9)

    @property
    def is_done(self) -> bool:
        return self in (BatchStatus.COMPLETED, BatchStatus.HEALED)


class RecoveryOption(str, Enum):
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"


class TaskState(str, Enum):
    """A task line's checkbox in tasks.md: ``[ ]`` pending, ``[x]`` done, ``[b]`` blocked, ``[~]``/``[-]`` deferred."""

    PENDING = "pending"
    DONE = "done"
    BLOCKED = "blocked"
    DEFERRED = "deferred"


# --------------------------------------------------------------------------------------------------------------
# Configuration (MISSION §3)


#: The largest budget a request may set (USD): more is a typo, and a 309-digit ``--max-budget-usd`` is no limit.
MAX_BUDGET_USD = 10_000.0
#: The longest silence a run may be allowed before it counts as stalled (one day).
MAX_STALE_AFTER_SECONDS = 86_400.0


class BudgetConfig(CamelModel):
    """Spending limits in USD. Enforced: each run is started with ``--max-budget-usd`` set to what is left."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_per_batch: float = Field(
        5.0, ge=0, le=MAX_BUDGET_USD, title="Max per batch (USD)", description="Cap for one batch's run."
    )
    max_total: float = Field(
        50.0, ge=0, le=MAX_BUDGET_USD, title="Max total (USD)", description="Cap for the whole orchestration."
    )
    healing_budget: float = Field(
        2.0, ge=0, le=MAX_BUDGET_USD, title="Healing budget (USD)", description="Cap for all healer runs together."
    )
    decision_budget: float = Field(
        0.5, ge=0, le=MAX_BUDGET_USD, title="Decision budget (USD)", description="Cap for one read-only decision call."
    )


#: The coding agents specflow_nb can drive: the Claude Code CLI and the Codex CLI.
AgentKind = Literal["claude", "codex"]
#: Each agent's command when the configuration names none.
DEFAULT_AGENT_COMMANDS: dict[str, str] = {"claude": "claude", "codex": "codex"}
#: Claude's model aliases: for Codex they mean "no model given" (a form switched from Claude keeps its default).
CLAUDE_MODEL_ALIASES = frozenset({"sonnet", "opus", "haiku", "default", "opusplan"})


class ModelPrice(CamelModel):
    """What one model costs, in USD per million tokens (Codex reports tokens, not dollars)."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0, description="Uncached input tokens, USD per 1M.")
    cached_input_per_mtok: float = Field(ge=0, description="Cached input tokens, USD per 1M.")
    output_per_mtok: float = Field(ge=0, description="Output tokens (reasoning included), USD per 1M.")


class OrchestrationConfig(CamelModel):
    """What the user chooses once in the Complete Phase form."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # core
    auto_merge: bool = Field(
        False, title="Auto-merge", description="Merge when verify passes instead of waiting for you."
    )
    additional_context: str = Field(
        "", title="Additional context", description="Text added to every step's prompt.", max_length=20_000
    )
    skip_design: bool = Field(False, title="Skip design", description="Skip the design step.")
    skip_analyze: bool = Field(False, title="Skip analyze", description="Skip the analyze step.")
    skip_implement: bool = Field(False, title="Skip implement", description="Skip the implement step.")
    skip_verify: bool = Field(False, title="Skip verify", description="Skip the verify step.")
    # advanced
    auto_heal_enabled: bool = Field(
        True, title="Auto-heal", description="Run a healer on a failed batch before asking you."
    )
    max_heal_attempts: int = Field(
        1, ge=0, le=5, title="Max heal attempts", description="Healer runs per failed batch (0-5)."
    )
    batch_size_fallback: int = Field(
        15,
        ge=1,
        le=50,
        title="Batch size fallback",
        description="Tasks per batch when tasks.md has no ## sections (1-50).",
    )
    pause_between_batches: bool = Field(
        False, title="Pause between batches", description="Pause after each batch for a review."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, title="Budget limits")
    # additions of ours
    agent: AgentKind = Field(
        "claude",
        title="Agent",
        description="The coding agent: Claude Code (claude) or the Codex CLI (codex).",
    )
    agent_command: str = Field(
        "claude",
        min_length=1,
        title="Agent command",
        description="The agent's CLI to run: a name on PATH, a path, or a wrapper (default: claude or codex).",
    )
    model: str | None = Field(
        "sonnet",
        title="Model",
        description="Model for every run (Claude: sonnet by default; Codex: empty = the Codex CLI's own default).",
    )
    fallback_model: str | None = Field(
        None, title="Fallback model", description="Model used when the main one is overloaded."
    )
    verify_command: str | None = Field(
        None,
        title="Verify command",
        description="A command that must exit 0 for verify to pass, e.g. `pytest -q`.",
    )
    target_branch: str | None = Field(
        None, title="Target branch", description="Branch to merge into (default: the repo's default branch)."
    )
    stale_after_seconds: float = Field(
        300.0,
        gt=0,
        le=MAX_STALE_AFTER_SECONDS,
        title="Stale after (s)",
        description="A run with no output for this long is reported as stalled.",
    )
    decision_model: str | None = Field(
        "haiku",
        title="Decision model",
        description="Model of the read-only helper that diagnoses a failure when a person must decide (Claude: "
        "haiku by default; Codex: a Claude name or empty = the run's model). Off when budget.decisionBudget is 0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _agent_defaults(cls, data: Any) -> Any:
        """Per-agent defaults: Codex runs ``codex`` and, unless a model is named, the Codex CLI's own model.

        A Claude default left in a request for Codex (agentCommand ``claude``, model ``sonnet``) means "not set"."""
        if not isinstance(data, dict) or data.get("agent") != "codex":
            return data
        data = dict(data)
        cmd_key = "agentCommand" if "agentCommand" in data else "agent_command"
        if data.get(cmd_key) in (None, "", DEFAULT_AGENT_COMMANDS["claude"]):
            data[cmd_key] = DEFAULT_AGENT_COMMANDS["codex"]
        model = data.get("model")
        if model is None or (isinstance(model, str) and (not model.strip() or model in CLAUDE_MODEL_ALIASES)):
            data["model"] = None
        return data

    @model_validator(mode="after")
    def _claude_model(self) -> OrchestrationConfig:
        if self.agent == "claude" and not self.model:
            self.model = "sonnet"
        return self


# --------------------------------------------------------------------------------------------------------------
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


class StepState(str, Enum):
    """Where one step of the phase stands (``skipped`` by a flag, smart config or a recover ``skip``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class RunKind(str, Enum):
    STEP = "step"
    BATCH = "batch"
    HEALER = "healer"


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
    id: str
    question: str
    options: list[str] = Field(default_factory=list)


def _pending_steps() -> dict[OrchestrationPhase, StepState]:
    return {s: StepState.PENDING for s in STEP_ORDER}


class NotificationRecord(CamelModel):
    """Something a person should hear of (the machine's Notify), kept in the record with a sequence number so a
    client that skipped versions on the live channel still sees each one, once."""

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


# --------------------------------------------------------------------------------------------------------------
# tasks.md and the batch plan (MISSION §2)


class Task(CamelModel):
    id: str
    description: str
    state: TaskState = TaskState.PENDING
    section: str
    line: int = Field(description="1-based line number in tasks.md")
    parallel: bool = False
    verification: bool = False
    wiring: bool = False
    story: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    blocked_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state is TaskState.DONE


class PlannedBatch(CamelModel):
    index: int
    section: str
    task_ids: TaskIds


class BatchPlan(CamelModel):
    batches: list[PlannedBatch] = Field(default_factory=list)
    total_incomplete: int = 0
    used_fallback: bool = False
    summary: str = "No incomplete tasks found"
    warnings: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def batch_count(self) -> int:
        """How many batches (the original dashboard's ``batchPlan.batchCount``)."""
        return len(self.batches)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def task_count(self) -> int:
        """How many tasks the batches hold (the original dashboard's ``batchPlan.taskCount``)."""
        return sum(len(b.task_ids) for b in self.batches)


# --------------------------------------------------------------------------------------------------------------
# The estimate before start (specflow_nb.estimate)

#: Where an estimate's figures come from: this project's past orchestrations, or the host's default settings.
EstimateBasis = Literal["history", "defaults"]


class BatchEstimate(CamelModel):
    """One planned batch's estimated time and cost (its task count × the per-task figures)."""

    index: int = Field(ge=0, description="0-based, as in the batch plan.")
    title: str = Field(description="The batch's section in tasks.md.")
    task_count: int = Field(ge=0)
    seconds: float = Field(ge=0, description="Estimated duration of the batch's run (whole seconds).")
    usd: float = Field(ge=0, description="Estimated cost in USD.")


class StepEstimate(CamelModel):
    """A step that will run for this configuration (design, analyze, verify or merge) and what it should take."""

    step: OrchestrationPhase
    seconds: float = Field(ge=0)
    usd: float = Field(ge=0)
    basis: Literal["history", "defaults", "builtin"] = Field(
        description="history: the median of this project's past runs of the step; defaults: the settings; "
        "builtin: the engine's own git merge (no agent, no cost)."
    )
    runs: int = Field(0, ge=0, description="How many past runs of the step the figure comes from.")


class Estimate(CamelModel):
    """The plan's estimated time and cost before Start: per batch, per step and in total, and the budget check."""

    batches: list[BatchEstimate] = Field(default_factory=list)
    steps: list[StepEstimate] = Field(default_factory=list)
    task_count: int = Field(0, ge=0, description="Tasks the batches hold.")
    seconds_per_task: float = Field(ge=0)
    usd_per_task: float = Field(ge=0)
    total_seconds: float = Field(ge=0, description="Batches and steps together (agent time, not waiting for you).")
    total_usd: float = Field(ge=0)
    basis: EstimateBasis = Field(description="Where the per-task figures come from.")
    basis_label: str = Field(description="The basis in words, naming the past runs or the settings.")
    history_orchestrations: int = Field(0, ge=0, description="Past orchestrations the per-task figures come from.")
    history_batches: int = Field(0, ge=0, description="Past completed batches the per-task figures come from.")
    history_tasks: int = Field(0, ge=0, description="Tasks of those batches.")
    implement_known: bool = Field(
        True, description="False when there is no tasks.md yet (design writes it): the total leaves implement out."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="The limits the warnings compare with.")
    warnings: list[str] = Field(default_factory=list, description="Where the estimate exceeds the budget.")
    notes: list[str] = Field(default_factory=list, description="What the estimate does not count.")
