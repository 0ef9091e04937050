"""Waiting for input: the badge, the questions form and the answer command."""

from __future__ import annotations

from typing import Any

from specflow_nb.models import OrchestrationStatus, Question
from specflow_nb.widgets.badge import badge_label
from specflow_nb.widgets.progress import OrchestrationProgress
from tests.support.wire import wire
from tests.widgets.conftest import make_execution


def _waiting() -> Any:
    return make_execution(
        OrchestrationStatus.PAUSED,
        waiting_for_input=True,
        questions=[
            Question(id="q1", question="Which <storage> backend?", options=["json", "sqlite"]),
            Question(id="q2", question="Name of the CLI?"),
        ],
    )


def test_waiting_for_input_renders_the_questions_form() -> None:
    commands: list[dict[str, Any]] = []
    view = OrchestrationProgress(on_command=wire(commands), on_view_diff=lambda: None, on_done=lambda: None)
    ex = _waiting()
    assert badge_label(ex) == "Waiting for input"
    view.render(ex)
    assert view.badge.label == "Waiting for input"
    assert view.questions.layout.display != "none"
    assert view.controls.visible_buttons == ["Cancel orchestration"]  # answers resume, not Resume
    html = " ".join(
        getattr(c, "value", "") for c in view.questions.children if isinstance(getattr(c, "value", None), str)
    )
    assert "Which &lt;storage&gt; backend?" in html
    view.questions.send_button.click()  # q2 empty: refused
    assert commands == [] and "Please answer" in view.questions.error.value
    view.questions._inputs["q1"].value = "sqlite"
    view.questions._inputs["q2"].value = "todo"
    view.questions.send_button.click()
    assert commands == [{"action": "answer", "answers": {"q1": "sqlite", "q2": "todo"}}]


def test_rerender_keeps_typed_answers_and_hides_when_answered() -> None:
    view = OrchestrationProgress(on_command=lambda _c: None, on_view_diff=lambda: None, on_done=lambda: None)
    view.render(_waiting())
    view.questions._inputs["q2"].value = "half typed"
    view.render(_waiting())
    assert view.questions._inputs["q2"].value == "half typed"
    view.render(make_execution())
    assert view.questions.layout.display == "none"
