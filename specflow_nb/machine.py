"""The orchestration rules as a pure function: ``step(execution, event) -> (execution', actions)``.

Rule 1: everything that affects the orchestration's transitions lives here. The orchestrator feeds events and
performs the actions it gets back; it decides nothing. No I/O, no clock (time arrives in ``event.at``), no
randomness (run ids are derived: ``{execution.id}-{run_seq:03d}-{label}``).

Theory of operation
-------------------
An orchestration walks the steps design → analyze → implement (one agent run per batch) → verify → merge. At most
one agent run is in flight (``execution.current_run``); while one is, the status is ``running``. A step or batch
completes only under *dual confirmation*: its run finished well (``RunFinished`` with exit ok and ``is_error`` false)
AND the project, re-read from disk afterwards (``ReadProject`` action → ``ProjectRead`` event), confirms the work:
design wrote spec.md, plan.md and a tasks.md with a task; analyze's structured output says ``completed``; every task
of the batch is checked in tasks.md; verify's output says ``passed`` and the configured verifyCommand exited 0; git
shows the merge. So a run's life is: Spawn… → ``RunFinished`` (cost added, outcome kept) → ``ReadProject`` →
``ProjectRead`` (confirmed → next; not → heal or needs_attention).

``ProjectRead`` with no run pending is "look at the project and do the next thing" (``_advance``): resume, merge,
recover and go-back all re-read the project first, so user edits made meanwhile count. The orchestrator must perform
a ``ReadProject`` action and feed its ``ProjectRead`` before any other event of that execution.

Statuses: ``running`` (a run in flight or a read pending), ``paused`` (by request, between batches, or waiting for
answers), ``waiting_merge`` (verify passed; autoMerge off or the phase has a USER GATE), ``needs_attention`` (a human
must choose retry/skip/abort from ``recovery_context``), and the terminal ``completed``/``failed``/``cancelled``.
Which event is legal in which status is the table ``LEGAL_STATUSES``; an event outside it, or one failing a guard
(e.g. a ``RunFinished`` for a run that is not current), raises ``IllegalTransition`` (HTTP 409) naming both.

Invariants (each has a test):
- ``step`` never mutates its input; every change bumps ``version`` by one and sets ``updated_at = event.at``; an
  event that changes nothing returns no actions.
- Write-ahead: whenever there are actions, the first is ``Persist`` (save the returned execution), so every spawn,
  kill or merge is on disk before it happens; ``complete`` is persisted like any other change.
- The machine is the only source of Spawn actions; a spawn never carries ``max_budget_usd <= 0`` (nothing left →
  needs_attention "budget reached"). Steps get ``min(maxPerBatch, total left)``, batches ``min(maxPerBatch - batch
  spent, total left)``, healers ``min(healingBudget - healing spent, total left)``. Every run's ``cost_usd`` (failed
  ones too) is added to ``total_cost_usd``. A run that ends with failure ``budget_exceeded`` stops in
  needs_attention (no healing). Budget exhaustion is detected from RunFinished and before each spawn; there is no
  separate "budget exceeded" event.
- One batch at a time, in plan order; the plan is taken from the ``ProjectRead`` that enters implement. An empty plan
  completes implement only when tasks.md has tasks and all are done; otherwise needs_attention (MISSION §9).
  A batch is spawned only with its tasks not yet checked; a batch whose tasks are all checked is completed without a
  run, so a completed batch never runs again.
- Healing: a failed batch (bad run or tasks left) with autoHeal on and ``heal_attempts < maxHealAttempts`` counts the
  attempt, then spawns a healer resuming + forking the batch's newest session, limited to the remaining tasks. Healed
  only when the healer said ``fixed`` and tasks.md confirms; ``healed`` is never overwritten.
- ``additional_context`` rides on every Spawn action, whatever the step.

Decisions made here (documented for hosts):
- pause = finish the current run (step or batch, healer included), then pause: status stays ``running`` with
  ``pause_requested`` until then; it never kills. ``resume`` in ``running`` withdraws a pending pause request.
- cancel kills the live run now; go_back kills it too. Killed runs' later ``RunFinished`` still adds their cost.
- Questions: a run that ends well with structured output ``{"status": "needs_input", "questions": [...]}`` puts the
  orchestration in ``paused`` with ``waiting_for_input`` and ``questions``; only ``answer`` (or cancel/go_back)
  leaves it: the project is re-read first, then the same run kind resumes (not forks) the same session with the
  answers, limited to the tasks still unchecked (a batch with none left completes without a run).
- Verify and merge (an agent merge step) ask questions like every step (structured output ``status:
  "needs_input"``): a needs_input verify is neither passed nor failed; it waits for answers, then resumes its
  session with them, and the verifyCommand runs on the final pass only. ``needs_input`` without a question is not
  confirmed (needs_attention, retry).
- Lost sessions: a run that resumed or forked a session (answer, healer, reconcile after a restart) and ended with
  failure ``invalid_session`` logs ``session_lost`` (level warning) and is respawned ONCE as a new session: same
  kind and step or batch, the tasks still unchecked (none left: the batch is done), the same answers, the heal
  attempt not counted again, and ``lost_run_id`` naming the run whose stream holds what the lost session did (the
  orchestrator puts its last messages, ≤ 3,000 characters, redacted, in the prompt). The retry resumes nothing, so
  any failure of it goes the normal way (healing for a batch, else needs_attention). A lost session is never
  recorded as a batch's newest session.
- USER GATE: a phase with a user gate always stops in ``waiting_merge`` after verify (even with autoMerge); the
  ``merge`` command is the user's "gate passed".
- Merge: the built-in git merge is a ``RunMerge`` action unless the project has its own merge command (an agent
  step run). The orchestrator reports either with ``RunFinished``.
- Recovery: ``retry`` re-runs the failed batch/step (a batch only with its unchecked tasks; heal attempts are not
  reset, so a retried batch that fails again goes to needs_attention unless attempts remain); ``skip`` leaves a
  batch ``failed`` and moves on, or marks a step ``skipped`` and moves on (a failed verify skipped proceeds to
  merge); merge problems offer only retry/abort; budget stops offer retry/abort (and skip for a batch). ``resume``
  and ``recover`` may carry a new ``budget`` (how a user raises ``maxTotal`` after the budget stop).
- Stalls: each ``RunStalled`` logs ``stalled`` and notifies; the second for the same run kills it
  (``KillRun(reason="stalled")``) and its ``RunFinished`` then goes the normal failure way (healing for a batch).
- Restart (``HostRestarted``, per active execution): a live run is adopted (``reconcile_adopted``); a dead run's
  found outcome is applied as ``RunFinished`` (``reconcile_finished``); a dead run without one is marked lost and the
  project re-read: work confirmed on disk completes it, otherwise the run is respawned resuming its session
  (``reconcile_resumed``). A lost healer whose tasks are all checked counts as ``healed``.
- Commands that travel through an owner's inbox carry an id: a ``UserCommand`` whose ``command_id`` is in
  ``applied_command_ids`` changes nothing (applied at most once); an applied one is added (the last 200 kept).
- Every ``Notify`` is also kept in the record (``notifications``, numbered by ``notification_seq``, the last 50):
  hosts announce from there, so a client that skipped versions still hears of each event once.
- Takeover: ``HostRestarted`` with ``took_over_from`` logs ``takeover`` (who, and why the previous owner is gone),
  in every active status, then reconciles as after a restart.
- go_back {step}: legal in every active status; resets that step and the later ones (and the batch plan when the
  step is implement or earlier), then runs the step even if the config skips it.
- What a start will run (``planned_steps``, for the estimate before start): the steps the skip flags and smart
  config leave, merge always (an agent step with the project's merge command, else the built-in git merge).

Diagnosis when a person must decide (issue 15.5; the functions under "diagnosis" below):
- Entering needs_attention with a failed run to read and ``decisionBudget > 0`` numbers the recovery context
  (``seq``) and asks a read-only helper for a diagnosis: a ``Diagnose`` action (after Persist, like every action)
  naming the failed run, the context's seq and ``max_budget_usd = min(decisionBudget, maxTotal left)``; the context
  holds ``diagnosis`` (status pending) and ``pending_diagnoses`` the helper's run id. ``decisionBudget`` 0 asks for
  none. A stop without a failed run (a budget stop before a spawn, no tasks) has nothing to read: none. A budget
  stop gets one only while money is left of maxTotal (a per-batch stop usually has; a maxTotal stop has none: the
  log says so).
- ``DiagnosisFinished`` (legal in every status, only for a pending helper) adds its cost to ``total_cost_usd`` and
  ``decision_cost_usd``, always. It is kept (status ready, or failed with the helper's error) only when the
  orchestration still needs attention for that same context (same seq); otherwise the person already chose: it is
  logged as late and ignored. A suggested option the context does not offer is dropped (the text stays).
- The helper never holds ``current_run``: it runs beside the stopped orchestration, and Retry/Skip/Abort do not
  wait for it.
- Restart (``HostRestarted``) with diagnoses pending: each is asked again with the same run id (the orchestrator
  adopts the helper if it still runs, or reads its result if it ended meanwhile); only the current context's one is
  started anew when it never started, a stale one is then reported as lost. Logged as ``diagnosis``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, field_validator

from specflow_nb.errors import ConfigError, OrchestrationConflict
from specflow_nb.models import (
    ACTIVE_STATUSES,
    DIAGNOSIS_MAX_CHARS,
    STEP_ORDER,
    BatchItem,
    BatchPlan,
    BatchStatus,
    BatchTracking,
    BudgetConfig,
    CamelModel,
    CurrentRun,
    DecisionLogEntry,
    Diagnosis,
    DiagnosisSuggestion,
    NotificationRecord,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    PlannedBatch,
    Question,
    RecoveryContext,
    RecoveryOption,
    RunKind,
    RunOutcome,
    StepState,
)
from specflow_nb.taskids import compact as compact_ids
from specflow_nb.taskids import describe as describe_ids

S = OrchestrationStatus
P = OrchestrationPhase
R = RecoveryOption

#: Failures of the agent's environment, not of its work: healing cannot help, a person must fix them first.
UNHEALABLE_FAILURES: dict[str, str] = {
    "not_installed": "The agent command is not installed: install it (Claude Code: npm install -g "
    "@anthropic-ai/claude-code; Codex: npm install -g @openai/codex) or fix agentCommand, then retry.",
    "auth_failed": "The agent is not logged in: for Claude Code run `claude /login` or set ANTHROPIC_API_KEY, for "
    "Codex run `codex login` or set OPENAI_API_KEY, in the server's environment, then retry.",
    "permission_refused": "The agent refused to run without permission prompts: keep the default "
    "permission mode (acceptEdits), then retry.",
    "rate_limited": "The agent's API kept answering 'rate limit exceeded' (retried with backoff): wait, or raise "
    "the account's limits, then retry.",
    "price_unknown": "The model has no price in the server's price table, so its cost cannot be kept to the budget: "
    "add it to codex_prices (or choose a priced model), then retry.",
}

#: Stalls of one run before the machine kills it (each RunStalled = another ``stale_after`` of silence).
STALL_KILL_AFTER = 2
#: How many applied command ids a record keeps (a command older than this many others has long expired).
APPLIED_IDS_KEPT = 200
#: How many notifications a record keeps (a client further behind than this sees the newest ones).
NOTIFICATIONS_KEPT = 50


class Frozen(CamelModel):
    model_config = ConfigDict(frozen=True)


# ==============================================================================================================
# Decisions (the original's names, plus a few of ours)


class Decision(str, Enum):
    START = "start"
    STEP_SKIPPED = "step_skipped"
    TRANSITION = "transition"
    NEXT_BATCH = "next_batch"
    BATCH_PLAN = "batch_plan"
    BATCH_COMPLETE = "batch_complete"
    BATCH_FAILED = "batch_failed"
    HEAL_STARTED = "heal_started"
    HEAL_FAILED = "heal_failed"
    BATCH_HEALED = "batch_healed"
    PAUSE_REQUESTED = "pause_requested"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    WAITING_MERGE = "waiting_merge"
    MERGE_TRIGGERED = "merge_triggered"
    NEEDS_ATTENTION = "needs_attention"
    RECOVERY_RETRY = "recovery_retry"
    RECOVERY_SKIP = "recovery_skip"
    RECOVERY_ABORT = "recovery_abort"
    BUDGET_EXCEEDED = "budget_exceeded"
    WAITING_INPUT = "waiting_input"
    ANSWERS_RECEIVED = "answers_received"
    GO_BACK = "go_back"
    STALLED = "stalled"
    KILLED_RUN_ENDED = "killed_run_ended"
    RECONCILE_ADOPTED = "reconcile_adopted"
    RECONCILE_FINISHED = "reconcile_finished"
    RECONCILE_LOST = "reconcile_lost"
    RECONCILE_RESUMED = "reconcile_resumed"
    TAKEOVER = "takeover"
    COMPLETE = "complete"
    FAIL = "fail"
    SESSION_LOST = "session_lost"
    DIAGNOSIS = "diagnosis"


# ==============================================================================================================
# Commands (what users send; hosts validate request bodies with ``COMMAND_ADAPTER``)


class PauseCommand(Frozen):
    action: Literal["pause"] = "pause"


class ResumeCommand(Frozen):
    action: Literal["resume"] = "resume"
    #: Replace the budget limits before resuming (e.g. after "budget reached").
    budget: BudgetConfig | None = None


class CancelCommand(Frozen):
    action: Literal["cancel"] = "cancel"


class MergeCommand(Frozen):
    action: Literal["merge"] = "merge"


class RecoverCommand(Frozen):
    action: Literal["recover"] = "recover"
    option: RecoveryOption
    budget: BudgetConfig | None = None


class GoBackCommand(Frozen):
    action: Literal["go_back"] = "go_back"
    step: OrchestrationPhase

    @field_validator("step")
    @classmethod
    def _a_real_step(cls, v: OrchestrationPhase) -> OrchestrationPhase:
        if v is P.COMPLETE:
            raise ValueError("go_back needs a step: design, analyze, implement, verify or merge")
        return v


class AnswerCommand(Frozen):
    action: Literal["answer"] = "answer"
    #: question id (or question text) -> answer
    answers: dict[str, str] = Field(min_length=1)


Command = Annotated[
    PauseCommand | ResumeCommand | CancelCommand | MergeCommand | RecoverCommand | GoBackCommand | AnswerCommand,
    Field(discriminator="action"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(data: Any) -> Command:
    """Validate a request body as a Command; a bad body raises ConfigError (400) naming the problem."""
    from pydantic import ValidationError

    try:
        return COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:] if not isinstance(p, int)) if len(first["loc"]) > 1 else ""
        raise ConfigError(
            f"Invalid command: {where + ': ' if where else ''}{first['msg']}",
            hint="Send {action: pause|resume|cancel|merge|recover|go_back|answer, ...}.",
            details=exc.errors(include_url=False, include_context=False),
        ) from exc


# ==============================================================================================================
# Events (what the orchestrator feeds in)


class ProjectSnapshot(Frozen):
    """The project as the orchestrator just read it from disk."""

    has_spec: bool = False
    has_plan: bool = False
    has_tasks: bool = False
    task_ids: list[str] = Field(default_factory=list)
    done_task_ids: list[str] = Field(default_factory=list)
    #: The plan computed from tasks.md on this read (None when there is no tasks.md).
    batch_plan: BatchPlan | None = None
    #: Exit code of the verifyCommand, when the ReadProject action asked to run it.
    verify_exit_code: int | None = None
    verify_output_tail: str = ""
    merged: bool = False
    merge_conflicts: list[str] = Field(default_factory=list)
    has_user_gate: bool = False
    has_merge_command: bool = False

    @property
    def design_complete(self) -> bool:
        return self.has_spec and self.has_plan and self.has_tasks and len(self.task_ids) >= 1

    @property
    def all_tasks_done(self) -> bool:
        return bool(self.task_ids) and set(self.task_ids) <= set(self.done_task_ids)

    def missing_design_artifacts(self) -> list[str]:
        missing = [name for name, ok in (("spec.md", self.has_spec), ("plan.md", self.has_plan)) if not ok]
        if not (self.has_tasks and self.task_ids):
            missing.append("tasks.md with at least one task")
        return missing


class Started(Frozen):
    kind: Literal["started"] = "started"
    at: datetime
    snapshot: ProjectSnapshot
    #: Who started it (on a shared project the decision log names them).
    actor: str | None = None


class RunFinished(Frozen):
    kind: Literal["run_finished"] = "run_finished"
    at: datetime
    run_execution_id: str
    outcome: RunOutcome


class ProjectRead(Frozen):
    kind: Literal["project_read"] = "project_read"
    at: datetime
    snapshot: ProjectSnapshot


class UserCommand(Frozen):
    kind: Literal["user_command"] = "user_command"
    at: datetime
    command: Command
    actor: str | None = None
    #: Set for a command that travelled through the owner's inbox: applied at most once (``applied_command_ids``).
    command_id: str | None = None


class RunStalled(Frozen):
    kind: Literal["run_stalled"] = "run_stalled"
    at: datetime
    run_execution_id: str
    silent_for_seconds: float


class HostRestarted(Frozen):
    """Sent once per active execution when a host starts. Describes the execution's current run, if any."""

    kind: Literal["host_restarted"] = "host_restarted"
    at: datetime
    #: The current run's process is alive (same pid and start time) and the orchestrator adopted it.
    run_alive: bool = False
    #: The current run is dead but its final result was found in its folder.
    outcome: RunOutcome | None = None
    #: Set when this host took the orchestration over from another owner: who it was and why it is gone.
    took_over_from: str | None = None
    new_owner: str | None = None


