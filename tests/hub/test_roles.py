"""Read-only observers: the example config's "specflow-observer" role (custom:jupyter_server:read:specflow on alice's
server) with SpecflowHubAuthorizer lets oscar watch alice's orchestration but never control it."""

from __future__ import annotations

import threading

import pytest

from specflow_nb.client import PermissionDenied, SpecflowClient
from specflow_nb.demo import prepare_sample

from .hubctl import STATUS, As, Hub, actors

#: Every control route with a body that would be valid for an orchestration in ``paused``.
CONTROL = [
    ("workflow/orchestrate", {}),
    ("workflow/orchestrate/pause", {}),
    ("workflow/orchestrate/resume", {}),
    ("workflow/orchestrate/cancel", {}),
    ("workflow/orchestrate/merge", {}),
    ("workflow/orchestrate/recover", {"option": "abort"}),
    ("workflow/orchestrate/go-back", {"step": "implement"}),
    ("workflow/orchestrate/answer", {"answers": {"q": "a"}}),
]
PROJECT = "watched"


@pytest.fixture(scope="module")
def watched(hub: Hub) -> Hub:
    hub.home("alice").mkdir(parents=True, exist_ok=True)
    prepare_sample(hub.home("alice") / PROJECT)
    hub.start_servers(["alice", "bob"])
    return hub


def test_observer_watches_but_cannot_control(watched: Hub) -> None:
    hub = watched
    alice = As(hub, "alice", hub.token("alice"))
    oscar_token = hub.token("oscar")
    oscar = As(hub, "alice", oscar_token)
    try:
        code, body = alice.post(
            "workflow/orchestrate",
            {"projectId": PROJECT, "config": {"skipDesign": True, "skipAnalyze": True, "pauseBetweenBatches": True}},
        )
        assert code in (200, 201), body
        oid = body["orchestration"]["id"]
        paused = alice.wait(PROJECT, lambda ex: ex["status"] == "paused")

        # watching: status, list, the projects overview and the live channel all answer the observer
        code, body = oscar.get(STATUS, projectId=PROJECT)
        assert code == 200 and body["orchestration"]["id"] == oid, body
        code, body = oscar.get(STATUS, projectId=PROJECT, preview="true")
        assert code == 200 and body["batchPlan"]["batches"], body
        code, body = oscar.get("workflow/orchestrate/list", projectId=PROJECT)
        assert code == 200 and oid in {o["id"] for o in body["orchestrations"]}
        code, body = oscar.get("projects")
        assert code == 200 and PROJECT in {p["projectId"] for p in body["projects"]}

        # controlling: every write route is refused, in the state where resume/cancel/go-back would be legal
        for route, extra in CONTROL:
            code, body = oscar.post(route, {"projectId": PROJECT, "id": oid, **extra})
            assert code == 403, (route, body)
            assert body["code"] == "PermissionDenied", body
        # the typed client says so too
        with SpecflowClient(url=hub.server_url("alice"), token=oscar_token) as client:
            assert client.status(PROJECT, oid) is not None
            with pytest.raises(PermissionDenied):
                client.resume(PROJECT, oid)
            with pytest.raises(PermissionDenied):
                client.cancel(PROJECT, oid)
        # nothing else on alice's server is open to him: files, kernels, terminals
        assert oscar.raw("GET", "api/contents").status_code == 403
        assert oscar.raw("GET", f"api/contents/{PROJECT}/specs").status_code == 403
        assert oscar.raw("POST", "api/kernels", json={}).status_code == 403
        assert oscar.raw("POST", "api/terminals", json={}).status_code == 403
        # and the role is filtered to alice: bob's server refuses him entirely
        on_bob = As(hub, "bob", oscar_token)
        assert on_bob.get(STATUS, projectId="todo")[0] == 403
        on_bob.close()

        # the refused commands changed nothing
        code, body = alice.get(STATUS, projectId=PROJECT, id=oid)
        assert body["orchestration"]["version"] == paused["version"]
        assert body["orchestration"]["status"] == "paused"
        assert "oscar" not in actors(body["orchestration"])

        # the live channel: oscar's long-poll wakes when alice resumes
        got: dict = {}

        def poll() -> None:
            got["answer"] = oscar.get(STATUS, projectId=PROJECT, since=paused["version"], timeout=20)

        waiter = threading.Thread(target=poll)
        waiter.start()
        code, body = alice.post("workflow/orchestrate/resume", {"projectId": PROJECT, "id": oid})
        assert code == 200, body
        waiter.join(timeout=30)
        code, body = got["answer"]
        assert code == 200 and body["orchestration"]["version"] > paused["version"], body

        code, body = alice.post("workflow/orchestrate/cancel", {"projectId": PROJECT, "id": oid})
        assert code == 200, body
        final = alice.wait(PROJECT, lambda ex: ex["status"] == "cancelled")
        assert set(actors(final)) == {"alice"}
    finally:
        alice.close()
        oscar.close()
