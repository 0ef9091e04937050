"""projectId is confined to the server's root dir on every route: traversal gets 403, a missing folder 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from specflow_nb.server import api as api_models

from .openapi_check import check_response

PROJECT_ROUTES = [r for r in api_models.ROUTES if r.path != "projects"]


@pytest.fixture
def outside(tmp_path: Path, jp_root_dir: Path) -> Path:
    """A project folder outside the root, and a symlink to it inside the root."""
    target = tmp_path / "outside-project"
    (target / "specs").mkdir(parents=True)
    (jp_root_dir / "link-out").symlink_to(target, target_is_directory=True)
    (jp_root_dir / "inside" / "specs").mkdir(parents=True)
    return target


def _cases(outside: Path) -> list[tuple[str, int, str]]:
    return [
        ("../outside-project", 403, "outside the root"),
        ("inside/../../outside-project", 403, "outside the root"),
        (str(outside), 403, "outside the root"),  # an absolute path
        ("link-out", 403, "outside the root"),  # a symlink leading out
        ("link-out/specs", 403, "outside the root"),
        ("does-not-exist", 404, "not found"),
        ("bad\x00id", 400, "NUL"),
    ]


async def _call(api: Any, route: api_models.Route, project_id: str) -> tuple[int, Any]:
    if route.method == "GET":
        return await api("GET", route.path, params={"projectId": project_id})
    body: dict[str, Any] = {"projectId": project_id}
    extra = {"recover": {"option": "retry"}, "go-back": {"step": "design"}, "answer": {"answers": {"q": "a"}}}
    body.update(extra.get(route.path.rsplit("/", 1)[-1], {}))
    return await api("POST", route.path, body=body)


@pytest.mark.parametrize("route", PROJECT_ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_project_id_is_confined(route: api_models.Route, api: Any, outside: Path) -> None:
    for project_id, status, text in _cases(outside):
        if "\x00" in project_id and route.method == "GET":
            continue  # tornado turns control characters in query arguments into spaces before we see them
        code, reply = await _call(api, route, project_id)
        assert code == status, (project_id, reply)
        assert text in reply["error"], (project_id, reply)
        assert reply["hint"], (project_id, reply)
        check_response(route.method, route.path, status, reply)
