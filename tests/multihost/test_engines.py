"""Several engines on one project, in one process: ownership, fencing, the command inbox, takeover races.

Each :class:`Orchestrator` is a host (its own engine id; tests that simulate another machine give it another host
id). A "crash" stops an engine without releasing what it owns, as a SIGKILL would. The agent is the real demo
agent in detached processes; the process-level versions of these scenarios are in test_hosts.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from specflow_nb import ownership
from specflow_nb.errors import OrchestrationConflict
from specflow_nb.machine import PauseCommand, ResumeCommand
from specflow_nb.models import utcnow
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore
from tests.support.orch_helpers import base_config, big_project, decisions, run_log, settle, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, params=["linux", "portable"])
def liveness_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the Linux fast paths (pidfd, inotify) and through the portable ones (psutil,
    watchfiles), as on macOS."""
    if request.param == "portable":
        monkeypatch.setenv("SPECFLOW_PORTABLE", "1")
    else:
        monkeypatch.delenv("SPECFLOW_PORTABLE", raising=False)
    return str(request.param)


def engine_settings(log: Path, **kw: Any) -> EngineSettings:
    env = {"SPECFLOW_DEMO_LOG": str(log), "SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.1"}
    return EngineSettings(agent_env=env, renew_seconds=0.2, **kw)


async def crash(orch: Orchestrator) -> None:
    """Stop an engine the way a SIGKILL would: nothing released, no more renewals; its agent runs live on."""
    for slot in orch._slots.values():
        slot.owner = None  # so that stopping releases nothing
    await orch.stop_loop()


def owner_file(project: Path, ex_id: str) -> ownership.OwnerRecord | None:
    return ownership.read_owner(OrchestrationStore(project).folder, ex_id)


def batch_runs(log: Path) -> list[tuple[str, ...]]:
    return [tuple(r["taskIds"]) for r in run_log(log) if r.get("taskIds")]


async def test_second_engine_observes_and_hands_commands_to_the_owner(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=3, total=6)
    log = tmp_path / "runs.jsonl"
    async with Orchestrator(root, engine_settings(log, host_kind="server")) as a:
        ex = await a.start("p", base_config())
        async with Orchestrator(root, engine_settings(log, host_kind="kernel")) as b:
            assert not b.owns("p") and a.owns("p")
            seen = b.status("p")
            assert seen is not None and seen.id == ex.id
            # B's command goes to A's inbox; A applies it and B reports what A did.
            paused = await b.command("p", PauseCommand(), actor="bob")
            assert paused.pause_requested and paused.version >= ex.version
            pause_entry = next(d for d in paused.decision_log if d.decision == "pause_requested")
            assert pause_entry.data is not None and pause_entry.data["actor"] == "bob"
            assert len(paused.applied_command_ids) == 1
            # B sees A's changes live (file changes), without polling A.
            rested = await wait_until(b, "p", lambda e: e.status.value == "paused", timeout=60)
            owner_view = await wait_until(a, "p", lambda e: e.status.value == "paused", timeout=10)
            assert rested.version == owner_view.version
            # A start on B is refused naming the owner.
            with pytest.raises(OrchestrationConflict) as refused:
                await b.start("p", base_config())
            assert "server pid" in (refused.value.hint or "")
            resumed = await b.command("p", ResumeCommand())
            assert resumed.status.value == "running"
            final = await settle(a, "p", timeout=120)
        assert final.status.value in ("completed", "waiting_merge"), final.error_message
    # every batch ran once: only the owner spawned
    runs = batch_runs(log)
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 3


async def test_dead_owner_is_taken_over_and_its_live_run_adopted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)
    log = tmp_path / "runs.jsonl"
    a = Orchestrator(root, engine_settings(log))
    await a.start_loop()
    ex = await a.start("p", base_config())
    await wait_until(a, "p", lambda e: e.current_run is not None and e.current_run.live, timeout=30)
    async with Orchestrator(root, engine_settings(log)) as b:
        assert not b.owns("p")
        await crash(a)
        # B notices (the owner's engine is gone) and takes over; the run in flight is adopted, not started again
        taken = await wait_until(b, "p", lambda e: "takeover" in decisions(e), timeout=30)
        assert b.owns("p")
        entry = next(d for d in taken.decision_log if d.decision == "takeover")
        assert "no longer drives it" in entry.reason
        final = await settle(b, "p", timeout=120)
    assert final.status.value in ("completed", "waiting_merge"), final.error_message
    runs = batch_runs(log)
    assert len(runs) == len(set(runs)) == 2, runs
    assert final.id == ex.id


async def test_a_save_over_someone_elses_write_is_refused_and_the_loser_observes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)
    log = tmp_path / "runs.jsonl"
    # Engine A on "machine A" with a short lease; engine B on "machine B" takes over once A's lease expires.
    async with Orchestrator(root, engine_settings(log, host_id="machine-a", lease_seconds=1.0)) as a:
        ex = await a.start("p", base_config())
        a._renew_stop.set()  # A is partitioned: alive, but its renewals stop reaching the folder
        async with Orchestrator(root, engine_settings(log, host_id="machine-b", lease_seconds=1.0)) as b:
            await wait_until(b, "p", lambda e: "takeover" in decisions(e), timeout=30)
            assert b.owns("p")
            owner = owner_file(root / "p", ex.id)
            assert owner is not None and owner.host_id == "machine-b" and owner.epoch == 2
            # A still believes it owns it; its next save is fenced: refused, and A becomes an observer.
            with pytest.raises(ownership.NotOwner):
                await a._command_owned(a._resolve("p"), PauseCommand(), None, actor="a")
            assert not a.owns("p")
            final = await settle(b, "p", timeout=120)
            assert a.status("p").version == final.version  # type: ignore[union-attr]
    assert final.status.value in ("completed", "waiting_merge")
    assert "pause_requested" not in decisions(final)  # the refused command left no trace


