"""The panel end to end on the engine inside this process (LocalBackend), driven through its own buttons.

Real Orchestrator, real demo-agent subprocesses, real git: only the person is simulated (clicks, typed answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.widgets.local import LocalBackend
from specflow_nb.widgets.panel import ProjectPanel
from specflow_nb.widgets.sync import descendants
from tests.widgets.panel_driver import shown, start_from_form, status_is, texts, until, write_script


def texts_of(widget: object) -> str:
    return " ".join(c.value for c in descendants(widget) if isinstance(getattr(c, "value", None), str))


pytestmark = pytest.mark.timeout(180)


def run_panel(
    tmp_path: Path, scenario: Callable[[ProjectPanel, Path], Awaitable[None]], agent_env: dict[str, str] | None = None
) -> None:
    """A sample project, a panel on the in-process engine, the scenario; everything closed afterwards."""
    project = prepare_sample(tmp_path / "todo")

    async def main() -> None:
        backend = LocalBackend(project, settings=EngineSettings(agent_env=agent_env or {}))
        panel = ProjectPanel(backend, "", title="todo")
        try:
            await scenario(panel, project)
        finally:
            await panel.aclose()
            await backend.aclose()

    asyncio.run(main())


def test_complete_phase_from_the_form_to_merged(tmp_path: Path) -> None:
    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await panel.refresh()
        assert panel.mode == "summary" and "No runs yet" in panel.past_runs.value
        panel.complete.click()
        await panel.wait_preview()
        # the default agent command ('claude') is not installed here: the check sits beside the agent field,
        # its group opens, and Start says why it is disabled
        assert "Detected 4 batches from tasks.md (20 tasks)" in panel.form.plan_line.value
        agent = panel.form.form.controls[("agent_command",)]
        assert "agent command" in texts_of(agent.check) and panel.form.use_demo in agent.check.children[1].children
        assert panel.form.form.advanced.selected_index == 0
        assert panel.form.start.disabled and "agent command was not found" in panel.form.why_disabled.value
        panel.form.use_demo.click()  # "use the demo agent" for a first try
        await panel.wait_preview()
        assert panel.form.blocked_reason is None and not agent.check.children
        panel.form.cancel.click()
        assert panel.mode == "summary"

        started = await start_from_form(panel, pause_between_batches=False)
        assert panel.mode == "progress" and started.config.agent_command.endswith("specflow-nb-demo-agent")
        ready = await until(panel, status_is("waiting_merge"), "merge ready")
        assert panel.badge.label == "Merge ready"
        assert shown(panel.progress.merge) and panel.progress.controls.visible_buttons == ["Cancel orchestration"]
        assert "20/20 tasks (100%)" in panel.progress.batch.tasks.value
        assert "Verified: ready to merge" in panel.progress.batch.line.value
        assert ready.batches.total == 4 and "Decision log (" in panel.progress.decision_log.get_title(0)
        # skipped by smart config, and still skipped at the end
        assert 'data-step="design" data-state="skipped"' in panel.progress.phase_bar.value

        diff = await panel.view_diff()
        assert not isinstance(diff, str), diff
        assert (diff.feature_branch, diff.target_branch) == ("0001-todo-cli", "main")
        tasks_md = next(f for f in diff.files if f.path == "specs/0001-todo-cli/tasks.md")
        assert tasks_md.state == "uncommitted" and tasks_md.added == 20 and tasks_md.deleted == 20
        assert "+- [x] T001" in tasks_md.patch
        shown_diff = panel.progress.merge.diff.value
        assert 'data-path="specs/0001-todo-cli/tasks.md"' in shown_diff and "<details" in shown_diff

        panel.progress.merge.merge.click()
        done = await until(panel, status_is("completed"), "complete")
        assert panel.badge.label == "Complete" and done.completed_at is not None
        assert 'data-step="merge" data-state="done"' in panel.progress.phase_bar.value
        assert 'data-step="design" data-state="skipped"' in panel.progress.phase_bar.value
        assert 'data-state="current"' not in panel.progress.phase_bar.value
        assert shown(panel.progress.done) and panel.progress.controls.visible_buttons == []
        await asyncio.sleep(0.3)  # the finished run also refreshes the past runs
        assert panel.past_runs.count == 1

        panel.progress.done.click()
        assert panel.mode == "summary"
        await until(panel, lambda ex: ex.id == done.id, "the summary")
        assert "Latest run: Phase complete" in panel.last_run.value
        # the next Complete Phase opens with what was started here (remembered per user and project)
        panel.complete.click()
        assert panel.form.form.controls[("agent_command",)].input.value.endswith("specflow-nb-demo-agent")
        assert "last settings" in panel.form.remembered.value
        panel.form.reset_button.click()
        assert panel.form.form.controls[("agent_command",)].input.value == "claude"
        await panel.wait_preview()

    run_panel(tmp_path, scenario)


def test_pause_then_resume_after_the_current_batch(tmp_path: Path) -> None:
    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, skip_design=True, skip_analyze=True)
        await until(panel, lambda ex: ex.current_phase.value == "implement", "implement")
        await until(panel, lambda ex: ex.current_run is not None and ex.current_run.kind.value == "batch", "a batch")
        assert panel.progress.controls.visible_buttons == ["Pause", "Cancel orchestration"]
        panel.progress.controls.pause.click()
        # the click answers at once, before the server: Pausing…, disabled
        assert panel.progress.controls.pause.disabled and panel.progress.controls.pause.description == "Pausing…"
        pausing = await until(panel, lambda ex: ex.pause_requested or ex.status.value == "paused", "pausing")
        if pausing.status.value == "running":
            assert panel.badge.label == "Pausing" and "Pausing after batch" in panel.progress.batch.line.value
            assert panel.progress.controls.pause.disabled
        paused = await until(panel, status_is("paused"), "paused")
        assert panel.badge.label == "Paused" and panel.progress.controls.visible_buttons == [
            "Resume",
            "Cancel orchestration",
        ]
        assert (
            "Paused after batch" in panel.progress.batch.line.value
            and "— next: Phase" in panel.progress.batch.line.value
        )
        assert shown(panel.progress.go_back)
        # paused after a batch finished, never in the middle of one
        assert all(b.status.value in ("completed", "pending") for b in paused.batches.items)
        panel.progress.controls.resume.click()
        await until(panel, status_is("waiting_merge"), "merge ready after resume")

    slow = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.05"}
    run_panel(tmp_path, scenario, slow)


def test_cancel_asks_first_then_stops_the_run(tmp_path: Path) -> None:
    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, skip_design=True, skip_analyze=True)
        await until(panel, lambda ex: ex.current_run is not None, "a running agent")
        controls = panel.progress.controls
        controls.cancel.click()
        assert shown(controls.confirm)
        controls.confirm_no.click()
        assert not shown(controls.confirm)
        await asyncio.sleep(0.2)
        assert panel.execution is not None and panel.execution.status.value == "running"
        controls.cancel.click()
        controls.confirm_yes.click()
        cancelled = await until(panel, status_is("cancelled"), "cancelled")
        assert panel.badge.label == "Cancelled" and shown(panel.progress.done)
        assert cancelled.completed_at is not None or cancelled.status.value == "cancelled"
        # where it stopped, in words; the step it stopped in is not "to do" again
        assert "Cancelled during batch" in panel.progress.batch.line.value
        assert 'data-step="implement" data-state="stopped"' in panel.progress.phase_bar.value

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.3"})


def diagnosis_ready(ex: Any) -> bool:
    rc = ex.recovery_context
    return bool(rc is not None and rc.diagnosis is not None and rc.diagnosis.status == "ready")


def test_recovery_retry_after_a_failed_batch(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", [{"match": "Phase 2", "run": 1, "scenario": "crash"}])

    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, skip_design=True, skip_analyze=True, auto_heal_enabled=False)
        stuck = await until(panel, status_is("needs_attention"), "needs attention")
        recovery = panel.progress.recovery
        assert panel.badge.label == "Needs attention" and shown(recovery)
        assert stuck.recovery_context is not None and "Needs attention" in recovery.issue.value
        assert [o.value for o, b in recovery.buttons.items() if shown(b)] == [
            o.value for o in stuck.recovery_context.options
        ]
        # the decision helper's diagnosis lands in its own block: the crash is in the failed run's stderr.log
        await until(panel, diagnosis_ready, "the diagnosis")
        assert shown(recovery.diagnosis) and "DEMO diagnosis" in recovery.diagnosis.value
        assert "simulated crash" in recovery.diagnosis.value and "Suggested: fix first" in recovery.diagnosis.value
        recovery.buttons[next(o for o in recovery.buttons if o.value == "retry")].click()
        ready = await until(panel, status_is("waiting_merge"), "merge ready after retry")
        assert all(b.status.value == "completed" for b in ready.batches.items)

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCRIPT": str(script)})


def test_questions_are_answered_in_the_panel_and_the_run_resumes(tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", [{"match": "Phase 1", "run": 1, "scenario": "needs_input"}])

    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, skip_design=True, skip_analyze=True)
        waiting = await until(panel, lambda ex: ex.waiting_for_input, "questions")
        questions = panel.progress.questions
        assert panel.badge.label == "Waiting for input" and shown(questions)
        assert "which storage format" in texts(panel)
        assert panel.progress.controls.visible_buttons == ["Cancel orchestration"]
        key = waiting.questions[0].id
        questions.send_button.click()  # empty answer: refused in the form
        assert "Please answer" in questions.error.value
        questions._inputs[key].value = "JSON file"
        questions.send_button.click()
        await until(panel, lambda ex: not ex.waiting_for_input, "answers accepted")
        assert not shown(questions)
        ready = await until(panel, status_is("waiting_merge"), "merge ready after the answers")
        assert any("answer" in d.decision.lower() or "answer" in d.reason.lower() for d in ready.decision_log)

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCRIPT": str(script)})
