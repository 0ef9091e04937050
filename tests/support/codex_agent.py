"""A scripted model for whole phases with the real Codex CLI: it reads specflow_nb's prompt and acts through Codex.

:class:`PhaseModel` is a turn for :class:`tests.support.responses_server.ResponsesServer` (a callable of the
request). For each step's prompt it first checks the asked tasks in tasks.md through Codex's own shell tool (a
real ``sed`` run by the real CLI in its workspace-write sandbox), then, once the tool's output is back, answers
with the step's structured output. Knobs make it leave a batch half done, ask a question, or run many calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.responses_server import ResponsesRequest, Say, Shell

TASKS_FILE = "specs/0001-todo-cli/tasks.md"
_BATCH = re.compile(r'Execute only the "[^"]*" section \(([^)]*)\)')
_HEAL = re.compile(r'Complete only these remaining tasks of the "[^"]*" section: ([^.]*)\.')


def step_of(prompt: str) -> str:
    """Which step a specflow_nb prompt is (from its "When you finish" report)."""
    if "`fixApplied`" in prompt:
        return "heal"
    if "`passed`" in prompt:
        return "verify"
    if "`fixedArtifacts`" in prompt:
        return "analyze"
    if "`tasksCompleted`" in prompt:
        return "implement"
    if "`conflictFiles`" in prompt:
        return "merge"
    return "design"


def check_command(task_ids: list[str]) -> str:
    alternatives = "|".join(task_ids)
    return (
        f"sed -i -E 's/^([-*]) \\[ \\] ({alternatives}) /\\1 [x] \\2 /' {TASKS_FILE} && grep -c '\\[x\\]' {TASKS_FILE}"
    )


@dataclass
class PhaseModel:
    """The scripted model of a phase. ``half_done``: the first run of a batch whose tasks include this id checks
    only its first task and reports ``partial``; ``ask_in``: the first run of this step asks a question."""

    half_done: str | None = None
    ask_in: str | None = None
    extra_calls: int = 0
    steps: list[str] = field(default_factory=list)
    answers_seen: list[str] = field(default_factory=list)
    _asked: bool = False
    _halved: bool = False

    def __call__(self, req: ResponsesRequest) -> list[Any]:
        texts = req.user_texts()
        prompt = next((t for t in reversed(texts) if "When you finish" in t), texts[-1] if texts else "")
        latest = texts[-1] if texts else ""
        step = step_of(prompt)
        last = req.input[-1] if req.input else {}
        tool_done = last.get("type") in ("function_call_output", "custom_tool_call_output")
        if "Answers to your questions" in latest:
            self.answers_seen.append(latest)
        ids = self._ids(latest if ("Execute only" in latest or "remaining tasks" in latest) else prompt)
        if not tool_done:
            self.steps.append(step)
            if step in ("implement", "heal") and ids:
                if self.half_done in ids and step == "implement" and not self._halved:
                    return [Shell(check_command(ids[:1]))]
                return [Shell(check_command(ids))]
            if self.extra_calls:
                self.extra_calls -= 1
                return [Shell("echo working")]
            return self._answer(step, ids)
        if self.extra_calls:
            self.extra_calls -= 1
            return [Shell("echo working")]
        return self._answer(step, ids)

    @staticmethod
    def _ids(text: str) -> list[str]:
        match = _BATCH.search(text) or _HEAL.search(text)
        return [t.strip() for t in match.group(1).split(",") if t.strip()] if match else []

    def _answer(self, step: str, ids: list[str]) -> list[Any]:
        if self.ask_in == step and not self._asked:
            self._asked = True
            question = {"id": "q1", "question": "Which storage format?", "options": ["json", "toml"]}
            if step == "verify":
                out = {"status": "needs_input", "passed": False, "failures": [], "questions": [question]}
                return [Say(json.dumps({**out, "summary": "?"}))]
            return [Say(json.dumps({"status": "needs_input", "summary": "?", "questions": [question]}))]
        if step == "implement":
            if self.half_done in ids and not self._halved:
                self._halved = True
                out = {"status": "partial", "tasksCompleted": ids[:1], "tasksRemaining": ids[1:]}
                return [Say(json.dumps({**out, "questions": [], "summary": "ran out of time"}))]
            out = {"status": "completed", "tasksCompleted": ids, "tasksRemaining": [], "questions": []}
            return [Say(json.dumps({**out, "summary": "done"}))]
        if step == "heal":
            out = {"status": "fixed", "tasksCompleted": ids, "tasksRemaining": [], "fixApplied": "finished the rest"}
            return [Say(json.dumps({**out, "blockerReason": ""}))]
        if step == "verify":
            out = {"status": "completed", "passed": True, "failures": [], "questions": []}
            return [Say(json.dumps({**out, "summary": "all good"}))]
        if step == "analyze":
            out = {"status": "completed", "findings": [], "fixedArtifacts": False, "questions": [], "summary": "ok"}
            return [Say(json.dumps(out))]
        return [Say(json.dumps({"status": "completed", "summary": "designed", "questions": []}))]
