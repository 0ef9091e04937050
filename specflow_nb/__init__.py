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
from specflow_nb.version import __version__

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


def __getattr__(name: str) -> object:
    # The panel lives in specflow_nb.widgets, imported on first use: `import specflow_nb` never imports ipywidgets.
    if name in ("panel", "overview"):
        from specflow_nb import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'specflow_nb' has no attribute {name!r}")
