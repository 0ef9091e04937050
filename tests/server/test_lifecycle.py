"""A whole phase driven only through the REST API, with the demo agent as the agent command.

Needs the engine (specflow_nb.orchestrator); these tests are skipped until it exists.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from specflow_nb.demo import prepare_sample
from specflow_nb.models import STEP_ORDER, OrchestrationPhase
from specflow_nb.server.extension import SpecflowExtension

from .openapi_check import check_response

pytest.importorskip("specflow_nb.orchestrator", reason="the engine (orchestrator.py) is not written yet")

DEMO_AGENT = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
STATUS = "workflow/orchestrate/status"
#: A bound on a whole phase with the demo agent (it takes a few seconds); a hang fails instead of waiting forever.
PHASE_DEADLINE = 120.0


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    jp_server_config["SpecflowExtension"] = Config(
        {"agent_command": DEMO_AGENT, "agent_env": {"SPECFLOW_DEMO_DELAY": "0.05"}}
    )
    return jp_server_config


@pytest.fixture
def project(jp_root_dir: Path) -> str:
    prepare_sample(jp_root_dir / "todo")
    return "todo"


@pytest.fixture
def running(specflow_ext: SpecflowExtension, jp_asyncio_loop: asyncio.AbstractEventLoop) -> SpecflowExtension:
    """The extension with its loop started (pytest-jupyter's server never runs ServerApp._post_start).

    Started on the test's own event loop, so the engine's tasks run while the test awaits the API.
    """
    jp_asyncio_loop.run_until_complete(specflow_ext.start_loop())
    return specflow_ext


async def wait_until(api: Any, project: str, done: Any, *, since: int = 0) -> tuple[dict[str, Any], list[dict]]:
    """Long-poll until ``done(orchestration)``; returns it and every state the live channel delivered."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PHASE_DEADLINE
    while loop.time() < deadline:
        code, body = await api("GET", STATUS, params={"projectId": project, "since": since, "timeout": 10})
        assert code == 200, body
        check_response("GET", STATUS, 200, body)
        ex = body["orchestration"]
        if ex is not None and ex["version"] > since:
            seen.append(ex)
            since = ex["version"]
        if ex is not None and done(ex):
            return ex, seen
    raise AssertionError(f"not done within {PHASE_DEADLINE}s; last states: {[s['status'] for s in seen[-5:]]}")


async def test_preview_shows_the_batch_plan(api: Any, project: str, running: SpecflowExtension) -> None:
    code, body = await api("GET", STATUS, params={"projectId": project, "preview": "true"})
    assert code == 200, body
    check_response("GET", STATUS, 200, body)
    assert body["orchestration"] is None
    assert body["batchPlan"]["batches"], body
    assert body["batchPlan"]["batches"][0]["section"].startswith("Phase 1")


async def test_whole_phase_through_the_api(
    api: Any, project: str, running: SpecflowExtension, jp_root_dir: Path
) -> None:
    code, started = await api(
        "POST", "workflow/orchestrate", body={"projectId": project, "config": {"skipDesign": True}}
    )
    assert code == 201, started
    check_response("POST", "workflow/orchestrate", 201, started)
    oid = started["orchestration"]["id"]
    assert running.current_activity() is True

    code, conflict = await api("POST", "workflow/orchestrate", body={"projectId": project})
    assert code == 409
    assert conflict["error"] == f"Orchestration already in progress: {oid}. Cancel it first or wait for completion."
    check_response("POST", "workflow/orchestrate", 409, conflict)

    ex, seen = await wait_until(api, project, lambda e: e["status"] in ("waiting_merge", "completed", "failed"))
    assert ex["status"] == "waiting_merge", ex.get("errorMessage")
    # the live channel delivered the states in order: versions increase, steps never go backwards
    versions = [s["version"] for s in seen]
    assert versions == sorted(set(versions))
    order = [STEP_ORDER.index(OrchestrationPhase(s["currentPhase"])) for s in seen if s["currentPhase"] != "complete"]
    assert order == sorted(order)

    code, body = await api("POST", "workflow/orchestrate/merge", body={"projectId": project, "id": oid})
    assert code == 200, body
    check_response("POST", "workflow/orchestrate/merge", 200, body)
    ex, _ = await wait_until(api, project, lambda e: e["status"] in ("completed", "failed", "needs_attention"))
    assert ex["status"] == "completed", ex.get("errorMessage")
    assert all(b["status"] in ("completed", "healed") for b in ex["batches"]["items"])
    tasks = (jp_root_dir / "todo" / "specs" / "0001-todo-cli" / "tasks.md").read_text()
    assert "- [ ] T0" not in tasks
    assert running.current_activity() is False

    code, listing = await api("GET", "workflow/orchestrate/list", params={"projectId": project})
    assert code == 200 and [o["id"] for o in listing["orchestrations"]] == [oid]
    check_response("GET", "workflow/orchestrate/list", 200, listing)
    code, projects = await api("GET", "projects")
    assert code == 200
    check_response("GET", "projects", 200, projects)
    (card,) = projects["projects"]
    assert card["projectId"] == "todo" and card["orchestration"]["id"] == oid and card["status"]

    code, again = await api("POST", "workflow/orchestrate/merge", body={"projectId": project, "id": oid})
    assert code == 409, again  # merge is only valid in waiting_merge
    check_response("POST", "workflow/orchestrate/merge", 409, again)


async def test_long_poll_answers_on_a_change(api: Any, project: str, running: SpecflowExtension) -> None:
    code, started = await api(
        "POST", "workflow/orchestrate", body={"projectId": project, "config": {"skipDesign": True}}
    )
    assert code == 201
    version = started["orchestration"]["version"]
    waiter = asyncio.ensure_future(api("GET", STATUS, params={"projectId": project, "since": version, "timeout": 60}))
    code, cancelled = await api("POST", "workflow/orchestrate/cancel", body={"projectId": project})
    assert code == 200, cancelled
    code, body = await waiter
    # a timeout would have answered the same version after 60 s; a newer one means the change woke it
    assert code == 200 and body["orchestration"]["version"] > version


async def test_missing_tasks_md_when_design_is_skipped(api: Any, jp_root_dir: Path, running: SpecflowExtension) -> None:
    (jp_root_dir / "bare" / "specs" / "0001-x").mkdir(parents=True)
    (jp_root_dir / "bare" / "specs" / "0001-x" / "spec.md").write_text("# Spec\n")
    code, body = await api("POST", "workflow/orchestrate", body={"projectId": "bare", "config": {"skipDesign": True}})
    assert code == 400, body
    assert body["code"] == "TasksFileMissing"
    check_response("POST", "workflow/orchestrate", 400, body)


async def test_extension_restart_mid_phase(api: Any, project: str, running: SpecflowExtension) -> None:
    code, _ = await api(
        "POST", "workflow/orchestrate", body={"projectId": project, "config": {"skipDesign": True, "autoMerge": True}}
    )
    assert code == 201
    await wait_until(api, project, lambda e: e["currentPhase"] == "implement" and e["batches"]["current"] >= 1)
    await running.stop_loop()
    running._orchestrator = None  # a new engine, as after a server restart: it only has the files on disk
    await running.start_loop()
    ex, _ = await wait_until(api, project, lambda e: e["status"] in ("completed", "failed", "needs_attention"))
    assert ex["status"] == "completed", ex.get("errorMessage")


async def test_start_list_merge_and_preview_carry_the_original_fields(
    api: Any, project: str, running: SpecflowExtension, jp_root_dir: Path
) -> None:
    """The REST shapes the original SpecFlow dashboard read (issue 16): workflow {id, skill, status, sessionId},
    batchPlan.batchCount/taskCount (also in the preview), list's total and batchProgress, merge's workflowExecution."""
    commands = jp_root_dir / project / ".claude" / "commands"
    commands.mkdir(parents=True)
    (commands / "flow.implement.md").write_text("Implement. $ARGUMENTS\n")

    code, preview = await api("GET", STATUS, params={"projectId": project, "preview": "true"})
    assert code == 200
    assert preview["batchPlan"]["batchCount"] == 4 and preview["batchPlan"]["taskCount"] == 20
    assert {s["step"]: s["skill"] for s in preview["promptSources"]}["implement"] == "flow.implement"

    code, started = await api(
        "POST", "workflow/orchestrate", body={"projectId": project, "config": {"skipDesign": True, "skipAnalyze": True}}
    )
    assert code == 201, started
    check_response("POST", "workflow/orchestrate", 201, started)
    workflow = started["workflow"]
    assert workflow["step"] == "implement" and workflow["skill"] == "flow.implement"
    assert workflow["id"] == workflow["executionId"] and workflow["id"].endswith("batch1")
    assert workflow["status"] == "running"
    assert started["batchPlan"]["batchCount"] == 4 and started["batchPlan"]["taskCount"] == 20

    ex, _ = await wait_until(api, project, lambda e: e["status"] == "waiting_merge")
    code, listing = await api("GET", "workflow/orchestrate/list", params={"projectId": project})
    assert code == 200
    check_response("GET", "workflow/orchestrate/list", 200, listing)
    assert listing["total"] == 1
    assert listing["orchestrations"][0]["batchProgress"] == {"completed": 4, "total": 4}

    code, merged = await api("POST", "workflow/orchestrate/merge", body={"projectId": project, "id": ex["id"]})
    assert code == 200, merged
    check_response("POST", "workflow/orchestrate/merge", 200, merged)
    run = merged["workflowExecution"]
    assert run is not None and run["id"] == merged["orchestration"]["executions"]["merge"]
    assert run["status"] in ("running", "completed")
    await wait_until(api, project, lambda e: e["status"] == "completed")
    code, again = await api("POST", "workflow/orchestrate/cancel", body={"projectId": project})
    assert code == 409 and "workflowExecution" not in again  # only merge answers carry it


def test_the_openapi_document_shows_the_original_fields() -> None:
    from specflow_nb.server.openapi import render

    doc = render()
    for field in ("batchCount", "taskCount", "batchProgress", "workflowExecution", "skill", "sessionId", "total"):
        assert f'"{field}"' in doc, field
