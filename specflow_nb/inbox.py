"""The command path between engines: the owner serves its orchestration's inbox; any other engine hands a command
to the owner through it and waits for the owner's reply (docs/architecture.md "The command path").

Apart from the ownership loop (``owning.py``) because it is the one protocol over files between two engines: post,
claim, apply through the same stepping path as a local command, reply; withdraw what nobody claimed by its
deadline, so a command reported as failed is never applied later.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import anyio

from specflow_nb import ownership
from specflow_nb.engine_settings import EngineSettings
from specflow_nb.engine_state import Slot, TaskScope, refresh
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import Command
from specflow_nb.models import OrchestrationExecution, utcnow
from specflow_nb.stepping import Stepper
from specflow_nb.watching import FolderWatch

log = logging.getLogger("specflow_nb.orchestrator")


class Inbox:
    """Both sides of the inbox of the orchestrations under one engine's root."""

    def __init__(
        self, settings: EngineSettings, identity: ownership.Identity, scope: TaskScope, stepper: Stepper
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.scope = scope
        self.stepper = stepper

    async def serve(self, slot: Slot, mine: ownership.OwnerRecord) -> None:
        """The owner's side of the command path: take each command from the inbox, apply it through the same
        path as a local command, answer it. Runs while this engine owns the orchestration, then answers what is
        left (the orchestration ended: the machine refuses them with the reason)."""
        folder = slot.store.folder
        inbox = ownership.inbox_folder(folder, mine.orchestration_id)
        await anyio.to_thread.run_sync(ownership.reopen_claimed, folder, mine.orchestration_id)
        with FolderWatch(inbox) as watch:
            while True:
                still_mine = slot.owner is mine
                for path in list(ownership.pending(folder, mine.orchestration_id)):
                    await self._take_command(slot, mine, path)
                if not still_mine:
                    return
                await watch.wait(5.0)

    async def _take_command(self, slot: Slot, mine: ownership.OwnerRecord, path: Path) -> None:
        folder = slot.store.folder

        def take() -> ownership.CommandEnvelope | None:
            with slot.store.lock():
                return ownership.take(path)

        env = await anyio.to_thread.run_sync(take)
        if env is None:
            return
        answered = False

        def answer(reply: ownership.CommandReply) -> None:
            nonlocal answered
            if not answered:
                answered = True
                ownership.reply(folder, mine.orchestration_id, reply)

        if env.expired():
            log.warning("%s: dropped command %s from %s: expired", slot.label, env.id, env.sender)
            error = ownership.NoOwnerAnswer(
                f"The {env.command.action} command expired before the owner took it.", hint="Send it again."
            )
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(error)))
            return
        me = mine.describe()

        def applied(ex: OrchestrationExecution) -> None:
            answer(ownership.CommandReply(id=env.id, ok=True, status=ex.status, version=ex.version, applied_by=me))

        try:
            ex = await self.stepper.command_owned(
                slot,
                env.command,
                env.orchestration_id,
                actor=env.actor or env.sender,
                command_id=env.id,
                on_persist=applied,
            )
        except ownership.NotOwner:
            with contextlib.suppress(OSError):  # back into the inbox: the new owner takes it
                os.replace(path.with_suffix(".claimed"), path)
            return
        except SpecflowError as exc:
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(exc), applied_by=me))
            return
        except Exception as exc:  # a bug must not leave the sender waiting, nor stop the inbox
            log.exception("%s: command %s from %s failed", slot.label, env.id, env.sender)
            failure = SpecflowError(f"The owner could not apply the {env.command.action} command: {exc}")
            failure.http_status = 500
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(failure), applied_by=me))
            return
        applied(ex)

    async def send_to_owner(
        self, slot: Slot, ex: OrchestrationExecution, cmd: Command, actor: str | None
    ) -> OrchestrationExecution:
        """Hand a command to the engine that owns ``ex`` and report what it did (or raise what it refused)."""
        folder = slot.store.folder
        owner = ownership.read_owner(folder, ex.id)
        timeout = self.settings.command_timeout_seconds
        env = ownership.CommandEnvelope(
            orchestration_id=ex.id,
            command=cmd,
            actor=actor or self.identity.describe(),
            sender=self.identity.describe(),
            deadline=utcnow() + timedelta(seconds=timeout),
        )
        inbox = ownership.inbox_folder(folder, ex.id)
        await anyio.to_thread.run_sync(ownership.post, folder, env)
        limit = time.monotonic() + timeout
        claimed_grace = False
        with FolderWatch(inbox) as watch:
            while True:
                answer = ownership.read_reply(folder, ex.id, env.id)
                if answer is not None:
                    with contextlib.suppress(OSError):
                        (inbox / f"{env.id}.reply.json").unlink()
                    if not answer.ok:
                        answer.raise_error()
                    return self._after_reply(slot, ex.id, answer.version or 0)
                refresh(slot, self.scope)
                current = slot.execution
                if current is not None and current.id == ex.id and env.id in current.applied_command_ids:
                    return current  # applied; its owner died before answering
                if time.monotonic() >= limit:
                    if await anyio.to_thread.run_sync(self._withdraw, slot, ex.id, env.id):
                        who = owner.describe() if owner else "no engine"
                        raise ownership.NoOwnerAnswer(
                            f"The {cmd.action} command was not applied: the owner of orchestration {ex.id} ({who}) "
                            f"did not take it within {timeout:g} s.",
                            hint="Check that the host driving it is running (`specflow-nb orchestrate status`), "
                            "or run the command with --local on a machine that may take it over.",
                            details={"owner": owner.model_dump(mode="json") if owner else None},
                        )
                    if claimed_grace:
                        raise ownership.NoOwnerAnswer(
                            f"The owner took the {cmd.action} command but did not answer in time.",
                            hint="Look at `specflow-nb orchestrate status`: the decision log shows whether it applied it.",
                        )
                    claimed_grace, limit = True, time.monotonic() + max(30.0, timeout)
                await watch.wait(0.25)

    def _withdraw(self, slot: Slot, orchestration_id: str, command_id: str) -> bool:
        with slot.store.lock():
            return ownership.withdraw(slot.store.folder, orchestration_id, command_id)

    def _after_reply(self, slot: Slot, orchestration_id: str, version: int) -> OrchestrationExecution:
        slot.seen = None
        refresh(slot, self.scope)
        ex = slot.execution
        if ex is None or ex.id != orchestration_id or ex.version < version:
            ex = slot.store.load(orchestration_id)
        return ex