class DiagnosisFinished(Frozen):
    """The decision helper asked for by a ``Diagnose`` action ended: its answer, or why there is none."""

    kind: Literal["diagnosis_finished"] = "diagnosis_finished"
    at: datetime
    run_id: str
    #: The recovery context it was asked for (``Diagnose.recovery_seq``).
    recovery_seq: int
    diagnosis: str = ""
    suggestion: DiagnosisSuggestion | None = None
    fix: str | None = None
    cost_usd: float = Field(0.0, ge=0)
    model: str | None = None
    #: A typed failure of the helper (timeout, schema_validation_failed, lost, …); None when it answered.
    failure: str | None = None
    message: str = ""


Event = Annotated[
    Started | RunFinished | ProjectRead | UserCommand | RunStalled | HostRestarted | DiagnosisFinished,
    Field(discriminator="kind"),
]


# ==============================================================================================================
# Actions (what the orchestrator performs, in order)


class Persist(Frozen):
    """Save the returned execution atomically NOW, before performing the actions after it (write-ahead)."""

    kind: Literal["persist"] = "persist"
    version: int


class _Spawn(Frozen):
    run_id: str
    max_budget_usd: float
    additional_context: str = ""
    #: Resume this session (``--resume``); with ``fork_session`` also ``--fork-session``. None = new session.
    resume_session_id: str | None = None
    fork_session: bool = False
    #: Answers to the questions the resumed session asked.
    answers: dict[str, str] | None = None
    #: A new session retrying one that could not be resumed: the run whose stream holds what the lost session did
    #: (its last messages go into this run's prompt).
    lost_run_id: str | None = None


