"""The scenarios of "One project, one engine", each with real processes: servers, CLI commands, the demo agent.

1. a terminal's ``watch`` beside a server it cannot discover: it observes, never drives;
2. two servers on one root: the second observes, its REST commands reach the owner; the owner SIGKILLed mid-batch
   while the second server and a ``watch`` observe: the server takes over, ``watch`` never does;
3. ``pause --local`` / ``cancel --local`` beside a server: the server (the owner) applies them, the log has them;
4. ``start --local`` in a terminal, then ``POST …/cancel`` on a server: the terminal's engine applies the cancel;
5. another machine (another host id) whose lease expires while it is frozen: taken over; when it wakes, its saves
   are refused and it observes; a command nobody takes: the CLI exits non-zero, nothing is applied later;
6. the engine in a notebook kernel (LocalBackend) beside a server.
"""

from __future__ import annotations

import os
import shlex
import signal
from typing import Any

import anyio
import pytest

from specflow_nb.errors import OrchestrationConflict

from .conftest import DEMO_AGENT, Hosts, decisions, entry, json_lines

FAST = {"skipDesign": True, "skipAnalyze": True, "skipVerify": True, "autoMerge": True}


def settled(ex: dict[str, Any]) -> bool:
    return (
        ex["status"] in ("completed", "cancelled", "failed", "paused", "needs_attention")
        and not ex["killedRunIds"]
        and ex["currentRun"] is None
    )


def start_on(hosts: Hosts, srv: Any, **config: Any) -> dict[str, Any]:
    r = hosts.post(srv, "workflow/orchestrate", {"config": {**FAST, **config}})
    assert r.status_code == 201, r.text
    return dict(r.json()["orchestration"])


def test_terminal_watch_beside_a_server_only_observes(hosts: Hosts) -> None:
    srv = hosts.server("a")
    ex = start_on(hosts, srv)
    watch = hosts.cli_background("orchestrate", "watch", "--json", "--follow")
    final = hosts.wait(srv, settled)
    assert watch.wait(timeout=60) == 0, hosts.output(watch)
    out = hosts.output(watch)
    assert "only observes" in out
    states = json_lines(out)
    assert states and states[-1]["id"] == ex["id"] and states[-1]["status"] == "completed"
    assert [s["version"] for s in states] == sorted(s["version"] for s in states)  # live, in order
    assert final["status"] == "completed"
    hosts.assert_each_batch_ran_once(final)
    assert "takeover" not in decisions(final)  # the terminal never drove it
    owner = hosts.owner()
    assert owner is not None and owner.kind == "server" and owner.epoch == 1 and owner.released


