"""Whole phases driven by the engine with the REAL Claude Code CLI (2.1.197) against the scripted Messages API.

The scripted model (:class:`VerifyModel`) answers by what each request is: the verify run's first request asks a
question through the CLI's StructuredOutput tool, a request that carries the answers passes. Everything above the
CLI (machine, questions, answers, the lost-session retry, the built-in merge) is the engine's ordinary path.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.model_server import Block, ModelServer, RecordedRequest, Text, ToolUse
from tests.support.orch_helpers import argv_of, decisions, flag_value, run_folder, settle

pytestmark = pytest.mark.anyio

SAID = "I read spec.md and tasks.md; one behaviour is not specified, so I need a decision before judging."
QUESTION = "The spec does not say what happens without a config file: accept the current behaviour?"
LOST_HEADING = "What the previous session did before it was lost"


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))


def last_user(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest user message (the CLI appends a ``system`` budget note after it)."""
    return next((m for m in reversed(messages) if m.get("role") == "user"), {})


class VerifyModel:
    """One scripted reply per Messages request, chosen by what the request is (robust to extra requests)."""

    def __init__(self) -> None:
        self.prompts: list[str] = []  # the first user message of each verify request (what the CLI was asked)

    def __call__(self, req: RecordedRequest) -> list[Block]:
        messages = req.messages
        if not messages or not any(t == "StructuredOutput" for t in req.tool_names):
            return [Text("Done.")]
        if req.tool_results():  # the StructuredOutput call was accepted: end the turn
            return [Text("Reported.")]
        self.prompts.append(_text_of(messages[0]))
        latest = _text_of(last_user(messages))
        if "Answers to your questions" in latest:
            answer = latest.split("- q1: ", 1)[-1].splitlines()[0]
            report = {"status": "completed", "passed": True, "failures": [], "summary": f"accepted ({answer})"}
            return [ToolUse("StructuredOutput", report)]
        question = {"id": "q1", "question": QUESTION, "options": ["yes", "no"]}
        asks = {"status": "needs_input", "passed": False, "failures": [], "questions": [question], "summary": "?"}
        return [Text(SAID), ToolUse("StructuredOutput", asks)]


@pytest.fixture
def verify_model(model_server: ModelServer) -> VerifyModel:
    model = VerifyModel()
    model_server.add_turns(*[model] * 20)
    return model


def config(claude_bin: str) -> dict[str, Any]:
    return {
        "agentCommand": claude_bin,
        "skipDesign": True,
        "skipAnalyze": True,
        "skipImplement": True,
        "autoMerge": True,
    }


async def ask(orch: Orchestrator, claude_bin: str) -> str:
    """Start the phase; its verify run asks. Returns the session that asked."""
    await orch.start("todo", config(claude_bin))
    ex = await settle(orch, "todo", timeout=180)
    assert ex.status.value == "paused" and ex.waiting_for_input, (ex.status, ex.recovery_context, decisions(ex))
    assert [q.question for q in ex.questions] == [QUESTION] and ex.questions[0].options == ["yes", "no"]
    assert ex.question_run is not None and ex.question_run.session_id
    return ex.question_run.session_id


def merged(project: Path) -> bool:
    out = subprocess.run(["git", "branch", "--merged", "main"], cwd=project, capture_output=True, text=True, check=True)
    return "0001-todo-cli" in out.stdout


async def test_verify_asks_the_answer_resumes_its_session_and_the_phase_completes(
    claude_bin: str, model_server: ModelServer, verify_model: VerifyModel, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    async with Orchestrator(root, EngineSettings(agent_env=cli_env)) as orch:
        session = await ask(orch, claude_bin)
        asked = orch.status("todo").executions.verify  # type: ignore[union-attr]
        await orch.command("todo", {"action": "answer", "answers": {"q1": "yes"}})
        ex = await settle(orch, "todo", timeout=180)

    assert ex.status.value == "completed", "\n".join(d.reason for d in ex.decision_log)
    assert "session_lost" not in decisions(ex) and merged(project)
    resumed = ex.executions.verify or ""
    assert resumed != asked and flag_value(argv_of(project, resumed), "--resume") == session
    # the resumed request carried the whole conversation: the question asked, then the answers
    last = next(r for r in model_server.message_requests if "Answers to your questions" in json.dumps(r.messages))
    assert SAID in json.dumps(last.messages) and "- q1: yes" in _text_of(last_user(last.messages))
    outcome = json.loads((run_folder(project, resumed) / "outcome.json").read_text())
    assert outcome["structured_output"]["passed"] is True and outcome["session_id"] == session


async def test_a_lost_session_is_retried_as_a_new_session_told_what_it_did(
    claude_bin: str, model_server: ModelServer, verify_model: VerifyModel, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    async with Orchestrator(root, EngineSettings(agent_env=cli_env)) as orch:
        session = await ask(orch, claude_bin)
        asked = orch.status("todo").executions.verify  # type: ignore[union-attr]
        # the session is gone (another machine, a cleaned config folder): the CLI no longer knows it
        stored = list(Path(cli_env["CLAUDE_CONFIG_DIR"]).rglob(f"{session}.jsonl"))
        assert stored, "the CLI kept no session file"
        for path in stored:
            path.unlink()
        await orch.command("todo", {"action": "answer", "answers": {"q1": "yes"}})
        ex = await settle(orch, "todo", timeout=180)

    names = decisions(ex)
    assert ex.status.value == "completed", (ex.status, ex.recovery_context, names)
    assert names.count("session_lost") == 1 and merged(project)
    entry = next(d for d in ex.decision_log if d.decision == "session_lost")
    assert entry.data and entry.data["lostSession"] == session and entry.data["lostRun"] == asked
    assert entry.data["level"] == "warning" and "No conversation found with session ID" in entry.reason
    # three verify runs: the one that asked, the resume the CLI refused, the retry (the newest)
    asked_run, resume_run, retry_run = sorted(
        p.name for p in (project / ".specflow" / "workflows").iterdir() if p.name.endswith("-verify")
    )
    assert asked_run == asked and retry_run == ex.executions.verify
    assert flag_value(argv_of(project, resume_run), "--resume") == session
    assert "No conversation found with session ID" in (run_folder(project, resume_run) / "stderr.log").read_text()
    assert "--resume" not in argv_of(project, retry_run)
    # the scripted model saw the new session's prompt: the lost run's messages and the answers, no old history
    retry_prompt = verify_model.prompts[-1]
    assert LOST_HEADING in retry_prompt and SAID in retry_prompt and "- q1: yes" in retry_prompt
    retry_requests = [r for r in model_server.message_requests if LOST_HEADING in json.dumps(r.messages)]
    new_session = [m for m in retry_requests[0].messages if m.get("role") != "system"] if retry_requests else []
    assert len(new_session) == 1  # a new session: no earlier conversation
    outcome = json.loads((run_folder(project, retry_run) / "outcome.json").read_text())
    assert outcome["session_id"] != session and outcome["structured_output"]["passed"] is True