class SpawnStep(_Spawn):
    kind: Literal["spawn_step"] = "spawn_step"
    step: OrchestrationPhase
    #: Which structured-output model the prompt asks for: the step's name.
    output_kind: str


class SpawnBatch(_Spawn):
    kind: Literal["spawn_batch"] = "spawn_batch"
    batch_index: int
    batch_total: int
    section: str
    task_ids: list[str]


class SpawnHealer(_Spawn):
    kind: Literal["spawn_healer"] = "spawn_healer"
    batch_index: int
    section: str
    failed_run_id: str
    attempt: int
    #: The tasks of the batch still unchecked (the healer's whole job) and those already checked.
    task_ids: list[str]
    completed_task_ids: list[str]
    error: str


class RunMerge(Frozen):
    """The built-in git merge: commit leftovers on the feature branch, merge --no-ff into the target branch."""

    kind: Literal["run_merge"] = "run_merge"
    run_id: str
    target_branch: str | None = None


class ReadProject(Frozen):
    """Re-read the project (artifacts, tasks.md, batch plan, git) and feed back a ProjectRead."""

    kind: Literal["read_project"] = "read_project"
    reason: str
    #: Run this command in the project (argument list built by the orchestrator) and report its exit code.
    verify_command: str | None = None
    #: Ask git whether the feature branch is merged (a process per question): only when the decision that follows
    #: reads ``merged`` (a merge run is confirmed) or a command re-reads the project; otherwise merged is False.
    read_git: bool = True


class KillRun(Frozen):
    kind: Literal["kill_run"] = "kill_run"
    run_id: str
    reason: str


class Notify(Frozen):
    """Something a person should see (a toast, a CLI line); change notifications are the orchestrator's own."""

    kind: Literal["notify"] = "notify"
    event: str
    message: str


class Diagnose(Frozen):
    """Run the read-only decision helper on a failed run, beside the stopped orchestration (never blocking it), and
    feed back a ``DiagnosisFinished``. With ``start`` False only adopt a helper started before a restart (or read its
    result); never start one."""

    kind: Literal["diagnose"] = "diagnose"
    run_id: str
    recovery_seq: int
    failed_run_id: str | None = None
    max_budget_usd: float = 0.0
    start: bool = True
    issue: str = ""
    issue_kind: str | None = None
    options: list[RecoveryOption] = Field(default_factory=list)
    step: OrchestrationPhase | None = None
    batch_index: int | None = None
    remaining_task_ids: list[str] = Field(default_factory=list)


Action = Persist | SpawnStep | SpawnBatch | SpawnHealer | RunMerge | ReadProject | KillRun | Notify | Diagnose
SPAWN_ACTIONS = (SpawnStep, SpawnBatch, SpawnHealer, RunMerge)


# ==============================================================================================================
# Legality: which event may arrive in which status (guards inside the handlers refine it)

_ACTIVE = frozenset(ACTIVE_STATUSES)

LEGAL_STATUSES: dict[str, frozenset[OrchestrationStatus]] = {
    "started": frozenset({S.RUNNING}),
    "run_finished": frozenset({S.RUNNING}),  # any status for a run the machine killed
    "project_read": frozenset({S.RUNNING}),
    "run_stalled": frozenset({S.RUNNING}),
    "host_restarted": _ACTIVE,
    "pause": frozenset({S.RUNNING}),
    "resume": frozenset({S.PAUSED, S.RUNNING}),  # running: only to withdraw a pause request
    "cancel": _ACTIVE,
    "merge": frozenset({S.WAITING_MERGE}),
    "recover": frozenset({S.NEEDS_ATTENTION}),
    "go_back": _ACTIVE,
    "answer": frozenset({S.PAUSED}),  # only while waiting for input
    "diagnosis_finished": frozenset(S),  # a pending helper's cost is counted whatever happened meanwhile
}


