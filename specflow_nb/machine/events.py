"""What the orchestrator feeds in: the events of ``transition(execution, event)`` and the project facts they carry.

``ProjectSnapshot`` is the project as last read from disk; its properties hold the one definition of "design
complete" and "all tasks done" (settled = done or deferred), which ``status`` uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field

from specflow_nb.machine.base import Frozen
from specflow_nb.machine.commands import Command
from specflow_nb.models import (
    BatchPlan,
    DiagnosisSuggestion,
    OrchestrationConfig,
    RunOutcome,
    all_tasks_done,
)


def design_complete(*, has_spec: bool, has_plan: bool, task_count: int) -> bool:
    """THE rule for "design is complete": spec.md, plan.md and a tasks.md with at least one task.

    Smart config (design skipped at start), the design step's confirmation, a rebuilt record and ``status`` (via
    :attr:`specflow_nb.project.Artifacts.design_complete`) all decide with it."""
    return has_spec and has_plan and task_count >= 1


class _ParsedTasks(Protocol):
    """What a snapshot needs of :class:`specflow_nb.tasks.ParsedTasks`."""

    @property
    def tasks(self) -> Sequence[Any]: ...

    @property
    def settled_ids(self) -> list[str]: ...


class _Artifacts(Protocol):
    """What a snapshot needs of :class:`specflow_nb.project.Artifacts`."""

    @property
    def has_spec(self) -> bool: ...

    @property
    def has_plan(self) -> bool: ...

    @property
    def has_tasks(self) -> bool: ...

    @property
    def parsed_tasks(self) -> _ParsedTasks | None: ...


class ProjectSnapshot(Frozen):
    """The project as the orchestrator just read it from disk."""

    has_spec: bool = False
    has_plan: bool = False
    has_tasks: bool = False
    task_ids: list[str] = Field(default_factory=list)
    #: The settled tasks (done or deferred): what "done" means for every rule of the machine.
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

    @classmethod
    def of_artifacts(cls, art: _Artifacts, **facts: Any) -> ProjectSnapshot:
        """The snapshot of a feature folder's artifacts (tasks settled = done or deferred), plus other ``facts``."""
        parsed = art.parsed_tasks
        return cls(
            has_spec=art.has_spec,
            has_plan=art.has_plan,
            has_tasks=art.has_tasks,
            task_ids=[t.id for t in parsed.tasks] if parsed else [],
            done_task_ids=list(parsed.settled_ids) if parsed else [],
            **facts,
        )

    @property
    def design_complete(self) -> bool:
        return design_complete(
            has_spec=self.has_spec, has_plan=self.has_plan, task_count=len(self.task_ids) if self.has_tasks else 0
        )

    @property
    def settled_ids(self) -> list[str]:
        """The settled tasks (done or deferred), named as :attr:`specflow_nb.tasks.ParsedTasks.settled_ids`."""
        return self.done_task_ids

    @property
    def all_tasks_done(self) -> bool:
        return all_tasks_done(self.task_ids, self.done_task_ids)

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


class StateRebuilt(Frozen):
    """The record of this execution could not be read (set aside as corrupt): the host rebuilt it from the disk. The
    first event of a fresh execution (``new_execution`` with the lost record's id); it stops in needs_attention."""

    kind: Literal["state_rebuilt"] = "state_rebuilt"
    at: datetime
    #: The project as the host found it (artifacts and tasks.md).
    snapshot: ProjectSnapshot
    #: The name the unreadable record was set aside as.
    set_aside_as: str
    #: This execution's run folders found on disk (``{id}-{seq:03d}-{label}``): new run ids never reuse one.
    runs: list[str] = Field(default_factory=list)
    #: The config guessed from the newest run (its agent and model; the rest the host's defaults): the lost record
    #: held the real one.
    config: OrchestrationConfig
    #: The active feature folder, relative to the project.
    feature_dir: str | None = None


Event = Annotated[
    Started | RunFinished | ProjectRead | UserCommand | RunStalled | HostRestarted | DiagnosisFinished | StateRebuilt,
    Field(discriminator="kind"),
]
