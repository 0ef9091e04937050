"""One transition in progress (``Tx``: the copy being changed, the decisions logged and the actions emitted) and the
small reads every rule module shares (a batch by index, the unchecked tasks, a run's label, an outcome's error).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from specflow_nb.machine.actions import Action
from specflow_nb.machine.decisions import Decision
from specflow_nb.machine.events import ProjectSnapshot
from specflow_nb.machine.table import IllegalTransition
from specflow_nb.models import (
    BatchItem,
    CurrentRun,
    DecisionLogEntry,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    RunKind,
    RunOutcome,
)
from specflow_nb.taskids import describe as describe_ids

P = OrchestrationPhase


class Tx:
    """One transition in progress: the copy being changed and the effects collected so far."""

    def __init__(
        self,
        ex: OrchestrationExecution,
        at: datetime,
        name: str,
        actor: str | None = None,
        command_id: str | None = None,
    ) -> None:
        self.ex, self.at, self.name, self.actor, self.command_id = ex, at, name, actor, command_id
        self.effects: list[Action] = []
        self.changed = True

    def log(self, decision: Decision, reason: str, **data: Any) -> None:
        if self.actor:  # who asked (a user command on a shared project): every entry it causes names them
            data["actor"] = self.actor
        if self.command_id:  # a command that travelled to the owner: its id, as the sender knows it
            data["commandId"] = self.command_id
        self.ex.decision_log.append(
            DecisionLogEntry(timestamp=self.at, decision=decision.value, reason=reason, data=data or None)
        )

    def emit(self, action: Action) -> None:
        self.effects.append(action)

    def illegal(self, why: str) -> IllegalTransition:
        return IllegalTransition(self.ex, self.name, why)


def batch_at(ex: OrchestrationExecution, index: int | None) -> BatchItem:
    if index is None or not 0 <= index < len(ex.batches.items):
        raise AssertionError(f"no batch {index} in execution {ex.id}")
    return ex.batches.items[index]


def unchecked(task_ids: list[str], snap: ProjectSnapshot) -> list[str]:
    done = set(snap.done_task_ids)
    return [t for t in task_ids if t not in done]


def run_label(ex: OrchestrationExecution, run: CurrentRun) -> str:
    if run.kind is RunKind.BATCH:
        return f"batch {(run.batch_index or 0) + 1} of {ex.batches.total}"
    if run.kind is RunKind.HEALER:
        return f"the healer of batch {(run.batch_index or 0) + 1}"
    return f"the {run.step.value} step"


def outcome_error(out: RunOutcome) -> str:
    kind = out.failure or ("is_error" if out.is_error else "bad exit" if not out.exit_ok else "ok")
    return f"{kind}: {out.message}" if out.message else kind


def failure_text(out: RunOutcome | None, run: CurrentRun, remaining: list[str]) -> str:
    if out is None:
        return "the run was lost"
    if not out.ok:
        text = "stalled and was killed" if run.kill_reason == "stalled" else outcome_error(out)
        return f"the run failed ({text})"
    return f"the run ended but tasks.md still shows {describe_ids(remaining)} unchecked"


def config_skips(cfg: OrchestrationConfig, s: P) -> bool:
    return {
        P.DESIGN: cfg.skip_design,
        P.ANALYZE: cfg.skip_analyze,
        P.IMPLEMENT: cfg.skip_implement,
        P.VERIFY: cfg.skip_verify,
    }.get(s, False)