class IllegalTransition(OrchestrationConflict):
    """An event that the current state does not allow (HTTP 409)."""

    def __init__(self, execution: OrchestrationExecution, event_name: str, why: str = "") -> None:
        allowed = sorted(s.value for s in LEGAL_STATUSES.get(event_name, frozenset()))
        where = _describe(execution)
        msg = f"Cannot {event_name} while the orchestration is {where}"
        msg += f": {why}." if why else "."
        super().__init__(
            msg,
            hint=f"{event_name} is allowed when the orchestration is {' or '.join(allowed) or 'never'}.",
            details={"status": execution.status.value, "event": event_name, "allowedStatuses": allowed},
        )
        self.event_name = event_name
        self.status = execution.status


def _describe(ex: OrchestrationExecution) -> str:
    if ex.status is S.PAUSED and ex.waiting_for_input:
        return "paused waiting for input"
    if ex.status.is_active:
        return f"{ex.status.value} (step {ex.current_phase.value})"
    return ex.status.value


def event_name(event: Event) -> str:
    return event.command.action if isinstance(event, UserCommand) else event.kind


def allowed_commands(execution: OrchestrationExecution) -> list[str]:
    """The command actions a host may offer now (a cheap view of the table plus the guards)."""
    st, out = execution.status, []
    for name in ("pause", "resume", "cancel", "merge", "recover", "go_back", "answer"):
        if st not in LEGAL_STATUSES[name]:
            continue
        if name == "pause" and execution.pause_requested:
            continue
        if name == "resume" and (
            (st is S.RUNNING and not execution.pause_requested) or (st is S.PAUSED and execution.waiting_for_input)
        ):
            continue
        if name == "answer" and not execution.waiting_for_input:
            continue
        out.append(name)
    return out


# ==============================================================================================================
# The transition function


class _Tx:
    """One transition in progress: the copy being changed and the effects collected so far."""

    def __init__(
        self,
        ex: OrchestrationExecution,
        at: datetime,
        name: str,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> None:
        self.ex, self.at, self.name, self.actor, self.command_id = ex, at, name, actor, command_id
        self.effects: list[Action] = []
        self.changed = True

    def log(self, decision: Decision, reason: str, **data: Any) -> None:
        if self.actor:  # who asked (a user command on a shared project): every entry it causes names them
            data["actor"] = self.actor
        if self.command_id:  # a command that travelled to the owner: its id, as the sender knows it
            data["commandId"] = self.command_id
        self.ex.decision_log.append(
            DecisionLogEntry(timestamp=self.at, decision=decision.value, reason=reason, data=data or None)
        )

    def emit(self, action: Action) -> None:
        self.effects.append(action)

    def illegal(self, why: str) -> IllegalTransition:
        return IllegalTransition(self.ex, self.name, why)


def new_execution(
    execution_id: str, project_id: str, config: OrchestrationConfig, at: datetime
) -> OrchestrationExecution:
    """A fresh execution, ready for its ``Started`` event."""
    return OrchestrationExecution(id=execution_id, project_id=project_id, config=config, started_at=at, updated_at=at)


def step(execution: OrchestrationExecution, event: Event) -> tuple[OrchestrationExecution, list[Action]]:
    """Apply one event. Returns the next execution (a new object) and the actions to perform, in order.

    Raises IllegalTransition when the event is not allowed in the execution's state.
    """
    name = event_name(event)
    if isinstance(event, UserCommand) and event.command_id and event.command_id in execution.applied_command_ids:
        return execution.model_copy(deep=True), []  # applied before (its owner crashed before acknowledging it)
    if not (isinstance(event, RunFinished) and event.run_execution_id in execution.killed_run_ids) and (
        execution.status not in LEGAL_STATUSES[name]
    ):
        raise IllegalTransition(execution, name)
    actor = event.actor if isinstance(event, (UserCommand, Started)) else None
    command_id = event.command_id if isinstance(event, UserCommand) else None
    tx = _Tx(execution.model_copy(deep=True), event.at, name, actor, command_id)
    _HANDLERS[type(event)](tx, event)
    if not tx.changed:
        return execution.model_copy(deep=True), []
    if isinstance(event, UserCommand) and event.command_id:
        tx.ex.applied_command_ids = [*execution.applied_command_ids, event.command_id][-APPLIED_IDS_KEPT:]
    _keep_notifications(tx)
    tx.ex.version = execution.version + 1
    tx.ex.updated_at = event.at
    return tx.ex, [Persist(version=tx.ex.version), *tx.effects]


def _keep_notifications(tx: _Tx) -> None:
    """Every Notify of this transition also goes into the record, numbered: hosts announce from the record."""
    ex = tx.ex
    for action in tx.effects:
        if isinstance(action, Notify):
            ex.notification_seq += 1
            run_id = ex.recovery_context.failed_workflow_id if ex.recovery_context else None
            record = NotificationRecord(
                seq=ex.notification_seq, event=action.event, message=action.message, at=tx.at, run_id=run_id
            )
            ex.notifications = [*ex.notifications, record][-NOTIFICATIONS_KEPT:]


# ---- events --------------------------------------------------------------------------------------------------


def _on_started(tx: _Tx, ev: Started) -> None:
    ex, snap = tx.ex, ev.snapshot
    if ex.version != 0 or ex.decision_log:
        raise tx.illegal("it has already started")
    ex.has_user_gate = snap.has_user_gate
    _note_tasks(ex, snap)
    cfg = ex.config
    tx.log(
        Decision.START,
        f"Orchestration started: {_plan_summary(snap)}",
        autoMerge=cfg.auto_merge,
        skip={s.value: _config_skips(cfg, s) for s in STEP_ORDER if s is not P.MERGE},
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
    _advance(tx, snap)


def _on_run_finished(tx: _Tx, ev: RunFinished) -> None:
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
    _apply_outcome(tx, run, ev.outcome)


def _apply_outcome(tx: _Tx, run: CurrentRun, out: RunOutcome) -> None:
    ex = tx.ex
    ex.total_cost_usd += out.cost_usd
    batch = _batch(ex, run.batch_index) if run.batch_index is not None else None
    if run.kind is RunKind.HEALER:
        ex.healing_cost_usd += out.cost_usd
    elif batch is not None:
        batch.cost_usd += out.cost_usd
    if out.session_id and out.failure != "invalid_session":  # a lost session is never a batch's newest session
        run.session_id = out.session_id
        if batch is not None:
            batch.session_id = out.session_id
    run.outcome = out
    label = _run_label(ex, run)

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
        )
        _needs_attention(
            tx,
            kind="budget",
            issue=_budget_exceeded_issue(ex, label, run.kind is RunKind.HEALER),
            options=[R.RETRY, R.SKIP, R.ABORT] if batch is not None else [R.RETRY, R.ABORT],
            run=run,
            remaining=run.task_ids,
        )
        return

    questions = _questions(out) if out.ok else []
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


def _on_project_read(tx: _Tx, ev: ProjectRead) -> None:
    ex, snap = tx.ex, ev.snapshot
    ex.has_user_gate = snap.has_user_gate
    _note_tasks(ex, snap)
    run = ex.current_run
    if run is None and ex.question_run is not None and ex.pending_answers is not None:
        _resume_answered(tx, snap)
        return
    if run is None:
        _advance(tx, snap)
        return
    if run.live:
        raise tx.illegal(f"run {run.execution_id} is still in flight; its RunFinished comes first")
    ex.current_run = None
    if _retry_lost_session(tx, run, snap):
        return
    if run.kind is RunKind.BATCH:
        _confirm_batch(tx, run, snap)
    elif run.kind is RunKind.HEALER:
        _confirm_heal(tx, run, snap)
    else:
        _confirm_step(tx, run, snap)


def _on_user_command(tx: _Tx, ev: UserCommand) -> None:
    _COMMAND_HANDLERS[type(ev.command)](tx, ev.command)


def _on_run_stalled(tx: _Tx, ev: RunStalled) -> None:
    ex = tx.ex
    run = ex.current_run
    if run is None or run.execution_id != ev.run_execution_id or not run.live:
        raise tx.illegal(f"run {ev.run_execution_id} is not the run in flight")
    run.stall_count += 1
    kill = run.stall_count >= STALL_KILL_AFTER and run.kill_reason is None
    label = _run_label(ex, run)
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


def _on_host_restarted(tx: _Tx, ev: HostRestarted) -> None:
    ex = tx.ex
    if ev.took_over_from:
        tx.log(Decision.TAKEOVER, f"{ev.new_owner or 'this host'} took over: {ev.took_over_from}")
    diagnosing = _resume_diagnoses(tx)
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
            f"host restarted after {_run_label(ex, run)} finished: confirming it",
            runId=run.execution_id,
        )
        verify_cmd = (
            ex.config.verify_command if run.step is P.VERIFY and run.kind is RunKind.STEP and run.outcome.ok else None
        )
        tx.emit(
            ReadProject(
                reason=f"confirm {_run_label(ex, run)}", verify_command=verify_cmd, read_git=run.step is P.MERGE
            )
        )
    elif ev.run_alive:
        tx.log(Decision.RECONCILE_ADOPTED, f"{_run_label(ex, run)} is still alive: adopted", runId=run.execution_id)
    elif ev.outcome is not None:
        tx.log(
            Decision.RECONCILE_FINISHED,
            f"{_run_label(ex, run)} ended while the host was down: applying its result",
            runId=run.execution_id,
        )
        _apply_outcome(tx, run, ev.outcome)
    else:
        run.lost = True
        tx.log(
            Decision.RECONCILE_LOST,
            f"{_run_label(ex, run)} is gone without a result: checking the project",
            runId=run.execution_id,
        )
        tx.emit(ReadProject(reason=f"recover lost {_run_label(ex, run)}"))


