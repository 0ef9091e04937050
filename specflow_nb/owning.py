"""The ownership loop of an engine: one engine drives each orchestration, every other host observes it.

Apart from the host surface (``orchestrator.py``) because it runs by itself in the engine's task group: it observes
projects other engines drive (their record's file changes, the owner's liveness every second), takes over an
orchestration whose owner is provably gone, renews the leases of what this engine owns (a thread: a kernel busy in
a cell keeps its leases), demotes this engine to an observer when a save is refused, rescans the root for
orchestrations other hosts started, and reconciles every project at startup (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from specflow_nb import ownership
from specflow_nb.engine_settings import EngineSettings
from specflow_nb.engine_state import Projects, Slot, TaskScope, owns, refresh, signature
from specflow_nb.errors import OrchestrationConflict, OrchestrationNotFound, SpecflowError
from specflow_nb.inbox import Inbox
from specflow_nb.models import OrchestrationExecution
from specflow_nb.ownership import OwnerRecord
from specflow_nb.performing import Performer
from specflow_nb.reconcile import Reconciler
from specflow_nb.stepping import release_if_done
from specflow_nb.store import OrchestrationStore
from specflow_nb.watching import FolderWatch

log = logging.getLogger("specflow_nb.orchestrator")


def in_progress(slot: Slot, active: OrchestrationExecution, *, host_id: str) -> OrchestrationConflict:
    """The refusal of a second start: names the orchestration and the engine that drives it."""
    owner = ownership.read_owner(slot.store.folder, active.id)
    alive, why = ownership.owner_alive(owner, host_id=host_id)
    if alive and owner is not None:
        hint = (
            f"It is driven by {owner.describe()}. Cancel it first or wait for completion; "
            "`specflow-nb orchestrate watch` shows it live."
        )
    else:
        hint = (
            f"No engine drives it now ({why}): a Jupyter server on this folder, or "
            "`specflow-nb orchestrate watch --local`, takes it over; or cancel it with "
            "`specflow-nb orchestrate cancel --local`."
        )
    return OrchestrationConflict(
        f"Orchestration already in progress: {active.id}. Cancel it first or wait for completion.",
        hint=hint,
        details={
            "id": active.id,
            "status": active.status.value,
            "owner": owner.model_dump(mode="json") if owner and alive else None,
        },
    )


class LeaseRenewer:
    """A thread (not the event loop: a busy kernel must not lose its leases) that renews every owned lease; on a
    lease another engine took, it calls ``lost(slot, mine)`` on the loop. :meth:`stop` ends and joins it."""

    def __init__(self, projects: Projects, settings: EngineSettings) -> None:
        self.projects = projects
        self.settings = settings
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, lost: Callable[[Slot, OwnerRecord], None]) -> None:
        self.stop_event = threading.Event()
        stop = self.stop_event
        loop = asyncio.get_running_loop()

        def renew_all() -> None:
            while not stop.wait(self.settings.renew_seconds):
                for slot in list(self.projects.slots.values()):
                    mine = slot.owner
                    if mine is None:
                        continue
                    try:
                        with slot.store.lock():
                            renewed = ownership.renew(slot.store.folder, mine)
                    except (SpecflowError, OSError):
                        continue  # busy or unwritable: the next round tries again
                    if renewed is None and slot.owner is mine:
                        with contextlib.suppress(RuntimeError):
                            loop.call_soon_threadsafe(lost, slot, mine)

        self.thread = threading.Thread(target=renew_all, name="specflow-lease", daemon=True)
        self.thread.start()

    async def stop(self) -> None:
        """Stop renewing and wait until the thread has ended (a renewal under way finishes first)."""
        self.stop_event.set()
        thread, self.thread = self.thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)


class OwnershipLoop:
    """Observes, takes over, demotes, rescans and reconciles (see the module docstring)."""

    def __init__(
        self,
        projects: Projects,
        settings: EngineSettings,
        identity: ownership.Identity,
        scope: TaskScope,
        performer: Performer,
        reconciler: Reconciler,
        inbox: Inbox,
    ) -> None:
        self.projects = projects
        self.settings = settings
        self.identity = identity
        self.scope = scope
        self.performer = performer
        self.reconciler = reconciler
        self.inbox = inbox
        self.renewer = LeaseRenewer(projects, settings)

    def lost(self, slot: Slot, mine: ownership.OwnerRecord) -> None:
        if slot.owner is mine:
            log.warning("%s: orchestration %s is owned by another engine now", slot.label, mine.orchestration_id)
            self.demote(slot)

    def demote(self, slot: Slot) -> None:
        """This engine lost the orchestration (a save was refused): stop driving it and observe it instead."""
        slot.owner = None
        slot.fence = None
        slot.seen = None
        refresh(slot, self.scope)
        self.ensure_observed(slot)

    def ensure_observed(self, slot: Slot) -> None:
        if slot.observing or self.scope.tg is None or owns(slot):
            return
        slot.observing = True
        self.scope.background(self._observe, slot)

    async def _observe(self, slot: Slot) -> None:
        """Show a project another engine drives, live (file changes), and take it over if that owner dies."""
        try:
            folder = slot.store.folder
            await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
            with FolderWatch(folder) as watch:
                while not owns(slot):
                    refresh(slot, self.scope)
                    ex = slot.execution
                    watching_owner = ex is not None and ex.status.is_active and self.settings.may_take_over
                    if watching_owner and ex is not None:
                        owner = ownership.read_owner(folder, ex.id)
                        alive, _why = ownership.owner_alive(owner, host_id=self.identity.host_id)
                        if not alive:
                            async with slot.lock:
                                if not owns(slot) and await self.take_over(slot, ex.id):
                                    return
                    await watch.wait(1.0 if watching_owner else 30.0)
        finally:
            slot.observing = False

    async def take_over(self, slot: Slot, orchestration_id: str) -> bool:
        """Become the owner of an orchestration whose owner is gone, then reconcile it. Hold ``slot.lock``.
        False when a live owner holds it (exactly one of several racing hosts wins: the claim is under the
        project's file lock); True also when it ended meanwhile (then nothing is claimed: the epoch counts takeovers
        only)."""

        def claim() -> tuple[Any, ...] | None:
            with slot.store.lock():
                # The record first, under the same lock as the owner's saves: an orchestration that ended meanwhile
                # (its owner released it as it completed) is not claimed — only an active one has an owner to replace.
                try:
                    ex = slot.store.load(orchestration_id)
                except OrchestrationNotFound:
                    return None
                if not ex.status.is_active:
                    return (ex,)
                mine, previous, why = ownership.claim(
                    slot.store.folder, orchestration_id, self.identity, lease_seconds=self.settings.lease_seconds
                )
                if mine is None:
                    return None
                slot.store.settle(ex)  # the journal's step, if any, is the record from now on
                return mine, previous, why, ex, signature(slot.store.path_for(orchestration_id))

        claimed = await anyio.to_thread.run_sync(claim)
        if claimed is None:
            return False
        if len(claimed) == 1:  # it ended meanwhile: nothing to take over; callers look at it again (as before)
            slot.execution = claimed[0]
            return True
        mine, previous, why, ex, sig = claimed
        slot.owner, slot.execution, slot.fence, slot.fenced_version = mine, ex, sig, ex.version
        took_over_from = None
        if previous is not None and previous.engine_id != mine.engine_id:
            took_over_from = f"{previous.describe()} no longer drives it ({why})"
            log.warning("%s: %s takes over %s: %s", slot.label, mine.describe(), ex.id, why)
        self.scope.background(self.inbox.serve, slot, mine)
        if ex.status.is_active:
            await self.reconciler.reconcile_owned(slot, ex, took_over_from=took_over_from, new_owner=mine.describe())
        else:
            await release_if_done(slot)
        return True

    async def rescan_forever(self) -> None:
        """Find orchestrations other hosts started under this root: observe them (and take over a dead owner's)."""
        scanned: dict[Path, int] = {}
        while True:
            await anyio.sleep(self.settings.rescan_seconds)
            known = {p for p, s in self.projects.slots.items() if s.observing or owns(s)}
            for project in await anyio.to_thread.run_sync(self._rescan_once, known, scanned):
                slot = self.projects.slot(project)
                if not owns(slot):
                    refresh(slot, self.scope)
                    self.ensure_observed(slot)

    def _rescan_once(self, known: set[Path], scanned: dict[Path, int]) -> builtins.list[Path]:
        """Projects with an active orchestration this host neither owns nor observes (a worker thread)."""
        found = []
        for project in self.projects.scan():
            if project in known:
                continue
            store = OrchestrationStore(project)
            try:
                sig = store.folder.stat().st_mtime_ns
            except OSError:
                continue
            if scanned.get(project) == sig:
                continue
            scanned[project] = sig
            with contextlib.suppress(SpecflowError, OSError):
                if store.active() is not None:
                    found.append(project)
        return found

    async def reconcile(self) -> None:
        """Pick up every project's active orchestration after a (re)start: adopt live runs, apply the results of
        runs that ended meanwhile, resume the rest. Corrupt state files are set aside and rebuilt."""
        for project in self.projects.scan():
            slot = self.projects.slot(project)
            try:
                await self._reconcile_project(slot)
            except SpecflowError as exc:
                log.warning("cannot reconcile %s: %s", project, exc)

    async def _reconcile_project(self, slot: Slot) -> None:
        active = slot.store.active()  # sets corrupt files aside as it reads
        async with slot.lock:
            if active is None:
                if not self.settings.may_take_over:
                    return
                # Every file set aside whose orchestration has no record yet, including those a reader (a status
                # request, the CLI) set aside before this host started: _rebuild skips ids that have one.
                for path in reversed(slot.store.corrupt_files()):
                    if await self._rebuild_owned(slot, path):
                        return
                return
            if not self.settings.may_take_over or not await self.take_over(slot, active.id):
                slot.execution = active  # another engine drives it: observe it (and take over if it dies)
                self.ensure_observed(slot)

    async def _rebuild_owned(self, slot: Slot, corrupt: Path) -> bool:
        """Rebuild a record set aside as corrupt, as its owner (unless a live engine still owns that id)."""

        def claim() -> tuple[OrchestrationExecution, OwnerRecord] | None:
            with slot.store.lock():
                rebuilt = self.reconciler._rebuild(slot, corrupt)
                if rebuilt is None:
                    return None
                mine, _, _ = ownership.claim(
                    slot.store.folder, rebuilt.id, self.identity, lease_seconds=self.settings.lease_seconds
                )
                return (rebuilt, mine) if mine is not None else None

        claimed = await anyio.to_thread.run_sync(claim)
        if claimed is None:
            return False
        rebuilt, mine = claimed
        slot.execution, slot.owner, slot.fence = rebuilt, mine, None
        await self.performer.save(slot, rebuilt)
        self.scope.background(self.inbox.serve, slot, mine)
        return True
