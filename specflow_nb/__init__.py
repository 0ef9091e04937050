"""specflow_nb: complete a spec-driven development phase with an AI coding agent, from Jupyter."""

from specflow_nb.errors import SpecflowError
from specflow_nb.models import (
    BatchPlan,
    BudgetConfig,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
)

__version__ = "0.1.0"

__all__ = [
    "BatchPlan",
    "BudgetConfig",
    "OrchestrationConfig",
    "OrchestrationExecution",
    "OrchestrationPhase",
    "OrchestrationStatus",
    "SpecflowError",
    "__version__",
]
