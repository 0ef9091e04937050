"""The panel end to end on the engine inside this process (LocalBackend), driven through its own buttons.

Real Orchestrator, real demo-agent subprocesses, real git: only the person is simulated (clicks, typed answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.widgets.local import LocalBackend
from specflow_nb.widgets.panel import ProjectPanel
from tests.widgets.panel_driver import shown, start_from_form, status_is, texts, until, write_script

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
        # the default agent command ('claude') is not installed here: the preflight blocks Start
        assert panel.form.plan_line.value == "<b>Detected 4 batches from tasks.md (20 tasks)</b>"
        assert panel.form.start.disabled and "agent command" in panel.form.notes.value
        panel.form.cancel.click()
        assert panel.mode == "summary"

        started = await start_from_form(panel)
        assert panel.mode == "progress" and started.config.agent_command.endswith("specflow-nb-demo-agent")
        ready = await until(panel, status_is("waiting_merge"), "merge ready")
        assert panel.badge.label == "Merge ready" and panel.progress.badge.label == "Merge ready"
        assert shown(panel.progress.merge) and panel.progress.controls.visible_buttons == ["Cancel"]
        assert panel.progress.batch.tasks.value == "20/20 tasks (100%)"
        assert "Verified: ready to merge" in panel.progress.batch.line.value
        assert ready.batches.total == 4 and "Decision log (" in panel.progress.decision_log.get_title(0)

        diff = await panel.view_diff()
        assert "No commits on 0001-todo-cli since main." in diff
        assert "Not committed yet" in diff and "specs/0001-todo-cli/tasks.md" in diff
        assert "tasks.md" in panel.progress.merge.diff.value

        panel.progress.merge.merge.click()
        done = await until(panel, status_is("completed"), "complete")
        assert panel.badge.label == "Complete" and done.completed_at is not None
        assert 'data-state="done"' in panel.progress.phase_bar.value and "current" not in panel.progress.phase_bar.value
        assert shown(panel.progress.done) and panel.progress.controls.visible_buttons == []
        await asyncio.sleep(0.3)  # the finished run also refreshes the past runs
        assert panel.past_runs.count == 1

        panel.progress.done.click()
        assert panel.mode == "summary"
        await until(panel, lambda ex: ex.id == done.id, "the summary")
        assert "Latest: Complete" in panel.last_run.value

    run_panel(tmp_path, scenario)


def test_pause_then_resume_after_the_current_batch(tmp_path: Path) -> None:
    async def scenario(panel: ProjectPanel, project: Path) -> None:
        await start_from_form(panel, skip_design=True, skip_analyze=True)
        await until(panel, lambda ex: ex.current_phase.value == "implement", "implement")
        assert panel.progress.controls.visible_buttons == ["Pause", "Cancel"]
        panel.progress.controls.pause.click()
        paused = await until(panel, status_is("paused"), "paused")
        assert panel.badge.label == "Paused" and panel.progress.controls.visible_buttons == ["Resume", "Cancel"]
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

    run_panel(tmp_path, scenario, {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.3"})


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
        assert panel.progress.controls.visible_buttons == ["Cancel"]
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
