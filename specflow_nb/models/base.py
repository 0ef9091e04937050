"""The base of every schema (:class:`CamelModel`), the package's one clock, and the enums of statuses and steps.

Apart from the records so that every other models module (config, record, plan, preview) builds on it without
importing each other in a circle.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


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
