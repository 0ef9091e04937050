"""Healing rules (MISSION §6): when a failed batch gets a healer, what a healer may spend, and when it healed.

A failure of the agent's environment is never healed; healed = the healer said ``fixed`` AND tasks.md confirms
every task of the batch. ``specflow_nb.healing`` keeps only the I/O side (collecting the failure context).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from specflow_nb.machine.decisions import UNHEALABLE_FAILURES, Decision
from specflow_nb.machine.events import ProjectSnapshot
from specflow_nb.machine.forward import batch_done
from specflow_nb.machine.outputs import heal_output
from specflow_nb.machine.spawning import spawn_healer
from specflow_nb.machine.stopping import needs_attention
from specflow_nb.machine.tx import Tx, batch_at, failure_text, unchecked
from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    CurrentRun,
)
from specflow_nb.taskids import compact as compact_ids
from specflow_nb.taskids import describe as describe_ids

if TYPE_CHECKING:
    from specflow_nb.agent.prompts import HealOutput


class SettledTasks(Protocol):
    """Tasks as re-read from disk: a :class:`ProjectSnapshot` or :class:`specflow_nb.tasks.ParsedTasks`."""

    @property
    def settled_ids(self) -> list[str]: ...


def heal_confirmed(output: HealOutput | None, tasks_after: SettledTasks, batch: BatchItem) -> bool:
    """Healed = the healer said ``fixed`` AND tasks.md, re-read, shows every task of the batch settled (a task
    missing from tasks.md is not done; a batch without tasks is never healed)."""
    if output is None or output.status != "fixed" or not batch.task_ids:
        return False
    settled = set(tasks_after.settled_ids)
    return all(t in settled for t in batch.task_ids)


def heal_or_attention(
    tx: Tx, b: BatchItem, failed: CurrentRun, remaining: list[str], error: str, snap: ProjectSnapshot
) -> None:
    ex, cfg = tx.ex, tx.ex.config
    context = (
        f"Batch {b.index + 1} of {ex.batches.total} ({b.section}) failed: {error}. "
        f"Remaining tasks: {describe_ids(remaining) or 'none'}."
    )
    failure = failed.outcome.failure if failed.outcome else None
    if failure in UNHEALABLE_FAILURES:
        # A healer is the same agent in the same environment: it would fail the same way and waste an attempt.
        hint = UNHEALABLE_FAILURES[failure]
        needs_attention(tx, kind="batch_failed", issue=f"{context} {hint}", run=failed, remaining=remaining)
        return
    if not (cfg.auto_heal_enabled and b.heal_attempts < cfg.max_heal_attempts):
        why = "auto-heal is off" if not cfg.auto_heal_enabled else f"{b.heal_attempts} heal attempt(s) used"
        needs_attention(tx, kind="batch_failed", issue=f"{context} ({why})", run=failed, remaining=remaining)
        return
    done = [t for t in b.task_ids if t not in remaining]
    spawn_healer(tx, b, remaining, failed.execution_id, b.session_id, fork=True, error=error, done=done)


def confirm_heal(tx: Tx, run: CurrentRun, snap: ProjectSnapshot) -> None:
    ex = tx.ex
    b = batch_at(ex, run.batch_index)
    remaining = unchecked(b.task_ids, snap)
    out = run.outcome
    said = heal_output(out) if out is not None and out.ok else None
    if (run.lost and not remaining) or heal_confirmed(said, snap, b):
        why = "tasks.md confirms after a restart" if run.lost else "healer fixed it and tasks.md confirms"
        batch_done(tx, b, BatchStatus.HEALED, why, snap)
        return
    if run.lost:
        # Gone without a result (the host died): not a failed attempt. Run it again, same attempt, same context.
        tx.log(
            Decision.RECONCILE_RESUMED,
            f"healer for batch {b.index + 1} runs again after a restart (attempt {b.heal_attempts} is not counted "
            f"twice): {describe_ids(remaining)} left",
            runId=run.execution_id,
            batch=b.index,
        )
        failed_run = b.workflow_execution_id or run.execution_id  # the batch run whose failure is being healed
        fork = run.session_id is not None
        spawn_healer(
            tx, b, remaining, failed_run, run.session_id, fork=fork, recount=False, session_run=run.execution_id
        )
        return
    assert out is not None
    error = failure_text(out, run, remaining) if not out.ok else f"healer reported {said.status if said else None!r}"
    if out.ok and not remaining:
        error += " although tasks.md shows every task checked"
    elif remaining:
        error += f"; still unchecked: {describe_ids(remaining)}"
    b.status = BatchStatus.FAILED
    tx.log(Decision.HEAL_FAILED, f"healing batch {b.index + 1} failed: {error}", remaining=compact_ids(remaining))
    heal_or_attention(tx, b, run, remaining, error, snap)
