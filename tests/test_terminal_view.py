"""The terminal view: the project's name in the title, time, a width that never changes, clean wrapping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rich.console import Console

from specflow_nb.cli_orchestrate import MAX_VIEW_WIDTH, live_footer, render
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    BatchTracking,
    CurrentRun,
    DecisionLogEntry,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    RunKind,
)

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
LONG_WARNING = (
    "The project is on main, the merge target: the merge step will have nothing to merge. "
    "Check out the phase branch 0001-todo-cli before completing the phase; otherwise verification-incomplete."
)


def _execution(status: OrchestrationStatus, reason: str = "short") -> OrchestrationExecution:
    items = [
        BatchItem(
            index=i,
            section=f"Phase {i + 1}: Section",
            task_ids=[f"T00{i}"],
            status=BatchStatus.COMPLETED if i == 0 else BatchStatus.RUNNING if i == 1 else BatchStatus.PENDING,
            started_at=T + timedelta(minutes=5 * i) if i < 2 else None,
            completed_at=T + timedelta(minutes=5) if i == 0 else None,
        )
        for i in range(4)
    ]
    ex = OrchestrationExecution(
        id="o1",
        project_id="team/todo",
        status=status,
        current_phase=OrchestrationPhase.IMPLEMENT,
        batches=BatchTracking(total=4, current=1, items=items),
        started_at=T,
        updated_at=T,
        decision_log=[
            DecisionLogEntry(timestamp=T, decision="start", reason="Orchestration started"),
            DecisionLogEntry(timestamp=T, decision="next_batch", reason=reason),
        ],
    )
    if status is OrchestrationStatus.RUNNING:
        ex.current_run = CurrentRun(
            execution_id="o1-003-batch2",
            kind=RunKind.BATCH,
            step=OrchestrationPhase.IMPLEMENT,
            batch_index=1,
            started_at=T + timedelta(minutes=5),
        )
    return ex


def _lines(ex: OrchestrationExecution, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    console.print(render(ex, width=width, footer=live_footer(ex), now=T + timedelta(minutes=7)))
    return console.export_text().rstrip("\n").split("\n")


@pytest.mark.parametrize("width", [80, 120])
def test_the_box_keeps_its_width_whatever_it_shows(width: int) -> None:
    want = min(width, MAX_VIEW_WIDTH)
    views = [
        _execution(OrchestrationStatus.RUNNING),
        _execution(OrchestrationStatus.RUNNING, LONG_WARNING),
        _execution(OrchestrationStatus.PAUSED),
        _execution(OrchestrationStatus.WAITING_MERGE, LONG_WARNING * 2),
    ]
    for ex in views:
        lines = _lines(ex, width)
        assert {len(line) for line in lines} == {want}, (ex.status, [len(line) for line in lines])


def test_title_time_words_and_the_way_out() -> None:
    text = "\n".join(_lines(_execution(OrchestrationStatus.RUNNING), 80))
    assert "specflow_nb · todo" in text.split("\n")[0]  # the project's name, not "."
    assert "Implementing batch 2 of 4: Phase 2: Section" in text
    assert "Elapsed 7m 00s · Remaining ~13m 00s" in text
    assert (
        "Ctrl+C leaves this view; the run goes on. Next: specflow-nb orchestrate" in text and "pause · cancel" in text
    )
    assert "Batch started" in text and "next_batch" not in text  # the log in words


def test_wrapping_at_80_columns_never_cuts_a_word() -> None:
    lines = _lines(_execution(OrchestrationStatus.RUNNING, LONG_WARNING), 80)
    inner = " ".join(line.strip("│╭╮╰╯─ ").strip() for line in lines)
    for word in LONG_WARNING.split():
        assert word in inner, word
