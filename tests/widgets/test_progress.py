"""The progress view: each status renders its badge and panels; controls issue the right commands."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from specflow_nb.models import (
    BatchStatus,
    BudgetConfig,
    CurrentRun,
    OrchestrationConfig,
    OrchestrationPhase,
    OrchestrationStatus,
    RecoveryContext,
    RecoveryOption,
    RunKind,
    StepState,
)
from specflow_nb.server.api import DiffFile, DiffResponse
from specflow_nb.widgets.badge import badge_label, card_label
from specflow_nb.widgets.phase_bar import phase_bar_text
from specflow_nb.widgets.progress import OrchestrationProgress
from tests.support.wire import wire
from tests.widgets.conftest import T0, log_entry, make_execution

S = OrchestrationStatus
P = OrchestrationPhase


def _shown(widget: Any) -> bool:
    return widget.layout.display != "none"


def _progress() -> tuple[OrchestrationProgress, list[dict[str, Any]], list[str]]:
    commands: list[dict[str, Any]] = []
    events: list[str] = []
    view = OrchestrationProgress(
        on_command=wire(commands), on_view_diff=lambda: events.append("diff"), on_done=lambda: events.append("done")
    )
    return view, commands, events


# status, phase, extra fields → badge, visible control buttons, which panels are shown
CASES = [
    (S.RUNNING, P.IMPLEMENT, {}, "Running", ["Pause", "Cancel orchestration"], set()),
    (S.PAUSED, P.IMPLEMENT, {}, "Paused", ["Resume", "Cancel orchestration"], {"go_back"}),
    (S.WAITING_MERGE, P.MERGE, {}, "Merge ready", ["Cancel orchestration"], {"merge", "go_back"}),
    (
        S.NEEDS_ATTENTION,
        P.IMPLEMENT,
        {"recovery_context": RecoveryContext(issue="Batch 2 failed: 3 tasks left")},
        "Needs attention",
        ["Cancel orchestration"],
        {"recovery", "go_back"},
    ),
    (S.COMPLETED, P.COMPLETE, {"completed_at": T0 + timedelta(hours=1)}, "Complete", [], {"done"}),
    (S.FAILED, P.VERIFY, {"error_message": "verify failed"}, "Failed", [], {"done"}),
    (S.CANCELLED, P.IMPLEMENT, {}, "Cancelled", [], {"done"}),
]


@pytest.mark.parametrize(("status", "phase", "extra", "badge", "buttons", "panels"), CASES)
def test_each_status_renders_its_badge_and_panels(
    status: S, phase: P, extra: dict[str, Any], badge: str, buttons: list[str], panels: set[str]
) -> None:
    view, _, _ = _progress()
    view.render(make_execution(status, phase, **extra), now=T0 + timedelta(minutes=20))
    assert view.badge.label == badge
    assert badge in view.badge.value
    assert view.controls.visible_buttons == buttons
    shown = {
        name
        for name, widget in {
            "merge": view.merge,
            "recovery": view.recovery,
            "questions": view.questions,
            "go_back": view.go_back,
            "done": view.done,
        }.items()
        if _shown(widget)
    }
    assert shown == panels


def test_healing_badge() -> None:
    statuses = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.PENDING, BatchStatus.PENDING)
    ex = make_execution(batch_statuses=statuses)
    ex.batches.items[1].heal_attempts = 1
    ex.current_run = CurrentRun(
        execution_id="heal-1", kind=RunKind.HEALER, step=P.IMPLEMENT, batch_index=1, started_at=T0
    )
    assert badge_label(ex) == "Healing"
    ex.status = S.NEEDS_ATTENTION
    assert badge_label(ex) == "Needs attention"


def test_batch_line_and_task_counts() -> None:
    view, _, _ = _progress()
    ex = make_execution()
    view.render(ex, now=T0 + timedelta(minutes=15))
    assert "Implementing batch 2 of 4: Core Components" in view.batch.line.value
    assert "3/35 tasks (9%)" in view.batch.tasks.value
    ex.batches.items[1].status = BatchStatus.HEALED  # healed counts as done
    view.render(ex)
    assert "12/35 tasks (34%)" in view.batch.tasks.value
    assert view.batch.bar.value == pytest.approx(12 / 35)


def test_phase_bar() -> None:
    steps = {P.DESIGN: StepState.COMPLETED, P.ANALYZE: StepState.SKIPPED, P.IMPLEMENT: StepState.RUNNING}
    ex = make_execution(config=OrchestrationConfig(skip_analyze=True), step_status=steps)
    assert phase_bar_text(ex) == "Design ─⊘─ Analyze ─◉─ Implement ─○─ Verify ─○─ Merge"
    finished = {**steps, P.IMPLEMENT: StepState.COMPLETED, P.VERIFY: StepState.COMPLETED}
    done = make_execution(S.COMPLETED, P.COMPLETE, step_status=finished)
    # skipped stays skipped once the phase is complete
    assert phase_bar_text(done) == "Design ─⊘─ Analyze ─●─ Implement ─●─ Verify ─●─ Merge"


def test_elapsed_and_remaining_time() -> None:
    view, _, _ = _progress()
    # batch 1 took 10 min; batch 2 started at +10 and it is now +15: 5 min left of it, plus 2 batches of 10
    view.render(make_execution(), now=T0 + timedelta(minutes=15))
    assert "Elapsed 15m 00s" in view.time.value
    assert "Remaining ~25m 00s" in view.time.value
    first = make_execution(batch_statuses=(BatchStatus.RUNNING,) * 1 + (BatchStatus.PENDING,) * 3, current=0)
    view.render(first, now=T0 + timedelta(minutes=1))
    assert "estimating" in view.time.value


def test_cost_against_each_budget() -> None:
    view, _, _ = _progress()
    ex = make_execution(total_cost_usd=12.5, config=OrchestrationConfig(budget=BudgetConfig(max_total=20.0)))
    ex.batches.items[1].cost_usd = 5.0
    view.render(ex)
    html = view.cost.value
    assert "$12.50 of $20.00" in html
    # a reached limit says so with more than a colour
    assert "Batch 2" in html and '<td class="sf-num sf-over"><span class="sf-nowrap">$5.00 of $5.00</span>' in html
    assert "▲ limit reached" in html  # said in words, not only by a colour
    assert "$0.00 of $2.00" in html and "limit $0.50" in html
    assert "#" not in html  # every colour comes from the theme's stylesheet


def test_controls_issue_commands_and_cancel_asks_first() -> None:
    view, commands, _ = _progress()
    view.render(make_execution())
    view.controls.pause.click()
    assert view.controls.pause.disabled and view.controls.pause.description == "Pausing…"  # at once
    view.controls.cancel.click()
    assert commands == [{"action": "pause"}]
    assert _shown(view.controls.confirm)
    view.controls.confirm_no.click()
    assert not _shown(view.controls.confirm) and commands == [{"action": "pause"}]
    view.controls.cancel.click()
    view.controls.confirm_yes.click()
    assert commands == [{"action": "pause"}, {"action": "cancel"}]
    view.render(make_execution(S.PAUSED))
    view.controls.resume.click()
    assert commands[-1] == {"action": "resume"}


def test_cancel_says_what_it_stops() -> None:
    """The button cancels the orchestration, whatever is running; its confirmation says whether an agent is
    stopped now (a run in flight) or nothing is (paused, needs attention, ready to merge)."""
    view, commands, _ = _progress()
    running = make_execution()
    running.current_run = CurrentRun(
        execution_id="run-2", kind=RunKind.BATCH, step=P.IMPLEMENT, batch_index=1, started_at=T0
    )
    view.render(running)
    view.controls.cancel.click()
    assert view.controls.cancel.description == "Cancel orchestration"
    assert "The running agent is stopped now" in view.controls.confirm_text.value
    view.render(make_execution(S.PAUSED))
    assert "no resuming it" in view.controls.confirm_text.value and "agent" not in view.controls.confirm_text.value
    view.controls.confirm_yes.click()
    assert commands == [{"action": "cancel"}]


def test_merge_ready_panel() -> None:
    view, commands, events = _progress()
    view.render(make_execution(S.WAITING_MERGE, P.MERGE, config=OrchestrationConfig(target_branch="main")))
    assert "Merge ready" in view.merge.message.value and "main" in view.merge.message.value
    view.merge.merge.click()
    view.merge.view_diff.click()
    assert commands == [{"action": "merge"}] and events == ["diff"]
    view.merge.show_diff("No diff: <none>")
    assert "&lt;none&gt;" in view.merge.diff.value
    diff = DiffResponse(
        feature_branch="f",
        target_branch="main",
        files=[
            DiffFile(path="a.py", added=2, deleted=1, patch="diff --git a/a.py b/a.py\n@@ -1 +1,2 @@\n-x\n+<y>\n+z\n")
        ],
    )
    view.merge.show_diff(diff)
    html = view.merge.diff.value
    assert 'data-path="a.py"' in html and '<span class="sf-plus">2</span>' in html and "&lt;y&gt;" in html
    assert '<span class="sf-add">+&lt;y&gt;</span>' in html and '<span class="sf-del">-x</span>' in html


def test_recovery_panel_shows_issue_and_offered_options() -> None:
    view, commands, _ = _progress()
    context = RecoveryContext(issue="Batch <2> failed", options=[RecoveryOption.RETRY, RecoveryOption.ABORT])
    view.render(make_execution(S.NEEDS_ATTENTION, recovery_context=context))
    assert "Batch &lt;2&gt; failed" in view.recovery.issue.value
    assert _shown(view.recovery.buttons[RecoveryOption.RETRY])
    assert not _shown(view.recovery.buttons[RecoveryOption.SKIP])
    for button in view.recovery.buttons.values():
        button.click()
    assert commands == [{"action": "recover", "option": o} for o in ("retry", "skip", "abort")]


def test_go_back_offers_earlier_steps() -> None:
    view, commands, _ = _progress()
    view.render(make_execution(S.PAUSED, P.VERIFY))
    assert [v for _, v in view.go_back.step.options] == ["design", "analyze", "implement", "verify"]
    assert view.go_back.step.value == "implement"  # the step before the current one, not the current one
    view.go_back.step.value = "design"
    view.go_back.go.click()
    assert commands == [{"action": "go_back", "step": "design"}]


def test_decision_log_is_collapsible_newest_first_and_escaped() -> None:
    view, _, _ = _progress()
    log = [log_entry("start", "Smart config: skip design", 0), log_entry("heal", "<img src=x onerror=alert(1)>", 5)]
    log.append(log_entry("killed_run_ended", "killed run orch-1-004-heal2 ended; its cost $0.10 is counted", 6))
    log[-1] = log[-1].model_copy(update={"data": {"runId": "orch-1-004-heal2", "costUsd": 0.1}})  # entries are frozen
    view.render(make_execution(decision_log=log))
    assert view.decision_log.selected_index is None
    assert view.decision_log.get_title(0) == "Decision log (3)"
    body = view.decision_log.body.value
    assert "<img" not in body and "&lt;img" in body
    assert body.index("&lt;img") < body.index("Smart config")
    # words a person reads in the summary; the machine's names and ids in the detail row
    summary_row = body.split("<summary>")[1].split("</summary>")[0]
    assert "Stopped run ended" in summary_row and "The healer of batch 2 ended after it was stopped" in summary_row
    assert "killed_run_ended" not in summary_row and "orch-1-004" not in summary_row
    assert "<dd>orch-1-004-heal2</dd>" in body and "<dd>killed_run_ended</dd>" in body


def test_done_returns_to_summary() -> None:
    view, _, events = _progress()
    view.render(make_execution(S.COMPLETED, P.COMPLETE))
    view.done.click()
    assert events == ["done"]


def test_card_labels() -> None:
    assert card_label(make_execution()) == "Completing phase (batch 2/4)"
    assert card_label(make_execution(phase=P.DESIGN)) == "Completing phase (design)"
    assert card_label(make_execution(S.WAITING_MERGE, P.MERGE)) == "Waiting for merge"
    assert card_label(None) == "No orchestration yet"
