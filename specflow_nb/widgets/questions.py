"""The questions form: a run that ended with ``needs_input`` asks questions; the answers resume the same session."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.machine import AnswerCommand, Command
from specflow_nb.models import OrchestrationExecution, Question
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show


def answer_key(question: Question) -> str:
    """What the answer command is keyed by: the question's id, else its text."""
    return question.id or question.question


def pending_questions(execution: OrchestrationExecution) -> list[Question]:
    """The questions the current run waits on (empty when it waits on none)."""
    if not execution.status.is_active:
        return []
    return [q for q in execution.questions if q.question]


class QuestionsForm(w.VBox):
    """One input per question and a Send button that issues an ``AnswerCommand`` (question id → answer)."""

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
            self._inputs[answer_key(q)] = field
            rows += [w.HTML(esc(q.question)), field]
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
