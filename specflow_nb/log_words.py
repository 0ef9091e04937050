"""The decision log in words: each entry's title, its reason with run ids named ("the healer of batch 2"), the data
behind it, and where a failed run's stderr is.

Apart from :mod:`specflow_nb.summary` (the status words) because the log is a list every host renders entry by
entry (the panel's log, the terminal's ``watch``), whatever the status. Pure functions; no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from specflow_nb.models import DecisionLogEntry, OrchestrationExecution
from specflow_nb.run_names import run_phrase, sentence

DECISION_TITLES = {
    "start": "Started",
    "step_skipped": "Step skipped",
    "transition": "Step finished",
    "batch_plan": "Batches planned",
    "next_batch": "Batch started",
    "batch_complete": "Batch done",
    "batch_failed": "Batch failed",
    "heal_started": "Healing started",
    "heal_failed": "Healing failed",
    "batch_healed": "Batch healed",
    "pause_requested": "Pause requested",
    "pause": "Paused",
    "resume": "Resumed",
    "cancel": "Cancelled",
    "waiting_merge": "Ready to merge",
    "merge_triggered": "Merge started",
    "needs_attention": "Needs attention",
    "recovery_retry": "Retry",
    "recovery_skip": "Skipped",
    "recovery_abort": "Aborted",
    "budget_exceeded": "Budget reached",
    "waiting_input": "Question for you",
    "answers_received": "Answers sent",
    "go_back": "Went back",
    "stalled": "Run stalled",
    "killed_run_ended": "Stopped run ended",
    "reconcile_adopted": "Run adopted after a restart",
    "reconcile_finished": "Run finished during a restart",
    "reconcile_lost": "Run lost in a restart",
    "reconcile_resumed": "Resumed after a restart",
    "takeover": "Taken over",
    "complete": "Phase complete",
    "fail": "Failed",
    "session_lost": "Session lost: retried as a new session",
    "diagnosis": "Diagnosis",
}


def decision_title(decision: str) -> str:
    """A log entry's title a person reads: ``killed_run_ended`` → "Stopped run ended"."""
    return DECISION_TITLES.get(decision) or decision.replace("_", " ").capitalize()


def decision_text(ex: OrchestrationExecution, entry: DecisionLogEntry) -> str:
    """A log entry's reason with run ids replaced by what they are ("the healer of batch 2")."""
    data = entry.data or {}
    if entry.decision == "killed_run_ended" and isinstance(data.get("runId"), str):
        cost = float(data.get("costUsd") or 0.0)
        return f"{sentence(run_phrase(ex, data['runId']))} ended after it was stopped; its cost ${cost:.2f} is counted"
    if entry.decision == "cancel":
        killed = data.get("killedRun")
        return "Cancelled by the user" + (f"; {run_phrase(ex, killed)} was stopped" if isinstance(killed, str) else "")
    text = entry.reason
    ids = re.compile(rf"(?:killed )?(?:run )?{re.escape(ex.id)}-\d{{3}}-\w+")
    text = ids.sub(lambda m: run_phrase(ex, m.group(0).split()[-1]), text)
    return sentence(text)


def decision_details(ex: OrchestrationExecution, entry: DecisionLogEntry) -> list[tuple[str, str]]:
    """The ids and data behind an entry, for a detail row: [("decision", "killed_run_ended"), ("runId", …), …]."""
    rows: list[tuple[str, str]] = [("decision", entry.decision), ("time", entry.timestamp.isoformat())]
    for key, value in (entry.data or {}).items():
        rows.append((key, _short(value)))
    return rows


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


STDERR_HINT = "See stderr.log in the run folder."


def name_run_folder(text: str, run_id: str | None) -> str:
    """ "… See stderr.log in the run folder." → "… See .specflow/workflows/<run>/stderr.log (the run's transcript
    shows its end)." — ``.specflow/`` is hidden in JupyterLab's file browser, so the path is spelled out."""
    if not text or not run_id or STDERR_HINT not in text:
        return text
    return text.replace(
        STDERR_HINT, f"See .specflow/workflows/{run_id}/stderr.log (the run's transcript shows its end)."
    )
