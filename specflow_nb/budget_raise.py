"""Raising a budget to go on: what stopped an orchestration, what was spent against each limit, and whether new limits
let it go on. One source for the panel's Retry / Resume budget fields and the CLI's ``recover``/``resume --set``.

Pure functions of an ``OrchestrationExecution`` (no I/O, no Jupyter). The machine decides what a retry spawns and
with how much (``machine.budget.budget_left``); this module only tells a person, before a command is sent, whether the
limits they typed leave anything for that run: a raise that leaves nothing would stop again at once, so hosts refuse
it with a message naming the limit and what was spent, and send nothing.

The limits (``BudgetConfig``): ``maxTotal`` for everything the orchestration spends; ``maxPerBatch`` for one batch
(all its runs, retries included) and for one step's run; ``healingBudget`` one amount for the whole orchestration,
shared by all healers of all batches (not per batch); ``decisionBudget`` for one read-only decision call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from specflow_nb.errors import ConfigError
from specflow_nb.machine.budget import exceeded_limit
from specflow_nb.models import (
    MAX_BUDGET_USD,
    BatchItem,
    BudgetConfig,
    OrchestrationExecution,
    OrchestrationStatus,
)

#: What the healing budget means, in the words every host uses (form, panel, CLI, README).
HEALING_MEANING = (
    "healingBudget is one amount for the whole orchestration: all healers of all batches together, not per batch"
)

#: The budget limits a person may change to go on, camelCase key → the model's field name.
KEYS: dict[str, str] = {
    "maxTotal": "max_total",
    "maxPerBatch": "max_per_batch",
    "healingBudget": "healing_budget",
    "decisionBudget": "decision_budget",
}
#: The keys of :data:`KEYS` by the model's field name.
FIELDS: dict[str, str] = {field: key for key, field in KEYS.items()}

Action = Literal["recover", "resume"]


@dataclass(frozen=True)
class BudgetLine:
    """One limit as a person sees it: its value, what was spent against it, and the value a raise must exceed."""

    key: str  # camelCase, as in ``--set budget.<key>=…``
    field: str  # the model's field name
    limit: float
    #: What was spent against it (None: it is not counted across runs, e.g. maxPerBatch before a step).
    spent: float | None
    #: Whose spending ``spent`` is: "all runs", "batch 2", "all healers together".
    spent_by: str
    #: A new value must be above this for the orchestration to go on (None: any valid value will do).
    floor: float | None


@dataclass(frozen=True)
class BudgetStop:
    """The budget as it stands when a person may raise it (a budget stop, or a pause with nothing left)."""

    #: The limit that stopped it (None: nothing stopped it yet, e.g. a pause with money left).
    stopped_by: str | None
    lines: tuple[BudgetLine, ...]
    #: One line naming the limit that stopped it and how much of it was spent.
    hint: str
    action: Action

    def line(self, key: str) -> BudgetLine:
        return next(line for line in self.lines if line.key == key)


def usd(amount: float) -> str:
    return f"${amount:,.2f}"


def is_budget_stop(ex: OrchestrationExecution) -> bool:
    """It needs attention because a budget limit is used up (the recovery context's kind ``budget``)."""
    rc = ex.recovery_context
    return ex.status is OrchestrationStatus.NEEDS_ATTENTION and rc is not None and rc.kind == "budget"


def _stopped_batch(ex: OrchestrationExecution) -> BatchItem | None:
    rc = ex.recovery_context
    if rc is None or rc.batch_index is None:
        return None
    return next((b for b in ex.batches.items if b.index == rc.batch_index), None)


def _stopping_limit(ex: OrchestrationExecution) -> str:
    """The limit that stopped it: the machine's own word when it logged one, else the one that is used up."""
    for entry in reversed(ex.decision_log):
        if entry.decision == "needs_attention":
            continue
        if entry.decision == "budget_exceeded":
            limit = entry.data.get("limit") if entry.data else None
            if isinstance(limit, str) and limit in KEYS:
                return limit
        break
    # a record from before the machine logged the limit of a run that hit its cap: the machine's rule, worked out here
    rc = ex.recovery_context
    batch = _stopped_batch(ex)
    failed = rc.failed_workflow_id if rc else None
    return exceeded_limit(ex, healer=batch is not None and failed is not None and failed == batch.healer_execution_id)


def budget_state(ex: OrchestrationExecution, action: Action | None = None) -> BudgetStop:
    """The limits, what was spent against each and what a raise must exceed, for ``action`` (default: recover
    in a budget stop, else resume)."""
    action = action or ("recover" if ex.status is OrchestrationStatus.NEEDS_ATTENTION else "resume")
    budget = ex.config.budget
    stop = is_budget_stop(ex)
    stopped_by = _stopping_limit(ex) if stop else None
    if stopped_by is None and round(budget.max_total - ex.total_cost_usd, 6) <= 0:
        stopped_by = "maxTotal"  # paused (or stopped otherwise) with nothing left of the total
    batch = _stopped_batch(ex) if action == "recover" else None
    lines = [
        BudgetLine("maxTotal", "max_total", budget.max_total, ex.total_cost_usd, "all runs", ex.total_cost_usd),
        BudgetLine(
            "maxPerBatch",
            "max_per_batch",
            budget.max_per_batch,
            batch.cost_usd if batch is not None else None,
            f"batch {batch.index + 1}" if batch is not None else "each batch or step",
            batch.cost_usd if batch is not None else 0.0,
        ),
        BudgetLine(
            "healingBudget",
            "healing_budget",
            budget.healing_budget,
            ex.healing_cost_usd,
            "all healers together",
            None,  # a retry runs the batch again, not a healer: the healing budget never stops it at once
        ),
    ]
    return BudgetStop(stopped_by, tuple(lines), _hint(stopped_by, lines, batch), action)


def _hint(stopped_by: str | None, lines: list[BudgetLine], batch: BatchItem | None) -> str:
    if stopped_by is None:
        return "Raise a limit before resuming if the rest of the phase needs more."
    line = next(x for x in lines if x.key == stopped_by)
    spent = f"{usd(line.spent)} of {usd(line.limit)} spent" if line.spent is not None else f"{usd(line.limit)}"
    if stopped_by == "maxTotal":
        return f"maxTotal stopped it: {spent} by all runs. Raise maxTotal above {usd(line.spent or 0.0)}."
    if stopped_by == "healingBudget":
        return f"healingBudget stopped it: {spent} by all healers together ({HEALING_MEANING})."
    if batch is not None:
        return f"maxPerBatch stopped it: {spent} by batch {batch.index + 1}. Raise maxPerBatch above that."
    return f"maxPerBatch stopped it: a step's run may spend up to {spent}. Raise maxPerBatch to give it more."


def merged(current: BudgetConfig, changes: Mapping[str, Any]) -> BudgetConfig:
    """``current`` with ``changes`` (camelCase or field names) on top, validated by the model: finite, ≥ 0 and at
    most 10,000 USD. A bad value raises ConfigError naming the field (the server's words)."""
    data = current.model_dump(by_alias=False)
    for key, value in changes.items():
        field = KEYS.get(key, key)
        if field not in FIELDS:
            raise ConfigError(
                f"budget.{key} is not a budget limit.",
                hint="Budget limits: " + ", ".join(f"budget.{k}" for k in KEYS) + ".",
            )
        data[field] = value
    try:
        return BudgetConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "Invalid budget: " + "; ".join(f"budget.{key}: {msg}" for key, msg in problems(exc).items()),
            hint=f"Budget limits are finite amounts in USD from 0 to {MAX_BUDGET_USD:,.0f}.",
        ) from None


