"""The diagnosis at needs_attention (issue 15.5) with the REAL Claude Code CLI against the scripted model server:
the batch run and the read-only decision helper are both real ``claude -p`` processes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.agent.helper import DIAGNOSIS_HEADING
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.model_server import Block, ModelServer, RecordedRequest, text, tool_use
from tests.support.orch_helpers import argv_of, big_project, flag_value, settle

pytestmark = pytest.mark.anyio

DIAGNOSIS = "The batch stopped before any work: the agent reported the database as unreachable."
FIX = "Start the test database (docker compose up db), then retry."


def _first_user_text(req: RecordedRequest) -> str:
    return json.dumps(req.messages[:1])


def _last_tool(req: RecordedRequest) -> str | None:
    for message in reversed(req.messages):
        if message.get("role") == "assistant" and isinstance(message.get("content"), list):
            names = [b.get("name") for b in message["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
            return names[-1] if names else None
    return None


def scripted_model(project: Path) -> Any:
    """One answer function for every request: the batch gives up at once; the helper reads stderr.log, then
    answers its diagnosis."""

    def respond(req: RecordedRequest) -> list[Block]:
        helper = DIAGNOSIS_HEADING in _first_user_text(req)
        last = _last_tool(req)
        if not helper:
            if last is None:
                return tool_use(
                    "StructuredOutput",
                    status="failed",
                    tasksCompleted=[],
                    tasksRemaining=["T001", "T002"],
                    questions=[],
                    summary="The database is unreachable: nothing done.",
                )
            return text("Stopped.")
        if last is None:
            found = re.search(r"(\.specflow/workflows/[^`/]+)/stderr\.log", _first_user_text(req))
            assert found, "the helper's prompt names the failed run's stderr.log"
            return tool_use("Read", file_path=str(project / found.group(1) / "stderr.log"))
        if last == "Read":
            return tool_use("StructuredOutput", diagnosis=DIAGNOSIS, suggestion="fix", fix=FIX)
        return text("Done.")

    return respond


def config(claude_bin: str, **budget: float) -> dict[str, Any]:
    return {
        "agentCommand": claude_bin,
        "skipDesign": True,
        "skipAnalyze": True,
        "autoHealEnabled": False,
        "budget": budget,
    }


def helper_requests(server: ModelServer) -> list[RecordedRequest]:
    return [r for r in server.message_requests if DIAGNOSIS_HEADING in _first_user_text(r)]


async def test_a_diagnosis_is_shown_at_needs_attention_and_its_cost_counted(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = big_project(root / "big", sections=1, total=2)
    model_server.add_turns(*[scripted_model(project)] * 12)
    async with Orchestrator(root, EngineSettings(agent_env=cli_env)) as orch:
        await orch.start("big", config(claude_bin))
        ex = await settle(orch, "big", timeout=240)
    assert ex.status.value == "needs_attention", ex.decision_log[-3:]
    rc = ex.recovery_context
    assert rc is not None and rc.kind == "batch_failed"
    d = rc.diagnosis
    assert d is not None and d.status == "ready", d
    assert d.text == DIAGNOSIS and d.suggestion == "fix" and d.fix == FIX
    # its cost, as the CLI reported it, is counted in the total
    batch_cost = ex.batches.items[0].cost_usd
    assert batch_cost > 0 and d.cost_usd > 0 and ex.decision_cost_usd == pytest.approx(d.cost_usd)
    assert ex.total_cost_usd == pytest.approx(batch_cost + d.cost_usd)
    assert d.model and "haiku" in d.model
    assert f"Suggested: fix first: {FIX}" in next(e.reason for e in ex.decision_log if e.decision == "diagnosis")
    # the helper ran read-only, with the decision model and budget, and read the failed run's stderr.log
    argv = argv_of(project, d.run_id)
    assert flag_value(argv, "--model") == "haiku" and flag_value(argv, "--max-budget-usd") == "0.5"
    assert "--no-session-persistence" in argv
    asked = helper_requests(model_server)
    assert len(asked) >= 2
    assert sorted(asked[0].tool_names) == ["Glob", "Grep", "Read", "StructuredOutput"]
    assert "haiku" in str(asked[0].body.get("model"))
    read = asked[1].tool_results()
    assert read and not read[0].get("is_error")


async def test_decision_budget_zero_runs_no_helper(
    claude_bin: str, model_server: ModelServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = big_project(root / "big", sections=1, total=2)
    model_server.add_turns(*[scripted_model(project)] * 12)
    async with Orchestrator(root, EngineSettings(agent_env=cli_env)) as orch:
        await orch.start("big", config(claude_bin, decisionBudget=0))
        ex = await settle(orch, "big", timeout=240)
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None and ex.recovery_context.diagnosis is None
    assert ex.decision_cost_usd == 0 and ex.total_cost_usd == pytest.approx(ex.batches.items[0].cost_usd)
    assert model_server.message_requests and helper_requests(model_server) == []
    assert not list((project / ".specflow" / "workflows").glob("*-diagnose"))
