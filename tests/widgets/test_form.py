"""The Complete Phase form: generated from the model, defaults on open, errors beside fields, Start gating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from pydantic import Field

from specflow_nb.models import (
    BatchPlan,
    BudgetConfig,
    Health,
    OrchestrationConfig,
    PhaseInfo,
    PlannedBatch,
    Preflight,
    Progress,
    ProjectStatus,
    StatusContext,
    StepInfo,
)
from specflow_nb.tasks import parse_tasks, plan_batches
from specflow_nb.widgets.config_form import OrchestrationConfigForm, is_core
from specflow_nb.widgets.plan import PlanPreview
from specflow_nb.widgets.start_modal import StartOrchestrationModal


def _paths(model: type, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"):
            out |= _paths(info.annotation, (*prefix, name))
        else:
            out.add((*prefix, name))
    return out


def test_form_has_exactly_the_models_fields() -> None:
    form = OrchestrationConfigForm()
    assert set(form.controls) == _paths(OrchestrationConfig)
    assert {p for p in form.controls if p[0] == "budget"} == {("budget", n) for n in BudgetConfig.model_fields}


def test_labels_help_and_defaults_come_from_the_model() -> None:
    form = OrchestrationConfigForm()
    for path, control in form.controls.items():
        shown_title = control.input.description or control.row.children[0].value
        assert control.info.title and control.info.title in shown_title, path
        default = control.info.get_default(call_default_factory=True)
        assert control.get() == default, path
        # the field's help is its tooltip; the group carries one help line
        assert (control.info.description or "") in control.help
    heal = form.controls[("max_heal_attempts",)]
    assert isinstance(heal.input, w.IntText)
    assert "≤ 5" in heal.input.tooltip and "≥ 0" in heal.input.tooltip
    assert isinstance(form.controls[("auto_merge",)].input, w.Checkbox)
    assert isinstance(form.controls[("additional_context",)].input, w.Textarea)
    assert isinstance(form.controls[("budget", "max_total")].input, w.FloatText)


def test_a_field_added_to_the_model_appears_in_the_form() -> None:
    class Extended(OrchestrationConfig):
        max_parallel_agents: int = Field(2, ge=1, le=8, title="Parallel agents", description="Agents at once.")
        skip_merge: bool = Field(False, title="Skip merge")

    form = OrchestrationConfigForm(Extended)
    assert form.controls[("max_parallel_agents",)].input.value == 2
    assert form.controls[("max_parallel_agents",)].row in _rows(form.sections["advanced"])
    assert form.controls[("skip_merge",)].row in _rows(form.sections["core"])  # skip_* is core by rule
    form.controls[("max_parallel_agents",)].input.value = 9
    assert form.validate() is None
    assert "less than or equal to 8" in form.controls[("max_parallel_agents",)].error.value


def _rows(section: w.Box) -> list[w.Widget]:
    """The field rows of a group (short fields sit in a grid inside it)."""
    out: list[w.Widget] = []
    for child in section.children:
        out += list(child.children) if "sf-grid" in child._dom_classes else [child]
    return out


def test_groups_core_open_the_rest_collapsed_with_one_help_line_each() -> None:
    form = OrchestrationConfigForm()
    for path, control in form.controls.items():
        if path[0] == "budget":
            assert control.row in _rows(form.sections["budget"])
        elif is_core(path[0]):
            assert control.row in _rows(form.sections["core"])
        else:
            assert any(control.row in _rows(form.sections[k]) for k in ("agent", "healing", "advanced")), path
    assert list(form.groups) == ["core", "budget", "agent", "healing"]  # "advanced" only when a field lands there
    assert form.groups["core"].selected_index == 0
    assert all(form.groups[k].selected_index is None for k in ("budget", "agent", "healing"))
    for key, section in form.sections.items():
        helps = [c for c in section.children if isinstance(c, w.HTML) and "sf-muted" in c.value]
        assert len(helps) == 1, key
    # an error opens the group of its field
    form.controls[("budget", "max_total")].input.value = -1.0
    assert form.groups["budget"].selected_index == 0


@pytest.mark.parametrize(
    ("path", "bad", "message"),
    [
        (("max_heal_attempts",), 6, "less than or equal to 5"),
        (("batch_size_fallback",), 0, "greater than or equal to 1"),
        (("budget", "max_total"), -1.0, "greater than or equal to 0"),
        (("agent_command",), "", "at least 1 character"),
        (("stale_after_seconds",), 0.0, "greater than 0"),
    ],
)
def test_invalid_values_are_refused_with_the_fields_message(path: tuple[str, ...], bad: Any, message: str) -> None:
    form = OrchestrationConfigForm()
    form.controls[path].input.value = bad
    assert form.body() is None
    assert message in form.controls[path].error.value
    others = [c.error.value for p, c in form.controls.items() if p != path]
    assert not any(others)
    form.controls[path].input.value = form.controls[path].default
    assert form.controls[path].error.value == ""
    assert form.body() is not None


def test_body_is_the_camel_case_config() -> None:
    form = OrchestrationConfigForm()
    form.controls[("auto_merge",)].input.value = True
    form.controls[("additional_context",)].input.value = "Use <b>rich</b> for output"
    form.controls[("budget", "max_per_batch")].input.value = 1.5
    form.controls[("verify_command",)].input.value = "pytest -q"
    body = form.body()
    assert body is not None
    expected = OrchestrationConfig(
        auto_merge=True,
        additional_context="Use <b>rich</b> for output",
        budget=BudgetConfig(max_per_batch=1.5),
        verify_command="pytest -q",
    ).model_dump(mode="json")
    assert body == expected
    assert body["autoMerge"] is True and body["budget"]["maxPerBatch"] == 1.5
    assert body["fallbackModel"] is None  # an empty optional text is None, not ""


def _plan(n: int = 4, *, fallback: bool = False) -> BatchPlan:
    return BatchPlan(
        batches=[PlannedBatch(index=i, section=f"Phase {i + 1}", task_ids=[f"T00{i}"]) for i in range(n)],
        total_incomplete=n,
        used_fallback=fallback,
        summary=f"{n} batches",
    )


def _preflight(problems: list[str] | None = None, *, agent_found: bool = True) -> Preflight:
    return Preflight(ok=not problems, problems=problems or [], agent_command="claude", agent_found=agent_found)


def _modal() -> tuple[StartOrchestrationModal, list[dict[str, Any]], list[str]]:
    started: list[dict[str, Any]] = []
    cancelled: list[str] = []
    modal = StartOrchestrationModal(on_start=started.append, on_cancel=lambda: cancelled.append("x"))
    return modal, started, cancelled


def test_open_resets_to_defaults_and_start_waits_for_the_plan() -> None:
    modal, started, _ = _modal()
    modal.form.controls[("auto_merge",)].input.value = True
    modal.form.controls[("max_heal_attempts",)].input.value = 4
    modal.form.advanced.selected_index = 0
    modal.reset()
    assert modal.form.values() == OrchestrationConfig().model_dump(by_alias=False)
    assert modal.form.advanced.selected_index is None
    assert modal.start.disabled and modal.blocked_reason == "the plan is loading"
    assert "Start is disabled: the plan is loading." in modal.why_disabled.value  # said, not only greyed out
    modal.start.click()
    assert started == []
    modal.render_preview(PlanPreview(batch_plan=_plan(4)))
    assert "Detected 4 batches from tasks.md" in modal.plan_line.value
    assert not modal.start.disabled
    modal.start.click()
    assert started == [OrchestrationConfig().model_dump(mode="json")]
    assert modal.start.disabled  # no double start


def test_start_disabled_on_plan_error_and_invalid_fields() -> None:
    modal, _, _ = _modal()
    modal.reset()
    modal.render_plan_error("tasks.md: permission denied")
    assert modal.start.disabled and "permission denied" in modal.notes.value
    modal.render_preview(PlanPreview(batch_plan=_plan(2)))
    assert not modal.start.disabled
    modal.form.controls[("budget", "max_total")].input.value = -5.0
    assert modal.start.disabled and modal.blocked_reason == "fix Max total (USD)"
    modal.form.controls[("budget", "max_total")].input.value = 10.0
    assert not modal.start.disabled


def test_fallback_warning_and_phase_not_open_note() -> None:
    modal, _, _ = _modal()
    modal.reset()
    tasks = "# Tasks\n\n" + "".join(f"- [ ] T{i:03d} Task {i}\n" for i in range(1, 40))
    plan = plan_batches(parse_tasks(tasks), 15)  # the real plan of a tasks.md with no ## sections
    modal.render_preview(PlanPreview(batch_plan=plan, preflight=_preflight()))
    assert "No sections detected" in modal.notes.value and "15" in modal.notes.value
    modal.render_preview(
        PlanPreview(
            batch_plan=None,
            project_status=ProjectStatus(
                phase=PhaseInfo(),
                step=StepInfo(),
                progress=Progress(),
                health=Health(),
                next_action="start_phase",
                context=StatusContext(feature_dir=None),
            ),
        )
    )
    assert "Open the phase first" in modal.notes.value
    assert modal.start.disabled and modal.blocked_reason == "the phase is not open"


def test_plan_warnings_are_escaped() -> None:
    modal, _, _ = _modal()
    modal.reset()
    plan = _plan(1)
    plan.warnings.append("Unknown dependency <script>alert(1)</script> in T001")
    modal.render_preview(PlanPreview(batch_plan=plan))
    assert "<script>" not in modal.notes.value and "&lt;script&gt;" in modal.notes.value


def test_cancel_calls_back() -> None:
    modal, _, cancelled = _modal()
    modal.cancel.click()
    assert cancelled == ["x"]


def test_remembered_settings_open_the_form_and_reset_goes_back_to_defaults(tmp_path: Path) -> None:
    from specflow_nb.widgets import settings

    store = tmp_path / "settings.json"
    config = OrchestrationConfig(auto_merge=True, agent_command="my-claude", budget=BudgetConfig(max_total=9.0))
    assert settings.save("/projects/todo", config, path=store)
    assert settings.load("/projects/other", path=store) is None
    loaded = settings.load("/projects/todo", path=store)
    assert loaded is not None and loaded[0] == config and loaded[1]
    modal, _, _ = _modal()
    modal.reset(loaded[0], loaded[1])
    assert modal.form.values() == config.model_dump(by_alias=False)
    assert "last settings" in modal.remembered.value
    modal.reset_button.click()
    assert modal.form.values() == OrchestrationConfig().model_dump(by_alias=False)
    store.write_text("{not json", encoding="utf-8")  # a broken file only loses the memory
    assert settings.load("/projects/todo", path=store) is None


def test_the_agent_check_sits_beside_the_agent_field() -> None:
    modal, _, _ = _modal()
    modal.reset()
    problem = "The agent command claude was not found. Install Claude Code."
    modal.render_preview(PlanPreview(batch_plan=_plan(2), preflight=_preflight(problems=[problem], agent_found=False)))
    agent = modal.form.controls[("agent_command",)]
    assert problem not in modal.notes.value  # not at the top of the form
    assert problem in agent.check.children[0].value and modal.use_demo in agent.check.children[1].children
    assert modal.form.advanced.selected_index == 0  # its group opened
    assert modal.blocked_reason == "the agent command was not found (see Agent)"
    modal.use_demo.click()
    assert agent.input.value.endswith("specflow-nb-demo-agent")


def test_the_form_says_which_prompt_each_step_uses(tmp_path) -> None:
    import anyio

    from specflow_nb.demo import prepare_sample
    from specflow_nb.widgets.local import LocalBackend

    project = prepare_sample(tmp_path / "todo")
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "flow.implement.md").write_text("Implement. $ARGUMENTS\n")

    async def preview() -> PlanPreview:
        backend = LocalBackend(tmp_path)
        try:
            return await backend.preview("todo", OrchestrationConfig())
        finally:
            await backend.aclose()

    real = anyio.run(preview)
    modal, _, _ = _modal()
    modal.reset()
    modal.render_preview(real)
    line = modal.prompts_line.value
    assert (
        "implement: /flow.implement (this project&#x27;s)" in line
        or "implement: /flow.implement (this project's)" in line
    )
    assert "design: built-in" in line and "merge: built-in" in line
