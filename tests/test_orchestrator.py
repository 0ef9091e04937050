"""The orchestrator end to end: real demo-agent subprocesses, real files, real git in temp folders.

Each test drives an ``Orchestrator`` on a temp root holding one (or more) sample projects, steering the demo agent
per run with a script (``SPECFLOW_DEMO_SCRIPT``) and counting its runs with its run log (``SPECFLOW_DEMO_LOG``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from specflow_nb import journal
from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample
from specflow_nb.errors import OrchestrationConflict, TasksFileMissing
from specflow_nb.models import OrchestrationExecution, OrchestrationPhase
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore
from specflow_nb.tasks import parse_tasks
from tests.support.orch_helpers import (
    DEMO_AGENT,
    agent_runs,
    argv_of,
    base_config,
    big_project,
    decisions,
    feature_tasks,
    flag_value,
    run_folder,
    run_log,
    settle,
    wait_until,
    write_script,
)

pytestmark = pytest.mark.anyio

GIT = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
HEAL_SENTENCE = "Complete only these remaining tasks"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "demo-runs.jsonl"


def settings(log_file: Path, script: Path | None = None, **env: str) -> EngineSettings:
    agent_env = {"SPECFLOW_DEMO_LOG": str(log_file), **env}
    if script is not None:
        agent_env["SPECFLOW_DEMO_SCRIPT"] = str(script)
    return EngineSettings(agent_env=agent_env)


def git(project: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=project, check=True, capture_output=True, text=True).stdout


def healer_runs(project: Path, ex: OrchestrationExecution) -> list[str]:
    return [rid for rid in ex.executions.healers if (run_folder(project, rid) / "argv.json").exists()]


def unchecked(project: Path) -> list[str]:
    parsed = parse_tasks(feature_tasks(project).read_text(encoding="utf-8"))
    return [t.id for t in parsed.tasks if not t.done]


def run_pgid(project: Path, run_id: str) -> int:
    """The run's process group id: the pid the runner started (the agent may run as its child)."""
    return int(json.loads((run_folder(project, run_id) / "pid.json").read_text())["pid"])


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_group_gone(pgid: int, timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while process_group_alive(pgid):
            await anyio.sleep(0.05)


# ---------------------------------------------------------------------------------------------------- whole phase


async def test_fifty_tasks_six_sections_from_design_to_merge(root: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=6, total=50)
    async with Orchestrator(root, settings(log_file)) as orch:
        preview = orch.preview("big", {"agentCommand": DEMO_AGENT})
        assert preview.preflight.ok, preview.preflight.problems
        assert preview.batch_plan is not None and len(preview.batch_plan.batches) == 6
        ex = await orch.start("big", {"agentCommand": DEMO_AGENT})
        ex = await settle(orch, "big")
        assert ex.status.value == "waiting_merge", ex.recovery_context
        assert [b.status.value for b in ex.batches.items] == ["completed"] * 6
        assert sum(len(b.task_ids) for b in ex.batches.items) == 50
        assert unchecked(project) == []
        log = run_log(log_file)
        # Smart config skipped design (spec, plan and tasks are there); analyze, six batches and verify ran
        # exactly once each, and every task was worked on by exactly one run.
        assert ex.step_status[OrchestrationPhase.DESIGN].value == "skipped" and "step_skipped" in decisions(ex)
        assert len(log) == 8
        worked = [t for r in log for t in r["taskIds"]]
        assert sorted(worked) == [f"T{n:03d}" for n in range(1, 51)]
        assert ex.executions.analyze and ex.executions.verify
        assert len(ex.executions.implement) == 6
        assert "merge_triggered" not in decisions(ex)
        # every spawn's save went through the record's journal, and the record file followed each one
        record = OrchestrationStore(project).path_for(ex.id)
        assert journal.journal_path(record).exists()
        assert OrchestrationExecution.model_validate_json(record.read_bytes()) == ex

        ex = await orch.command("big", {"action": "merge"}, actor="alice")
        ex = await settle(orch, "big")
        assert ex.status.value == "completed"
        assert ex.current_phase.value == "complete" and ex.completed_at is not None
        assert "merge_triggered" in decisions(ex) and decisions(ex)[-1] == "complete"
        assert SAMPLE_FEATURE in git(project, "branch", "--merged", "main")
        assert git(project, "log", "-1", "--format=%P", "main").count(" ") == 1  # a merge commit (--no-ff)
    # "complete" was saved (MISSION §9): a fresh read of the file says so.
    stored = Orchestrator(root).status("big")
    assert stored is not None and stored.status.value == "completed" and stored.version == ex.version
    assert not journal.journal_path(record).exists()  # ended: no spawn follows, the journal went with it


async def test_design_writes_the_artifacts(root: Path, log_file: Path) -> None:
    project = prepare_sample(root / "todo")
    feature = project / "specs" / SAMPLE_FEATURE
    (feature / "tasks.md").unlink()
    (feature / "plan.md").unlink()
    async with Orchestrator(root, settings(log_file)) as orch:
        await orch.start("todo", {"agentCommand": DEMO_AGENT, "autoMerge": True})
        ex = await settle(orch, "todo")
        assert ex.status.value == "completed", ex.recovery_context
    assert (feature / "plan.md").exists() and unchecked(project) == []
    assert ex.batches.total == 2  # the demo design's tasks.md: two sections, planned after design wrote it


async def test_additional_context_reaches_every_prompt(root: Path, log_file: Path) -> None:
    prepare_sample(root / "todo")
    async with Orchestrator(root, settings(log_file)) as orch:
        await orch.start("todo", {"agentCommand": DEMO_AGENT, "additionalContext": "ZEBRA-CONTEXT-42"})
        ex = await settle(orch, "todo")
        assert ex.status.value == "waiting_merge"
    prompts = [
        (run_folder(root / "todo", rid) / "prompt.md").read_text()
        for rid in [ex.executions.design, ex.executions.analyze, *ex.executions.implement, ex.executions.verify]
        if rid
    ]
    assert ex.executions.design is None  # smart config: the sample's design artifacts are there
    assert len(prompts) == 2 + len(ex.executions.implement)
    assert all("ZEBRA-CONTEXT-42" in p for p in prompts)


# ---------------------------------------------------------------------------------------------------- healing


async def test_failed_batch_is_healed_and_stays_healed(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=3, total=12)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 2: Part 2", "run": 1, "scenario": "partial"}])
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config(autoMerge=True))
        ex = await settle(orch, "big")
    assert ex.status.value == "completed", ex.recovery_context
    assert [b.status.value for b in ex.batches.items] == ["completed", "healed", "completed"]
    healed = ex.batches.items[1]
    assert healed.heal_attempts == 1 and healed.healer_execution_id
    names = decisions(ex)
    assert names.index("batch_failed") < names.index("heal_started") < names.index("batch_healed")
    # The healer resumed + forked the failed batch's session and got only the remaining tasks.
    failed_run = ex.executions.implement[1]
    failed_session = next(r for r in run_log(log_file) if r["taskIds"] == healed.task_ids)["sessionId"]
    argv = argv_of(project, healed.healer_execution_id)
    assert flag_value(argv, "--resume") == failed_session and "--fork-session" in argv
    healer_log = [r for r in run_log(log_file) if HEAL_SENTENCE in r["promptHead"] or r["resume"] == failed_session]
    assert len(healer_log) == 1
    half = healed.task_ids[: len(healed.task_ids) // 2]
    assert sorted(healer_log[0]["taskIds"]) == sorted(t for t in healed.task_ids if t not in half)
    assert run_folder(project, failed_run).is_dir()
    assert unchecked(project) == []


async def test_heal_that_fails_needs_attention_with_one_healer(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=3, total=12)
    rules = [{"match": "Phase 2: Part 2", "scenario": "partial"}]  # the batch and every healer leave tasks
    script = write_script(tmp_path / "s.json", rules)
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config(maxHealAttempts=1))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    ctx = ex.recovery_context
    assert ctx is not None and ctx.batch_index == 1
    assert set(ctx.options) >= {"retry", "skip", "abort"}
    batch_tasks = ex.batches.items[1].task_ids
    assert ctx.remaining_task_ids and set(ctx.remaining_task_ids) == set(unchecked(project)) & set(batch_tasks)
    assert ctx.failed_workflow_id
    assert ex.batches.items[1].status.value == "failed" and ex.batches.items[1].heal_attempts == 1
    assert ex.batches.items[2].status.value == "pending"
    log = agent_runs(log_file)  # (the diagnosis helper's run left out)
    assert len([r for r in log if r["fork"]]) == 1  # exactly one healer (healers resume + fork)
    assert len(log) == 3  # batch 1, batch 2, one healer: no second heal, batch 3 never started
    assert len(healer_runs(project, ex)) == 1


