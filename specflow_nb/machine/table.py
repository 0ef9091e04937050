"""Legality: which event may arrive in which status (``LEGAL_STATUSES``, the transition table), the error an illegal one
raises, and the views hosts render from it (``allowed_commands``, ``go_back_targets``, the status sets).

The handlers' guards refine the table; the table is the one place a host learns what it may offer now.
"""

from __future__ import annotations

from specflow_nb.errors import OrchestrationConflict
from specflow_nb.machine.events import Event, UserCommand
from specflow_nb.models import (
    ACTIVE_STATUSES,
    STEP_ORDER,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
)

S = OrchestrationStatus
P = OrchestrationPhase


_ACTIVE = frozenset(ACTIVE_STATUSES)
#: Over for good: no command applies any more (only a pending diagnosis helper's end is still counted).
TERMINAL_STATUSES: frozenset[OrchestrationStatus] = frozenset(S) - _ACTIVE
#: Nothing more happens until a person acts (or never again): every status but running. Watchers stop here.
SETTLED_STATUSES: frozenset[OrchestrationStatus] = frozenset(S) - {S.RUNNING}
#: Where hosts offer going back: a stop a person is looking at. (The command is legal in every active status, e.g.
#: from a terminal, but going back kills the live run, so a panel offers it only when nothing runs.)
GO_BACK_OFFERED: frozenset[OrchestrationStatus] = frozenset({S.PAUSED, S.NEEDS_ATTENTION, S.WAITING_MERGE})


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
    # a pending helper's cost is counted whatever happened meanwhile
    "diagnosis_finished": frozenset(S),
    # the first event of a fresh execution rebuilt from the disk (guard: version 0)
    "state_rebuilt": frozenset({S.RUNNING}),
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


def go_back_targets(execution: OrchestrationExecution) -> list[OrchestrationPhase]:
    """The steps a host offers to go back to now, in step order: every step up to the current one (re-running the
    current step included; after the phase completed, every step), and none outside ``GO_BACK_OFFERED``. Each is
    accepted by ``go_back`` (a later step is refused)."""
    if execution.status not in GO_BACK_OFFERED:
        return []
    if execution.current_phase is P.COMPLETE:
        return list(STEP_ORDER)
    return list(STEP_ORDER[: STEP_ORDER.index(execution.current_phase) + 1])
