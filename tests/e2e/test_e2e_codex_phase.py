"""Whole phases driven by the engine with ``agent: "codex"``: the REAL Codex CLI against the scripted Responses API.

The scripted model (:class:`tests.support.codex_agent.PhaseModel`) reads specflow_nb's prompts and checks tasks in
tasks.md through Codex's own shell tool; everything above the runner (machine, healing, questions, budgets, the
decision log, the built-in merge) is the engine's ordinary path.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from specflow_nb.agent.helper import DIAGNOSIS_HEADING
from specflow_nb.demo import prepare_sample
from specflow_nb.models import ModelPrice
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.codex_agent import PhaseModel
from tests.support.codex_cli import DEFAULT_MODEL, hermetic_env, provider_args
from tests.support.orch_helpers import argv_of, decisions, feature_tasks, flag_value, settle
from tests.support.responses_server import ResponsesServer

pytestmark = pytest.mark.anyio

PRICE = ModelPrice(input_per_mtok=1.0, cached_input_per_mtok=0.1, output_per_mtok=10.0)
ONE_CALL = (800 * 1.0 + 200 * 0.1 + 100 * 10.0) / 1_000_000


def engine(server: ResponsesServer, home: Path) -> EngineSettings:
    return EngineSettings(
        agent_env=hermetic_env(home),
        codex_prices={DEFAULT_MODEL: PRICE},
        codex_args=provider_args(server.url),
    )


async def test_whole_phase_heals_through_the_thread_and_answers_a_question(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    model = PhaseModel(half_done="T005", ask_in="analyze")
    responses_server.fallback = model
    responses_server.max_requests = 40
    async with Orchestrator(root, engine(responses_server, codex_home)) as orch:
        preview = orch.preview("todo", {"agent": "codex", "agentCommand": codex_bin})
        assert preview.preflight.ok, preview.preflight.problems
        assert any("per 1M" in w for w in preview.preflight.warnings)
        await orch.start("todo", {"agent": "codex", "agentCommand": codex_bin, "skipDesign": True, "autoMerge": True})
        ex = await settle(orch, "todo", timeout=240)
        assert ex.waiting_for_input and ex.questions, (ex.status, ex.recovery_context, decisions(ex))
        assert ex.questions[0].question == "Which storage format?"
        asked_run = ex.question_run.execution_id if ex.question_run else ""
        thread = json.loads((project / ".specflow/workflows" / asked_run / "stream.jsonl").read_text().splitlines()[0])

        await orch.command("todo", {"action": "answer", "answers": {"q1": "json"}})
        ex = await settle(orch, "todo", timeout=240)

    assert ex.status.value == "completed", (ex.status, ex.recovery_context, decisions(ex))
    assert ex.config.agent == "codex" and ex.config.model is None
    text = feature_tasks(project).read_text()
    assert "- [ ] T" not in text  # every task checked by Codex's own tool
    # Batch 2 (T004-T008) was left half done and healed by a run that forked the failed batch's thread.
    batch2 = ex.batches.items[1]
    assert batch2.status.value == "healed" and batch2.heal_attempts == 1
    healer_argv = argv_of(project, batch2.healer_execution_id or "")
    assert healer_argv[healer_argv.index("fork") + 1] != "" and healer_argv[-1] == "-"
    assert healer_argv.index("--sandbox") < healer_argv.index("fork")
    # The answer resumed the analyze run's own thread (`codex exec … resume THREAD -`) and reached the model.
    analyze_argv = argv_of(project, ex.executions.analyze or "")
    assert analyze_argv[analyze_argv.index("resume") + 1] == thread["thread_id"]
    assert model.answers_seen and "json" in model.answers_seen[-1]
    # Cost: every model call priced from the table; nothing charged twice across resumes and forks.
    calls = len(responses_server.responses_requests)
    assert ex.total_cost_usd == pytest.approx(calls * ONE_CALL, rel=1e-3)
    # The built-in git merge (Codex's sandbox keeps .git read-only): the feature branch is in main.
    merged = subprocess.run(
        ["git", "branch", "--merged", "main"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    assert "0001-todo-cli" in merged


async def test_a_verify_question_resumes_the_codex_thread_and_the_phase_completes(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    model = PhaseModel(ask_in="verify")
    responses_server.fallback = model
    skip = {"skipDesign": True, "skipAnalyze": True, "skipImplement": True, "autoMerge": True}
    async with Orchestrator(root, engine(responses_server, codex_home)) as orch:
        await orch.start("todo", {"agent": "codex", "agentCommand": codex_bin, **skip})
        ex = await settle(orch, "todo", timeout=180)
        assert ex.waiting_for_input and ex.current_phase.value == "verify", (ex.status, decisions(ex))
        asked = ex.question_run.execution_id if ex.question_run else ""
        thread = json.loads((project / ".specflow/workflows" / asked / "stream.jsonl").read_text().splitlines()[0])
        await orch.command("todo", {"action": "answer", "answers": {"q1": "toml"}})
        ex = await settle(orch, "todo", timeout=180)

    assert ex.status.value == "completed", (ex.status, ex.recovery_context, decisions(ex))
    verify_argv = argv_of(project, ex.executions.verify or "")
    assert verify_argv[verify_argv.index("resume") + 1] == thread["thread_id"]
    assert model.answers_seen and "toml" in model.answers_seen[-1]
    assert model.steps.count("verify") == 2


async def test_budget_stop_at_the_price_table_limit(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    responses_server.fallback = PhaseModel(extra_calls=30)
    responses_server.delay_seconds = 0.3
    budget = {"maxPerBatch": 4 * ONE_CALL, "maxTotal": 50.0}
    async with Orchestrator(root, engine(responses_server, codex_home)) as orch:
        await orch.start(
            "todo",
            {"agent": "codex", "agentCommand": codex_bin, "skipDesign": True, "skipAnalyze": True, "budget": budget},
        )
        ex = await settle(orch, "todo", timeout=180)

    assert ex.status.value == "needs_attention", (ex.status, decisions(ex))
    assert ex.recovery_context is not None and ex.recovery_context.kind == "budget"
    batch1 = ex.batches.items[0]
    assert batch1.cost_usd >= 4 * ONE_CALL
    batch_requests = [r for r in responses_server.responses_requests if DIAGNOSIS_HEADING not in json.dumps(r.body)]
    assert len(batch_requests) < 30  # stopped while it worked (the diagnosis helper's requests left out)
    # the budget stop left money of maxTotal: a diagnosis was asked of the Codex runner, read-only and ephemeral
    helper = ex.recovery_context.diagnosis
    assert helper is not None and helper.status in ("ready", "failed")
    helper_argv = argv_of(project, helper.run_id)
    assert flag_value(helper_argv, "--sandbox") == "read-only" and "--ephemeral" in helper_argv
    kill = json.loads(
        (project / ".specflow/workflows" / (batch1.workflow_execution_id or "") / "kill.json").read_text()
    )
    assert kill["reason"] == "budget_exceeded" and "Stopped at its budget" in kill["message"]
    assert any("Stopped at its budget" in d.reason for d in ex.decision_log)


async def test_unpriced_model_is_refused_before_start(codex_bin: str, codex_home: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    prepare_sample(root / "todo")
    settings = EngineSettings(agent_env=hermetic_env(codex_home), codex_prices={})
    async with Orchestrator(root, settings) as orch:
        preview = orch.preview("todo", {"agent": "codex", "agentCommand": codex_bin, "model": "gpt-unpriced"})
    assert not preview.preflight.ok
    assert any("No price for the Codex model 'gpt-unpriced'" in p for p in preview.preflight.problems)