async def test_retry_after_failed_heal_runs_only_unchecked_tasks(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=2, total=8)
    rules = [{"match": "Phase 1: Part 1", "run": 1, "scenario": "partial"}]
    script = write_script(tmp_path / "s.json", rules)
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config(autoHealEnabled=False, autoMerge=True))
        ex = await settle(orch, "big")
        assert ex.status.value == "needs_attention"
        left = list(ex.recovery_context.remaining_task_ids) if ex.recovery_context else []
        assert left == unchecked(project)[: len(left)] and left
        ex = await orch.command("big", {"action": "recover", "option": "retry"})
        ex = await settle(orch, "big")
    assert ex.status.value == "completed"
    retry = agent_runs(log_file)[1]
    assert retry["taskIds"] == left  # checked tasks are not redone


# ---------------------------------------------------------------------------------------------------- budgets


async def test_per_batch_and_healing_budget_reach_the_cli(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=3, total=9)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 2: Part 2", "run": 1, "scenario": "partial"}])
    budget = {"maxPerBatch": 0.5, "maxTotal": 10.0, "healingBudget": 0.375}
    async with Orchestrator(root, settings(log_file, script, SPECFLOW_DEMO_COST="0.25")) as orch:
        await orch.start("big", base_config(budget=budget))
        ex = await settle(orch, "big")
    assert ex.status.value == "waiting_merge", ex.recovery_context
    for run_id in ex.executions.implement:
        assert flag_value(argv_of(project, run_id), "--max-budget-usd") == "0.5"
    healer = ex.batches.items[1].healer_execution_id
    assert healer and flag_value(argv_of(project, healer), "--max-budget-usd") == "0.375"
    assert flag_value(argv_of(project, ex.executions.verify or ""), "--max-budget-usd") == "0.5"
    assert ex.total_cost_usd == pytest.approx(0.25 * 5)  # three batches, one healer, verify


