"""PhaseProgressBar: Design ─●─ Analyze ─●─ Implement ─○─ Verify ─○─ Merge."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import STEP_ORDER, OrchestrationExecution, OrchestrationPhase
from specflow_nb.widgets._html import esc

#: :func:`specflow_nb.summary.phase_marks`' marks → the bar's states.
_STATE_OF_MARK = {"●": "done", "◐": "current", "–": "skipped", "✗": "failed", "○": "todo"}


def step_states(execution: OrchestrationExecution) -> dict[OrchestrationPhase, str]:
    """Each step's state (``done``, ``current``, ``skipped``, ``failed`` or ``todo``) from the engine's step record."""
    marks = summary.phase_marks(execution)
    return {step: _STATE_OF_MARK[mark] for step, (_title, mark) in zip(STEP_ORDER, marks, strict=True)}


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
                f'style="color:{_COLOR[state]};font-weight:{weight};white-space:nowrap">'
                f"{_MARK[state]} {esc(step.value.capitalize())}</span>"
            )
        self.value = '<div style="line-height:1.8">' + ' <span style="color:#bbb">─</span> '.join(cells) + "</div>"