# ---- commands ------------------------------------------------------------------------------------------------


def _cmd_pause(tx: _Tx, cmd: PauseCommand) -> None:
    ex = tx.ex
    if ex.pause_requested:
        raise tx.illegal("a pause is already requested (the current run finishes first)")
    ex.pause_requested = True
    what = _run_label(ex, ex.current_run) if ex.current_run else "the current step"
    tx.log(Decision.PAUSE_REQUESTED, f"pause requested: {what} finishes first, then the orchestration pauses")


def _cmd_resume(tx: _Tx, cmd: ResumeCommand) -> None:
    ex = tx.ex
    if ex.status is S.RUNNING and not ex.pause_requested:
        raise tx.illegal("it is not paused and no pause is pending")
    if ex.waiting_for_input:
        raise tx.illegal("it waits for answers to its questions; send them with answer")
    _apply_budget(tx, cmd.budget)
    if ex.status is S.RUNNING:
        ex.pause_requested = False
        tx.log(Decision.RESUME, "pause request withdrawn; continuing")
        return
    ex.status = S.RUNNING
    tx.log(Decision.RESUME, f"resumed at step {ex.current_phase.value}")
    tx.emit(ReadProject(reason="resume"))


def _cmd_cancel(tx: _Tx, cmd: CancelCommand) -> None:
    ex = tx.ex
    killed = _kill_current(tx, "cancelled")
    _clear_waits(ex)
    ex.status = S.CANCELLED
    ex.completed_at = tx.at
    tx.log(Decision.CANCEL, "cancelled by the user" + (f"; run {killed} killed" if killed else ""), killedRun=killed)
    tx.emit(Notify(event="cancelled", message="Orchestration cancelled"))


def _cmd_merge(tx: _Tx, cmd: MergeCommand) -> None:
    ex = tx.ex
    ex.status = S.RUNNING
    ex.merge_approved = True
    tx.log(Decision.MERGE_TRIGGERED, "merge triggered by the user")
    tx.emit(ReadProject(reason="merge"))


def _cmd_recover(tx: _Tx, cmd: RecoverCommand) -> None:
    ex = tx.ex
    rc = ex.recovery_context
    offered = rc.options if rc else [R.RETRY, R.SKIP, R.ABORT]
    if cmd.option not in offered:
        raise tx.illegal(f"{cmd.option.value} is not offered here (choose {', '.join(o.value for o in offered)})")
    _apply_budget(tx, cmd.budget)
    batch = _batch(ex, rc.batch_index) if rc and rc.batch_index is not None else None
    step_ = rc.step if rc and rc.step else ex.current_phase
    ex.recovery_context = None
    if cmd.option is R.ABORT:
        tx.log(Decision.RECOVERY_ABORT, "aborted by the user")
        _fail(tx, f"Aborted by the user after: {rc.issue if rc else 'needs attention'}")
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


def _cmd_go_back(tx: _Tx, cmd: GoBackCommand) -> None:
    ex = tx.ex
    if ex.current_phase is not P.COMPLETE and STEP_ORDER.index(cmd.step) > STEP_ORDER.index(ex.current_phase):
        raise tx.illegal(f"{cmd.step.value} comes after the current step {ex.current_phase.value}")
    killed = _kill_current(tx, f"go back to {cmd.step.value}")
    _clear_waits(ex)
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


def _cmd_answer(tx: _Tx, cmd: AnswerCommand) -> None:
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
    tx.log(Decision.ANSWERS_RECEIVED, f"answers received; resuming {_run_label(ex, run)}", answers=dict(cmd.answers))
    tx.emit(ReadProject(reason="answers received: re-read the project, then resume the run that asked"))


def _resume_answered(tx: _Tx, snap: ProjectSnapshot) -> None:
    """The project re-read after answers: resume the session that asked, with the answers, limited to what is still
    to do (tasks checked while it waited are not asked again; a batch with none left is complete without a run)."""
    ex = tx.ex
    run, answers = ex.question_run, ex.pending_answers or {}
    ex.question_run, ex.pending_answers = None, None
    assert run is not None
    if run.kind in (RunKind.BATCH, RunKind.HEALER):
        b = _batch(ex, run.batch_index)
        remaining = _remaining(run.task_ids, snap)
        if not remaining:
            status = BatchStatus.HEALED if run.kind is RunKind.HEALER else BatchStatus.COMPLETED
            _batch_done(tx, b, status, "tasks.md confirms every task (checked while it waited for answers)", snap)
        elif run.kind is RunKind.BATCH:
            _spawn_batch(tx, b, remaining, run.session_id, answers=answers, session_run=run.execution_id)
        else:
            _spawn_healer_run(tx, b, remaining, run.execution_id, run.session_id, fork=False, answers=answers)
        return
    _spawn_step(tx, run.step, resume=run.session_id, answers=answers, session_run=run.execution_id)


_COMMAND_HANDLERS: dict[type, Any] = {
    PauseCommand: _cmd_pause,
    ResumeCommand: _cmd_resume,
    CancelCommand: _cmd_cancel,
    MergeCommand: _cmd_merge,
    RecoverCommand: _cmd_recover,
    GoBackCommand: _cmd_go_back,
    AnswerCommand: _cmd_answer,
}

_HANDLERS: dict[type, Any] = {
    Started: _on_started,
    RunFinished: _on_run_finished,
    ProjectRead: _on_project_read,
    UserCommand: _on_user_command,
    RunStalled: _on_run_stalled,
    HostRestarted: _on_host_restarted,
}


# ---- confirmation (the project half of dual confirmation) -----------------------------------------------------


