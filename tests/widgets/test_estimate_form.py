"""The Start form's estimate: total time and cost, a line per batch and step, the basis in words, and the budget
warning, which follows the budget fields as the user types without a new preview."""

from __future__ import annotations

import asyncio
from pathlib import Path

from specflow_nb.demo import prepare_sample
from specflow_nb.estimate import estimate_plan
from specflow_nb.models import BatchPlan, OrchestrationConfig, PlannedBatch
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.widgets.local import LocalBackend
from specflow_nb.widgets.panel import PREVIEW_DEBOUNCE, ProjectPanel
from specflow_nb.widgets.plan import ESTIMATE_BATCH_ROWS, PlanPreview
from specflow_nb.widgets.start_modal import StartOrchestrationModal
from tests.widgets.panel_driver import DEMO_AGENT


class CountingBackend(LocalBackend):
    """The real in-kernel backend, counting the previews the panel asks for."""

    previews = 0

    async def preview(self, project_id: str, config: OrchestrationConfig) -> PlanPreview:
        self.previews += 1
        return await super().preview(project_id, config)


def test_the_form_shows_the_estimate_and_its_warning_follows_the_budget_fields(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")

    async def main() -> None:
        backend = CountingBackend(project, settings=EngineSettings())
        panel = ProjectPanel(backend, "", title="todo")
        try:
            panel.complete.click()
            form = panel.form
            budget = {name: form.form.controls[("budget", name)].input for name in ("max_total", "max_per_batch")}
            form.form.controls[("agent_command",)].input.value = DEMO_AGENT
            await panel.wait_preview()
            assert form.blocked_reason is None, form.notes.value
            line = form.estimate_line.value
            assert "Estimate: ~48 min · $3.80 for 20 tasks in 4 batches and 3 steps" in line
            assert "Defaults (no completed batch" in line and "estimate_usd_per_task" in line
            assert "1. Phase 1: Setup" in line and "<details open>" in line  # four batches: the list is open
            assert line.count('class="specflow-estimate-batch"') == 4
            assert "verify step (default)" in line and "merge step (built-in)" in line
            assert form.estimate_warnings.value == ""
            asked = backend.previews

            budget["max_total"].value = 2.0  # typed into the form
            warning = form.estimate_warnings.value
            assert "$3.80 is $1.80 over Max total (budget.maxTotal $2.00)" in warning and "sf-tone-warn" in warning
            budget["max_per_batch"].value = 1.0
            assert "Batch 3 (Phase 3: User Story 1" in form.estimate_warnings.value
            budget["max_total"].value = 50.0
            budget["max_per_batch"].value = 5.0
            assert form.estimate_warnings.value == ""
            budget["max_total"].value = -1.0  # invalid: no warning to compute, Start says which field
            assert form.estimate_warnings.value == "" and form.blocked_reason == "fix Max total (USD)"
            budget["max_total"].value = 3.0
            assert "$0.80 over Max total" in form.estimate_warnings.value and form.blocked_reason is None
            await asyncio.sleep(PREVIEW_DEBOUNCE + 0.3)
            await panel.wait_preview()
            assert backend.previews == asked  # the budget changed neither the plan nor the checks: no new preview

            # another option does change the plan: a new preview, and the warning checked against the budget shown
            form.form.controls[("skip_verify",)].input.value = True
            await asyncio.sleep(PREVIEW_DEBOUNCE + 0.1)
            await panel.wait_preview()
            assert backend.previews == asked + 1
            assert "$3.30 for 20 tasks in 4 batches and 2 steps" in form.estimate_line.value
            assert "$0.30 over Max total (budget.maxTotal $3.00)" in form.estimate_warnings.value
        finally:
            await panel.aclose()
            await backend.aclose()

    asyncio.run(main())


def _modal_with(plan: BatchPlan, tmp_path: Path) -> StartOrchestrationModal:
    project = prepare_sample(tmp_path / "todo")
    modal = StartOrchestrationModal(on_start=lambda _body: None, on_cancel=lambda: None)
    modal.reset()
    estimate = estimate_plan(project, plan, OrchestrationConfig(), EngineSettings())
    modal.render_preview(PlanPreview(batch_plan=plan, estimate=estimate))
    return modal


def test_titles_are_escaped_and_a_long_plan_is_listed_in_part(tmp_path: Path) -> None:
    hostile = BatchPlan(batches=[PlannedBatch(index=0, section="<img src=x onerror=alert(1)>", task_ids=["T001"])])
    modal = _modal_with(hostile, tmp_path / "a")
    assert "<img" not in modal.estimate_line.value and "&lt;img src=x" in modal.estimate_line.value

    n = 2000
    plan = BatchPlan(batches=[PlannedBatch(index=i, section=f"S{i}", task_ids=[f"T{i}"]) for i in range(n)])
    modal = _modal_with(plan, tmp_path / "b")
    line = modal.estimate_line.value
    assert line.count('class="specflow-estimate-batch"') == ESTIMATE_BATCH_ROWS
    assert f"… {n - ESTIMATE_BATCH_ROWS} more batches" in line
    assert "<details open>" not in line and "Per batch (2000 batches) and step" in line  # one click away
    assert "2000 tasks in 2000 batches" in line
    assert len(line) < 20_000  # a 2000-batch plan does not make a 2000-row form
