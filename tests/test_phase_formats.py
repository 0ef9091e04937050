"""A whole phase with the demo agent on a tasks.md written the way real projects write it (issue 16).

T998–T1002 across sections (spec-kit goes on to four digits after T999), tasks done before the start, a deferred
task, spec-kit's legend line and a commented-out task: every pending task is completed, none is skipped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from specflow_nb import summary
from specflow_nb.models import OrchestrationPhase
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.tasks import all_done, parse_tasks
from tests.support.orch_helpers import DEMO_AGENT, feature_tasks, run_log, settle

pytestmark = pytest.mark.anyio

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]

TASKS = """\
# Tasks

## Format: `[ID] [P?] [Story] Description`

## Phase 1: Done before

- [x] T001 Old work
- [x] T002 [P] Old work too

## Phase 2: Last three-digit tasks

- [ ] T998 [P] [US1] Add the thing in src/a.py
- [ ] T999 [P1] [US1] [FR-001] Add the other thing in src/b.py

<!--
- [ ] T997 commented out: not a task
-->

## Phase 3: Past T999

- [ ] T1000 [US2] Four digits (depends on T999)
- [ ] T1001 [P] Four digits too
- [~] T1003 Deferred to a later phase

## Phase 4: Polish

- [ ] T1002 The last one

## Notes

- [P] tasks = different files, no dependencies
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_t998_to_t1002_across_sections_all_completed(tmp_path: Path) -> None:
    from specflow_nb.demo import prepare_sample

    root = tmp_path / "root"
    root.mkdir()
    project = prepare_sample(root / "p")
    feature_tasks(project).write_text(TASKS, encoding="utf-8")
    subprocess.run([*GIT, "commit", "-qam", "tasks T998-T1002"], cwd=project, check=True, capture_output=True)
    parsed = parse_tasks(TASKS)
    assert parsed.warnings == [] and not all_done(parsed)
    log_file = tmp_path / "runs.jsonl"
    settings = EngineSettings(agent_env={"SPECFLOW_DEMO_LOG": str(log_file), "CLAUDE_CONFIG_DIR": str(tmp_path)})
    async with Orchestrator(root, settings) as orch:
        preview = orch.preview("p", {"agentCommand": DEMO_AGENT})
        assert preview.batch_plan is not None
        assert [(b.section, b.task_ids) for b in preview.batch_plan.batches] == [
            ("Phase 2: Last three-digit tasks", ["T998", "T999"]),
            ("Phase 3: Past T999", ["T1000", "T1001"]),
            ("Phase 4: Polish", ["T1002"]),
        ]
        assert not preview.batch_plan.used_fallback
        assert "1 deferred (T1003)" in preview.batch_plan.summary
        await orch.start("p", {"agentCommand": DEMO_AGENT})
        ex = await settle(orch, "p")
    assert ex.status.value == "waiting_merge", ex.recovery_context
    # Implement ran (the four-digit tasks were not mistaken for "all done") and every batch completed.
    assert ex.step_status[OrchestrationPhase.IMPLEMENT].value == "completed"
    assert [b.status.value for b in ex.batches.items] == ["completed"] * 3
    worked = sorted(t for r in run_log(log_file) for t in r["taskIds"])
    assert worked == ["T1000", "T1001", "T1002", "T998", "T999"]
    final = parse_tasks(feature_tasks(project).read_text(encoding="utf-8"))
    assert [t.id for t in final.tasks if not t.done] == ["T1003"]  # only the deferred one, untouched
    assert all_done(final)
    done, total = summary.task_counts(ex)
    assert total >= 5 and done == total


async def _run_phase(tmp_path: Path, text: str):
    from specflow_nb.demo import prepare_sample

    root = tmp_path / "root"
    root.mkdir()
    project = prepare_sample(root / "p")
    feature_tasks(project).write_text(text, encoding="utf-8")
    subprocess.run([*GIT, "commit", "-qam", "tasks"], cwd=project, check=True, capture_output=True)
    settings = EngineSettings(agent_env={"SPECFLOW_DEMO_LOG": str(tmp_path / "runs.jsonl")})
    async with Orchestrator(root, settings) as orch:
        await orch.start("p", {"agentCommand": DEMO_AGENT})
        return await settle(orch, "p")


async def test_only_deferred_tasks_left_is_all_done_for_the_engine_too(tmp_path: Path) -> None:
    text = "## Phase 1\n\n- [x] T001 done before\n- [~] T002 deferred\n- [-] T003 deferred\n"
    assert all_done(parse_tasks(text))  # status says run_verify; the engine must agree, not need attention
    ex = await _run_phase(tmp_path, text)
    assert ex.status.value == "waiting_merge", ex.recovery_context
    assert ex.step_status[OrchestrationPhase.IMPLEMENT].value in ("skipped", "completed")


async def test_progress_counts_every_task(tmp_path: Path) -> None:
    text = "## Phase 1\n\n- [x] T001 done before\n- [x] T002 done before\n- [~] T003 deferred\n- [ ] T004 to do\n"
    ex = await _run_phase(tmp_path, text)
    assert ex.status.value == "waiting_merge", ex.recovery_context
    # "N/M tasks" counts every task of tasks.md: the two done before the start and the deferred one included.
    assert summary.task_counts(ex) == (4, 4)
