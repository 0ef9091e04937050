"""Now, transcripts and notifications in the panel, end to end on the engine in this process (real demo-agent runs):
the Now line follows each tool call, tasks tick one by one, a failed batch's transcript opens from the recovery
message, every run's transcript from the run picker, and each needs-attention / merge-ready event is announced once
however many panels follow the project."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.transcript import Transcript
from specflow_nb.widgets import notify
from specflow_nb.widgets.local import LocalBackend
from specflow_nb.widgets.panel import ProjectPanel
from tests.widgets.panel_driver import shown, start_from_form, status_is, until, write_script

pytestmark = pytest.mark.timeout(180)


def test_now_follows_tool_calls_tasks_tick_and_transcripts_open(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    script = write_script(tmp_path / "script.json", [{"match": "Phase 2", "run": 1, "scenario": "crash"}], "slow")
    env = {"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_DELAY": "0.15"}
    sent: list[notify.Notification] = []

    async def main() -> None:
        # one kernel's notifier, recording what it would hand to JupyterLab (the browser test shows the real one)
        notify._shared = notify.Notifier(send=sent.append, claims=tmp_path / "claims")
        backend = LocalBackend(project, settings=EngineSettings(agent_env=env))
        panel = ProjectPanel(backend, "", title="todo")
        second = ProjectPanel(backend, "", title="todo")  # a second panel on the same project, same kernel
        try:
            await start_from_form(panel, skip_design=True, skip_analyze=True, auto_heal_enabled=False)
            nows: list[str] = []
            tasks: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while panel.execution is None or panel.execution.status.value == "running":
                assert loop.time() < deadline, nows
                if shown(panel.progress.now) and (not nows or nows[-1] != panel.progress.now.value):
                    nows.append(panel.progress.now.value)
                if not tasks or tasks[-1] != panel.progress.batch.tasks.value:
                    tasks.append(panel.progress.batch.tasks.value)
                await asyncio.sleep(0.02)
            text = " ".join(nows)
            assert "Reading specs/0001-todo-cli/tasks.md" in text, nows
            assert "Writing .demo_agent/T001.md" in text and "Editing specs/0001-todo-cli/tasks.md" in text, nows
            assert "turn " in text and "last output" in text
            assert len(nows) >= 6, nows  # one change per tool call, not one per batch
            # tasks.md's checks arrive one at a time while batch 1 (T001-T003) runs
            counts = [t.split("/")[0].rsplit(">", 1)[-1] for t in tasks if "/20 tasks" in t]
            assert {"1", "2", "3"} <= set(counts), tasks

            stuck = await until(panel, status_is("needs_attention"), "needs attention")
            assert not shown(panel.progress.now)  # nothing runs now
            recovery = panel.progress.recovery
            assert shown(recovery.transcript_button), recovery.issue.value
            run_id = stuck.recovery_context.failed_workflow_id if stuck.recovery_context else None
            assert run_id and f".specflow/workflows/{run_id}/stderr.log" in recovery.issue.value
            recovery.transcript_button.click()
            view = panel.progress.transcript
            for _ in range(200):
                if shown(view) and view.transcript is not None:
                    break
                await asyncio.sleep(0.05)
            assert isinstance(view.transcript, Transcript) and view.transcript.run_id == run_id
            # titled by the run's name, which stays true once a retry succeeded ("the failing run" did not)
            assert "(failed)" in view.title.value and "#0" in view.title.value, view.title.value
            body = view.body.value
            assert "stderr.log" in body and "Failed" in body, body
            # the run picker lists every run so far; batch 1's transcript shows its tool calls
            options = dict(panel.progress.runs.dropdown.options)
            batch1 = next(v for k, v in options.items() if k.startswith("Batch 1"))
            t = await panel.open_transcript(batch1, "Batch 1")
            assert isinstance(t, Transcript)
            assert "Editing specs/0001-todo-cli/tasks.md" in view.body.value and "Execute only the" in view.body.value
            # one notification for needs attention, though two panels saw it
            await until(second, status_is("needs_attention"), "the second panel")
            await asyncio.sleep(0.3)
            attention = [n for n in sent if "needs attention" in n.message]
            assert len(attention) == 1 and attention[0].kind == "error" and attention[0].run_id == run_id, sent
            recovery.buttons[next(o for o in recovery.buttons if o.value == "skip")].click()
            await until(panel, status_is("waiting_merge"), "merge ready", timeout=120)
            await until(second, status_is("waiting_merge"), "merge ready (second panel)")
            await asyncio.sleep(0.3)
            assert [n.kind for n in sent if "merge ready" in n.message] == ["info"], sent
            # past runs: every run of every earlier orchestration has its transcript too
            await panel.command({"action": "cancel"})
            await panel.refresh()
            past = dict(panel.past_picker.dropdown.options)
            assert shown(panel.past_picker) and any(" · Batch 1 of 4" in label for label in past), past
            run = next(v for k, v in past.items() if " · Batch 1 of 4" in k)
            panel.past_picker.dropdown.value = run
            panel.past_picker.open_button.click()
            for _ in range(200):
                if panel.past_transcript.transcript is not None:
                    break
                await asyncio.sleep(0.05)
            assert "Writing .demo_agent/T001.md" in panel.past_transcript.body.value
        finally:
            notify._shared = None
            await panel.aclose()
            await second.aclose()
            await backend.aclose()

    asyncio.run(main())


def test_an_old_stop_seen_on_opening_is_not_announced(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from specflow_nb.models import OrchestrationStatus, RecoveryContext
    from tests.widgets.conftest import make_execution

    sent: list[notify.Notification] = []
    notifier = notify.Notifier(send=sent.append, claims=tmp_path)
    old = make_execution(
        OrchestrationStatus.NEEDS_ATTENTION,
        recovery_context=RecoveryContext(issue="Batch 2 failed."),
        updated_at=datetime.now(timezone.utc) - timedelta(hours=2),
    )
    assert notifier.observe(old, "todo") is None and not sent  # the panel shows it; no toast for yesterday's stop
    fresh = make_execution(
        OrchestrationStatus.WAITING_MERGE, id="orch-2", updated_at=datetime.now(timezone.utc), version=9
    )
    event = notifier.observe(fresh, "todo")
    assert event is not None and sent == [event] and "todo: merge ready" in event.message
    assert notifier.observe(fresh, "todo") is None and len(sent) == 1  # once
    # a second kernel (another notebook in the same browser) does not announce it again
    other: list[notify.Notification] = []
    second = notify.Notifier(send=other.append, claims=tmp_path)
    second.observe(make_execution(OrchestrationStatus.RUNNING, id="orch-2", updated_at=datetime.now(timezone.utc)))
    assert second.observe(fresh, "todo") is None and not other


def test_the_overview_card_shows_now(tmp_path: Path) -> None:
    from specflow_nb.models import OrchestrationConfig
    from specflow_nb.widgets.overview import Overview
    from tests.widgets.panel_driver import DEMO_AGENT

    root = tmp_path / "root"
    prepare_sample(root / "todo")
    env = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.2"}

    async def main() -> None:
        notify._shared = notify.Notifier(send=lambda _n: None, claims=False)
        backend = LocalBackend(root, settings=EngineSettings(agent_env=env, agent_command=DEMO_AGENT))
        overview = Overview(backend)
        try:
            await overview.refresh()
            card = overview.cards["todo"]
            assert not shown(card.now)
            config = OrchestrationConfig(skip_design=True, skip_analyze=True)
            ex = await backend.start("todo", config)
            seen: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not any("Editing specs/0001-todo-cli/tasks.md" in v for v in seen):
                assert loop.time() < deadline, seen
                if shown(card.now) and (not seen or seen[-1] != card.now.value):
                    seen.append(card.now.value)
                await asyncio.sleep(0.02)
            assert any("Reading specs/0001-todo-cli/tasks.md" in v for v in seen), seen
            await backend.command("todo", {"action": "cancel"}, ex.id)
            for _ in range(200):
                if not shown(card.now):
                    break
                await asyncio.sleep(0.05)
            assert not shown(card.now)  # cancelled: nothing runs now
        finally:
            notify._shared = None
            overview.close()
            await backend.aclose()

    asyncio.run(main())
