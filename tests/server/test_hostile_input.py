"""Hostile values and links out of the root (issue 12): every one is a 4xx naming the problem, never a 500 or a 503,
and nothing is read or written outside the project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.server import api as api_models
from specflow_nb.server.handlers import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth

from .openapi_check import check_response

START = "workflow/orchestrate"
STATUS = "workflow/orchestrate/status"
POST_ROUTES = [r for r in api_models.ROUTES if r.method == "POST"]


@pytest.fixture
def project(jp_root_dir: Path) -> str:
    prepare_sample(jp_root_dir / "todo")
    return "todo"


# ---- non-finite and out-of-range numbers -----------------------------------------------------------------------

NUMBERS: list[tuple[str, str]] = [
    ('{"projectId": "todo", "config": {"budget": {"maxTotal": Infinity}}}', "config.budget.maxTotal"),
    ('{"projectId": "todo", "config": {"budget": {"maxPerBatch": NaN}}}', "config.budget.maxPerBatch"),
    ('{"projectId": "todo", "config": {"budget": {"maxPerBatch": 1e308}}}', "config.budget.maxPerBatch"),
    ('{"projectId": "todo", "config": {"budget": {"healingBudget": 10000.01}}}', "config.budget.healingBudget"),
    ('{"projectId": "todo", "config": {"staleAfterSeconds": 1e309}}', "config.staleAfterSeconds"),
    ('{"projectId": "todo", "config": {"staleAfterSeconds": 86401}}', "config.staleAfterSeconds"),
    ('{"projectId": "todo", "config": {"staleAfterSeconds": -Infinity}}', "config.staleAfterSeconds"),
]


@pytest.mark.parametrize(("body", "field"), NUMBERS, ids=lambda v: v[-40:])
async def test_non_finite_and_huge_numbers_are_400_naming_the_field(
    body: str, field: str, api: Any, project: str, jp_root_dir: Path
) -> None:
    code, reply = await api("POST", START, body=body)
    assert code == 400, reply
    assert field in reply["error"], reply
    check_response("POST", START, 400, reply)
    assert not (jp_root_dir / project / ".specflow" / "workflows").exists()  # nothing was started


async def test_resume_budget_is_checked_too(api: Any, project: str) -> None:
    body = '{"projectId": "todo", "budget": {"maxTotal": Infinity}}'
    code, reply = await api("POST", "workflow/orchestrate/resume", body=body)
    assert code == 400 and "budget.maxTotal" in reply["error"], reply


async def test_largest_allowed_values_are_accepted_by_the_preview(api: Any, project: str) -> None:
    config = {"budget": {"maxTotal": 10000, "maxPerBatch": 10000}, "staleAfterSeconds": 86400}
    code, reply = await api("GET", STATUS, params={"projectId": project, "preview": "1", "config": json.dumps(config)})
    assert code == 200, reply


# ---- nesting, size, queries ------------------------------------------------------------------------------------


def test_json_depth_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth(b"[" * 100_000) == 100_000
    assert json_depth(b'"\\"[["') == 0


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r.path)
async def test_deep_nesting_is_400_and_a_huge_body_413(route: api_models.Route, api: Any) -> None:
    code, reply = await api("POST", route.path, body="[" * 100_000)
    assert code == 400, reply
    assert "nested" in reply["error"]
    check_response("POST", route.path, 400, reply)
    nested = '{"projectId": "p", "x": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}"
    code, reply = await api("POST", route.path, body=nested)
    assert code == 400 and "nested" in reply["error"], reply
    big = json.dumps({"projectId": "p", "pad": "x" * (MAX_BODY_BYTES + 1)})
    code, reply = await api("POST", route.path, body=big)
    assert code == 413, reply
    assert "bytes" in reply["error"]
    check_response("POST", route.path, 413, reply)


QUERIES: list[tuple[dict[str, str], str]] = [
    ({"since": "1" + "0" * 309}, "since"),
    ({"since": "9" * 40}, "since"),
    ({"timeout": "1e309"}, "timeout"),
    ({"timeout": "nan"}, "timeout"),
    ({"timeout": "3601"}, "timeout"),
    ({"preview": "1", "config": "[" * 70}, "nested"),
    ({"preview": "1", "config": '{"staleAfterSeconds": Infinity}'}, "staleAfterSeconds"),
]


@pytest.mark.parametrize(("params", "expected"), QUERIES, ids=lambda v: str(v)[:40])
async def test_hostile_queries_are_400(params: dict[str, str], expected: str, api: Any, project: str) -> None:
    code, reply = await api("GET", STATUS, params={"projectId": project, **params})
    assert code == 400, reply
    assert expected in reply["error"], reply
    check_response("GET", STATUS, 400, reply)


@pytest.mark.parametrize("route", [r for r in api_models.ROUTES if r.path != "projects"], ids=lambda r: r.path)
async def test_path_errors_caused_by_the_request_are_400(route: api_models.Route, api: Any, project: str) -> None:
    for project_id in ("x" * 300, f"{project}/specs/0001-todo-cli/spec.md/deeper", "a/" + "b" * 256):
        if route.method == "GET":
            code, reply = await api("GET", route.path, params={"projectId": project_id})
        else:
            code, reply = await api("POST", route.path, body={"projectId": project_id})
        assert code in (400, 404), (project_id, reply)  # never a 503 storage error
        assert reply["error"] and reply.get("code") != "StorageError", reply
    code, reply = await api("GET", STATUS, params={"projectId": "x" * 300})
    assert code == 400 and "255" in reply["error"], reply


# ---- invalid records on disk -----------------------------------------------------------------------------------


def _record(jp_root_dir: Path, project: str, name: str, **changes: Any) -> Path:
    folder = jp_root_dir / project / ".specflow" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "id": name,
        "projectId": project,
        "status": "running",
        "startedAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        **changes,
    }
    path = folder / f"orchestration-{name}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "../../elsewhere"},
        {"featureDir": "../../outside/specs/0001-x"},
        {"version": -3},
        {"totalCostUsd": float("inf")},
        {"config": {"budget": {"maxTotal": 1e308}}},
    ],
    ids=["id", "featureDir", "version", "infinite-cost", "huge-budget"],
)
async def test_an_invalid_record_is_set_aside_and_never_blocks(
    changes: dict[str, Any], api: Any, project: str, jp_root_dir: Path
) -> None:
    path = _record(jp_root_dir, project, "20260101T000000-aaaaaa", **changes)
    code, reply = await api("GET", "workflow/orchestrate/list", params={"projectId": project})
    assert code == 200 and reply["orchestrations"] == [], reply
    assert not path.exists()
    aside = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(aside) == 1
    # the project is not stuck: a preview sees no orchestration in progress
    code, reply = await api("GET", STATUS, params={"projectId": project, "preview": "1"})
    assert code == 200 and reply["orchestration"] is None
    assert reply["preflight"]["activeOrchestrationId"] is None


# ---- links out of the project ----------------------------------------------------------------------------------

LINKS = [".specflow", "specs", "specs/0002-elsewhere", ".specflow/workflows", ".specflow/inbox", ".specflow/locks"]


@pytest.mark.parametrize("link", LINKS)
async def test_a_link_out_of_the_project_is_403_naming_it(
    link: str, api: Any, project: str, jp_root_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = jp_root_dir / project / link
    if target.exists():
        # move the real folder out and link to it (what a hostile project would do)
        target.rename(outside / target.name)
        target.symlink_to(outside / target.name, target_is_directory=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        (outside / target.name).mkdir()
        target.symlink_to(outside / target.name, target_is_directory=True)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    for method, path in [("GET", STATUS), ("GET", "workflow/orchestrate/list"), ("POST", START)]:
        if method == "GET":
            code, reply = await api(method, path, params={"projectId": project, "preview": "1"})
        else:
            code, reply = await api(method, path, body={"projectId": project})
        assert code == 403, (path, reply)
        assert f"'{link}'" in reply["error"], reply
        assert reply["details"]["link"] == link
        check_response(method, path, 403, reply)
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before  # nothing written outside


async def test_a_linked_project_does_not_break_the_overview(
    api: Any, project: str, jp_root_dir: Path, tmp_path: Path
) -> None:
    prepare_sample(jp_root_dir / "hostile")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (jp_root_dir / "hostile" / ".specflow").symlink_to(outside, target_is_directory=True)
    code, reply = await api("GET", "projects")
    assert code == 200, reply
    check_response("GET", "projects", 200, reply)
    cards = {p["projectId"]: p for p in reply["projects"]}
    assert cards["todo"]["statusError"] is None and cards["todo"]["status"]
    assert "'.specflow'" in cards["hostile"]["statusError"] and cards["hostile"]["status"] is None
    assert list(outside.iterdir()) == []


async def test_a_path_too_long_for_the_os_is_400_not_503(api: Any, project: str) -> None:
    # short names, but root + project + .specflow/... is past PATH_MAX: the OS answers ENAMETOOLONG
    project_id = "a/" * 2040
    code, reply = await api("GET", STATUS, params={"projectId": project_id})
    assert code == 400, reply
    assert reply.get("code") != "StorageError", reply
    check_response("GET", STATUS, 400, reply)
