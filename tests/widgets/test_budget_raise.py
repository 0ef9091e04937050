"""Raise a budget and go on (issue 15.1), in the panel: after "Budget reached", Retry shows the limits prefilled with
the current ones and what was spent against each; a raise below what was spent is refused before anything is sent;
a real raise finishes the phase. In-kernel (LocalBackend) and against a real server (RemoteBackend), with the demo
agent charging known costs per batch; plus the widget's own behaviour on records of each kind of stop.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

import specflow_nb
from specflow_nb.demo import prepare_sample
from specflow_nb.models import (
    BudgetConfig,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationStatus,
    RecoveryContext,
    RecoveryOption,
)
from specflow_nb.widgets.controls import OrchestrationControls
from specflow_nb.widgets.panel import ProjectPanel
from specflow_nb.widgets.recovery import RETRY_WITH_BUDGET, RecoveryPanel
from specflow_nb.widgets.remote import RemoteBackend
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server
from tests.support.wire import wire
from tests.widgets.conftest import make_execution
from tests.widgets.panel_driver import shown, start_from_form, status_is, until
from tests.widgets.test_local_e2e import run_panel

#: Each batch's run costs this much (the demo agent's per-section rules); analyze costs the default $0.01.
COSTS = {'"Phase 1': 0.07, '"Phase 2': 0.13, '"Phase 3': 0.11, '"Phase 4': 0.05}


def cost_script(path: Path) -> Path:
    path.write_text(json.dumps({"rules": [{"match": m, "cost": c} for m, c in COSTS.items()]}), encoding="utf-8")
    return path


async def raise_and_retry(panel: ProjectPanel) -> OrchestrationExecution:
    """The person's part after "Budget reached": read the form, try too little, then raise enough and Retry."""
    stopped = await until(panel, status_is("needs_attention"), "budget reached", timeout=90)
    assert stopped.recovery_context is not None and stopped.recovery_context.kind == "budget"
    recovery = panel.progress.recovery
    retry = recovery.buttons[RecoveryOption.RETRY]
    editor = recovery.budget
    assert shown(editor) and retry.description == RETRY_WITH_BUDGET
    # batch 2's run hit the total: spent $0.21 (analyze 0.01 + batch 1 0.07 + batch 2 0.13) of $0.15
    spent = stopped.total_cost_usd
    assert spent == pytest.approx(0.21)
    assert "maxTotal stopped it" in editor.hint.value and "$0.21 of $0.15" in editor.hint.value
    total, per_batch = editor.controls["max_total"], editor.controls["max_per_batch"]
    assert (total.input.value, per_batch.input.value) == (0.15, 1.0)  # prefilled with the current limits
    assert "spent $0.21 by all runs" in editor.spent["max_total"].value
    assert "spent $0.13 by batch 2" in editor.spent["max_per_batch"].value
    assert not shown(editor.controls["healing_budget"].row)  # no healing in this orchestration
    assert "Retry with a higher budget" in stopped.recovery_context.issue  # the machine's words name the button

    # not above what was spent: refused in the panel, nothing sent
    total.input.value = 0.2
    retry.click()
    assert "not above the $0.21 all runs already spent" in editor.error.value
    assert "would stop again at once" in editor.error.value and "Must be more than $0.21" in total.error.value
    total.input.value = math.inf  # not finite: the model's own words
    retry.click()
    assert "finite" in total.error.value
    total.input.value = 20_000.0
    retry.click()
    assert "less than or equal to 10000" in total.error.value
    await asyncio.sleep(0.5)
    assert panel.execution is not None and panel.execution.version == stopped.version  # nothing was sent
    assert total.input.value == 20_000.0  # and nothing typed was lost

    total.input.value = 5.0
    retry.click()
    assert not editor.error.value and not total.error.value
    done = await until(panel, status_is("completed"), "completed after the raise", timeout=90)
    assert done.config.budget.max_total == 5.0 and done.config.budget.max_per_batch == 1.0
    assert done.config.budget.healing_budget == 2.0  # the limits not shown are kept, not reset
    assert any("budget changed: maxTotal $0.15 → $5.00" in d.reason for d in done.decision_log)
    assert all(b.status.value == "completed" for b in done.batches.items)
    assert not shown(recovery)
    return done


