"""Time in words: how long an orchestration has run, and how long it may still take (from its finished batches).

Apart from :mod:`specflow_nb.summary` (what is happening) because time moves while the record does not: hosts redraw
these on a clock. Pure functions of an ``OrchestrationExecution`` and ``now``; no I/O.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from specflow_nb.models import OrchestrationExecution, OrchestrationPhase, OrchestrationStatus, utcnow

P = OrchestrationPhase


def fmt_duration(delta: timedelta | None) -> str:
    """``1h 02m``, ``4m 10s``, ``12s``; ``—`` when unknown."""
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def elapsed(ex: OrchestrationExecution, now: datetime | None = None) -> timedelta:
    end = ex.completed_at or (None if ex.status.is_active else ex.updated_at)
    return (end or now or utcnow()) - ex.started_at


_ESTIMATED = (P.DESIGN, P.ANALYZE, P.IMPLEMENT)


def remaining(ex: OrchestrationExecution, now: datetime | None = None) -> timedelta | None:
    """The average finished batch's duration times the batches left (minus the running one's time so far).

    ``None`` while nothing has finished yet (no honest estimate) and once the orchestration is over.
    """
    if not ex.status.is_active or ex.current_phase not in _ESTIMATED:
        return None
    finished = [
        item.completed_at - item.started_at
        for item in ex.batches.items
        if item.status.is_done and item.started_at and item.completed_at
    ]
    if not finished:
        return None
    average = sum(finished, timedelta()) / len(finished)
    left = [item for item in ex.batches.items if not item.status.is_done]
    estimate = average * len(left)
    running = next((item for item in left if item.started_at is not None and item.completed_at is None), None)
    if running is not None and running.started_at is not None:
        estimate -= min(average, (now or utcnow()) - running.started_at)
    return max(estimate, timedelta())


def time_text(ex: OrchestrationExecution, now: datetime | None = None) -> str:
    """ "Elapsed 4m 10s · Remaining ~3m 00s" (remaining only while batch times can predict it)."""
    text = f"Elapsed {fmt_duration(elapsed(ex, now))}"
    if ex.status is OrchestrationStatus.RUNNING and ex.current_phase in _ESTIMATED:
        left = remaining(ex, now)
        text += f" · Remaining {'~' + fmt_duration(left) if left is not None else 'estimating…'}"
    return text
