"""Typed end to end (issue 17): the preview, the preflight and the project status are models from the engine through a
real `jupyter server` and the client to the widget, the OpenAPI document lists them, and the plan's fallback warning
reaches the Start form once, in one wording."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from specflow_nb.client import SpecflowClient
from specflow_nb.demo import prepare_sample
from specflow_nb.models import OrchestrationConfig, Preflight, Preview, ProjectStatus, PromptSource
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.server.api import StatusResponse
from specflow_nb.server.openapi import OPENAPI_PATH, build_openapi
from specflow_nb.widgets.remote import RemoteBackend
from specflow_nb.widgets.start_modal import StartOrchestrationModal
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server
from tests.support.orch_helpers import DEMO_AGENT

#: A tasks.md with no ``##`` section holding a task: the plan falls back to fixed-size batches.
FLAT_TASKS = "# Tasks\n\n" + "".join(f"- [ ] T{n:03d} Task {n}\n" for n in range(1, 21))
CONFIG = OrchestrationConfig.model_validate({"agentCommand": DEMO_AGENT, "batchSizeFallback": 6})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("typed-live")
    root, runtime = base / "root", base / "runtime"
    prepare_sample(root / "todo")
    flat = prepare_sample(root / "flat")
    (tasks,) = flat.glob("specs/*/tasks.md")
    tasks.write_text(FLAT_TASKS, encoding="utf-8")
    with jupyter_server(root, runtime, base=base):
        yield root, runtime


@pytest.fixture
def client(server: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[SpecflowClient]:
    root, runtime = server
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    with SpecflowClient(cwd=root / "todo") as c:
        yield c


def test_preview_preflight_and_status_are_models_through_the_server_and_the_client(
    server: tuple[Path, Path], client: SpecflowClient
) -> None:
    root, _ = server
    response = client.preview("todo", CONFIG)
    assert isinstance(response.preflight, Preflight) and isinstance(response.project_status, ProjectStatus)
    assert all(isinstance(s, PromptSource) for s in response.prompt_sources) and response.prompt_sources
    preview = response.preview()
    assert isinstance(preview, Preview)
    # the same models the engine computes in this process (the server adds nothing, loses nothing)
    local = Orchestrator(root, EngineSettings()).preview("todo", CONFIG)
    assert preview.project_status == local.project_status
    assert preview.batch_plan == local.batch_plan
    assert preview.prompt_sources == local.prompt_sources
    assert preview.preflight.model_dump(exclude={"agent_command"}) == local.preflight.model_dump(
        exclude={"agent_command"}
    )
    assert preview.preflight.ok and preview.preflight.agent_found and preview.preflight.has_tasks
    status = preview.project_status
    assert status is not None and status.phase_open and status.next_action != "start_phase"
    # the wire: camelCase JSON that validates as the same models (what the OpenAPI document says)
    raw = client._http.get(
        "workflow/orchestrate/status",
        params={"projectId": "todo", "preview": "true", "config": CONFIG.model_dump_json(by_alias=True)},
    ).json()
    assert {"agentFound", "agentCommand", "targetBranch", "activeOrchestrationId"} <= set(raw["preflight"])
    assert {"nextAction", "phase", "progress", "health", "context"} <= set(raw["projectStatus"])
    assert Preflight.model_validate(raw["preflight"]) == response.preflight
    assert ProjectStatus.model_validate(raw["projectStatus"]) == response.project_status
    assert StatusResponse.model_validate(raw).preview() == preview
    # without preview=true there is no preview to read
    assert client.status_with_owner("todo").preview() is None


def test_the_projects_overview_carries_the_typed_status(client: SpecflowClient) -> None:
    by_id = {p.project_id: p for p in client.projects()}
    assert {"todo", "flat"} <= set(by_id)
    for project_id in ("todo", "flat"):
        status = by_id[project_id].status
        assert isinstance(status, ProjectStatus), project_id
        assert status.progress.tasks_total > 0 and status.context.feature_dir


def test_the_fallback_warning_appears_once_in_the_form(client: SpecflowClient) -> None:
    response = client.preview("flat", CONFIG)
    plan = response.batch_plan
    assert plan is not None and plan.used_fallback and len(plan.batches) == 4
    (owned,) = [w for w in plan.warnings if w.startswith("No sections detected")]  # its one owner: the plan
    assert "6 tasks" in owned and "Add '## Phase N: Name' headers" in owned
    assert response.preflight is not None
    assert not any("section" in w.lower() or "fallback" in w.lower() for w in response.preflight.warnings)

    async def form() -> StartOrchestrationModal:
        modal = StartOrchestrationModal(on_start=lambda _c: None, on_cancel=lambda: None)
        modal.reset()
        modal.render_preview(await RemoteBackend(client).preview("flat", CONFIG))
        return modal

    notes = asyncio.run(form()).notes.value
    assert notes.count("No sections detected") == 1, notes
    assert notes.count("fixed-size") == 1 and notes.count("fallback") == 0, notes  # one wording
    assert notes.count("sf-note") == 1, notes  # and nothing else restates it


def test_openapi_lists_the_preview_models() -> None:
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert document == build_openapi()  # committed and current
    schemas = document["components"]["schemas"]
    for name in ("Preview", "Preflight", "ProjectStatus", "PromptSource", "HealthIssue", "StatusContext"):
        assert name in schemas, name
    status = schemas["StatusResponse"]["properties"]
    assert {"$ref": "#/components/schemas/Preflight"} in status["preflight"]["anyOf"]
    assert {"$ref": "#/components/schemas/ProjectStatus"} in status["projectStatus"]["anyOf"]
    summary = schemas["ProjectSummary"]["properties"]["status"]
    assert {"$ref": "#/components/schemas/ProjectStatus"} in summary["anyOf"]
    assert set(schemas["Preview"]["properties"]) == {
        "batchPlan",
        "estimate",
        "preflight",
        "projectStatus",
        "promptSources",
    }


def test_the_dry_run_says_the_fallback_warning_once(tmp_path: Path) -> None:
    from tests.test_cli_orchestrate import run_cli

    project = prepare_sample(tmp_path / "flat")
    (tasks,) = project.glob("specs/*/tasks.md")
    tasks.write_text(FLAT_TASKS, encoding="utf-8")
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-server")}  # no server: the engine in the CLI's process
    args = ("orchestrate", "start", "--dry-run", "--project", str(project), "--set", f"agentCommand={DEMO_AGENT}")
    dry = run_cli(*args, "--set", "batchSizeFallback=6", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("No sections detected") == 1, dry.stdout
    assert "fixed-size batches of 6" in dry.stdout
    as_json = json.loads(run_cli(*args, "--json", env=env).stdout)
    preview = Preview.model_validate(as_json)  # --json prints the Preview model
    assert preview.batch_plan is not None and preview.batch_plan.used_fallback
    assert not any("No sections detected" in w for w in preview.preflight.warnings)