@pytest.mark.parametrize("path", ["linux", "portable"])
def test_two_servers_then_the_owner_is_killed_the_other_server_takes_over(
    hosts: Hosts, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "portable":  # psutil for liveness, watchfiles for changes, in every host (servers and CLI)
        monkeypatch.setenv("SPECFLOW_PORTABLE", "1")
    a = hosts.server("a")
    ex = start_on(hosts, a)
    b = hosts.server("b")  # starts while A drives: observes
    seen = hosts.status(b)
    assert seen["orchestration"]["id"] == ex["id"]
    assert seen["owner"]["url"].startswith(a.url) and seen["owner"]["kind"] == "server"
    # a terminal that cannot find the server reads who drives it from the project's files
    status = hosts.cli("orchestrate", "status")
    assert status.returncode == 0 and f"Driven by server pid {a.pid}" in status.stdout, status.stdout
    # B's REST command is handed to A, which applies it; B answers with what A did.
    r = hosts.post(b, "workflow/orchestrate/pause", {})
    assert r.status_code == 200, r.text
    assert r.json()["orchestration"]["pauseRequested"] is True
    paused = hosts.wait(b, lambda e: e["status"] == "paused")
    assert hosts.wait(a, lambda e: e["status"] == "paused")["version"] == paused["version"]
    assert entry(paused, "pause_requested")["data"]["actor"]
    r = hosts.post(b, "workflow/orchestrate/resume", {})
    assert r.status_code == 200, r.text
    watch = hosts.cli_background("orchestrate", "watch", "--json", "--follow")  # watches until it settles
    # A dies mid-batch (SIGKILL): B takes over; the batch's live agent is adopted, not started again.
    hosts.wait(b, lambda e: e["currentRun"] is not None and e["currentRun"]["kind"] == "batch")
    a.kill()
    final = hosts.wait(b, settled, timeout=120)
    assert final["status"] == "completed", final.get("errorMessage")
    taken = entry(final, "takeover")
    assert "process" in taken["reason"] and "has ended" in taken["reason"]
    hosts.assert_each_batch_ran_once(final)
    assert watch.wait(timeout=60) == 0, hosts.output(watch)
    assert json_lines(hosts.output(watch))[-1]["status"] == "completed"
    owner = hosts.owner()
    assert owner is not None and owner.url and owner.url.startswith(b.url) and owner.epoch == 2  # watch never owned


def test_pause_and_cancel_local_beside_a_server_are_applied_by_the_server(hosts: Hosts) -> None:
    srv = hosts.server("a")
    start_on(hosts, srv)
    hosts.wait(srv, lambda e: e["currentRun"] is not None)
    done = hosts.cli("orchestrate", "pause", "--local")
    assert done.returncode == 0, done.stderr
    assert "Driven by server pid" in done.stderr
    paused = hosts.wait(srv, lambda e: e["status"] == "paused")
    actor = entry(paused, "pause_requested")["data"]["actor"]
    assert actor.startswith("cli pid ")
    assert len(paused["appliedCommandIds"]) == 1
    done = hosts.cli("orchestrate", "cancel", "--local", "--json")
    assert done.returncode == 0, done.stderr
    cancelled = hosts.wait(srv, settled)
    assert cancelled["status"] == "cancelled"
    assert entry(cancelled, "cancel")["data"]["actor"].startswith("cli pid ")
    # the terminal reported what the owner did
    assert json_lines(done.stdout)[-1]["status"] == "cancelled"


def test_a_server_hands_its_cancel_to_the_terminal_that_owns_the_orchestration(hosts: Hosts) -> None:
    agent = shlex.join(DEMO_AGENT)
    term = hosts.cli_background(
        "orchestrate",
        "start",
        "--local",
        *[f"--set={k}={str(v).lower()}" for k, v in FAST.items()],
        f"--set=agentCommand={agent}",
    )
    hosts.wait_file(lambda s: s["currentRun"] is not None and s["currentRun"]["kind"] == "batch")
    srv = hosts.server("a")
    assert hosts.status(srv)["owner"]["kind"] == "cli"
    r = hosts.post(srv, "workflow/orchestrate/cancel", {})
    assert r.status_code == 200, r.text
    assert r.json()["orchestration"]["status"] == "cancelled"
    assert term.wait(timeout=60) == 0, hosts.output(term)
    final = hosts.wait_file(settled)
    assert final["status"] == "cancelled"
    assert "cancel" in decisions(final) and entry(final, "cancel")["data"]["actor"]
    assert "takeover" not in decisions(final)
    # the terminal's engine applied it and wrote every state: the server never saved over it
    assert hosts.owner() is not None and hosts.owner().kind == "cli"  # type: ignore[union-attr]
    # a start --local now is fine again; while it was owned, it was refused naming the owner (checked below)


def test_start_local_on_a_project_a_server_drives_is_refused_naming_the_owner(hosts: Hosts) -> None:
    srv = hosts.server("a")
    start_on(hosts, srv)
    refused = hosts.cli("orchestrate", "start", "--local", "--set", "skipDesign=true")
    assert refused.returncode != 0
    assert "already in progress" in refused.stderr and "driven by server pid" in refused.stderr, refused.stderr
    assert srv.url.rstrip("/") in refused.stderr


@pytest.mark.parametrize("path", ["linux", "portable"])
def test_another_machine_whose_lease_expires_is_taken_over_and_fenced(
    hosts: Hosts, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "portable":
        monkeypatch.setenv("SPECFLOW_PORTABLE", "1")
    lease = {"owner_lease_seconds": 2.0, "owner_renew_seconds": 0.3}
    a = hosts.server("a", host_id="machine-a", settings=lease)
    b = hosts.server("b", host_id="machine-b", settings=lease)
    ex = start_on(hosts, a)
    hosts.wait(b, lambda e: e["currentRun"] is not None)
    # A cannot be reached (frozen): alive, but its lease is no longer renewed.
    os.kill(a.pid, signal.SIGSTOP)
    try:
        taken = hosts.wait(b, lambda e: "takeover" in decisions(e), timeout=30)
        assert "lease" in entry(taken, "takeover")["reason"] and "machine" in entry(taken, "takeover")["reason"]
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # A wakes up believing it owns the orchestration: its saves are refused, it becomes an observer.
    final = hosts.wait(b, settled, timeout=120)
    assert final["status"] == "completed", final.get("errorMessage")
    assert hosts.wait(a, lambda e: e["version"] == final["version"], timeout=20)["status"] == "completed"
    hosts.assert_each_batch_ran_once(final)
    assert final["id"] == ex["id"]
    log = a.log.read_text(errors="replace")
    assert "Traceback" not in log and " 500 " not in log
    assert "owned by another engine now" in log or "did not save" in log  # A noticed, and stopped acting


def test_a_command_no_owner_takes_is_refused_and_never_applied_later(hosts: Hosts) -> None:
    a = hosts.server("a")
    b = hosts.server("b", settings={"command_timeout_seconds": 1.0})
    start_on(hosts, a)
    hosts.wait(b, lambda e: e["currentRun"] is not None)
    os.kill(a.pid, signal.SIGSTOP)  # the owner lives (same machine: nobody may take over) but answers nothing
    try:
        cli = hosts.cli("orchestrate", "pause", "--local", "--command-timeout", "1")
        r = hosts.post(b, "workflow/orchestrate/pause", {})
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "not applied" in cli.stderr and "did not take it" in cli.stderr
    assert r.status_code == 409, r.text
    assert "did not take it" in r.json()["error"] and r.json()["hint"]
    final = hosts.wait(a, settled, timeout=120)
    assert final["status"] == "completed"
    assert "pause_requested" not in decisions(final)  # withdrawn: never applied after its deadline


@pytest.mark.anyio
async def test_the_engine_in_a_kernel_beside_a_server(hosts: Hosts) -> None:
    from specflow_nb.machine import PauseCommand  # noqa: F401  (the typed command the panel sends)
    from specflow_nb.models import OrchestrationConfig
    from specflow_nb.orchestrator import EngineSettings
    from specflow_nb.widgets.local import LocalBackend

    srv = hosts.server("a")
    ex = start_on(hosts, srv)
    backend = LocalBackend(hosts.root, settings=EngineSettings(host_kind="kernel", agent_env=hosts.agent_env))
    try:
        seen = await backend.status(hosts.project_id)
        assert seen is not None and seen.id == ex["id"]
        with pytest.raises(OrchestrationConflict) as refused:
            await backend.start(hosts.project_id, OrchestrationConfig.model_validate(FAST))
        assert "server pid" in (refused.value.hint or "")
        paused = await backend.command(hosts.project_id, {"action": "pause"})
        assert paused.pause_requested
        async for update in backend.watch(hosts.project_id, paused.version):
            if update.status.value == "paused":
                break
        resumed = await backend.command(hosts.project_id, {"action": "resume"})
        assert resumed.status.value == "running"
        with anyio.fail_after(120):
            async for update in backend.watch(hosts.project_id, resumed.version):
                if update.status.value == "completed":
                    break
    finally:
        await backend.aclose()
    final = hosts.record()
    assert final["status"] == "completed"
    assert entry(final, "pause_requested")["data"]["actor"] == "notebook"
    hosts.assert_each_batch_ran_once(final)
    assert not backend.orchestrator.active()  # the kernel never drove it
