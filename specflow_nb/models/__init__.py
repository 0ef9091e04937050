"""The schemas every part of specflow_nb shares: the models layer, below every other module of the package.

JSON (files on disk, REST bodies) uses the original system's camelCase names; Python uses snake_case. Every model
accepts both spellings on input and writes camelCase on output (``model_dump()`` / ``model_dump_json()`` already
use the aliases), so a file written by the original can be read here and vice versa.

One module per concern, every name importable from here (``from specflow_nb.models import X``):

- ``base``     :class:`CamelModel`, the clock (:func:`utcnow`), the status and step enums
- ``config``   :class:`OrchestrationConfig` and its budget (what the user chooses once)
- ``record``   :class:`OrchestrationExecution` and what it holds (the saved record)
- ``plan``     tasks.md's tasks, the batch plan and its estimate
- ``preview``  the project's phase status, the preflight and the preview (what the Start form shows)
"""

from __future__ import annotations

from specflow_nb.models.base import (
    ACTIVE_STATUSES,
    STEP_ORDER,
    BatchStatus,
    CamelModel,
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryOption,
    RunKind,
    StepState,
    TaskState,
    utcnow,
)
from specflow_nb.models.config import (
    CLAUDE_MODEL_ALIASES,
    DEFAULT_AGENT_COMMANDS,
    MAX_BUDGET_USD,
    MAX_STALE_AFTER_SECONDS,
    AgentKind,
    BudgetChange,
    BudgetConfig,
    ModelPrice,
    OrchestrationConfig,
)
from specflow_nb.models.plan import (
    BatchEstimate,
    BatchPlan,
    Estimate,
    EstimateBasis,
    PlannedBatch,
    StepEstimate,
    Task,
    all_tasks_done,
)
from specflow_nb.models.preview import (
    Health,
    HealthIssue,
    HealthStatus,
    NextAction,
    PhaseInfo,
    Preflight,
    Preview,
    Progress,
    ProjectStatus,
    PromptSource,
    Severity,
    Source,
    StatusContext,
    StepInfo,
)
from specflow_nb.models.record import (
    DIAGNOSIS_MAX_CHARS,
    BatchItem,
    BatchTracking,
    CurrentRun,
    DecisionLogEntry,
    Diagnosis,
    DiagnosisSuggestion,
    ExecutionRefs,
    NotificationRecord,
    OrchestrationExecution,
    Question,
    RecoveryContext,
    RunOutcome,
)

__all__ = [
    "ACTIVE_STATUSES",
    "CLAUDE_MODEL_ALIASES",
    "DEFAULT_AGENT_COMMANDS",
    "DIAGNOSIS_MAX_CHARS",
    "MAX_BUDGET_USD",
    "MAX_STALE_AFTER_SECONDS",
    "STEP_ORDER",
    "AgentKind",
    "BatchEstimate",
    "BatchItem",
    "BatchPlan",
    "BatchStatus",
    "BatchTracking",
    "BudgetChange",
    "BudgetConfig",
    "CamelModel",
    "CurrentRun",
    "DecisionLogEntry",
    "Diagnosis",
    "DiagnosisSuggestion",
    "Estimate",
    "EstimateBasis",
    "ExecutionRefs",
    "Health",
    "HealthIssue",
    "HealthStatus",
    "ModelPrice",
    "NextAction",
    "NotificationRecord",
    "OrchestrationConfig",
    "OrchestrationExecution",
    "OrchestrationPhase",
    "OrchestrationStatus",
    "PhaseInfo",
    "PlannedBatch",
    "Preflight",
    "Preview",
    "Progress",
    "ProjectStatus",
    "PromptSource",
    "Question",
    "RecoveryContext",
    "RecoveryOption",
    "RunKind",
    "RunOutcome",
    "Severity",
    "Source",
    "StatusContext",
    "StepEstimate",
    "StepInfo",
    "StepState",
    "Task",
    "TaskState",
    "all_tasks_done",
    "utcnow",
]