def _retry_lost_session(tx: _Tx, run: CurrentRun, snap: ProjectSnapshot) -> bool:
    """A run that resumed (or forked) a session and ended with ``invalid_session``: the session is lost, the work is
    not. Run it again once as a new session (same kind, same step or batch, the tasks still unchecked, the same
    answers), told what the lost session did (``lost_run_id``). The retry resumes nothing, so it is never retried
    again: its failure goes the normal way. True when handled here."""
    out = run.outcome
    if out is None or out.failure != "invalid_session" or run.resumed_session_id is None or run.builtin:
        return False
    ex = tx.ex
    label = _run_label(ex, run)
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
        _spawn_step(tx, run.step, answers=run.answers, lost_run=lost_run)
        return True
    b = _batch(ex, run.batch_index)
    if b.session_id == run.resumed_session_id:
        b.session_id = None  # never forked again by a healer
    remaining = _remaining(run.task_ids, snap)
    if not remaining:
        status = BatchStatus.HEALED if run.kind is RunKind.HEALER else BatchStatus.COMPLETED
        _batch_done(tx, b, status, "tasks.md confirms every task (nothing was left for the lost session)", snap)
    elif run.kind is RunKind.BATCH:
        _spawn_batch(tx, b, remaining, None, answers=run.answers, lost_run=lost_run)
    else:
        failed_run = b.workflow_execution_id or lost_run  # the batch run whose failure is being healed
        _spawn_healer_run(
            tx, b, remaining, failed_run, None, fork=False, answers=run.answers, recount=False, lost_run=lost_run
        )
    return True


def _confirm_batch(tx: _Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    b = _batch(ex, run.batch_index)
    remaining = _remaining(b.task_ids, snap)
    if run.lost:
        if not remaining:
            _batch_done(tx, b, BatchStatus.COMPLETED, "confirmed by tasks.md after a restart", snap)
            return
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"batch {b.index + 1} resumes after a restart with {len(remaining)} unchecked task(s)",
            runId=run.execution_id,
            resumeSession=run.session_id,
        )
        _spawn_batch(tx, b, remaining, run.session_id, session_run=run.execution_id)
        return
    out = run.outcome
    assert out is not None
    if out.ok and not remaining:
        _batch_done(tx, b, BatchStatus.COMPLETED, "agent finished and tasks.md confirms every task", snap)
        return
    b.status = BatchStatus.FAILED
    error = _failure_text(out, run, remaining)
    tx.log(
        Decision.BATCH_FAILED, f"batch {b.index + 1} ({b.section}) failed: {error}", remaining=compact_ids(remaining)
    )
    _heal_or_attention(tx, b, run, remaining, error, snap)


def _confirm_heal(tx: _Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    b = _batch(ex, run.batch_index)
    remaining = _remaining(b.task_ids, snap)
    out = run.outcome
    said = (out.structured_output or {}).get("status") if out else None
    if not remaining and (run.lost or (out is not None and out.ok and said == "fixed")):
        why = "tasks.md confirms after a restart" if run.lost else "healer fixed it and tasks.md confirms"
        _batch_done(tx, b, BatchStatus.HEALED, why, snap)
        return
    if run.lost:
        # Gone without a result (the host died): not a failed attempt. Run it again, same attempt, same context.
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"healer for batch {b.index + 1} runs again after a restart (attempt {b.heal_attempts} is not counted "
            f"twice): {describe_ids(remaining)} left",
            runId=run.execution_id,
            batch=b.index,
        )
        failed_run = b.workflow_execution_id or run.execution_id  # the batch run whose failure is being healed
        fork = run.session_id is not None
        _spawn_healer_run(
            tx, b, remaining, failed_run, run.session_id, fork=fork, recount=False, session_run=run.execution_id
        )
        return
    assert out is not None
    error = _failure_text(out, run, remaining) if not out.ok else f"healer reported {said!r}"
    if out.ok and not remaining and said != "fixed":
        error += " although tasks.md shows every task checked"
    elif remaining:
        error += f"; still unchecked: {describe_ids(remaining)}"
    b.status = BatchStatus.FAILED
    tx.log(Decision.HEAL_FAILED, f"healing batch {b.index + 1} failed: {error}", remaining=compact_ids(remaining))
    _heal_or_attention(tx, b, run, remaining, error, snap)


def _confirm_step(tx: _Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    s = run.step
    if run.lost:
        if (s is P.DESIGN and snap.design_complete) or (s is P.MERGE and snap.merged):
            _step_done(tx, s, "confirmed on disk after a restart", snap)
            return
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"step {s.value} runs again after a restart",
            runId=run.execution_id,
            resumeSession=run.session_id,
        )
        if s is P.MERGE:
            _spawn_merge(tx, snap)
        else:
            _spawn_step(tx, s, resume=run.session_id, session_run=run.execution_id)
        return
    out = run.outcome
    assert out is not None
    ok, why = _step_verdict(s, out, snap, ex.config)
    if ok:
        _step_done(tx, s, why, snap)
        return
    ex.step_status[s] = StepState.FAILED
    if s is P.MERGE:
        kind = "merge_conflict" if snap.merge_conflicts else "step_failed"
        options = [R.RETRY, R.ABORT]
    else:
        kind, options = "step_failed", [R.RETRY, R.SKIP, R.ABORT]
    _needs_attention(tx, kind=kind, issue=why, options=options, run=run)


def _step_verdict(s: P, out: RunOutcome, snap: ProjectSnapshot, cfg: OrchestrationConfig) -> tuple[bool, str]:
    """Dual confirmation for a step: (confirmed?, a readable sentence why)."""
    if s is P.MERGE and snap.merge_conflicts:
        return False, (
            f"Merge conflict in {', '.join(snap.merge_conflicts)}: resolve them on the feature branch, then retry."
        )
    if not out.ok:
        return False, f"The {s.value} run failed: {_outcome_error(out)}"
    so = out.structured_output or {}
    if s in (P.VERIFY, P.MERGE) and so.get("status") == "needs_input":  # with questions it waited for answers
        return False, (
            f"The {s.value} run said it needs input but asked no question, so it is neither passed nor failed: "
            "retry the step."
        )
    if s is P.DESIGN:
        if snap.design_complete:
            return True, f"design confirmed: spec.md, plan.md and tasks.md ({len(snap.task_ids)} tasks) exist"
        return False, f"Design finished but the feature folder lacks {', '.join(snap.missing_design_artifacts())}."
    if s is P.ANALYZE:
        if so.get("status") == "completed":
            return True, "analyze reported completed"
        return False, f"Analyze did not report completed (status {so.get('status')!r})."
    if s is P.VERIFY:
        if so.get("passed") is not True:
            failures = so.get("failures") or []
            return False, "Verify failed: " + ("; ".join(map(str, failures)) or "the agent did not report passed")
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


# ---- moving forward ------------------------------------------------------------------------------------------


def _note_tasks(ex: OrchestrationExecution, snap: ProjectSnapshot) -> None:
    """Progress counts every task of tasks.md (those settled before the start included), as last read."""
    ex.batches.tasks_total = len(snap.task_ids)
    ex.batches.tasks_done = len(set(snap.done_task_ids) & set(snap.task_ids))


def _advance(tx: _Tx, snap: ProjectSnapshot) -> None:
    """Nothing in flight: do the next thing the project needs, from the current step on."""
    ex = tx.ex
    while True:
        s = ex.current_phase
        if s is P.COMPLETE:
            _complete(tx)
            return
        st = ex.step_status[s]
        if st in (StepState.COMPLETED, StepState.SKIPPED):
            _next_step(tx, s, f"{s.value} {st.value}")
            continue
        if st is StepState.PENDING and _config_skips(ex.config, s) and ex.forced_step is not s:
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
        if _pause_if_requested(tx):
            return
        if s is P.MERGE:
            _spawn_merge(tx, snap)
        else:
            _spawn_step(tx, s)
        return


