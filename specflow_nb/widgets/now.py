"""NowLine: what the agent is doing right now ("Editing src/todo/store.py · turn 7 · $0.12 · last output 3s ago"),
with its last few steps below. Every host shows the same words (:func:`specflow_nb.activity.now_text`)."""

from __future__ import annotations

from datetime import datetime

import ipywidgets as w

from specflow_nb.activity import Activity, since_text
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show

_KIND_MARK = {"tool": "›", "text": "“", "result": "✓", "error": "!"}


class NowLine(w.HTML):
    """Hidden when no agent run is live."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("specflow-now")
        self.activity: Activity | None = None
        show(self, False)

    @property
    def text(self) -> str:
        from specflow_nb.activity import now_text

        return now_text(self.activity)

    def render(self, activity: Activity | None, now: datetime | None = None) -> None:
        self.activity = activity
        if activity is None:
            self.value = ""
            show(self, False)
            return
        facts = []
        if activity.turns:
            facts.append(f"turn {activity.turns}")
        if activity.cost_usd is not None:
            facts.append(f"${activity.cost_usd:.2f}")
        if not activity.finished:
            ago = since_text(activity.last_output_at, now)
            if ago:
                facts.append(ago)
        doing = activity.now or "Starting the agent…"
        recent = [line for line in activity.recent[:-1]][-3:]
        history = "".join(
            f'<li data-kind="{esc(line.kind)}"><span aria-hidden="true">{_KIND_MARK.get(line.kind, "·")}</span> '
            f"{esc(line.text)}</li>"
            for line in recent
        )
        self.value = (
            f'<div class="sf-now" role="status" aria-live="polite" data-run="{esc(activity.run_id)}">'
            f'<div class="sf-now-line"><span class="sf-now-label">Now</span> '
            f'<span class="sf-now-doing">{esc(doing)}</span></div>'
            f'<div class="sf-muted sf-now-facts">{esc(" · ".join(facts))}</div>'
            + (f'<ul class="sf-now-recent">{history}</ul>' if history else "")
            + "</div>"
        )
        show(self, True)
