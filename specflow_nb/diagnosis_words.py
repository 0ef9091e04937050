"""The diagnosis at needs attention in words (issue 15.5): what the read-only helper found and what it suggests.

Apart from :mod:`specflow_nb.summary` because only the recovery view shows it (the panel's recovery part, the
terminal's needs-attention block). Pure functions of an ``OrchestrationExecution``; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from specflow_nb.models import OrchestrationExecution, OrchestrationStatus

#: What each suggestion asks the person to do (the recovery panel, the terminal).
SUGGESTION_WORDS = {"retry": "Retry", "skip": "Skip", "abort": "Abort", "fix": "Fix something first, then retry"}


@dataclass(frozen=True)
class DiagnosisView:
    """The diagnosis of the recovery context, in words: ``title`` and ``text`` always, ``suggestion`` when ready."""

    status: str  # pending, ready or failed
    title: str
    text: str
    suggestion: str = ""
    #: info (pending), success (ready) or warn (failed): hosts map it to a colour.
    tone: str = "info"


def diagnosis_view(ex: OrchestrationExecution) -> DiagnosisView | None:
    """The needs-attention diagnosis as every host shows it; None when there is none (decisionBudget 0, nothing to
    read, or not needing attention)."""
    rc = ex.recovery_context
    d = rc.diagnosis if rc is not None and ex.status is OrchestrationStatus.NEEDS_ATTENTION else None
    if d is None:
        return None
    who = f" ({d.model})" if d.model else ""
    progress = d.status  # the helper's: pending, ready or failed (not an orchestration status)
    if progress == "pending":
        budget = ex.config.budget.decision_budget
        text = (
            f"A read-only helper is reading the failed run's transcript and stderr (at most ${budget:.2f}). "
            "You need not wait for it."
        )
        return DiagnosisView("pending", "Diagnosing…", text)
    cost = f" · ${d.cost_usd:.2f}"
    if progress == "failed":
        return DiagnosisView("failed", f"No diagnosis{who}{cost}", d.error or "the helper gave no answer", tone="warn")
    suggestion = ""
    if d.suggestion == "fix":
        suggestion = f"Suggested: fix first — {d.fix}" if d.fix else f"Suggested: {SUGGESTION_WORDS['fix']}"
    elif d.suggestion:
        suggestion = f"Suggested: {SUGGESTION_WORDS[d.suggestion]}"
    return DiagnosisView("ready", f"Diagnosis{who}{cost}", d.text, suggestion, tone="success")


def diagnosis_lines(ex: OrchestrationExecution) -> list[str]:
    """The diagnosis as plain lines (the terminal): "Diagnosis (haiku) · $0.02: …", "Suggested: Retry"."""
    view = diagnosis_view(ex)
    if view is None:
        return []
    return [f"{view.title}: {view.text}", *([view.suggestion] if view.suggestion else [])]