async def test_three_engines_racing_for_a_dead_owner_yield_exactly_one_owner(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)
    log = tmp_path / "runs.jsonl"
    a = Orchestrator(root, engine_settings(log))
    await a.start_loop()
    ex = await a.start("p", base_config())
    await a.command("p", PauseCommand())
    await settle(a, "p", timeout=60)
    await crash(a)
    engines = [Orchestrator(root, engine_settings(log, host_kind=f"host{i}")) for i in range(3)]
    async with anyio.create_task_group() as tg:
        for engine in engines:
            tg.start_soon(engine.start_loop)
    try:
        owners = [e for e in engines if e.owns("p")]
        assert len(owners) == 1
        record = owner_file(root / "p", ex.id)
        assert record is not None and record.engine_id == owners[0].identity.engine_id
        final = owners[0].status("p")
        assert final is not None and decisions(final).count("takeover") == 1
    finally:
        for engine in engines:
            await engine.stop_loop()


async def test_a_command_applied_before_its_owner_crashed_is_not_applied_again(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)
    log = tmp_path / "runs.jsonl"
    a = Orchestrator(root, engine_settings(log))
    await a.start_loop()
    ex = await a.start("p", base_config())
    folder = OrchestrationStore(root / "p").folder
    # A takes a command from its inbox and applies it, then dies before answering: the claim is left behind.
    env = ownership.CommandEnvelope(
        orchestration_id=ex.id, command=PauseCommand(), actor="carol", deadline=utcnow() + timedelta(seconds=30)
    )
    applied = await a._command_owned(a._resolve("p"), env.command, ex.id, actor="carol", command_id=env.id)
    assert env.id in applied.applied_command_ids
    inbox = ownership.inbox_folder(folder, ex.id)
    (inbox / f"{env.id}.claimed").write_text(env.model_dump_json())
    await crash(a)
    async with Orchestrator(root, engine_settings(log)) as b:
        assert b.owns("p")
        with anyio.fail_after(20):
            while (reply := ownership.read_reply(folder, ex.id, env.id)) is None:
                await anyio.sleep(0.05)
        assert reply.ok  # answered from the record: already applied
        final = b.status("p")
        assert final is not None
        assert decisions(final).count("pause_requested") == 1
        await b.command("p", ResumeCommand())


async def test_an_expired_command_is_dropped_and_its_sender_gets_409(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)
    log = tmp_path / "runs.jsonl"
    async with Orchestrator(root, engine_settings(log)) as a:
        ex = await a.start("p", base_config())
        folder = OrchestrationStore(root / "p").folder
        stale = ownership.CommandEnvelope(
            orchestration_id=ex.id, command=PauseCommand(), deadline=utcnow() - timedelta(seconds=1)
        )
        ownership.post(folder, stale)
        with anyio.fail_after(20):
            while (reply := ownership.read_reply(folder, ex.id, stale.id)) is None:
                await anyio.sleep(0.05)
        assert not reply.ok and reply.error is not None and reply.error["httpStatus"] == 409
        now = a.status("p")
        assert now is not None and "pause_requested" not in decisions(now)
        # A sender whose owner never answers: withdrawn at its deadline, 409, nothing applied later.
        a._renew_stop.set()
        async with Orchestrator(root, engine_settings(log, command_timeout_seconds=0.5)) as b:
            for slot in a._slots.values():  # A stops serving its inbox (a hung owner, still alive)
                slot.owner = None
            with pytest.raises(ownership.NoOwnerAnswer) as err:
                await b.command("p", PauseCommand())
            assert "did not take it" in err.value.message
            assert list(ownership.pending(folder, ex.id)) == []


def test_owner_records_are_typed_and_finite(tmp_path: Path) -> None:
    me = ownership.Identity(kind="cli")
    ownership.LIVE_ENGINES.add(me.engine_id)  # an engine running in this process
    try:
        _claims(tmp_path, me)
    finally:
        ownership.LIVE_ENGINES.discard(me.engine_id)


def _claims(tmp_path: Path, me: ownership.Identity) -> None:
    mine, previous, _ = ownership.claim(tmp_path, "x", me, lease_seconds=30)
    assert previous is None and mine is not None and mine.epoch == 1
    data = json.loads(ownership.owner_path(tmp_path, "x").read_text())
    assert data["engineId"] == me.engine_id and data["leaseSeconds"] == 30
    other = ownership.Identity(kind="server")
    refused, held_by, why = ownership.claim(tmp_path, "x", other, lease_seconds=30)
    assert refused is None and held_by == mine and "cli pid" in why
    ownership.release(tmp_path, mine)
    taken, _, why = ownership.claim(tmp_path, "x", other, lease_seconds=30)
    assert taken is not None and taken.epoch == 2 and "released" in why
    with pytest.raises(ValueError):
        ownership.OwnerRecord.model_validate({**data, "leaseSeconds": float("inf")})