OPTIONS = {
    "skip_analyze": False,
    "auto_merge": True,
    "auto_heal_enabled": False,
    "budget.max_total": 0.15,
    "budget.max_per_batch": 1.0,
}


@pytest.mark.timeout(180)
def test_budget_reached_then_raised_in_the_panel_in_kernel(tmp_path: Path) -> None:
    script = cost_script(tmp_path / "costs.json")

    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, **OPTIONS)
        await raise_and_retry(panel)

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCRIPT": str(script)})


@pytest.mark.timeout(180)
def test_budget_reached_then_raised_in_the_panel_on_a_real_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    runtime = tmp_path / "runtime"
    script = cost_script(tmp_path / "costs.json")
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))

    async def scenario() -> None:
        panel = specflow_nb.panel(project)
        try:
            assert isinstance(panel.backend, RemoteBackend), panel.status_line.value
            await start_from_form(panel, **OPTIONS)
            await raise_and_retry(panel)
        finally:
            await panel.aclose()
            if panel.backend is not None:
                await panel.backend.aclose()

    with jupyter_server(root, runtime, base=tmp_path, env={"SPECFLOW_DEMO_SCRIPT": str(script)}):
        asyncio.run(scenario())


@pytest.mark.timeout(180)
def test_paused_with_nothing_left_resume_asks_for_a_raise_in_kernel(tmp_path: Path) -> None:
    """Paused between batches with the total used up: Resume shows the limits itself and refuses to go nowhere."""
    script = cost_script(tmp_path / "costs.json")

    async def scenario(panel: ProjectPanel, project: Path) -> None:
        # analyze $0.01 + batch 1 $0.07 = the whole $0.08
        await start_from_form(
            panel,
            pause_between_batches=True,
            auto_merge=True,
            **{"budget.max_total": 0.08, "budget.max_per_batch": 1.0},
        )
        paused = await until(panel, status_is("paused"), "paused after batch 1", timeout=90)
        assert paused.total_cost_usd == pytest.approx(0.08)
        controls = panel.progress.controls
        assert shown(controls.budget) and not shown(controls.change_budget)
        assert "maxTotal stopped it" in controls.budget.hint.value
        controls.resume.click()
        assert "resuming would stop again at once" in controls.budget.error.value
        await asyncio.sleep(0.3)
        assert panel.execution is not None and panel.execution.version == paused.version
        controls.budget.controls["max_total"].input.value = 3.0
        last = paused.version
        controls.resume.click()
        # it pauses after each batch again; with money left the limits stay closed until asked for
        while True:
            ex = await until(
                panel,
                lambda e, v=last: e.version > v and e.status.value in ("paused", "completed"),
                "paused again or completed",
                timeout=90,
            )
            if ex.status is OrchestrationStatus.COMPLETED:
                break
            assert not shown(controls.budget) and shown(controls.change_budget)
            last = ex.version
            controls.resume.click()
        assert ex.config.budget.max_total == 3.0

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCRIPT": str(script)})


# --------------------------------------------------------------------------------------------------------------
# The widgets on records (no engine)


def budget_stop(**extra: object) -> OrchestrationExecution:
    return make_execution(
        OrchestrationStatus.NEEDS_ATTENTION,
        total_cost_usd=0.2,
        healing_cost_usd=0.05,
        config=OrchestrationConfig(budget=BudgetConfig(max_total=0.15, max_per_batch=1.0, healing_budget=0.4)),
        recovery_context=RecoveryContext(
            issue="Budget reached: cannot start batch 2, maxTotal is used up", kind="budget", batch_index=1
        ),
        **extra,
    )


