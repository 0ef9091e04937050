"""What the orchestrator performs, in order: the actions ``transition`` returns (Persist first, then spawns, kills,
reads, notifications, diagnoses).

Apart from the rules: the orchestrator dispatches on these types and needs nothing else of the machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specflow_nb.machine.base import Frozen
from specflow_nb.models import (
    OrchestrationPhase,
    RecoveryOption,
)


class Persist(Frozen):
    """Save the returned execution atomically NOW, before performing the actions after it (write-ahead)."""

    kind: Literal["persist"] = "persist"
    version: int
    #: This state may instead be saved with the next transition's (one write, not two): set only for a run's end
    #: followed by nothing but a pure project read (see ``transition``). What it records is never lost: the run's
    #: outcome stays in its run folder and a restart applies it again; nothing acts before the next Persist.
    may_join_next: bool = False


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
