"""budget_raise: what hosts say and check before a budget raise is sent, against the machine's own rule.

Each budget stop is reached through ``machine.transition`` only (the machine's test harness). The key property: a raise
the hosts accept (``refusal`` is None) is exactly one with which the machine's retry starts a run; one they refuse
is exactly one that would stop again at once — so the panel and the CLI never send a raise that goes nowhere, and
never refuse one that would have gone on.
"""

from __future__ import annotations

import copy
import math

import pytest

from specflow_nb import budget_raise
from specflow_nb.errors import ConfigError
from specflow_nb.machine import SPAWN_ACTIONS, RecoverCommand, ResumeCommand
from specflow_nb.models import BudgetConfig, OrchestrationStatus, RecoveryOption
from tests.test_machine import FakeProject, Harness, bad, ok, st_paused, three_sections

S = OrchestrationStatus


def stop_before_batch_3() -> Harness:
    """maxTotal used up between batches (nothing left for batch 3)."""
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=3.0, max_total=5.0))
    h.start()
    h.run_batch(ok(cost=2.5))
    h.run_batch(ok(cost=2.5))
    return h


def batch_hit_its_cap() -> Harness:
    """Batch 1's run stopped at its --max-budget-usd (maxPerBatch binds)."""
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=1.0, max_total=50.0))
    h.start()
    h.finish(bad(cost=1.0, failure="budget_exceeded", message="error_max_budget_usd"))
    return h


def healer_stop() -> Harness:
    """The healing budget is used up before a healer could start."""
    h = Harness(three_sections(), max_heal_attempts=3, budget=BudgetConfig(healing_budget=1.0))
    h.start()
    h.run_batch(bad(), check=False)
    h.run_batch(ok(cost=0.75, output={"status": "partial"}), check=False)
    h.run_batch(ok(cost=0.25, output={"status": "partial"}), check=False)
    return h


def design_hit_its_cap() -> Harness:
    """The design step's run stopped at its cap (a step's cap is maxPerBatch, fresh for each run)."""
    h = Harness(FakeProject(has_spec=False, has_plan=False), budget=BudgetConfig(max_per_batch=0.5, max_total=50.0))
    h.start()
    h.finish(bad(cost=0.55, failure="budget_exceeded", message="error_max_budget_usd"))
    return h


STOPS = {
    "maxTotal before a batch": (stop_before_batch_3, "maxTotal"),
    "a batch's run at its cap": (batch_hit_its_cap, "maxPerBatch"),
    "no healing budget left": (healer_stop, "healingBudget"),
    "a step's run at its cap": (design_hit_its_cap, "maxPerBatch"),
}


def retry_starts_a_run(h: Harness, budget: BudgetConfig) -> bool:
    """What the machine does with a retry carrying ``budget``: start a run (True) or stop again (False)."""
    h = copy.deepcopy(h)
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY, budget=budget))
    acts = h.read()
    if any(isinstance(a, SPAWN_ACTIONS) for a in acts):
        return True
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget", h.ex.status
    return False


@pytest.mark.parametrize("name", list(STOPS))
def test_each_budget_stop_names_its_limit_and_what_was_spent(name: str) -> None:
    make, limit = STOPS[name]
    h = make()
    assert budget_raise.is_budget_stop(h.ex)
    state = budget_raise.budget_state(h.ex)
    assert state.action == "recover" and state.stopped_by == limit, (state, h.rc.issue)
    assert limit in state.hint
    total = state.line("maxTotal")
    assert total.spent == pytest.approx(h.ex.total_cost_usd) and total.floor == pytest.approx(h.ex.total_cost_usd)
    healing = state.line("healingBudget")
    assert healing.spent == pytest.approx(h.ex.healing_cost_usd) and healing.spent_by == "all healers together"
    if h.rc.batch_index is not None:
        batch = h.ex.batches.items[h.rc.batch_index]
        assert state.line("maxPerBatch").spent == pytest.approx(batch.cost_usd)
        assert state.line("maxPerBatch").spent_by == f"batch {batch.index + 1}"
    lines = budget_raise.report(h.ex)
    assert len(lines) == 3 and sum("← stopped it" in line for line in lines) == 1
    assert "not per batch" in lines[2]