def test_typed_values_survive_redraws_and_a_new_stop_prefills_again() -> None:
    sent: list[dict] = []
    panel = RecoveryPanel(wire(sent))
    ex = budget_stop()
    panel.render(ex)
    editor = panel.budget
    assert shown(editor.controls["healing_budget"].row)  # autoHeal on: a retried batch may heal
    assert "one amount for the whole orchestration, not per batch" in editor.spent["healing_budget"].value
    editor.controls["max_total"].input.value = 7.5
    panel.render(ex.model_copy(update={"version": ex.version + 1}))  # a redraw (e.g. a notification saved)
    assert editor.controls["max_total"].input.value == 7.5
    raised = ex.config.model_copy(update={"budget": BudgetConfig(max_total=9.0, max_per_batch=1.0)})
    panel.render(ex.model_copy(update={"config": raised, "version": ex.version + 2}))  # raised elsewhere
    assert editor.controls["max_total"].input.value == 9.0
    panel.buttons[RecoveryOption.RETRY].click()
    assert sent == [
        {
            "action": "recover",
            "option": "retry",
            "budget": {"maxPerBatch": 1.0, "maxTotal": 9.0, "healingBudget": 2.0, "decisionBudget": 0.5},
        }
    ]
    # Skip and Abort never carry a budget; a stop that is not a budget stop shows no limits
    panel.buttons[RecoveryOption.SKIP].click()
    assert sent[-1] == {"action": "recover", "option": "skip"}
    other = ex.model_copy(update={"recovery_context": RecoveryContext(issue="Batch 2 failed", kind="batch_failed")})
    panel.render(other)
    assert not shown(editor) and panel.buttons[RecoveryOption.RETRY].description == "Retry"
    panel.buttons[RecoveryOption.RETRY].click()
    assert sent[-1] == {"action": "recover", "option": "retry"}


def test_paused_with_money_left_change_budget_is_asked_for() -> None:
    sent: list[dict] = []
    controls = OrchestrationControls(wire(sent))
    paused = make_execution(OrchestrationStatus.PAUSED, total_cost_usd=1.0)
    controls.render(paused)
    assert not shown(controls.budget) and shown(controls.change_budget)
    assert controls.visible_buttons == ["Resume", "Cancel orchestration"]
    controls.resume.click()
    assert sent[-1] == {"action": "resume"}
    controls.change_budget.click()
    assert shown(controls.budget) and controls.change_budget.description == "Keep the budget"
    controls.budget.controls["max_per_batch"].input.value = 0.0
    controls.resume.click()
    assert len(sent) == 1 and "maxPerBatch $0.00 leaves nothing for the next run" in controls.budget.error.value
    controls.budget.controls["max_per_batch"].input.value = 8.0
    controls.resume.click()
    assert sent[-1]["budget"]["maxPerBatch"] == 8.0 and sent[-1]["budget"]["maxTotal"] == 50.0
    controls.change_budget.click()  # closed again: Resume sends no budget
    controls.resume.click()
    assert sent[-1] == {"action": "resume"}
    controls.render(make_execution(OrchestrationStatus.RUNNING))
    assert not shown(controls.budget) and not shown(controls.change_budget)


def test_the_forms_healing_budget_says_it_is_one_amount_for_the_whole_orchestration() -> None:
    from specflow_nb.widgets.config_form import OrchestrationConfigForm

    form = OrchestrationConfigForm()
    heal = form.controls[("budget", "healing_budget")]
    assert "Cap for all healer runs together." in heal.help  # the model's description, then the host's words
    assert "one amount for the whole orchestration" in heal.help.lower() and "not per batch" in heal.input.tooltip
    group_help = form.sections["budget"].children[0].value
    assert "the healing budget is one amount for the whole orchestration" in group_help
    assert "not per batch" in group_help and "Retry with a higher budget" in group_help