def problems(exc: ValidationError) -> dict[str, str]:
    """A budget validation error as ``{camelCase key: message}`` (one message per field)."""
    out: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        key = FIELDS.get(field, field)
        out.setdefault(key, str(err["msg"]))
    return out


def shortfall(ex: OrchestrationExecution, budget: BudgetConfig, action: Action | None = None) -> str | None:
    """The first limit of ``budget`` that leaves nothing for the run that would go on, in words (e.g. "maxTotal
    $0.15 is not above the $0.21 all runs already spent"), or None when every limit leaves something."""
    for line in budget_state(ex, action).lines:
        if line.floor is None:
            continue
        new = float(getattr(budget, line.field))
        if round(new - line.floor, 6) > 0:
            continue
        if line.key == "maxPerBatch" and line.floor == 0:
            return f"maxPerBatch {usd(new)} leaves nothing for the next run"
        return f"{line.key} {usd(new)} is not above the {usd(line.floor)} {line.spent_by} already spent"
    return None


def refusal(ex: OrchestrationExecution, budget: BudgetConfig, action: Action | None = None) -> str | None:
    """Why ``budget`` cannot let the orchestration go on (it would stop again at once), or None when it can."""
    action = budget_state(ex, action).action
    short = shortfall(ex, budget, action)
    if short is None:
        return None
    what = "the retry" if action == "recover" else "resuming"
    return f"{short}: {what} would stop again at once. Raise it above what was spent."


