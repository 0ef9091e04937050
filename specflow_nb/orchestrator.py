"""The engine's host surface: ``Orchestrator``, a small class composed of one collaborator per concern.

The loop performs the state machine's actions and feeds it events; it decides nothing itself. ``machine.transition``
returns the next execution and a list of actions; ``stepping.Stepper`` performs them in order through
``performing.Performer``: ``Persist`` writes the state file (always first: write-ahead; fenced: only the owner, only
over its own last write), spawns start detached agent runs through ``specflow_nb.agent`` (the only spawner in the
package), ``ReadProject`` re-reads tasks.md, the artifacts and git (and runs the verifyCommand) and feeds the result
straight back as ``ProjectRead`` before anything else may touch that execution.

Events arrive, they are never polled for: a run's end is its process's exit (``AgentRun.wait``), a user command is a
method call, a stall is the runner's "no output for stale_after" callback. One ``anyio.Lock`` per project serialises
everything that steps a project's execution, so many projects run concurrently on one event loop while each
project sees one event at a time. One project never has two active orchestrations (checked under the project's
file lock, so two processes cannot both start one).

The collaborators (each in its own module, each swappable through a class attribute as jupyter-scheduler swaps its
scheduler): ``engine_state`` (slots, projects, the task group), ``performing`` (actions), ``stepping`` (the order of
events and actions), ``reconcile`` (what a new owner does first), ``inbox`` (commands between engines),
``owning`` (observe, take over, leases, rescan), ``preflight`` (the preview). Every background task lives in the
engine's task group: nothing outlives ``async with`` / ``stop_loop()``.

Hosts use the surface in docs/engine-api.md (``specflow_nb.engine.Engine``): ``start``, ``command``, ``status``,
``list``, ``preview``, ``wait_for_change``, ``subscribe``, ``active`` and ``start_loop``/``stop_loop`` (or
``async with``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel

from specflow_nb import gitops, journal, machine, ownership, procs, watching
from specflow_nb.engine import Engine
from specflow_nb.engine_settings import EngineSettings, effective_config
from specflow_nb.engine_state import WORKFLOWS, Projects, Slot, TaskScope, owns, refresh, run_dir, signature, target
from specflow_nb.errors import (
    OrchestrationConflict,
    PhaseNotOpen,
    SpecflowError,
    TasksFileMissing,
)
from specflow_nb.inbox import Inbox
from specflow_nb.machine import Command, Notify, Started, UserCommand
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution, OrchestrationStatus, utcnow
from specflow_nb.owning import OwnershipLoop, in_progress
from specflow_nb.performing import Performer, to_machine_outcome
from specflow_nb.preflight import Preflight, Preview, Previewer
from specflow_nb.project import collect_artifacts, find_feature_dir
from specflow_nb.reconcile import Reconciler
from specflow_nb.stepping import STORAGE_RETRY_MAX_SECONDS, Stepper
from specflow_nb.store import OrchestrationStore

__all__ = [
    "STORAGE_RETRY_MAX_SECONDS",
    "WORKFLOWS",
    "Engine",
    "EngineSettings",
    "Orchestrator",
    "Preflight",
    "Preview",
    "Slot",
    "_Slot",
    "run_dir",
    "to_machine_outcome",
]

log = logging.getLogger("specflow_nb.orchestrator")

#: The old private name of a project's slot (tests and benchmarks build one).
_Slot = Slot


class _StartupStatus:
    """``task_status`` for :meth:`Orchestrator.serve` run by :meth:`Orchestrator.start_loop`: resolves a future."""

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def started(self, value: object = None) -> None:
        if not self.future.done():
            self.future.set_result(None)


class Orchestrator:
    """Drives every orchestration under ``root``. See docs/engine-api.md."""

    #: The collaborators, replaceable by a subclass (a benchmark's polling performer, a host's own rules for them).
    performer_class: type[Performer] = Performer
    stepper_class: type[Stepper] = Stepper
    reconciler_class: type[Reconciler] = Reconciler
    inbox_class: type[Inbox] = Inbox
    ownership_class: type[OwnershipLoop] = OwnershipLoop
    previewer_class: type[Previewer] = Previewer

    def __init__(self, root: Path | str, settings: EngineSettings | None = None) -> None:
        self.root = Path(root).resolve()
        self.settings = settings or EngineSettings()
        self.identity = ownership.Identity(
            kind=self.settings.host_kind, url=self.settings.host_url, host_id=self.settings.host_id or procs.host_id()
        )
        self.projects = Projects(self.root, self.settings.scan_depth)
        self.scope = TaskScope()
        s, scope = self.settings, self.scope
        self.performer = self.performer_class(s, scope, feed=lambda slot, ev: self.stepper.feed_quietly(slot, ev))
        self.stepper = self.stepper_class(self.performer, scope, on_not_owner=lambda slot: self.owning.demote(slot))
        self.reconciler = self.reconciler_class(s, scope, self.performer, self.stepper)
        self.inbox = self.inbox_class(s, self.identity, scope, self.stepper)
        self.owning = self.ownership_class(
            self.projects, s, self.identity, scope, self.performer, self.reconciler, self.inbox
        )
        self.previewer = self.previewer_class(s, self._resolve)
        self._serve_task: asyncio.Task[None] | None = None
        self._stop: anyio.Event | None = None

    # ---- lifecycle: structured (everything the engine starts lives in its task group) -------------------------

    async def __aenter__(self) -> Orchestrator:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self.scope.tg = tg
        ownership.LIVE_ENGINES.add(self.identity.engine_id)
        self.owning.renewer.start(self.owning.lost)
        try:
            await self.reconcile()
            if self.settings.may_take_over:
                self.scope.background(self.owning.rescan_forever)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        tg, self.scope.tg = self.scope.tg, None
        if tg is not None:
            # Only the waiting stops: agent runs are detached and keep going; the next engine adopts them.
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):  # no thread of this engine outlives it
            await self.owning.renewer.stop()
            await anyio.to_thread.run_sync(watching.join_idle)
        ownership.LIVE_ENGINES.discard(self.identity.engine_id)
        # Hand every owned orchestration back at once: an engine watching it takes it over without waiting.
        for slot in self.projects.slots.values():
            mine, slot.owner = slot.owner, None
            if mine is not None:
                try:
                    with slot.store.lock():
                        ownership.release(slot.store.folder, mine)
                except (SpecflowError, OSError) as err:
                    log.warning("could not release %s: %s", mine.orchestration_id, err)

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the engine until :meth:`stop_loop` (``await tg.start(orch.serve)`` in a host's own task group)."""
        stop = self._stop = anyio.Event()
        async with self:
            task_status.started()
            await stop.wait()

    async def start_loop(self) -> None:
        """Start the loop in a task of its own (for hosts that cannot nest ``async with``, e.g. the server); returns
        once the engine has reconciled (or raises what stopped it)."""
        if self._serve_task is not None:
            return
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        task = self._serve_task = loop.create_task(self.serve(task_status=_StartupStatus(started)))
        try:
            with anyio.fail_after(120):
                await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self.stop_loop()
            raise
        if not started.done():
            self._serve_task = None
            task.result()  # raises what stopped it

    async def stop_loop(self) -> None:
        """Stop the loop :meth:`start_loop` (or :meth:`serve`) runs and wait until everything of it has ended."""
        task, self._serve_task = self._serve_task, None
        if self._stop is not None:
            self._stop.set()
        if task is None:
            return
        if self._stop is None:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def running(self) -> bool:
        return self.scope.tg is not None

    # ---- who drives what ---------------------------------------------------------------------------------------

    def owner_of(self, project_id: str, orchestration_id: str) -> ownership.OwnerRecord | None:
        """The owner record of an orchestration (who drives it), or None."""
        slot = self._resolve(project_id)
        return ownership.read_owner(slot.store.folder, orchestration_id)

    def who_drives(self, project_id: str, orchestration_id: str) -> str:
        """Which engine drives an orchestration, in one sentence (or that none does now)."""
        slot = self._resolve(project_id)
        return ownership.who_drives(slot.store.folder, orchestration_id, host_id=self.identity.host_id)

    def owns(self, project_id: str) -> bool:
        """This engine drives the project's current orchestration."""
        return owns(self._resolve(project_id))

    # ---- host surface ----------------------------------------------------------------------------------------

    async def start(
        self,
        project_id: str,
        config: OrchestrationConfig | dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> OrchestrationExecution:
        """Start completing the project's open phase. Raises OrchestrationConflict when one is already active."""
        self.scope.require()
        slot = self._resolve(project_id)
        config = self._effective_config(config, approve=True)
        feature_dir = find_feature_dir(slot.project)
        if feature_dir is None:
            raise PhaseNotOpen(
                f"No feature folder in {slot.project_id or 'the project root'}: nothing to complete.",
                hint="Open the phase first: create specs/NNNN-name/ with its spec.md (e.g. with /speckit.specify).",
            )
        art = collect_artifacts(feature_dir)
        if config.skip_design and not art.has_tasks:
            where = feature_dir.relative_to(slot.project).as_posix()
            raise TasksFileMissing(
                f"No tasks.md with tasks in {where}, and design is skipped: there is nothing to implement.",
                hint="Untick 'Skip design' so the design step writes tasks.md, or write tasks.md yourself.",
            )
        async with slot.lock:
            # Orchestrations this host drives that hold, or are about to start, an agent run; parked ones (paused,
            # waiting to merge, needing a person) do not count.
            busy = [
                s
                for s in self.projects.slots.values()
                if owns(s)
                and s.execution is not None
                and (
                    s.execution.status is OrchestrationStatus.RUNNING
                    or (s.execution.current_run is not None and s.execution.current_run.live)
                )
            ]
            if len(busy) >= self.settings.max_concurrent:
                raise OrchestrationConflict(
                    f"This host already drives {len(busy)} orchestrations (its maximum).",
                    hint="Wait for one to finish, or raise max_concurrent_orchestrations in the server config.",
                )
            with slot.store.lock():
                active = slot.store.active()
                if active is not None:
                    raise in_progress(slot, active, host_id=self.identity.host_id)
                now = utcnow()
                ex = machine.new_execution(OrchestrationStore.new_id(now), slot.project_id, config, now)
                ex.feature_dir = feature_dir.relative_to(slot.project).as_posix()
                with contextlib.suppress(gitops.GitError):
                    ex.feature_branch = gitops.current_branch(slot.project)
                # The record claims the project while the lock is held: another process's start now sees it, and
                # this engine owns it. (Later saves run in a worker thread, which must not wait for this thread's
                # lock.)
                path = slot.store.save(ex)
                mine, _, _ = ownership.claim(
                    slot.store.folder, ex.id, self.identity, lease_seconds=self.settings.lease_seconds, now=now
                )
                slot.owner, slot.fence, slot.fenced_version = mine, signature(path), ex.version
            self.scope.background(self.inbox.serve, slot, mine)
            try:
                snapshot = await self.performer.snapshot(slot, ex)
                slot.execution = ex
                slot.merge_conflicts = []
                if actor:
                    log.info("orchestration %s started by %s", ex.id, actor)
                return await self.stepper.apply(slot, Started(at=now, snapshot=snapshot, actor=actor))
            except BaseException:
                current = slot.execution
                if current is None or current.id != ex.id or current.version == 0:
                    # Never started (nothing past the claim was saved): give the project back.
                    slot.store.path_for(ex.id).unlink(missing_ok=True)
                    journal.discard(slot.store.path_for(ex.id))
                    ownership.owner_path(slot.store.folder, ex.id).unlink(missing_ok=True)
                    slot.owner = None
                    if current is not None and current.id == ex.id:
                        slot.execution = None
                raise

    async def command(
        self,
        project_id: str,
        command: Command | dict[str, Any],
        orchestration_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> OrchestrationExecution:
        """Apply a user command (pause, resume, cancel, merge, recover, go_back, answer). 409 when not allowed now.

        On the engine that owns the orchestration it is applied here; otherwise it is handed to the owner (its
        inbox) and this returns what the owner did. An orchestration whose owner is gone is taken over first (by
        hosts that may); a command no owner takes within ``command_timeout_seconds`` raises NoOwnerAnswer (409)."""
        self.scope.require()
        cmd = command if isinstance(command, BaseModel) else machine.parse_command(command)
        slot = self._resolve(project_id)
        for _ in range(3):
            if owns(slot) and orchestration_id in (None, slot.execution.id if slot.execution else None):
                try:
                    return await self._command_owned(slot, cmd, orchestration_id, actor=actor)
                except ownership.NotOwner:
                    continue  # another engine took it over meanwhile: hand the command to it
            refresh(slot, self.scope)
            ex = target(slot, orchestration_id)
            if not ex.status.is_active:
                machine.transition(ex, UserCommand(at=utcnow(), command=cmd, actor=actor))  # raises the machine's 409
                raise OrchestrationConflict(f"Orchestration {ex.id} is {ex.status.value}: nothing to {cmd.action}.")
            if self.settings.may_take_over:
                async with slot.lock:
                    if not owns(slot) and await self.owning.take_over(slot, ex.id):
                        continue
            if owns(slot):
                continue
            return await self.inbox.send_to_owner(slot, ex, cmd, actor)
        raise OrchestrationConflict(
            "The orchestration changed owner several times while the command was on its way.",
            hint="Send it again.",
        )

    def status(self, project_id: str, orchestration_id: str | None = None) -> OrchestrationExecution | None:
        """The given orchestration, else the project's active one, else its newest; None when it never had one."""
        slot = self._resolve(project_id)
        refresh(slot, self.scope)
        if orchestration_id is not None:
            if slot.execution is not None and slot.execution.id == orchestration_id:
                return slot.execution
            return slot.store.load(orchestration_id)
        if slot.execution is not None and slot.execution.status.is_active:
            return slot.execution
        stored = slot.store.list()
        for ex in stored:
            if ex.status.is_active:
                return ex
        if slot.execution is not None and (not stored or stored[0].id == slot.execution.id):
            return slot.execution
        return stored[0] if stored else None

    def list(self, project_id: str) -> builtins.list[OrchestrationExecution]:
        """Every orchestration of the project, newest first."""
        slot = self._resolve(project_id)
        items = slot.store.list()
        if slot.execution is not None:
            items = [slot.execution if ex.id == slot.execution.id else ex for ex in items]
        return items

    def active(self) -> builtins.list[OrchestrationExecution]:
        """Active orchestrations this host drives (the server's current_activity)."""
        return [
            s.execution
            for s in self.projects.slots.values()
            if owns(s) and s.execution and s.execution.status.is_active
        ]

    async def wait_for_change(
        self, project_id: str, since_version: int, timeout: float, *, known_id: str | None = None
    ) -> OrchestrationExecution | None:
        """Return as soon as the project's current orchestration has ``version > since_version`` (or is another
        orchestration than ``known_id``), else after ``timeout`` seconds with the current state (the live channel)."""
        slot = self._resolve(project_id)
        self.owning.ensure_observed(slot)  # another host may drive it (or start one): its file changes wake this wait
        with anyio.move_on_after(timeout):
            while True:
                changed = slot.changed
                ex = self.status(project_id)
                if ex is not None and (ex.version > since_version or (known_id is not None and ex.id != known_id)):
                    return ex
                await changed.wait()
        return self.status(project_id)

    def subscribe(self, callback: Callable[[OrchestrationExecution], Any]) -> Callable[[], None]:
        """Call ``callback(execution)`` after every saved change. Returns the function that unsubscribes."""
        self.scope.subscribers.append(callback)
        return lambda: self.scope.subscribers.remove(callback) if callback in self.scope.subscribers else None

    def subscribe_notifications(self, callback: Callable[[OrchestrationExecution, Notify], Any]) -> Callable[[], None]:
        """Call ``callback(execution, notify)`` for what a person should see (needs attention, questions, stalls)."""
        self.scope.notify_subscribers.append(callback)
        return lambda: (
            self.scope.notify_subscribers.remove(callback) if callback in self.scope.notify_subscribers else None
        )

    def preview(self, project_id: str, config: OrchestrationConfig | dict[str, Any] | None = None) -> Preview:
        """The batch plan and the checks the Start form shows (nothing is started)."""
        return self.previewer.preview(project_id, config)

    async def reconcile(self) -> None:
        """Pick up every project's active orchestration after a (re)start: adopt live runs, apply the results of
        runs that ended meanwhile, resume the rest. Corrupt state files are set aside and rebuilt."""
        await self.owning.reconcile()

    def scan_projects(self) -> Iterator[Path]:
        """Project folders under the root (holding specs/ or .specflow/), at most ``scan_depth`` levels down."""
        return self.projects.scan()

    def decision_model(self, config: OrchestrationConfig) -> str | None:
        """The decision helper's model: decisionModel (Codex: a Claude name there means the run's own model)."""
        return self.performer.diagnoser.decision_model(config)

    # ---- internals that tests and benchmarks reach -----------------------------------------------------------

    def _resolve(self, project_id: str) -> Slot:
        return self.projects.resolve(project_id)

    def _effective_config(
        self, config: OrchestrationConfig | dict[str, Any] | None, *, approve: bool = False
    ) -> OrchestrationConfig:
        return effective_config(self.settings, config, approve=approve)

    async def _command_owned(self, slot: Slot, cmd: Command, orchestration_id: str | None, **kw: Any) -> Any:
        return await self.stepper.command_owned(slot, cmd, orchestration_id, **kw)

    def _config_from_runs(self, slot: Slot, runs: builtins.list[str]) -> OrchestrationConfig:
        return self.reconciler._config_from_runs(slot, runs)

    @property
    def _slots(self) -> dict[Path, Slot]:
        return self.projects.slots

    @property
    def _renew_stop(self) -> Any:
        return self.owning.renewer.stop_event


if TYPE_CHECKING:

    def _is_an_engine(orchestrator: Orchestrator) -> Engine:
        """mypy checks here that ``Orchestrator`` satisfies the hosts' surface (``specflow_nb.engine.Engine``)."""
        return orchestrator
