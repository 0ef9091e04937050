"""What the form shows from the preview: the batch plan, the project's phase status and the preflight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specflow_nb.models import BatchPlan


@dataclass(frozen=True)
class PlanPreview:
    """The answer of ``status?preview=true`` (server) or ``Orchestrator.preview`` (in-kernel)."""

    batch_plan: BatchPlan | None = None
    preflight: dict[str, Any] | None = None
    project_status: dict[str, Any] | None = field(default=None)
    #: Where each step's prompt comes from (``PromptSource`` as JSON: step, source, skill, files).
    prompt_sources: list[dict[str, Any]] = field(default_factory=list)
    #: What this user may set (server only; ``None`` in the kernel, whose user may run code anyway).
    permissions: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanPreview:
        plan = data.get("batchPlan", data.get("batch_plan"))
        return cls(
            batch_plan=BatchPlan.model_validate(plan) if plan is not None else None,
            preflight=data.get("preflight"),
            project_status=data.get("projectStatus", data.get("project_status")),
            prompt_sources=list(data.get("promptSources", data.get("prompt_sources")) or []),
            permissions=data.get("permissions"),
        )

    def locked_fields(self) -> dict[str, str]:
        """snake_case field -> why it is read-only for this user (fields that choose what runs, without execute)."""
        perms = self.permissions
        if not perms:
            return {}
        editable = set(perms.get("editableCommandFields") or [])
        missing = perms.get("missing") or "execute permission"
        reason = f"Set by the server (choosing it needs {missing})."
        return {_snake(f): reason for f in perms.get("commandFields") or [] if f not in editable}

    @property
    def prompts_text(self) -> str:
        """One line: which prompt each step will use ("design: built-in · implement: /flow.implement (yours)")."""
        where = {"project": "this project's", "user": "yours"}
        parts = []
        for s in self.prompt_sources:
            if s.get("source") in where:
                names = " + ".join(f"/{n}" for n in str(s.get("skill", "")).split("+"))
                parts.append(f"{s.get('step')}: {names} ({where[s['source']]})")
            else:
                parts.append(f"{s.get('step')}: built-in")
        return " · ".join(parts)

    @property
    def phase_not_open(self) -> bool:
        """The project has no feature folder yet: the phase must be opened before it can be completed."""
        status = self.project_status
        if not status:
            return False
        if status.get("nextAction") == "start_phase":
            return True
        context = status.get("context")
        return isinstance(context, dict) and "featureDir" in context and not context["featureDir"]

    @property
    def preflight_problems(self) -> list[str]:
        """Blocking problems the preflight found (e.g. the agent command is not installed)."""
        pre = self.preflight or {}
        found: list[str] = []
        for key in ("errors", "issues", "problems"):
            for item in pre.get(key) or ():
                found.append(item.get("message", str(item)) if isinstance(item, dict) else str(item))
        return found

    @property
    def preflight_warnings(self) -> list[str]:
        return [
            str(x.get("message", x)) if isinstance(x, dict) else str(x)
            for x in (self.preflight or {}).get("warnings") or ()
        ]


def batches_text(plan: BatchPlan) -> str:
    """ "Detected 4 batches from tasks.md" (the form's headline for the plan)."""
    n = len(plan.batches)
    if n == 0:
        return plan.summary or "No incomplete tasks found"
    noun = "batch" if n == 1 else "batches"
    return f"Detected {n} {noun} from tasks.md ({plan.total_incomplete} tasks)"


NO_SECTIONS_WARNING = (
    "No sections detected in tasks.md: tasks are split into fixed-size batches of "
    "{size}. Add '## Phase N: Name' headers to batch by section."
)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