@pytest.mark.parametrize("name", list(STOPS))
def test_a_raise_is_refused_exactly_when_the_machines_retry_would_stop_again(name: str) -> None:
    make, _ = STOPS[name]
    h = make()
    current = h.ex.config.budget
    spent = h.ex.total_cost_usd
    candidates = [
        current,  # no raise
        current.model_copy(update={"max_total": spent}),  # exactly what was spent: nothing left
        current.model_copy(update={"max_total": spent + 0.01}),
        current.model_copy(update={"max_total": spent + 10, "max_per_batch": current.max_per_batch * 3}),
        current.model_copy(update={"max_total": spent + 10, "max_per_batch": 0.0}),
        current.model_copy(update={"max_total": spent + 10, "healing_budget": 50.0, "max_per_batch": 20.0}),
    ]
    for budget in candidates:
        refused = budget_raise.refusal(h.ex, budget)
        goes_on = retry_starts_a_run(h, budget)
        assert (refused is None) == goes_on, (budget, refused, goes_on)
        if refused is not None:
            assert "would stop again at once" in refused
    # the suggested raise always goes on
    suggested = budget_raise.merged(current, budget_raise.suggestion(h.ex))
    assert budget_raise.refusal(h.ex, suggested) is None and retry_starts_a_run(h, suggested)


def test_the_refusal_names_the_limit_and_what_was_spent() -> None:
    h = stop_before_batch_3()
    refused = budget_raise.refusal(h.ex, h.ex.config.budget.model_copy(update={"max_total": 4.0}))
    assert refused == (
        "maxTotal $4.00 is not above the $5.00 all runs already spent: the retry would stop again at once. "
        "Raise it above what was spent."
    )
    assert budget_raise.suggestion(h.ex) == {"maxTotal": 8.0}  # one more batch's worth (maxPerBatch 3)
    assert budget_raise.set_flags({"maxPerBatch": 5, "maxTotal": 20}) == (
        "--set budget.maxTotal=20 --set budget.maxPerBatch=5"
    )


def test_merged_keeps_the_other_limits_and_uses_the_models_validation() -> None:
    current = BudgetConfig(max_total=1.0, max_per_batch=0.5, healing_budget=0.3, decision_budget=0.2)
    raised = budget_raise.merged(current, {"maxTotal": 20})
    assert raised == current.model_copy(update={"max_total": 20.0})
    assert budget_raise.merged(current, {"max_per_batch": 2}).max_per_batch == 2.0
    for bad_value, words in ((math.nan, "finite"), (math.inf, "finite"), (20_000, "less than or equal to 10000")):
        with pytest.raises(ConfigError, match=words):
            budget_raise.merged(current, {"maxTotal": bad_value})
    with pytest.raises(ConfigError, match="greater than or equal to 0"):
        budget_raise.merged(current, {"maxTotal": -1})
    with pytest.raises(ConfigError, match=r"budget\.maxTurns is not a budget limit"):
        budget_raise.merged(current, {"maxTurns": 3})


def test_resume_with_nothing_left_is_a_raise_of_the_total() -> None:
    h = st_paused()
    spent = h.ex.total_cost_usd
    h.ex.config = h.ex.config.model_copy(update={"budget": BudgetConfig(max_total=spent)})
    state = budget_raise.budget_state(h.ex)
    assert state.action == "resume" and state.stopped_by == "maxTotal"
    assert budget_raise.refusal(h.ex, h.ex.config.budget) is not None
    raised = BudgetConfig(max_total=spent + 5)
    assert budget_raise.refusal(h.ex, raised) is None
    h.cmd(ResumeCommand(budget=raised))
    assert any(isinstance(a, SPAWN_ACTIONS) for a in h.read())
    # with money left, nothing stopped it and the current limits are fine
    fresh = st_paused()
    assert budget_raise.budget_state(fresh.ex).stopped_by is None
    assert budget_raise.refusal(fresh.ex, fresh.ex.config.budget) is None
