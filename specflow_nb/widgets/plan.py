"""What the form shows from the preview: the batch plan, its estimate, the project's phase status and the preflight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specflow_nb.estimate import fmt_seconds, fmt_usd, total_text
from specflow_nb.models import BatchPlan, Estimate
from specflow_nb.widgets._html import esc


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
    #: The plan's estimated time and cost (``None`` from a server that does not send one).
    estimate: Estimate | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanPreview:
        plan = data.get("batchPlan", data.get("batch_plan"))
        return cls(
            batch_plan=BatchPlan.model_validate(plan) if plan is not None else None,
            preflight=data.get("preflight"),
            project_status=data.get("projectStatus", data.get("project_status")),
            prompt_sources=list(data.get("promptSources", data.get("prompt_sources")) or []),
            permissions=data.get("permissions"),
            estimate=Estimate.model_validate(data["estimate"]) if data.get("estimate") is not None else None,
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


#: The form lists at most this many batches of an estimate (a 13,000-batch plan says how many more there are).
ESTIMATE_BATCH_ROWS = 50
#: Up to this many batches the per-batch list is open; more, and it is one click away.
ESTIMATE_OPEN_ROWS = 8


def _row(cells: list[str], *, head: bool = False, cls: str = "") -> str:
    tag = "th" if head else "td"
    out = []
    for i, cell in enumerate(cells):
        num = ' class="sf-num"' if i > 0 and not head else ""
        out.append(f"<{tag}{num}>{esc(cell)}</{tag}>")
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>{''.join(out)}</tr>"


def estimate_html(est: Estimate) -> str:
    """The form's estimate: the total time and cost, the basis in words, then a line per batch and per step."""
    rows = [_row(["Batch", "Tasks", "Time", "Cost"], head=True)]
    for b in est.batches[:ESTIMATE_BATCH_ROWS]:
        rows.append(
            _row(
                [f"{b.index + 1}. {b.title}", str(b.task_count), f"~{fmt_seconds(b.seconds)}", fmt_usd(b.usd)],
                cls="specflow-estimate-batch",
            )
        )
    hidden = est.batches[ESTIMATE_BATCH_ROWS:]
    if hidden:
        rows.append(
            _row(
                [
                    f"… {len(hidden)} more batches",
                    str(sum(b.task_count for b in hidden)),
                    f"~{fmt_seconds(sum(b.seconds for b in hidden))}",
                    fmt_usd(sum(b.usd for b in hidden)),
                ]
            )
        )
    for s in est.steps:
        basis = {"history": "past runs", "defaults": "default", "builtin": "built-in"}[s.basis]
        rows.append(
            _row(
                [f"{s.step.value} step ({basis})", "", f"~{fmt_seconds(s.seconds)}", fmt_usd(s.usd)],
                cls="specflow-estimate-step",
            )
        )
    rows.append(
        f'<tr class="specflow-estimate-total"><th>Total</th><th class="sf-num">{est.task_count}</th>'
        f'<th class="sf-num">~{esc(fmt_seconds(est.total_seconds))}</th>'
        f'<th class="sf-num">{esc(fmt_usd(est.total_usd))}</th></tr>'
    )
    is_open = " open" if len(est.batches) <= ESTIMATE_OPEN_ROWS else ""
    noun = "batch" if len(est.batches) == 1 else "batches"
    what = f"Per batch ({len(est.batches)} {noun}) and step" if est.batches else "Per step"
    notes = "".join(f'<div class="sf-muted">{esc(n)}</div>' for n in est.notes)
    return (
        '<div class="specflow-estimate-body">'
        f'<div class="sf-headline">Estimate: {esc(total_text(est))}</div>'
        f'<div class="sf-muted specflow-estimate-basis">{esc(est.basis_label)}</div>'
        f'<details{is_open}><summary class="sf-muted">{esc(what)}</summary>'
        f'<table class="sf-table">{"".join(rows)}</table></details>{notes}</div>'
    )
