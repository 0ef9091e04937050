"""Budget rules: what a run may spend now (``budget_left``, ``healer_budget``), the stop when nothing is left, the
messages that say how to raise it, and a command's budget change.

The machine checks the budget before every spawn; nothing else decides how much a run may spend.
"""

from __future__ import annotations

from specflow_nb.machine.decisions import HEALING_MEANING, WAY_FORWARD, Decision
from specflow_nb.machine.stopping import needs_attention
from specflow_nb.machine.tx import Tx
from specflow_nb.models import (
    BatchItem,
    BudgetChange,
    OrchestrationConfig,
    OrchestrationExecution,
    RecoveryOption,
)

R = RecoveryOption


def healer_budget(config: OrchestrationConfig, *, healing_spent_usd: float, total_spent_usd: float) -> float:
    """USD a healer may spend now: what is left of the healing budget (one amount for all healers together), never
    more than what is left in total. Zero means no healer may start (MISSION §6: never spawn with nothing left)."""
    left = min(config.budget.healing_budget - healing_spent_usd, config.budget.max_total - total_spent_usd)
    return round(max(0.0, left), 6)


def budget_left(ex: OrchestrationExecution, cap: float, cap_name: str, spent: float) -> tuple[float, str]:
    """(min(cap - spent, total left), the name of the limit that binds)."""
    total_left = ex.config.budget.max_total - ex.total_cost_usd
    cap_left = cap - spent
    left = round(min(cap_left, total_left), 6)
    return left, ("maxTotal" if total_left <= cap_left else cap_name)


def exceeded_limit(ex: OrchestrationExecution, *, healer: bool) -> str:
    """The limit that bound a run which hit its --max-budget-usd (its cost counted): maxTotal when nothing is left
    of the total, else the run's own cap (healingBudget for a healer, maxPerBatch for a batch or a step)."""
    if round(ex.config.budget.max_total - ex.total_cost_usd, 6) <= 0:
        return "maxTotal"
    return "healingBudget" if healer else "maxPerBatch"


def budget_exceeded_issue(ex: OrchestrationExecution, label: str, healer: bool, batch: BatchItem | None) -> str:
    """The issue when a run hit its --max-budget-usd: what was spent against the limits that bound it, and how to
    raise them."""
    b = ex.config.budget
    spent = f"Spent ${ex.total_cost_usd:.2f} in all (maxTotal ${b.max_total:.2f})"
    if healer:
        return (
            f"Budget reached: {label} hit its --max-budget-usd limit. {spent}, ${ex.healing_cost_usd:.2f} on healers "
            f"(healingBudget ${b.healing_budget:.2f}). Raise budget.healingBudget or budget.maxTotal and retry: "
            f"{WAY_FORWARD} --set budget.healingBudget=… --set budget.maxTotal=…`. {HEALING_MEANING}."
        )
    this = f"${batch.cost_usd:.2f} on this batch" if batch is not None else "a step may spend"
    return (
        f"Budget reached: {label} hit its --max-budget-usd limit. {spent}, {this} (maxPerBatch "
        f"${b.max_per_batch:.2f}). Raise budget.maxPerBatch or budget.maxTotal and retry: {WAY_FORWARD} "
        "--set budget.maxPerBatch=… --set budget.maxTotal=…`."
    )


def budget_stop(tx: Tx, what: str, limit: str, options: list[R], batch: BatchItem | None = None) -> None:
    ex = tx.ex
    spent = f"${ex.total_cost_usd:.2f} of maxTotal ${ex.config.budget.max_total:.2f} spent"
    tx.log(Decision.BUDGET_EXCEEDED, f"budget reached ({limit}) before {what}: {spent}", limit=limit)
    needs_attention(
        tx,
        kind="budget",
        issue=f"Budget reached: cannot start {what}, {limit} is used up ({spent}). Raise budget.{limit} and "
        f"retry: {WAY_FORWARD} --set budget.{limit}=…`." + (f" {HEALING_MEANING}." if limit == "healingBudget" else ""),
        options=options,
        batch=batch,
    )


def apply_budget(tx: Tx, change: BudgetChange | None) -> None:
    """A resume's or recovery's new limits, merged over the current ones (the limits it does not give stay)."""
    old = tx.ex.config.budget
    budget = change.over(old) if change is not None else old
    if budget == old:
        return
    tx.ex.config = tx.ex.config.model_copy(update={"budget": budget})
    tx.log(
        Decision.RESUME if tx.name == "resume" else Decision.RECOVERY_RETRY,
        f"budget changed: maxTotal ${old.max_total:.2f} → ${budget.max_total:.2f}, "
        f"maxPerBatch ${old.max_per_batch:.2f} → ${budget.max_per_batch:.2f}, "
        f"healingBudget ${old.healing_budget:.2f} → ${budget.healing_budget:.2f} (for all healers together)",
        budget=budget.model_dump(),
    )