def _advance_implement(tx: _Tx, snap: ProjectSnapshot) -> bool:
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
            batches=[_logged_batch(b, plan.task_count) for b in plan.batches],
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
        _needs_attention(
            tx,
            kind="no_tasks",
            issue=f"No incomplete tasks found, yet implement is not done: {detail}. Fix tasks.md, then retry.",
            options=[R.RETRY, R.SKIP, R.ABORT],
        )
        return False
    for b in ex.batches.items:
        if b.status not in (BatchStatus.PENDING, BatchStatus.RUNNING):
            continue
        remaining = _remaining(b.task_ids, snap)
        if not remaining:
            _batch_done(tx, b, BatchStatus.COMPLETED, "every task is already checked in tasks.md", snap, advance=False)
            continue
        if _pause_if_requested(tx):
            return False
        _spawn_batch(tx, b, remaining, None)
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


def _next_step(tx: _Tx, done: P, why: str) -> None:
    ex = tx.ex
    if ex.forced_step is done:
        ex.forced_step = None
    i = STEP_ORDER.index(done)
    nxt = STEP_ORDER[i + 1] if i + 1 < len(STEP_ORDER) else P.COMPLETE
    ex.current_phase = nxt
    tx.log(Decision.TRANSITION, f"{done.value} → {nxt.value}: {why}", **{"from": done.value, "to": nxt.value})


def _step_done(tx: _Tx, s: P, why: str, snap: ProjectSnapshot) -> None:
    tx.ex.step_status[s] = StepState.COMPLETED
    if s is P.MERGE:
        tx.ex.current_phase = P.COMPLETE
        tx.ex.forced_step = None
        _complete(tx, why)
        return
    _next_step(tx, s, why)
    _advance(tx, snap)