async def test_total_budget_stops_and_raising_it_continues(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=5, total=10)
    budget = {"maxPerBatch": 5.0, "maxTotal": 0.75}
    async with Orchestrator(root, settings(log_file, SPECFLOW_DEMO_COST="0.25")) as orch:
        await orch.start("big", base_config(budget=budget, autoMerge=True))
        ex = await settle(orch, "big")
        assert ex.status.value == "needs_attention"
        assert ex.recovery_context is not None and "budget" in ex.recovery_context.issue.lower()
        assert "retry" in ex.recovery_context.options
        # Each run was given what was left of the total: 0.75, 0.5, 0.25; nothing left -> no fourth spawn.
        given = [flag_value(argv_of(project, rid), "--max-budget-usd") for rid in ex.executions.implement]
        assert given == ["0.75", "0.5", "0.25"]
        assert len(run_log(log_file)) == 3 and ex.total_cost_usd == pytest.approx(0.75)
        # The batch that could not start never ran: it stays pending (not failed), like the one after it.
        assert [b.status.value for b in ex.batches.items] == ["completed"] * 3 + ["pending", "pending"]
        assert ex.recovery_context.batch_index == 3

        raised = {"maxPerBatch": 5.0, "maxTotal": 2.0}
        ex = await orch.command("big", {"action": "recover", "option": "retry", "budget": raised})
        ex = await settle(orch, "big")
    assert ex.status.value == "completed", ex.recovery_context
    assert len(run_log(log_file)) == 5 + 1 and unchecked(project) == []  # two more batches, then verify
    assert flag_value(argv_of(project, ex.executions.implement[3]), "--max-budget-usd") == "1.25"


async def test_budget_exceeded_by_the_run_stops(root: Path, tmp_path: Path, log_file: Path) -> None:
    big_project(root / "big", sections=2, total=4)
    async with Orchestrator(root, settings(log_file, SPECFLOW_DEMO_COST="0.75")) as orch:
        await orch.start("big", base_config(budget={"maxPerBatch": 0.5}))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None and "budget" in ex.recovery_context.issue.lower()
    # a failed run's cost counts too (and so does the diagnosis, which overshot its 0.5 cap like the real CLI)
    assert ex.total_cost_usd - ex.decision_cost_usd == pytest.approx(0.75)
    assert ex.decision_cost_usd == pytest.approx(0.75)
    assert len(agent_runs(log_file)) == 1  # no healer for a budget stop


# ---------------------------------------------------------------------------------------------------- control


