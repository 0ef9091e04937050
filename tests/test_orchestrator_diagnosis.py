"""The diagnosis at needs_attention end to end (issue 15.5): real demo-agent subprocesses as the failing agent and as
the read-only decision helper, real files, real git."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.orch_helpers import (
    agent_runs,
    argv_of,
    base_config,
    big_project,
    decisions,
    flag_value,
    run_folder,
    run_log,
    settle,
    wait_until,
    write_script,
)

pytestmark = pytest.mark.anyio

#: Batch 2 leaves half of its tasks unchecked on its first run (no healing: a person must decide).
PARTIAL_BATCH_2 = {"match": "Phase 2: Part 2", "run": 1, "scenario": "partial"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


def settings(tmp_path: Path, rules: list[dict[str, object]], **env: str) -> EngineSettings:
    script = write_script(tmp_path / "script.json", rules)
    log = tmp_path / "demo-runs.jsonl"
    return EngineSettings(agent_env={"SPECFLOW_DEMO_LOG": str(log), "SPECFLOW_DEMO_SCRIPT": str(script), **env})


def diagnosis_folders(project: Path) -> list[Path]:
    return sorted(p for p in (project / ".specflow" / "workflows").glob("*-diagnose") if p.is_dir())


async def test_a_diagnosis_is_shown_at_needs_attention_and_its_cost_counted(root: Path, tmp_path: Path) -> None:
    project = big_project(root / "big", sections=3, total=6)
    cost = "0.03"
    async with Orchestrator(root, settings(tmp_path, [PARTIAL_BATCH_2], SPECFLOW_DEMO_COST=cost)) as orch:
        await orch.start("big", base_config(autoHealEnabled=False))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    rc = ex.recovery_context
    assert rc is not None and rc.batch_index == 1 and rc.seq == 1
    d = rc.diagnosis
    assert d is not None and d.status == "ready", d
    assert d.suggestion == "retry" and d.fix is None
    assert "DEMO diagnosis" in d.text and all(t in d.text for t in rc.remaining_task_ids)
    # counted: two batch runs and the helper, each 0.03
    assert d.cost_usd == pytest.approx(0.03) and ex.decision_cost_usd == pytest.approx(0.03)
    assert ex.total_cost_usd == pytest.approx(0.09)
    assert ex.pending_diagnoses == [] and "diagnosis" in decisions(ex)
    assert ex.notifications[-1].event == "diagnosis"
    # the helper: read-only tools, no session kept, the decision budget, the decision model
    (folder,) = diagnosis_folders(project)
    assert folder.name == d.run_id
    argv = argv_of(project, d.run_id)
    assert flag_value(argv, "--tools") == "Read,Grep,Glob" and "--no-session-persistence" in argv
    assert flag_value(argv, "--max-budget-usd") == "0.5" and flag_value(argv, "--model") == "haiku"
    prompt = (folder / "prompt.md").read_text(encoding="utf-8")
    failed = rc.failed_workflow_id
    assert (
        f".specflow/workflows/{failed}/stream.jsonl" in prompt and f".specflow/workflows/{failed}/stderr.log" in prompt
    )
    assert rc.issue in prompt and "retry, skip, abort" in prompt
    helper_runs = [r for r in run_log(tmp_path / "demo-runs.jsonl") if r["diagnosis"]]
    assert len(helper_runs) == 1 and helper_runs[0]["sessionId"]


async def test_decision_budget_zero_runs_no_helper(root: Path, tmp_path: Path) -> None:
    project = big_project(root / "big", sections=3, total=6)
    async with Orchestrator(root, settings(tmp_path, [PARTIAL_BATCH_2])) as orch:
        await orch.start("big", base_config(autoHealEnabled=False, budget={"decisionBudget": 0}))
        ex = await settle(orch, "big")
        await anyio.sleep(0.5)  # nothing may start later either
        ex = orch.status("big") or ex
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None and ex.recovery_context.diagnosis is None
    assert ex.decision_cost_usd == 0 and ex.pending_diagnoses == [] and "diagnosis" not in decisions(ex)
    assert diagnosis_folders(project) == []
    assert all(not r["diagnosis"] for r in run_log(tmp_path / "demo-runs.jsonl"))


async def test_retry_while_the_helper_runs_goes_ahead_and_the_late_diagnosis_is_only_counted(
    root: Path, tmp_path: Path
) -> None:
    big_project(root / "big", sections=3, total=6)
    slow_helper = {"diagnosis": True, "scenario": "slow", "cost": 0.04}
    rules = [PARTIAL_BATCH_2, slow_helper]
    async with Orchestrator(root, settings(tmp_path, rules, SPECFLOW_DEMO_DELAY="0.6")) as orch:
        await orch.start("big", base_config(autoHealEnabled=False, autoMerge=True))
        ex = await wait_until(orch, "big", lambda e: e.status.value == "needs_attention", timeout=60)
        assert ex.recovery_context is not None and ex.recovery_context.diagnosis is not None
        assert ex.recovery_context.diagnosis.status == "pending" and ex.pending_diagnoses
        ex = await orch.command("big", {"action": "recover", "option": "retry"})  # does not wait for the helper
        assert ex.status.value == "running"
        ex = await settle(orch, "big")
    assert ex.status.value == "completed", ex.recovery_context
    late = [d for d in ex.decision_log if d.decision == "diagnosis"]
    assert [(d.data or {}).get("status") for d in late] == ["late"]
    assert ex.decision_cost_usd == pytest.approx(0.04) and ex.pending_diagnoses == []
    batch_runs = [r for r in agent_runs(tmp_path / "demo-runs.jsonl") if r["taskIds"]]
    assert len(batch_runs) == 4  # batches 1-3 and the retry of batch 2


async def test_a_helper_running_across_a_host_restart_is_adopted(root: Path, tmp_path: Path) -> None:
    project = big_project(root / "big", sections=3, total=6)
    slow_helper = {"diagnosis": True, "scenario": "slow", "cost": 0.05}
    engine = settings(tmp_path, [PARTIAL_BATCH_2, slow_helper], SPECFLOW_DEMO_DELAY="0.5")
    async with Orchestrator(root, engine) as orch:
        await orch.start("big", base_config(autoHealEnabled=False))
        ex = await wait_until(orch, "big", lambda e: bool(e.pending_diagnoses), timeout=60)
        run_id = ex.pending_diagnoses[0]
        await wait_until_file(run_folder(project, run_id) / "pid.json")
    # the host stopped while the helper (a detached process) works on: the next host adopts it
    async with Orchestrator(root, engine) as orch:
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    d = ex.recovery_context.diagnosis if ex.recovery_context else None
    assert d is not None and d.status == "ready" and d.run_id == run_id and d.cost_usd == pytest.approx(0.05)
    assert ex.decision_cost_usd == pytest.approx(0.05)
    statuses = [(e.data or {}).get("status") for e in ex.decision_log if e.decision == "diagnosis"]
    assert statuses == ["resumed", "ready"]
    helper_runs = [r for r in run_log(tmp_path / "demo-runs.jsonl") if r["diagnosis"]]
    assert len(helper_runs) == 1  # adopted, not started again


async def wait_until_file(path: Path, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not path.exists():
            await anyio.sleep(0.05)


def test_the_demo_agent_answers_a_diagnosis_prompt(tmp_path: Path) -> None:
    """The bundled demo agent reads the failed run's files and answers the helper's schema (the demo shows one)."""
    import subprocess
    import sys

    from specflow_nb.agent.helper import DiagnosisOutput, diagnosis_prompt

    failed = tmp_path / ".specflow" / "workflows" / "o-001-batch1"
    failed.mkdir(parents=True)
    (failed / "stderr.log").write_text("Error: ENOSPC: no space left on device\n", encoding="utf-8")
    (failed / "stream.jsonl").write_text(json.dumps({"type": "result", "is_error": True}) + "\n", encoding="utf-8")
    prompt = diagnosis_prompt(
        issue="Batch 1 of 2 (Setup) failed.",
        options=["retry", "skip", "abort"],
        failed_run_folder=".specflow/workflows/o-001-batch1",
        remaining_task_ids=["T001"],
    )
    schema = json.dumps(DiagnosisOutput.model_json_schema())
    out = subprocess.run(
        [sys.executable, "-m", "specflow_nb.demo.demo_agent", "-p", "--output-format", "json", "--json-schema", schema],
        input=prompt,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    answer = DiagnosisOutput.model_validate(result["structured_output"])
    assert answer.suggestion == "fix" and "no space left on device" in answer.diagnosis
    assert answer.fix and "stderr.log" in answer.fix
    assert not (tmp_path / "specs").exists()  # a diagnosis never writes (the design branch was not taken)


def test_the_decision_model_is_a_choice_like_the_model(tmp_path: Path) -> None:
    """On a server (requests not trusted) a decisionModel other than haiku, an allowed model or the host's default
    is a choice only someone who may run code makes; a record edited to one runs nothing."""
    from specflow_nb import policy
    from specflow_nb.models import OrchestrationConfig

    server = EngineSettings(trust_requests=False, approved_commands_file=tmp_path / "approvals.json")
    assert policy.choices(OrchestrationConfig(decision_model="haiku"), {"decision_model"}, server) == []
    assert policy.choices(OrchestrationConfig(decision_model="opus"), {"decision_model"}, server) == ["decisionModel"]
    allowed = EngineSettings(trust_requests=False, allowed_models=["opus"], decision_model="sonnet")
    for name in ("opus", "sonnet"):
        assert policy.choices(OrchestrationConfig(decision_model=name), {"decision_model"}, allowed) == []
    edited = OrchestrationConfig(decision_model="someones-own-endpoint-model")
    with pytest.raises(policy.CommandNotAllowed, match="decisionModel 'someones-own-endpoint-model' was not chosen"):
        policy.enforce_models(edited, server)
    policy.approve_config(tmp_path / "approvals.json", edited)  # chosen by someone who may run code
    policy.enforce_models(edited, server)


async def test_the_hosts_decision_model_applies_when_the_request_sets_none(root: Path, tmp_path: Path) -> None:
    project = big_project(root / "big", sections=3, total=6)
    engine = settings(tmp_path, [PARTIAL_BATCH_2]).model_copy(update={"decision_model": "sonnet"})
    async with Orchestrator(root, engine) as orch:
        await orch.start("big", base_config(autoHealEnabled=False))
        ex = await settle(orch, "big")
    assert ex.config.decision_model == "sonnet"
    d = ex.recovery_context.diagnosis if ex.recovery_context else None
    assert d is not None and flag_value(argv_of(project, d.run_id), "--model") == "sonnet"
