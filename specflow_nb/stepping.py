"""Stepping: apply one event to a project's execution through ``machine.transition`` and perform the actions it returns,
in order, feeding follow-up events before anything else may touch that execution.

Apart from performing (``performing.py``: the I/O of each action) and from ownership (``owning.py``: who may step)
because this is the one order every event goes through, whoever sent it: a user command (here or from another
host's inbox), a run's end, a stall, a restart. Only the owner steps; a refused save (``NotOwner``) hands the slot to
``on_not_owner`` (the ownership loop demotes it to an observer).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio

from specflow_nb import machine, ownership
from specflow_nb.engine_state import Slot, TaskScope, owns
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import (
    CancelCommand,
    Command,
    Event,
    GoBackCommand,
    Persist,
    SpawnBatch,
    SpawnHealer,
    SpawnStep,
    UserCommand,
)
from specflow_nb.models import OrchestrationExecution, utcnow
from specflow_nb.performing import Abandoned, Performer

log = logging.getLogger("specflow_nb.orchestrator")

#: The spawns of an agent process (the built-in merge is no process): their Persist and their folder overlap.
PROCESS_SPAWNS = (SpawnStep, SpawnBatch, SpawnHealer)

#: Longest wait between two tries of an event whose state could not be saved (e.g. a full disk).
STORAGE_RETRY_MAX_SECONDS = 15.0


class NotSaved(OSError):
    """A state could not be saved (a full disk, a read-only folder): ``events`` are what to apply again, in order,
    from the last state saved (the one on disk and in memory), once the storage lets it."""

    def __init__(self, cause: OSError, events: list[Event]) -> None:
        super().__init__(cause.errno, cause.strerror, cause.filename)
        self.events = events


async def release_if_done(slot: Slot) -> None:
    """An orchestration that has ended (and whose killed runs have all been reported) has no owner."""
    ex, mine = slot.execution, slot.owner
    if mine is None or ex is None or ex.status.is_active or ex.killed_run_ids or ex.pending_diagnoses:
        return

    def release() -> None:
        with slot.store.lock():
            ownership.release(slot.store.folder, mine)

    slot.owner = None
    await anyio.to_thread.run_sync(release)


class Stepper:
    """Applies events to the executions this engine owns (see the module docstring)."""

    def __init__(self, performer: Performer, scope: TaskScope, on_not_owner: Callable[[Slot], None]) -> None:
        self.performer = performer
        self.scope = scope
        self.on_not_owner = on_not_owner

    async def feed_quietly(self, slot: Slot, event: Event) -> None:
        async with slot.lock:
            await self.apply_quietly(slot, event)

    async def apply_quietly(self, slot: Slot, event: Event, attempt: int = 0, then: tuple[Event, ...] = ()) -> None:
        """Apply an event (and ``then``, events that followed it) from the loop itself: a refusal is logged, never
        raised into a background task.

        An event whose state could not be saved (disk full, read-only folder) is not lost: the state on disk and
        in memory stays the last good one, and what is not on disk is applied again later, with backoff: the
        event, or the events that followed a state that was saved (a run that could not start)."""
        try:
            await self.apply(slot, event, then=then)
        except machine.IllegalTransition as exc:
            log.info("%s: %s ignored: %s", slot.project_id or ".", event.kind, exc.message)
        except SpecflowError as exc:
            log.warning("%s: %s failed: %s", slot.project_id or ".", event.kind, exc)
        except OSError as exc:
            events = exc.events if isinstance(exc, NotSaved) else [event, *then]
            if not events:  # everything it changed is on disk: an action after the last save failed
                log.error("%s: %s: %s", slot.project_id or ".", event.kind, exc)
                return
            delay = min(STORAGE_RETRY_MAX_SECONDS, 2.0**attempt)
            log.error(
                "%s: %s could not be saved (%s); trying again in %.0f s",
                slot.project_id or ".",
                events[0].kind,
                exc,
                delay,
            )
            self.scope.background(self._retry_event, slot, events, attempt + 1, delay)

    async def _retry_event(self, slot: Slot, events: list[Event], attempt: int, delay: float) -> None:
        await anyio.sleep(delay)
        async with slot.lock:
            await self.apply_quietly(slot, events[0], attempt, tuple(events[1:]))

    async def apply(
        self,
        slot: Slot,
        first: Event,
        *,
        then: tuple[Event, ...] = (),
        on_persist: Callable[[OrchestrationExecution], None] | None = None,
    ) -> OrchestrationExecution:
        """Step the machine with ``first`` and perform the actions, feeding follow-up events (ProjectRead after
        ReadProject, RunFinished for a run that could not start) before anything else. Hold ``slot.lock``.

        Only the owner acts: on a host that does not own the execution (any more) this raises NotOwner and
        the host becomes an observer; a save the fence refuses does the same. ``on_persist`` is called once, with
        the first state saved (how a command from another host is acknowledged before a long follow-up)."""
        assert slot.execution is not None
        if not owns(slot):
            raise ownership.NotOwner(f"This host does not own orchestration {slot.execution.id}.")
        queue: list[Event] = [first, *then]
        # What to apply again if a save fails (NotSaved): the events since the last saved state. A follow-up of a
        # state that joins the next Persist (its project read) is not one: applying its cause again reads anew.
        unsaved: list[Event] = list(queue)
        # The state stepped from: the last one saved, or one whose Persist joins the next transition's
        # (``Persist.may_join_next``: a run's end followed only by a pure project read). Such a state is never
        # reported (``slot.execution`` stays the last saved one) and nothing but that read happens before the
        # next Persist saves it with its own changes.
        current = slot.execution
        joined: list[OrchestrationExecution] = []  # states saved with the next Persist (announced before it)

        def saved(state: OrchestrationExecution) -> None:
            nonlocal current, joined, on_persist
            # Only a state that is on disk becomes the state this host reports and steps from.
            slot.execution = current = state
            joined = []
            unsaved[:] = queue  # applied so far: on disk; still queued: not yet applied
            if on_persist is not None:
                self.scope.call(on_persist, state)
                on_persist = None

        try:
            while queue:
                event = queue.pop(0)
                nxt, actions = machine.transition(current, event)
                rest = list(actions)
                try:
                    while rest:
                        action = rest.pop(0)
                        if isinstance(action, Persist) and action.may_join_next:
                            current = nxt
                            joined.append(nxt)
                            continue
                        if isinstance(action, Persist) and rest and isinstance(rest[0], PROCESS_SPAWNS):
                            # the run's folder is prepared while the record is written; its process starts after
                            spawn = rest.pop(0)
                            assert isinstance(spawn, PROCESS_SPAWNS)
                            follow = await self.performer.save_then_spawn(
                                slot, nxt, spawn, joined=joined, on_saved=functools.partial(saved, nxt)
                            )
                        elif isinstance(action, Persist):
                            await self.performer.save(slot, nxt, joined=joined)
                            saved(nxt)
                            continue
                        else:
                            follow = await self.performer.perform(slot, nxt, action)
                        if follow is not None:
                            queue.append(follow)
                            if not joined:
                                unsaved.append(follow)
                except Abandoned:
                    break
            if joined:  # no next transition saved it (the read changed nothing): save it alone
                await self.performer.save(slot, current, joined=joined[:-1])
                saved(current)
        except ownership.NotOwner:
            self.on_not_owner(slot)
            raise
        except NotSaved:
            raise
        except OSError as exc:
            raise NotSaved(exc, unsaved) from exc
        await release_if_done(slot)
        return slot.execution

    async def command_owned(
        self,
        slot: Slot,
        cmd: Command,
        orchestration_id: str | None,
        *,
        actor: str | None,
        command_id: str | None = None,
        on_persist: Callable[[OrchestrationExecution], None] | None = None,
    ) -> OrchestrationExecution:
        if isinstance(cmd, (CancelCommand, GoBackCommand)) and slot.busy is not None:
            slot.busy.cancel()  # a running verify command or merge must not delay a cancel
        async with slot.lock:
            ex = slot.execution
            if not owns(slot) or ex is None or orchestration_id not in (None, ex.id):
                raise ownership.NotOwner(f"This host does not own orchestration {orchestration_id or '?'}.")
            event = UserCommand(at=utcnow(), command=cmd, actor=actor, command_id=command_id)
            return await self.apply(slot, event, on_persist=on_persist)
