"""tasks.md's tasks, the batch plan made from them (MISSION §2), and the estimate of that plan before start.

Apart from the record: these are computed from the project each time, never saved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, computed_field

from specflow_nb.models.base import CamelModel, OrchestrationPhase, TaskState
from specflow_nb.models.config import BudgetConfig
from specflow_nb.taskids import TaskIds

# tasks.md and the batch plan (MISSION §2)


def all_tasks_done(task_ids: Iterable[str], settled_ids: Iterable[str]) -> bool:
    """THE rule for "every task is done": at least one task, and every task settled (done or deferred).

    A pending or blocked task holds the phase back; a deferred one never does (the formats issue's rule). Each task
    counts, so an id written twice needs both lines settled. The engine (``ProjectSnapshot.all_tasks_done``: smart
    config skipping implement, an empty plan completing implement), ``status`` (next action ``run_verify``) and the
    CLI's ``next`` all decide with it; it lives with the task models, below both the machine and the parser."""
    wanted = Counter(task_ids)
    return bool(wanted) and not (wanted - Counter(settled_ids))


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