def _batch_done(
    tx: _Tx, b: BatchItem, status: BatchStatus, why: str, snap: ProjectSnapshot, *, advance: bool = True
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
    _advance(tx, snap)


def _heal_or_attention(
    tx: _Tx, b: BatchItem, failed: CurrentRun, remaining: list[str], error: str, snap: ProjectSnapshot
) -> None:
    ex, cfg = tx.ex, tx.ex.config
    context = (
        f"Batch {b.index + 1} of {ex.batches.total} ({b.section}) failed: {error}. "
        f"Remaining tasks: {describe_ids(remaining) or 'none'}."
    )
    failure = failed.outcome.failure if failed.outcome else None
    if failure in UNHEALABLE_FAILURES:
        # A healer is the same agent in the same environment: it would fail the same way and waste an attempt.
        hint = UNHEALABLE_FAILURES[failure]
        _needs_attention(tx, kind="batch_failed", issue=f"{context} {hint}", run=failed, remaining=remaining)
        return
    if not (cfg.auto_heal_enabled and b.heal_attempts < cfg.max_heal_attempts):
        why = "auto-heal is off" if not cfg.auto_heal_enabled else f"{b.heal_attempts} heal attempt(s) used"
        _needs_attention(tx, kind="batch_failed", issue=f"{context} ({why})", run=failed, remaining=remaining)
        return
    done = [t for t in b.task_ids if t not in remaining]
    _spawn_healer_run(tx, b, remaining, failed.execution_id, b.session_id, fork=True, error=error, done=done)


# ---- spawning (the only source of Spawn actions) -------------------------------------------------------------


def _new_run(tx: _Tx, kind: RunKind, step_: P, label: str, **kw: Any) -> CurrentRun:
    ex = tx.ex
    ex.run_seq += 1
    run = CurrentRun(execution_id=f"{ex.id}-{ex.run_seq:03d}-{label}", kind=kind, step=step_, started_at=tx.at, **kw)
    ex.current_run = run
    return run


def _budget_left(ex: OrchestrationExecution, cap: float, cap_name: str, spent: float) -> tuple[float, str]:
    """(min(cap - spent, total left), the name of the limit that binds)."""
    total_left = ex.config.budget.max_total - ex.total_cost_usd
    cap_left = cap - spent
    left = round(min(cap_left, total_left), 6)
    return left, ("maxTotal" if total_left <= cap_left else cap_name)


#: How a person raises a budget and goes on, from the panel and from a terminal (completed by ``--set …`" ``).
_WAY_FORWARD = "in the panel, Retry with a higher budget; in a terminal, `specflow-nb orchestrate recover retry"
_HEALING_MEANING = (
    "The healing budget is one amount for the whole orchestration (all healers of all batches together), not per batch"
)


def _budget_exceeded_issue(ex: OrchestrationExecution, label: str, healer: bool) -> str:
    b = ex.config.budget
    spent = (
        f"Spent ${ex.total_cost_usd:.2f} of maxTotal ${b.max_total:.2f} (maxPerBatch ${b.max_per_batch:.2f}, "
        f"healingBudget ${b.healing_budget:.2f} of which ${ex.healing_cost_usd:.2f} spent)."
    )
    if healer:
        return (
            f"Budget reached: {label} hit its --max-budget-usd limit. {spent} Raise budget.healingBudget or "
            f"budget.maxTotal and retry: {_WAY_FORWARD} --set budget.healingBudget=… --set budget.maxTotal=…`. "
            f"{_HEALING_MEANING}."
        )
    return (
        f"Budget reached: {label} hit its --max-budget-usd limit. {spent} Raise budget.maxPerBatch or "
        f"budget.maxTotal and retry: {_WAY_FORWARD} --set budget.maxPerBatch=… --set budget.maxTotal=…`."
    )


def _budget_stop(tx: _Tx, what: str, limit: str, options: list[R], batch: BatchItem | None = None) -> None:
    ex = tx.ex
    spent = f"${ex.total_cost_usd:.2f} of maxTotal ${ex.config.budget.max_total:.2f} spent"
    tx.log(Decision.BUDGET_EXCEEDED, f"budget reached ({limit}) before {what}: {spent}", limit=limit)
    _needs_attention(
        tx,
        kind="budget",
        issue=f"Budget reached: cannot start {what}, {limit} is used up ({spent}). Raise budget.{limit} and "
        f"retry: {_WAY_FORWARD} --set budget.{limit}=…`."
        + (f" {_HEALING_MEANING}." if limit == "healingBudget" else ""),
        options=options,
        batch=batch,
    )


def _spawn_step(
    tx: _Tx,
    s: P,
    *,
    resume: str | None = None,
    answers: dict[str, str] | None = None,
    session_run: str | None = None,
    lost_run: str | None = None,
) -> None:
    ex = tx.ex
    left, limit = _budget_left(ex, ex.config.budget.max_per_batch, "maxPerBatch", 0.0)
    if left <= 0:
        ex.step_status[s] = StepState.PENDING
        _budget_stop(tx, f"the {s.value} step", limit, [R.RETRY, R.ABORT])
        return
    ex.current_phase = s
    ex.step_status[s] = StepState.RUNNING
    run = _new_run(tx, RunKind.STEP, s, s.value, **_session_fields(resume, session_run, answers))
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


def _spawn_merge(tx: _Tx, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    if snap.has_merge_command:
        _spawn_step(tx, P.MERGE)
        return
    ex.current_phase = P.MERGE
    ex.step_status[P.MERGE] = StepState.RUNNING
    run = _new_run(tx, RunKind.STEP, P.MERGE, "merge", builtin=True)
    ex.executions.merge = run.execution_id
    tx.emit(RunMerge(run_id=run.execution_id, target_branch=ex.config.target_branch))


def _spawn_batch(
    tx: _Tx,
    b: BatchItem,
    task_ids: list[str],
    resume: str | None,
    *,
    answers: dict[str, str] | None = None,
    session_run: str | None = None,
    lost_run: str | None = None,
) -> None:
    ex = tx.ex
    left, limit = _budget_left(ex, ex.config.budget.max_per_batch, "maxPerBatch", b.cost_usd)
    if left <= 0:
        # Not started, so not failed: it stays pending (a retry runs it; a skip marks it failed).
        b.status = BatchStatus.PENDING
        _budget_stop(tx, f"batch {b.index + 1}", limit, [R.RETRY, R.SKIP, R.ABORT], batch=b)
        return
    b.status = BatchStatus.RUNNING
    b.started_at = b.started_at or tx.at
    ex.batches.current = b.index
    run = _new_run(
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


def _spawn_healer_run(
    tx: _Tx,
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
    left, limit = _budget_left(ex, ex.config.budget.healing_budget, "healingBudget", ex.healing_cost_usd)
    if left <= 0:
        b.status = BatchStatus.FAILED
        _budget_stop(tx, f"a healer for batch {b.index + 1}", limit, [R.RETRY, R.SKIP, R.ABORT], batch=b)
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
    run = _new_run(
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


# ---- stopping ------------------------------------------------------------------------------------------------


def _needs_attention(
    tx: _Tx,
    *,
    kind: str,
    issue: str,
    options: list[R] | None = None,
    run: CurrentRun | None = None,
    remaining: Iterable[str] = (),
    batch: BatchItem | None = None,
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
    tx.log(Decision.NEEDS_ATTENTION, issue, kind=kind, options=[o.value for o in ex.recovery_context.options])
    tx.emit(Notify(event="needs_attention", message=issue))
    _ask_diagnosis(tx, run)


def _pause_if_requested(tx: _Tx) -> bool:
    ex = tx.ex
    if not ex.pause_requested:
        return False
    ex.pause_requested = False
    ex.status = S.PAUSED
    tx.log(Decision.PAUSE, f"paused before the next run (step {ex.current_phase.value}), as requested")
    tx.emit(Notify(event="paused", message="Orchestration paused"))
    return True


def _complete(tx: _Tx, why: str = "") -> None:
    ex = tx.ex
    ex.status = S.COMPLETED
    ex.current_phase = P.COMPLETE
    ex.completed_at = tx.at
    ex.recovery_context = None
    tx.log(Decision.COMPLETE, "phase complete" + (f": {why}" if why else ""), totalCostUsd=round(ex.total_cost_usd, 6))
    tx.emit(Notify(event="completed", message="Phase complete"))


def _fail(tx: _Tx, message: str) -> None:
    ex = tx.ex
    ex.status = S.FAILED
    ex.error_message = message
    ex.completed_at = tx.at
    _clear_waits(ex)
    tx.log(Decision.FAIL, message)
    tx.emit(Notify(event="failed", message=message))


def _kill_current(tx: _Tx, reason: str) -> str | None:
    ex = tx.ex
    run = ex.current_run
    ex.current_run = None
    if run is None or not run.live:
        return None
    ex.killed_run_ids.append(run.execution_id)
    if run.batch_index is not None:
        b = _batch(ex, run.batch_index)
        if b.status is BatchStatus.RUNNING:
            b.status = BatchStatus.PENDING
    tx.emit(KillRun(run_id=run.execution_id, reason=reason))
    return run.execution_id


def _clear_waits(ex: OrchestrationExecution) -> None:
    ex.pause_requested = False
    ex.waiting_for_input = False
    ex.questions = []
    ex.question_run = None
    ex.pending_answers = None


def _apply_budget(tx: _Tx, budget: BudgetConfig | None) -> None:
    if budget is None or budget == tx.ex.config.budget:
        return
    old = tx.ex.config.budget
    tx.ex.config = tx.ex.config.model_copy(update={"budget": budget})
    tx.log(
        Decision.RESUME if tx.name == "resume" else Decision.RECOVERY_RETRY,
        f"budget changed: maxTotal ${old.max_total:.2f} → ${budget.max_total:.2f}, "
        f"maxPerBatch ${old.max_per_batch:.2f} → ${budget.max_per_batch:.2f}, "
        f"healingBudget ${old.healing_budget:.2f} → ${budget.healing_budget:.2f} (for all healers together)",
        budget=budget.model_dump(),
    )


# ---- diagnosis (issue 15.5): a read-only helper's reading of the failed run ------------------------------------


def _diagnosis_budget(ex: OrchestrationExecution) -> float:
    """min(decisionBudget, maxTotal left), never below 0."""
    budget = ex.config.budget
    return max(0.0, round(min(budget.decision_budget, budget.max_total - ex.total_cost_usd), 6))


def _ask_diagnosis(tx: _Tx, run: CurrentRun | None) -> None:
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


def _resume_diagnoses(tx: _Tx) -> bool:
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


def _on_diagnosis_finished(tx: _Tx, ev: DiagnosisFinished) -> None:
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


_HANDLERS[DiagnosisFinished] = _on_diagnosis_finished


# ---- small helpers -------------------------------------------------------------------------------------------


def _config_skips(cfg: OrchestrationConfig, s: P) -> bool:
    return {
        P.DESIGN: cfg.skip_design,
        P.ANALYZE: cfg.skip_analyze,
        P.IMPLEMENT: cfg.skip_implement,
        P.VERIFY: cfg.skip_verify,
    }.get(s, False)


def _batch(ex: OrchestrationExecution, index: int | None) -> BatchItem:
    if index is None or not 0 <= index < len(ex.batches.items):
        raise AssertionError(f"no batch {index} in execution {ex.id}")
    return ex.batches.items[index]


def _remaining(task_ids: list[str], snap: ProjectSnapshot) -> list[str]:
    done = set(snap.done_task_ids)
    return [t for t in task_ids if t not in done]


def _run_label(ex: OrchestrationExecution, run: CurrentRun) -> str:
    if run.kind is RunKind.BATCH:
        return f"batch {(run.batch_index or 0) + 1} of {ex.batches.total}"
    if run.kind is RunKind.HEALER:
        return f"the healer of batch {(run.batch_index or 0) + 1}"
    return f"the {run.step.value} step"


def _outcome_error(out: RunOutcome) -> str:
    kind = out.failure or ("is_error" if out.is_error else "bad exit" if not out.exit_ok else "ok")
    return f"{kind}: {out.message}" if out.message else kind


def _failure_text(out: RunOutcome | None, run: CurrentRun, remaining: list[str]) -> str:
    if out is None:
        return "the run was lost"
    if not out.ok:
        text = "stalled and was killed" if run.kill_reason == "stalled" else _outcome_error(out)
        return f"the run failed ({text})"
    return f"the run ended but tasks.md still shows {describe_ids(remaining)} unchecked"


def _questions(out: RunOutcome) -> list[Question]:
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


#: A plan with more task ids than this is logged with counts; its ids are in ``batches.items`` of the same record.
LOG_PLAN_IDS = 1000


def _logged_batch(b: PlannedBatch, plan_tasks: int) -> dict[str, Any]:
    if plan_tasks <= LOG_PLAN_IDS:
        return {"section": b.section, "taskIds": compact_ids(b.task_ids)}
    ids = b.task_ids
    return {"section": b.section, "tasks": len(ids), "first": ids[0] if ids else None, "last": ids[-1] if ids else None}


def _plan_summary(snap: ProjectSnapshot) -> str:
    if snap.batch_plan is not None:
        return snap.batch_plan.summary
    return "no tasks.md yet" if not snap.has_tasks else f"{len(snap.task_ids)} task(s)"


# ==============================================================================================================
# What a start would run (the estimate before start asks; the rules are those of _on_started and _advance)


def planned_steps(config: OrchestrationConfig, snap: ProjectSnapshot) -> list[OrchestrationPhase]:
    """The steps a start with ``config`` runs on the project as ``snap`` shows it, in order: the skip flags, then
    smart config (design when spec, plan and tasks exist; implement when every task is done). Merge always runs
    (the project's merge command as an agent step, else the built-in git merge)."""
    steps = []
    for s in STEP_ORDER:
        if _config_skips(config, s):
            continue
        if (s is P.DESIGN and snap.design_complete) or (s is P.IMPLEMENT and snap.all_tasks_done):
            continue
        steps.append(s)
    return steps