def _up(amount: float) -> float:
    """Rounded up to the cent, at most the largest budget allowed."""
    return min(math.ceil(round(amount * 100, 6)) / 100, MAX_BUDGET_USD)


def suggestion(ex: OrchestrationExecution, action: Action | None = None) -> dict[str, float]:
    """Limits that let it go on by about one more batch's worth: ``{key: value}`` of the limits to raise."""
    state = budget_state(ex, action)
    budget = ex.config.budget
    step = budget.max_per_batch if budget.max_per_batch > 0 else 1.0
    out: dict[str, float] = {}
    per_batch = state.line("maxPerBatch")
    if per_batch.floor is not None and round(per_batch.limit - per_batch.floor, 6) <= 0:
        out["maxPerBatch"] = _up(per_batch.floor + step)
    healing = state.line("healingBudget")
    if state.stopped_by == "healingBudget" and round(healing.limit - (healing.spent or 0.0), 6) <= 0:
        out["healingBudget"] = _up((healing.spent or 0.0) + (budget.healing_budget or step))
    # the retried (or next) run gets min(maxPerBatch - what its batch spent, what is left of maxTotal)
    run_gets = out.get("maxPerBatch", budget.max_per_batch) - (per_batch.floor or 0.0)
    if round(budget.max_total - ex.total_cost_usd, 6) < round(run_gets, 6):
        out["maxTotal"] = _up(ex.total_cost_usd + run_gets)
    if not out and state.stopped_by is not None:
        out[state.stopped_by] = _up(float(getattr(budget, KEYS[state.stopped_by])) + step)
    return out


def set_flags(values: Mapping[str, float]) -> str:
    """``--set budget.maxTotal=20 --set budget.maxPerBatch=5`` for ``values`` (maxTotal first)."""
    order = list(KEYS)
    return " ".join(f"--set budget.{k}={v:g}" for k, v in sorted(values.items(), key=lambda kv: order.index(kv[0])))


def report(ex: OrchestrationExecution, action: Action | None = None) -> list[str]:
    """The limits, what was spent against each, and which one stopped it: one line per limit (for a terminal)."""
    state = budget_state(ex, action)
    width = max(len(line.key) for line in state.lines)
    out = []
    for line in state.lines:
        spent = f"spent {usd(line.spent)} by {line.spent_by}" if line.spent is not None else line.spent_by
        if line.key == "healingBudget":
            spent += " (one amount for the whole orchestration, not per batch)"
        mark = "  ← stopped it" if line.key == state.stopped_by else ""
        out.append(f"  {line.key:<{width}}  {usd(line.limit):>9}  {spent}{mark}")
    return out
