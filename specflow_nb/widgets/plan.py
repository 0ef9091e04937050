"""What the form shows from the preview: the batch plan, its estimate, the project's phase status and the preflight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specflow_nb.estimate import fmt_seconds, fmt_usd, total_text
from specflow_nb.models import BatchPlan, Estimate, Preflight, Preview, ProjectStatus, PromptSource
from specflow_nb.server.api import Permissions, StatusResponse
from specflow_nb.widgets._html import esc


@dataclass(frozen=True)
class PlanPreview:
    """The engine's :class:`~specflow_nb.models.Preview` as the form reads it: from ``status?preview=true`` (server,
    with the user's permissions) or ``Orchestrator.preview`` (in-kernel). Every part is a typed model."""

    batch_plan: BatchPlan | None = None
    preflight: Preflight | None = None
    project_status: ProjectStatus | None = field(default=None)
    #: Where each step's prompt comes from.
    prompt_sources: list[PromptSource] = field(default_factory=list)
    #: What this user may set (server only; ``None`` in the kernel, whose user may run code anyway).
    permissions: Permissions | None = None
    #: The plan's estimated time and cost (``None`` from a server that does not send one).
    estimate: Estimate | None = None

    @classmethod
    def of(cls, preview: Preview, permissions: Permissions | None = None) -> PlanPreview:
        return cls(
            batch_plan=preview.batch_plan,
            preflight=preview.preflight,
            project_status=preview.project_status,
            prompt_sources=list(preview.prompt_sources),
            permissions=permissions,
            estimate=preview.estimate,
        )

    @classmethod
    def of_response(cls, response: StatusResponse) -> PlanPreview:
        """From the server's answer to ``status?preview=true``."""
        preview = response.preview()
        if preview is None:
            return cls(batch_plan=response.batch_plan, estimate=response.estimate, permissions=response.permissions)
        return cls.of(preview, response.permissions)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanPreview:
        """From the JSON body of ``status?preview=true`` (validated as :class:`StatusResponse`)."""
        return cls.of_response(StatusResponse.model_validate(data))

    def locked_fields(self) -> dict[str, str]:
        """snake_case field -> why it is read-only for this user (fields that choose what runs, without execute)."""
        perms = self.permissions
        if perms is None:
            return {}
        editable = set(perms.editable_command_fields)
        reason = f"Set by the server (choosing it needs {perms.missing or 'execute permission'})."
        return {_snake(f): reason for f in perms.command_fields if f not in editable}

    @property
    def prompts_text(self) -> str:
        """One line: which prompt each step will use ("design: built-in · implement: /flow.implement (yours)")."""
        where = {"project": "this project's", "user": "yours"}
        parts = []
        for s in self.prompt_sources:
            if s.source in where:
                names = " + ".join(f"/{n}" for n in s.skill.split("+"))
                parts.append(f"{s.step}: {names} ({where[s.source]})")
            else:
                parts.append(f"{s.step}: built-in")
        return " · ".join(parts)

    @property
    def phase_not_open(self) -> bool:
        """The project has no feature folder yet: the phase must be opened before it can be completed."""
        return self.project_status is not None and not self.project_status.phase_open

    @property
    def preflight_problems(self) -> list[str]:
        """Blocking problems the preflight found (e.g. the agent command is not installed)."""
        return list(self.preflight.problems) if self.preflight is not None else []

    @property
    def preflight_warnings(self) -> list[str]:
        """What the checks found that does not block (the plan's own warnings are in ``batch_plan.warnings``)."""
        return list(self.preflight.warnings) if self.preflight is not None else []

    @property
    def agent_missing(self) -> bool:
        """The preflight did not find the agent command."""
        return self.preflight is not None and not self.preflight.agent_found


def batches_text(plan: BatchPlan) -> str:
    """ "Detected 4 batches from tasks.md" (the form's headline for the plan)."""
    n = len(plan.batches)
    if n == 0:
        return plan.summary or "No incomplete tasks found"
    noun = "batch" if n == 1 else "batches"
    return f"Detected {n} {noun} from tasks.md ({plan.total_incomplete} tasks)"


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