async def test_cancel_mid_batch_kills_the_run(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=2, total=4)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 1: Part 1", "scenario": "hang"}])
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config())
        ex = await wait_until(orch, "big", lambda e: e.current_run is not None and e.current_phase.value == "implement")
        run_id = ex.current_run.execution_id if ex.current_run else ""
        with anyio.fail_after(15):
            while not run_log(log_file):  # the agent process is up and hanging
                await anyio.sleep(0.02)
        pid = run_pgid(project, run_id)
        assert process_group_alive(pid) and run_log(log_file)[0]["pid"] != 0
        ex = await orch.command("big", {"action": "cancel"}, actor="bob")
        assert ex.status.value == "cancelled"
        await wait_group_gone(pid)
        ex = await wait_until(orch, "big", lambda e: "killed_run_ended" in decisions(e))
        assert ex.status.value == "cancelled"
    assert (run_folder(project, run_id) / "kill.json").exists()
    assert len(run_log(log_file)) == 1


async def test_pause_finishes_the_batch_first(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=3, total=9)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 1: Part 1", "scenario": "slow"}])
    async with Orchestrator(root, settings(log_file, script, SPECFLOW_DEMO_DELAY="0.05")) as orch:
        await orch.start("big", base_config(autoMerge=True))
        ex = await wait_until(orch, "big", lambda e: e.current_run is not None and e.current_phase.value == "implement")
        with anyio.fail_after(15):
            while not run_log(log_file):
                await anyio.sleep(0.02)
        pid = run_pgid(project, ex.current_run.execution_id if ex.current_run else "")
        ex = await orch.command("big", {"action": "pause"})
        assert ex.status.value == "running" and ex.pause_requested
        assert process_group_alive(pid)  # pause never kills
        ex = await settle(orch, "big")
        assert ex.status.value == "paused"
        assert [b.status.value for b in ex.batches.items] == ["completed", "pending", "pending"]
        assert len(run_log(log_file)) == 1 and unchecked(project)[0] == "T004"
        ex = await orch.command("big", {"action": "resume"})
        ex = await settle(orch, "big")
    assert ex.status.value == "completed"
    assert len(run_log(log_file)) == 4  # three batches and verify: the paused batch was not run again
    names = decisions(ex)
    assert names.index("pause_requested") < names.index("pause") < names.index("resume")


async def test_questions_and_answers_resume_the_same_session(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=2, total=4)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 2: Part 2", "run": 1, "scenario": "needs_input"}])
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config(autoMerge=True))
        ex = await settle(orch, "big")
        assert ex.status.value == "paused" and ex.waiting_for_input
        assert ex.questions and "storage format" in ex.questions[0].question
        asked = run_log(log_file)[-1]
        with pytest.raises(OrchestrationConflict):
            await orch.command("big", {"action": "resume"})  # only an answer leaves waiting-for-input
        ex = await orch.command("big", {"action": "answer", "answers": {ex.questions[0].id: "JSON lines"}})
        ex = await settle(orch, "big")
    assert ex.status.value == "completed", ex.recovery_context
    resumed_run = ex.executions.implement[-1]
    argv = argv_of(project, resumed_run)
    assert flag_value(argv, "--resume") == asked["sessionId"] and "--fork-session" not in argv
    assert "JSON lines" in (run_folder(project, resumed_run) / "prompt.md").read_text()
    assert unchecked(project) == []


async def test_verify_command_failing_beats_the_agents_word(root: Path, log_file: Path) -> None:
    big_project(root / "big", sections=1, total=2)
    failing = shlex.join([sys.executable, "-c", "import sys; print('3 tests failed'); sys.exit(3)"])
    async with Orchestrator(root, settings(log_file)) as orch:
        await orch.start("big", base_config(verifyCommand=failing, autoMerge=True))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.current_phase.value == "verify"
    ctx = ex.recovery_context
    assert ctx is not None and ctx.step is not None and ctx.step.value == "verify"
    assert "3" in ctx.issue
    assert "merge_triggered" not in decisions(ex)
    verify_out = [r for r in agent_runs(log_file) if not r["taskIds"]]
    assert len(verify_out) == 1  # the agent ran verify (and said passed)


async def test_verify_command_passing(root: Path, log_file: Path) -> None:
    big_project(root / "big", sections=1, total=2)
    ok = shlex.join([sys.executable, "-c", "print('all good')"])
    async with Orchestrator(root, settings(log_file)) as orch:
        await orch.start("big", base_config(verifyCommand=ok))
        ex = await settle(orch, "big")
    assert ex.status.value == "waiting_merge"


