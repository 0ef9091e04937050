"""PhaseProgressBar: Design ─●─ Analyze ─●─ Implement ─○─ Verify ─○─ Merge."""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.models import STEP_ORDER, OrchestrationExecution, OrchestrationPhase
from specflow_nb.widgets._html import esc

#: :func:`specflow_nb.summary.phase_marks`' marks → the bar's states.
_STATE_OF_MARK = {"●": "done", "◐": "current", "–": "skipped", "✗": "failed", "○": "todo", "■": "stopped"}
#: Each state's tone (the dot's colour; the step's name stays in the font colour).
_TONE = {
    "done": "success",
    "current": "info",
    "skipped": "neutral",
    "failed": "error",
    "todo": "neutral",
    "stopped": "warn",
}
_WORDS = {"done": "done", "current": "in progress", "skipped": "skipped", "failed": "failed", "todo": "to do"}
_WORDS["stopped"] = "stopped here"


def step_states(execution: OrchestrationExecution) -> dict[OrchestrationPhase, str]:
    """Each step's state (``done``, ``current``, ``skipped``, ``failed``, ``stopped`` or ``todo``)."""
    marks = summary.phase_marks(execution)
    return {step: _STATE_OF_MARK[mark] for step, (_title, mark) in zip(STEP_ORDER, marks, strict=True)}


_MARK = {"done": "●", "current": "◉", "skipped": "⊘", "failed": "✕", "todo": "○", "stopped": "■"}


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
    """The five steps, each with a dot: filled done, ringed current, dashed and struck through when skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-phase-bar")

    def render(self, execution: OrchestrationExecution) -> None:
        states = step_states(execution)
        cells = []
        for step in STEP_ORDER:
            state = states[step]
            title = f"{step.value.capitalize()}: {_WORDS[state]}"
            cells.append(
                f'<span class="sf-step sf-tone-{_TONE[state]}" data-step="{esc(step.value)}" data-state="{esc(state)}"'
                f' title="{esc(title)}"><span class="sf-step-dot"></span>{esc(step.value.capitalize())}</span>'
            )
        link = '<span class="sf-step-link" aria-hidden="true"></span>'
        self.value = f'<div class="sf-steps" role="list">{link.join(cells)}</div>'
