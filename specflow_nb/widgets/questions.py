"""The questions form: a run that ended with ``needs_input`` asks questions; the answers resume the same session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w

from specflow_nb.machine import AnswerCommand, Command
from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show


@dataclass(frozen=True)
class Question:
    """One question as the panel shows it: ``key`` is what the answer command is keyed by (id, else the text)."""

    key: str
    text: str
    options: tuple[str, ...] = ()


def _as_question(raw: Any) -> Question | None:
    if isinstance(raw, str):
        return Question(key=raw, text=raw)
    data = raw.model_dump() if hasattr(raw, "model_dump") else raw
    if not isinstance(data, dict):
        return None
    text = str(data.get("question") or data.get("text") or data.get("header") or "")
    if not text:
        return None
    key = str(data.get("id") or text)
    options = []
    for option in data.get("options") or ():
        label = option.get("label") if isinstance(option, dict) else option
        if label:
            options.append(str(label))
    return Question(key=key, text=text, options=tuple(options))


def pending_questions(execution: OrchestrationExecution) -> list[Question]:
    """The questions the current run waits on (empty when it waits on none)."""
    if not execution.status.is_active:
        return []
    raw = getattr(execution, "questions", None) or []
    return [q for q in (_as_question(r) for r in raw) if q is not None]


class QuestionsForm(w.VBox):
    """One input per question and a Send button that issues ``{"action": "answer", "answers": {...}}``."""

    def __init__(self, on_command: Callable[[Command], None]) -> None:
        super().__init__()
        self._on_command = on_command
        self._inputs: dict[str, w.ValueWidget] = {}
        self._shown: tuple[Question, ...] = ()
        self.send_button = w.Button(description="Send answers", button_style="primary", icon="paper-plane")
        self.send_button.add_class("specflow-answer")
        self.send_button.on_click(lambda _b: self.submit())
        self.error = w.HTML()
        self.add_class("specflow-questions")

    def render(self, execution: OrchestrationExecution | None) -> None:
        questions = tuple(pending_questions(execution)) if execution is not None else ()
        show(self, bool(questions))
        if questions == self._shown:
            return  # keep what the user is typing
        self._shown = questions
        self._inputs = {}
        rows: list[w.Widget] = [w.HTML('<div class="sf-section-title">The agent needs your input</div>')]
        for q in questions:
            field: w.ValueWidget
            if q.options:
                field = w.Dropdown(options=list(q.options), value=q.options[0])
            else:
                field = w.Textarea(placeholder="Your answer", layout=w.Layout(width="100%"))
            self._inputs[q.key] = field
            rows += [w.HTML(esc(q.text)), field]
        self.error.value = ""
        self.children = (*rows, self.send_button, self.error)

    def answers(self) -> dict[str, str]:
        return {key: str(field.value) for key, field in self._inputs.items()}

    def submit(self) -> None:
        answers = self.answers()
        empty = [key for key, value in answers.items() if not value.strip()]
        if empty:
            self.error.value = f'<div class="sf-error">Please answer every question ({len(empty)} empty).</div>'
            return
        self.error.value = ""
        self._on_command(AnswerCommand(answers=answers))