async def test_merge_conflict_names_the_file(root: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=1, total=2)
    git(project, "checkout", "-q", "main")
    (project / "README.md").write_text("main's readme\n")
    git(project, "commit", "-qam", "main edits README")
    git(project, "checkout", "-q", SAMPLE_FEATURE)
    (project / "README.md").write_text("the feature's readme\n")
    git(project, "commit", "-qam", "feature edits README")
    async with Orchestrator(root, settings(log_file)) as orch:
        await orch.start("big", base_config(autoMerge=True))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None and "README.md" in ex.recovery_context.issue
    assert ex.current_phase.value == "merge"
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD").strip() == SAMPLE_FEATURE
    assert git(project, "status", "--porcelain", "--untracked-files=no").strip() == ""


async def test_two_concurrent_starts_exactly_one_wins(root: Path, tmp_path: Path, log_file: Path) -> None:
    big_project(root / "big", sections=2, total=4)
    script = write_script(tmp_path / "s.json", [], default="hang")
    async with Orchestrator(root, settings(log_file, script)) as orch:
        results = await asyncio.gather(
            orch.start("big", base_config()), orch.start("big", base_config()), return_exceptions=True
        )
        wins = [r for r in results if isinstance(r, OrchestrationExecution)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1 and len(losses) == 1
        assert isinstance(losses[0], OrchestrationConflict)
        assert str(losses[0].message) == (
            f"Orchestration already in progress: {wins[0].id}. Cancel it first or wait for completion."
        )
        # A second host on the same root (another process's view) is refused too: the file lock decides.
        async with Orchestrator(root, settings(log_file, script)) as other:
            with pytest.raises(OrchestrationConflict, match=wins[0].id):
                await other.start("big", base_config())
        await orch.command("big", {"action": "cancel"})
        ex = await wait_until(orch, "big", lambda e: "killed_run_ended" in decisions(e))
        assert len(orch.list("big")) == 1
        # A finished (cancelled) orchestration does not block a new start.
        await orch.start("big", base_config())
        await orch.command("big", {"action": "cancel"})
        await wait_until(orch, "big", lambda e: "killed_run_ended" in decisions(e))
        assert len(orch.list("big")) == 2 and ex.status.value == "cancelled"


async def test_missing_agent_command_needs_attention(root: Path, log_file: Path) -> None:
    big_project(root / "big", sections=1, total=2)
    async with Orchestrator(root, settings(log_file)) as orch:
        preview = orch.preview("big", base_config(agentCommand="/nonexistent/claude-xyz"))
        assert not preview.preflight.ok and not preview.preflight.agent_found
        assert any("not found" in p for p in preview.preflight.problems)
        await orch.start("big", base_config(agentCommand="/nonexistent/claude-xyz"))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None
    assert "not_installed" in ex.recovery_context.issue or "not found" in ex.recovery_context.issue
    assert "npm install" in ex.recovery_context.issue or "agent command" in ex.recovery_context.issue.lower()


async def test_skipped_design_without_tasks_md_is_refused(root: Path, log_file: Path) -> None:
    project = prepare_sample(root / "todo")
    feature_tasks(project).unlink()
    async with Orchestrator(root, settings(log_file)) as orch:
        preview = orch.preview("todo", base_config())
        assert not preview.preflight.ok and any("tasks" in p for p in preview.preflight.problems)
        with pytest.raises(TasksFileMissing):
            await orch.start("todo", base_config())
        assert orch.status("todo") is None
    assert not (project / ".specflow" / "workflows").exists() or not list(
        (project / ".specflow" / "workflows").glob("orchestration-*.json")
    )


async def test_preview_returns_the_plan_and_preflight(root: Path, log_file: Path) -> None:
    big_project(root / "big", sections=6, total=50)
    async with Orchestrator(root, settings(log_file)) as orch:
        preview = orch.preview("big", base_config())
    plan = preview.batch_plan
    assert plan is not None and [b.section for b in plan.batches] == [f"Phase {n}: Part {n}" for n in range(1, 7)]
    assert plan.total_incomplete == 50 and "6 batch" in plan.summary
    assert preview.preflight.ok and preview.preflight.agent_found
    assert preview.preflight.branch == SAMPLE_FEATURE and preview.preflight.target_branch == "main"
    assert preview.preflight.feature_dir == f"specs/{SAMPLE_FEATURE}"
    assert run_log(log_file) == []  # nothing ran


# ---------------------------------------------------------------------------------------------------- live channel


async def test_subscribe_sees_every_version_in_order(root: Path, log_file: Path) -> None:
    big_project(root / "big", sections=3, total=6)
    seen: list[tuple[str, int]] = []
    async with Orchestrator(root, settings(log_file)) as orch:
        unsubscribe = orch.subscribe(lambda ex: seen.append((ex.id, ex.version)))
        ex = await orch.start("big", base_config(autoMerge=True))
        ex = await settle(orch, "big")
        unsubscribe()
    assert ex.status.value == "completed"
    assert {i for i, _ in seen} == {ex.id}
    assert [v for _, v in seen] == list(range(1, ex.version + 1))


async def test_wait_for_change_wakes_on_the_transition(root: Path, tmp_path: Path, log_file: Path) -> None:
    big_project(root / "big", sections=1, total=2)
    script = write_script(tmp_path / "s.json", [], default="hang")
    async with Orchestrator(root, settings(log_file, script)) as orch:
        await orch.start("big", base_config())
        ex = await wait_until(orch, "big", lambda e: e.current_run is not None and e.current_phase.value == "implement")
        woke: list[OrchestrationExecution | None] = []

        async def waiter() -> None:
            woke.append(await orch.wait_for_change("big", ex.version, 120))

        with anyio.fail_after(20):  # far below the waiter's own 120 s: it woke on the change, not on timeout
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.05)
                assert woke == []
                await orch.command("big", {"action": "cancel"})
        assert woke and woke[0] is not None and woke[0].version > ex.version
        assert woke[0].status.value == "cancelled"
        await wait_until(orch, "big", lambda e: "killed_run_ended" in decisions(e))


