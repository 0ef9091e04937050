"""What a grant may do on a real JupyterHub (issue 12): a member whose token may write but not execute on the team's
server controls orchestrations with the server's commands only; choosing a command is a 403 naming the permission.

carol's token is narrowed to ``access:servers`` + ``custom:jupyter_server:write:*`` on team-todo (a subset of her
role's ``execute:*``): SpecflowHubAuthorizer then grants specflow read/write but not execute on kernels or
terminals, the example config's "narrower grant".
"""

from __future__ import annotations

from typing import Any

import pytest

from specflow_nb.demo import prepare_sample

from .hubctl import STATUS, As, Hub

TEAM = "team-todo"
PROJECT = "grants"


@pytest.fixture(scope="module")
def members(hub: Hub) -> Any:
    hub.home(TEAM).mkdir(parents=True, exist_ok=True)
    prepare_sample(hub.home(TEAM) / PROJECT)
    hub.start_servers([TEAM])
    r = hub.api(
        "POST",
        "users/carol/tokens",
        json_body={
            "note": "write, no execute",
            "expires_in": 3600,
            "scopes": [f"access:servers!user={TEAM}", f"custom:jupyter_server:write:*!user={TEAM}"],
        },
    )
    assert r.status_code == 201, r.text
    narrow = As(hub, TEAM, str(r.json()["token"]))
    full = As(hub, TEAM, hub.token("alice"))
    yield narrow, full
    narrow.close()
    full.close()


def test_write_without_execute_cannot_choose_what_runs(members: Any, hub: Hub) -> None:
    narrow, full = members
    marker = hub.home(TEAM) / PROJECT / "pwned"
    for config, fields in [
        ({"verifyCommand": f"touch {marker}"}, ["verifyCommand"]),
        ({"model": "opus", "verifyCommand": f"touch {marker}"}, ["verifyCommand", "model"]),
    ]:
        code, body = narrow.post("workflow/orchestrate", {"projectId": PROJECT, "config": config})
        assert code == 403, body
        assert body["details"]["fields"] == fields
        assert "execute on kernels or terminals" in body["error"]
    assert not marker.exists()
    # the preview tells the panel to show these fields read-only
    code, body = narrow.get(STATUS, projectId=PROJECT, preview="true")
    assert code == 200, body
    assert body["permissions"]["mayExecute"] is False and body["permissions"]["editableCommandFields"] == []
    code, body = full.get(STATUS, projectId=PROJECT, preview="true")
    assert code == 200 and body["permissions"]["mayExecute"] is True
    # the hub's servers set agent_command: a request's agentCommand is then no choice (the server's runs), and
    # with the server's commands the narrow member may start (the log names carol, the hub user)
    config = {"skipDesign": True, "skipAnalyze": True, "pauseBetweenBatches": True, "agentCommand": f"touch {marker}"}
    code, body = narrow.post("workflow/orchestrate", {"projectId": PROJECT, "config": config})
    assert code == 201, body
    code, body = narrow.post("workflow/orchestrate/cancel", {"projectId": PROJECT})
    assert code == 200, body
    actors = {(e.get("data") or {}).get("actor") for e in body["orchestration"]["decisionLog"]} - {None}
    assert actors == {"carol"}, actors
    assert not marker.exists()
