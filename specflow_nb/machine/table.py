"""Legality: which event may arrive in which status (``LEGAL_STATUSES``, the transition table), the error an illegal one
raises, and the views hosts render from it (``allowed_commands``, ``go_back_targets``, the status sets).

The handlers' guards refine the table; the table is the one place a host learns what it may offer now.
"""

from __future__ import annotations

from specflow_nb.errors import OrchestrationConflict
from specflow_nb.machine.events import Event, UserCommand
from specflow_nb.models import (
    ACTIVE_STATUSES,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
)

S = OrchestrationStatus
P = OrchestrationPhase


_ACTIVE = frozenset(ACTIVE_STATUSES)


LEGAL_STATUSES: dict[str, frozenset[OrchestrationStatus]] = {
    "started": frozenset({S.RUNNING}),
    "run_finished": frozenset({S.RUNNING}),  # any status for a run the machine killed
    "project_read": frozenset({S.RUNNING}),
    "run_stalled": frozenset({S.RUNNING}),
    "host_restarted": _ACTIVE,
    "pause": frozenset({S.RUNNING}),
    "resume": frozenset({S.PAUSED, S.RUNNING}),  # running: only to withdraw a pause request
    "cancel": _ACTIVE,
    "merge": frozenset({S.WAITING_MERGE}),
    "recover": frozenset({S.NEEDS_ATTENTION}),
    "go_back": _ACTIVE,
    "answer": frozenset({S.PAUSED}),  # only while waiting for input
    "diagnosis_finished": frozenset(S),
    "state_rebuilt": frozenset(
        {S.RUNNING}
    ),  # the first event of a fresh execution (guard: version 0)  # a pending helper's cost is counted whatever happened meanwhile
}


class IllegalTransition(OrchestrationConflict):
    """An event that the current state does not allow (HTTP 409)."""

    def __init__(self, execution: OrchestrationExecution, event_name: str, why: str = "") -> None:
        allowed = sorted(s.value for s in LEGAL_STATUSES.get(event_name, frozenset()))
        where = _describe(execution)
        msg = f"Cannot {event_name} while the orchestration is {where}"
        msg += f": {why}." if why else "."
        super().__init__(
            msg,
            hint=f"{event_name} is allowed when the orchestration is {' or '.join(allowed) or 'never'}.",
            details={"status": execution.status.value, "event": event_name, "allowedStatuses": allowed},
        )
        self.event_name = event_name
        self.status = execution.status


def _describe(ex: OrchestrationExecution) -> str:
    if ex.status is S.PAUSED and ex.waiting_for_input:
        return "paused waiting for input"
    if ex.status.is_active:
        return f"{ex.status.value} (step {ex.current_phase.value})"
    return ex.status.value


def event_name(event: Event) -> str:
    return event.command.action if isinstance(event, UserCommand) else event.kind


def allowed_commands(execution: OrchestrationExecution) -> list[str]:
    """The command actions a host may offer now (a cheap view of the table plus the guards)."""
    st, out = execution.status, []
    for name in ("pause", "resume", "cancel", "merge", "recover", "go_back", "answer"):
        if st not in LEGAL_STATUSES[name]:
            continue
        if name == "pause" and execution.pause_requested:
            continue
        if name == "resume" and (
            (st is S.RUNNING and not execution.pause_requested) or (st is S.PAUSED and execution.waiting_for_input)
        ):
            continue
        if name == "answer" and not execution.waiting_for_input:
            continue
        out.append(name)
    return out