async def test_ten_projects_concurrently_on_one_loop(root: Path, log_file: Path) -> None:
    names = [f"p{n}" for n in range(10)]
    for name in names:
        big_project(root / name, sections=2, total=4)
    async with Orchestrator(root, settings(log_file)) as orch:
        for name in names:
            await orch.start(name, base_config(autoMerge=True))
        assert len(orch.active()) >= 1
        with anyio.fail_after(240):
            results = {name: await settle(orch, name, timeout=240) for name in names}
    assert {n: ex.status.value for n, ex in results.items()} == dict.fromkeys(names, "completed")
    for name in names:
        assert unchecked(root / name) == []
        assert SAMPLE_FEATURE in git(root / name, "branch", "--merged", "main")
    assert len(run_log(log_file)) == 10 * 3  # two batches and verify per project


async def test_stall_is_logged_and_the_silent_run_killed(root: Path, tmp_path: Path, log_file: Path) -> None:
    big_project(root / "big", sections=1, total=2)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 1: Part 1", "scenario": "slow"}])
    env = {"SPECFLOW_DEMO_DELAY": "3"}
    async with Orchestrator(root, settings(log_file, script, **env)) as orch:
        await orch.start("big", base_config(staleAfterSeconds=0.3, autoHealEnabled=False))
        ex = await settle(orch, "big", timeout=60)
    assert decisions(ex).count("stalled") >= 1
    assert ex.status.value == "needs_attention"  # the second stall killed it; no healing: a human decides
    kill = (run_folder(root / "big", ex.executions.implement[0]) / "kill.json").read_text()
    assert "stalled" in kill


async def test_stopping_the_host_leaves_the_run_going(root: Path, tmp_path: Path, log_file: Path) -> None:
    project = big_project(root / "big", sections=1, total=2)
    script = write_script(tmp_path / "s.json", [{"match": "Phase 1: Part 1", "run": 1, "scenario": "slow"}])
    env = {"SPECFLOW_DEMO_DELAY": "0.1"}
    async with Orchestrator(root, settings(log_file, script, **env)) as orch:
        await orch.start("big", base_config(autoMerge=True))
        ex = await wait_until(orch, "big", lambda e: e.current_run is not None and e.current_phase.value == "implement")
        with anyio.fail_after(15):
            while not run_log(log_file):
                await anyio.sleep(0.02)
    pid = run_pgid(project, ex.current_run.execution_id if ex.current_run else "")
    assert process_group_alive(pid)  # detached: the host's exit does not end it
    async with Orchestrator(root, settings(log_file, script, **env)) as orch:
        ex = await settle(orch, "big")
    assert ex.status.value == "completed"
    assert "reconcile_adopted" in decisions(ex)
    assert len(run_log(log_file)) == 2  # the batch (adopted, not re-run) and verify
