"""Shared projects (the collaboration-account pattern): alice and carol both drive the orchestration on the
"team-todo" account's server (the example config's "team-todo-members" role); every decision their commands cause
names who sent it, and commands racing from both stay consistent."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.machine import Started
from specflow_nb.models import OrchestrationExecution

from .hubctl import STATUS, As, Hub, actors, read_state, state_files

TEAM = "team-todo"
PROJECTS = ("shared-log", "shared-race", "shared-start")
#: The engine records who started an orchestration in the start decision (machine.Started.actor).
START_NAMES_ACTOR = "actor" in Started.model_fields
CONFIG = {"skipDesign": True, "skipAnalyze": True, "pauseBetweenBatches": True}


@pytest.fixture(scope="module")
def team(hub: Hub) -> dict[str, As]:
    hub.home(TEAM).mkdir(parents=True, exist_ok=True)
    for project in PROJECTS:  # one fresh project per test: a cancelled phase leaves some batches done
        prepare_sample(hub.home(TEAM) / project)
    hub.start_servers([TEAM])
    members = {name: As(hub, TEAM, hub.token(name)) for name in ("alice", "carol")}
    yield members
    for member in members.values():
        member.close()


def race(calls: list[tuple[As, str, dict[str, Any]]]) -> list[tuple[int, Any]]:
    """Send every POST at the same moment (one thread each, released together); answers in call order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def send(i: int, who: As, route: str, body: dict[str, Any]) -> None:
        barrier.wait()
        answers[i] = who.post(route, body)

    threads = [threading.Thread(target=send, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_two_members_drive_one_orchestration_and_the_log_names_each(team: dict[str, As]) -> None:
    alice, carol = team["alice"], team["carol"]
    project_id = PROJECTS[0]
    code, body = alice.post("workflow/orchestrate", {"projectId": project_id, "config": CONFIG})
    assert code in (200, 201), body
    oid = body["orchestration"]["id"]
    sent: list[str] = ["alice"] if START_NAMES_ACTOR else []  # the start names who started
    # the batches alternate: after each pause, the other member resumes
    for who, name in ((carol, "carol"), (alice, "alice"), (carol, "carol")):
        paused = alice.wait(project_id, lambda ex: ex["status"] in ("paused", "waiting_merge", "completed"))
        if paused["status"] != "paused":
            break
        code, body = who.post("workflow/orchestrate/resume", {"projectId": project_id, "id": oid})
        assert code == 200, body
        sent.append(name)
    assert len(sent) >= 2 + START_NAMES_ACTOR, "the sample project has several batches: at least two pauses"
    code, body = carol.post("workflow/orchestrate/cancel", {"projectId": project_id, "id": oid})
    assert code == 200, body
    sent.append("carol")
    final = alice.wait(project_id, lambda ex: ex["status"] == "cancelled")

    # each command's entries name its sender, in the order they were sent
    by_command = [e for e in final["decisionLog"] if (e.get("data") or {}).get("actor")]
    senders = [e["data"]["actor"] for e in by_command]
    collapsed = [a for i, a in enumerate(senders) if i == 0 or senders[i - 1] != a]
    assert collapsed == [a for i, a in enumerate(sent) if i == 0 or sent[i - 1] != a], by_command
    # and both members see the same history (the cancelled run's end may have been logged since)
    code, seen_by_carol = carol.get(STATUS, projectId=project_id, id=oid)
    assert code == 200
    assert seen_by_carol["orchestration"]["decisionLog"][: len(final["decisionLog"])] == final["decisionLog"]


def test_racing_commands_from_both_members_stay_consistent(team: dict[str, As], hub: Hub) -> None:
    alice, carol = team["alice"], team["carol"]
    project_id = PROJECTS[1]
    project = hub.home(TEAM) / project_id

    # two starts at once: exactly one orchestration starts, the other member is told it is in progress
    answers = race(
        [
            (alice, "workflow/orchestrate", {"projectId": project_id, "config": CONFIG}),
            (carol, "workflow/orchestrate", {"projectId": project_id, "config": CONFIG}),
        ]
    )
    codes = sorted(code for code, _ in answers)
    assert codes in ([200, 409], [201, 409]), answers
    oid = next(body["orchestration"]["id"] for code, body in answers if code < 300)
    loser = next(body for code, body in answers if code == 409)
    assert loser["code"] == "OrchestrationConflict" and oid in loser["error"], loser

    # from paused, two resumes at once: one resumes, the other finds nothing to resume (409), never a 500
    paused = alice.wait(project_id, lambda ex: ex["status"] == "paused")
    answers = race(
        [
            (alice, "workflow/orchestrate/resume", {"projectId": project_id, "id": oid}),
            (carol, "workflow/orchestrate/resume", {"projectId": project_id, "id": oid}),
        ]
    )
    assert sorted(code for code, _ in answers) == [200, 409], answers

    # a storm of pause/resume from both, then two cancels at once: exactly one cancel wins
    storm = [
        (member, f"workflow/orchestrate/{verb}", {"projectId": project_id, "id": oid})
        for member in (alice, carol)
        for verb in ("pause", "resume", "pause", "resume")
    ]
    storm_answers = race(storm)
    assert {code for code, _ in storm_answers} <= {200, 409}, storm_answers
    answers = race(
        [
            (alice, "workflow/orchestrate/cancel", {"projectId": project_id, "id": oid}),
            (carol, "workflow/orchestrate/cancel", {"projectId": project_id, "id": oid}),
        ]
    )
    assert sorted(code for code, _ in answers) == [200, 409], answers
    # settled: cancelled, and the killed run's end (one more saved version, its cost) has been recorded
    final = alice.wait(project_id, lambda ex: ex["status"] == "cancelled" and not ex["killedRunIds"])

    # every successful command produced its own saved version; the file on disk is valid and the newest
    versions = [body["orchestration"]["version"] for code, body in [*storm_answers, *answers] if code == 200]
    assert len(versions) == len(set(versions)), versions
    on_disk = OrchestrationExecution.model_validate(read_state(project))
    assert on_disk.id == oid and on_disk.status.value == "cancelled"
    assert on_disk.version == final["version"] >= max(versions, default=0) > paused["version"]
    stamps = [e.timestamp for e in on_disk.decision_log]
    assert stamps == sorted(stamps)
    for path in state_files(project):  # every orchestration file of the project parses
        OrchestrationExecution.model_validate_json(path.read_text())
    # each member's accepted commands are in the log under their name
    won = Counter(
        who
        for who, (code, _) in zip(
            ["alice"] * 4 + ["carol"] * 4 + ["alice", "carol"], [*storm_answers, *answers], strict=True
        )
        if code == 200
    )
    logged = set(actors(on_disk.model_dump(mode="json", by_alias=True)))
    assert set(won) <= logged


@pytest.mark.skipif(not START_NAMES_ACTOR, reason="this engine version does not record the start's actor yet")
def test_the_start_decision_names_who_started(team: dict[str, As]) -> None:
    alice = team["alice"]
    project_id = PROJECTS[2]
    code, body = alice.post("workflow/orchestrate", {"projectId": project_id, "config": CONFIG})
    assert code in (200, 201), body
    oid = body["orchestration"]["id"]
    try:
        first = body["orchestration"]["decisionLog"][0]
        assert (first.get("data") or {}).get("actor") == "alice", first
    finally:
        alice.post("workflow/orchestrate/cancel", {"projectId": project_id, "id": oid})
        alice.wait(project_id, lambda ex: ex["status"] == "cancelled")
