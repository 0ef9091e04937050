"""Per-user isolation on a real hub: alice's orchestrations, runs and logs are unreachable to bob, and each user's
client (given only what a kernel has: JUPYTERHUB_SERVICE_URL, JUPYTERHUB_API_TOKEN) finds its own server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from specflow_nb.demo import prepare_sample

from .hubctl import STATUS, As, Hub, actors

ROUTES_GET = [STATUS, "workflow/orchestrate/list"]
COMMANDS = ["pause", "resume", "cancel", "merge", "recover", "go-back", "answer"]


@pytest.fixture(scope="module")
def two_users(hub: Hub) -> Hub:
    """alice and bob, each with a sample project in their own home, servers running."""
    for user in ("alice", "bob"):
        hub.home(user).mkdir(parents=True, exist_ok=True)
        if not (hub.home(user) / "todo").exists():
            prepare_sample(hub.home(user) / "todo")
    hub.start_servers(["alice", "bob"])
    return hub


def _kernel_client(hub: Hub, user: str, code: str) -> dict:
    """Run ``code`` in a fresh Python with exactly the hub variables a kernel of ``user``'s server inherits."""
    server_env = hub.server_environ(user)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(hub.home(user)),
        "JUPYTERHUB_SERVICE_URL": server_env["JUPYTERHUB_SERVICE_URL"],
        "JUPYTERHUB_API_TOKEN": server_env["JUPYTERHUB_API_TOKEN"],
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=hub.home(user), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


KERNEL_CODE = """
import json
from specflow_nb.client import SpecflowClient
from specflow_nb.models import OrchestrationConfig
c = SpecflowClient()
started = c.start("todo", OrchestrationConfig(skip_design=True, skip_analyze=True, auto_merge=True)).orchestration
c.pause("todo", started.id)  # after the current batch
final = None
for ex in c.iter_updates("todo", id=started.id):
    final = ex
    if ex.status.value == "paused":
        c.resume("todo", started.id)
print(json.dumps({"source": c.server.source, "url": c.server.url, "projects": [p.project_id for p in c.projects()],
                  "status": final.status.value, "id": final.id,
                  "actors": sorted({(e.data or {}).get("actor") for e in final.decision_log if (e.data or {}).get("actor")})}))
"""


def test_each_kernel_finds_its_own_server_and_token(two_users: Hub) -> None:
    hub = two_users
    for user in ("alice", "bob"):
        out = _kernel_client(hub, user, KERNEL_CODE)
        assert out["source"] == "jupyterhub"
        assert out["url"].endswith(f"/user/{user}/"), out
        assert out["projects"] == ["todo"]
        assert out["status"] == "completed", out
        # the kernel's token is the user's server token: the pause and resume it sent name the hub user
        assert out["actors"] == [user], out


def test_bob_cannot_see_or_touch_alices_orchestrations(two_users: Hub) -> None:
    hub = two_users
    alice = As(hub, "alice", hub.token("alice"))
    bob_token = hub.token("bob")
    bob_on_alice = As(hub, "alice", bob_token)
    bob_on_bob = As(hub, "bob", bob_token)
    anonymous = As(hub, "alice", None)
    try:
        code, body = alice.get("workflow/orchestrate/list", projectId="todo")
        assert code == 200 and body["orchestrations"], body
        ex = body["orchestrations"][0]
        assert "alice" in actors(ex)

        # through the hub, with bob's own valid token: every route of alice's server refuses him
        for route in ROUTES_GET:
            code, body = bob_on_alice.get(route, projectId="todo")
            assert code == 403, (route, body)
        assert bob_on_alice.get("projects")[0] == 403
        code, body = bob_on_alice.post("workflow/orchestrate", {"projectId": "todo"})
        assert code == 403, body
        for command in COMMANDS:
            code, body = bob_on_alice.post(f"workflow/orchestrate/{command}", {"projectId": "todo", "id": ex["id"]})
            assert code == 403, (command, body)
        # nor the run folders and logs as files
        run_dir = f"api/contents/todo/.specflow/workflows/{ex['executions']['implement'][0]}"
        assert bob_on_alice.raw("GET", run_dir).status_code == 403
        assert (
            bob_on_alice.raw("GET", f"api/contents/todo/.specflow/workflows/orchestration-{ex['id']}.json").status_code
            == 403
        )
        # and no token at all is refused too (no redirect into alice's server for an API call)
        assert anonymous.get(STATUS, projectId="todo")[0] in (302, 403)

        # bob's own server is confined to bob's home: alice's folder is outside its root
        alice_todo = str(hub.home("alice") / "todo")
        for project_id in ("../alice/todo", alice_todo, "../../home/alice/todo"):
            code, body = bob_on_bob.get(STATUS, projectId=project_id)
            assert code in (403, 404), (project_id, body)
            assert body.get("code") in ("ProjectOutsideRoot", "ProjectNotFound"), body
        code, body = bob_on_bob.post("workflow/orchestrate", {"projectId": "../alice/todo"})
        assert code in (403, 404), body
        code, body = bob_on_bob.get("projects")
        assert code == 200 and [p["projectId"] for p in body["projects"]] == ["todo"], body
        # bob's own project history holds only his runs, none of alice's ids
        code, body = bob_on_bob.get("workflow/orchestrate/list", projectId="todo")
        assert code == 200 and ex["id"] not in {o["id"] for o in body["orchestrations"]}

        # alice's orchestration is untouched by all of this
        code, after = alice.get(STATUS, projectId="todo", id=ex["id"])
        assert code == 200 and after["orchestration"]["version"] == ex["version"]
        assert "bob" not in actors(after["orchestration"])
    finally:
        for client in (alice, bob_on_alice, bob_on_bob, anonymous):
            client.close()
