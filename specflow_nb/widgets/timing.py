"""Elapsed and estimated remaining time of an orchestration."""

from __future__ import annotations

from datetime import datetime, timedelta

from specflow_nb.models import OrchestrationExecution, OrchestrationPhase, utcnow


def elapsed(execution: OrchestrationExecution, now: datetime | None = None) -> timedelta:
    end = execution.completed_at or (None if execution.status.is_active else execution.updated_at)
    return (end or now or utcnow()) - execution.started_at


def remaining(execution: OrchestrationExecution, now: datetime | None = None) -> timedelta | None:
    """The average finished batch's duration times the batches left (plus the running one's expected rest).

    ``None`` while nothing has finished yet (no honest estimate) and once the orchestration is over.
    """
    if not execution.status.is_active or execution.current_phase not in (
        OrchestrationPhase.DESIGN,
        OrchestrationPhase.ANALYZE,
        OrchestrationPhase.IMPLEMENT,
    ):
        return None
    finished = [
        item.completed_at - item.started_at
        for item in execution.batches.items
        if item.status.is_done and item.started_at and item.completed_at
    ]
    if not finished:
        return None
    average = sum(finished, timedelta()) / len(finished)
    left = [item for item in execution.batches.items if not item.status.is_done]
    estimate = average * len(left)
    running = next((item for item in left if item.started_at is not None and item.completed_at is None), None)
    if running is not None and running.started_at is not None:
        estimate -= min(average, (now or utcnow()) - running.started_at)
    return max(estimate, timedelta())
