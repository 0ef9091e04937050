"""The recovery panel's Diagnosis block (issue 15.5), and the same words in the terminal and the summary."""

from __future__ import annotations

from typing import Any

from specflow_nb import summary
from specflow_nb.cli_orchestrate import next_step_hint, render
from specflow_nb.models import (
    Diagnosis,
    OrchestrationStatus,
    RecoveryContext,
    RecoveryOption,
)
from specflow_nb.widgets.recovery import RecoveryPanel
from tests.widgets.conftest import make_execution

S = OrchestrationStatus


def _shown(widget: Any) -> bool:
    return widget.layout.display != "none"


def attention(diagnosis: Diagnosis | None, status: S = S.NEEDS_ATTENTION, **extra: Any) -> Any:
    context = RecoveryContext(
        issue="Batch 2 of 4 failed: T004 left",
        options=[RecoveryOption.RETRY, RecoveryOption.SKIP, RecoveryOption.ABORT],
        failed_workflow_id="orch-1-003-batch2",
        seq=1,
        diagnosis=diagnosis,
    )
    return make_execution(status, recovery_context=context, **extra)


def panel(ex: Any) -> RecoveryPanel:
    view = RecoveryPanel(on_command=lambda _c: None)
    view.render(ex)
    return view


def test_no_diagnosis_no_block() -> None:
    view = panel(attention(None))
    assert not _shown(view.diagnosis) and view.diagnosis.value == ""
    assert summary.diagnosis_view(attention(None)) is None


def test_a_pending_diagnosis_says_it_is_being_written_and_that_nobody_must_wait() -> None:
    view = panel(attention(Diagnosis(run_id="orch-1-004-diagnose")))
    assert _shown(view.diagnosis)
    assert "Diagnosing…" in view.diagnosis.value and "need not wait" in view.diagnosis.value
    assert 'data-status="pending"' in view.diagnosis.value
    assert all(_shown(b) for b in view.buttons.values())  # the choice is open meanwhile


def test_a_ready_diagnosis_shows_its_text_suggestion_model_and_cost_escaped() -> None:
    d = Diagnosis(
        run_id="orch-1-004-diagnose",
        status="ready",
        text="The <test> database was down.",
        suggestion="fix",
        fix="Start it & retry.",
        cost_usd=0.034,
        model="haiku",
    )
    ex = attention(d)
    html = panel(ex).diagnosis.value
    assert "Diagnosis (haiku) · $0.03" in html and "The &lt;test&gt; database was down." in html
    assert "Suggested: fix first — Start it &amp; retry." in html and "sf-tone-success" in html
    # the terminal: `orchestrate status` / `recover` print the same words under the issue
    hint = next_step_hint(ex, local=True)
    assert "Diagnosis (haiku) · $0.03: The <test> database was down." in hint
    assert "Suggested: fix first — Start it & retry." in hint
    assert hint.index("Needs attention") < hint.index("Diagnosis") < hint.index("Choose:")


def test_a_suggested_option_is_named_as_its_button() -> None:
    d = Diagnosis(run_id="r", status="ready", text="Stopped half-way.", suggestion="retry", cost_usd=0.01)
    assert summary.diagnosis_lines(attention(d)) == ["Diagnosis · $0.01: Stopped half-way.", "Suggested: Retry"]


def test_a_failed_diagnosis_says_why() -> None:
    d = Diagnosis(run_id="r", status="failed", error="timeout: no answer in 600 s", cost_usd=0.2)
    html = panel(attention(d)).diagnosis.value
    assert "No diagnosis · $0.20" in html and "timeout: no answer in 600 s" in html and "sf-tone-warn" in html


def test_the_block_hides_once_the_person_chose() -> None:
    d = Diagnosis(run_id="r", status="ready", text="x", suggestion="retry")
    view = panel(attention(d))
    view.render(attention(d, status=S.RUNNING))
    assert summary.diagnosis_view(attention(d, status=S.RUNNING)) is None


def test_the_cost_line_counts_the_diagnosis() -> None:
    from rich.console import Console

    ex = attention(None, decision_cost_usd=0.07, total_cost_usd=1.07)
    console = Console(width=100, record=True)
    console.print(render(ex, width=100))
    shown = console.export_text()
    assert "Cost $1.07 of $50.00 total" in shown and "diagnosis $0.07" in shown


def test_decision_log_words() -> None:
    assert summary.decision_title("diagnosis") == "Diagnosis"
    ex = attention(None)
    assert summary.run_label(ex, f"{ex.id}-004-diagnose") == "Diagnosis helper · #004"
