"""PhaseProgressBar: Design ─●─ Analyze ─●─ Implement ─○─ Verify ─○─ Merge."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb.models import STEP_ORDER, OrchestrationExecution, OrchestrationPhase, OrchestrationStatus
from specflow_nb.widgets._html import esc


def step_states(execution: OrchestrationExecution) -> dict[OrchestrationPhase, str]:
    """Each step's state: ``done``, ``current``, ``skipped``, ``failed`` or ``todo``.

    Derived from the current phase and the skip flags, then corrected by the engine's per-step record where it
    says more than "pending" (a step skipped by smart config, a failed step).
    """
    config = execution.config
    skipped = {
        OrchestrationPhase.DESIGN: config.skip_design,
        OrchestrationPhase.ANALYZE: config.skip_analyze,
        OrchestrationPhase.IMPLEMENT: config.skip_implement,
        OrchestrationPhase.VERIFY: config.skip_verify,
        OrchestrationPhase.MERGE: False,
    }
    complete = (
        execution.current_phase is OrchestrationPhase.COMPLETE or execution.status is OrchestrationStatus.COMPLETED
    )
    current_index = len(STEP_ORDER) if complete else STEP_ORDER.index(execution.current_phase)
    states: dict[OrchestrationPhase, str] = {}
    for i, step in enumerate(STEP_ORDER):
        if skipped[step] and i != current_index:
            states[step] = "skipped"
        elif i < current_index:
            states[step] = "done"
        elif i == current_index:
            states[step] = "current"
        else:
            states[step] = "todo"
    recorded = getattr(execution, "step_status", None) or {}
    for step, value in recorded.items():
        state = str(getattr(value, "value", value))
        if state in ("completed", "skipped", "failed") and states.get(step) != "current":
            states[step] = {"completed": "done"}.get(state, state)
        elif state == "failed":
            states[step] = "failed"
    return states


_MARK = {"done": "●", "current": "◉", "skipped": "⊘", "failed": "✕", "todo": "○"}
_COLOR = {"done": "#2e7d32", "current": "#1a73e8", "skipped": "#9e9e9e", "failed": "#c62828", "todo": "#9e9e9e"}


def phase_bar_text(execution: OrchestrationExecution) -> str:
    """The bar as plain text, e.g. ``Design ─●─ Analyze ─◉─ Implement ─○─ Verify ─○─ Merge``."""
    states = step_states(execution)
    parts = []
    for i, step in enumerate(STEP_ORDER):
        if i:
            parts.append(f" ─{_MARK[states[step]]}─ ")
        parts.append(step.value.capitalize())
    return "".join(parts)


class PhaseProgressBar(w.HTML):
    """The five steps, each marked done / current / skipped / to do."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-phase-bar")

    def render(self, execution: OrchestrationExecution) -> None:
        states = step_states(execution)
        cells = []
        for step in STEP_ORDER:
            state = states[step]
            weight = "700" if state == "current" else "400"
            cells.append(
                f'<span data-step="{esc(step.value)}" data-state="{esc(state)}" '
                f'style="color:{_COLOR[state]};font-weight:{weight}">'
                f"{_MARK[state]} {esc(step.value.capitalize())}</span>"
            )
        self.value = '<div style="white-space:nowrap">' + ' <span style="color:#bbb">─</span> '.join(cells) + "</div>"
