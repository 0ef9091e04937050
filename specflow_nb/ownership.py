"""One owner per orchestration: who drives it, whether that owner still lives, and the command inbox.

Files under ``{project}/.specflow/workflows/`` (the owner record) and ``{project}/.specflow/inbox/`` (commands),
written under the project lock with atomic replace:

=============================== ===================================================================================
``{id}.owner.json``             :class:`OwnerRecord`: the engine that drives orchestration ``{id}`` (host id, pid
                                and process creation time, kind, server URL, epoch) and its lease (``renewedAt``
                                + ``leaseSeconds``), renewed every few seconds by a thread of the owner.
``../inbox/{id}/{cmd}.json``   :class:`CommandEnvelope`: a command a host that does not own the orchestration
                                hands to the owner; renamed to ``{cmd}.claimed`` when the owner takes it.
``../inbox/{id}/{cmd}.reply.json`` :class:`CommandReply`: what the owner did with it (status and version, or the
                                error), read and removed by the sender.
=============================== ===================================================================================

Liveness (:func:`owner_alive`): an owner on this host (same host id) lives while its process (pid + creation time)
does, and, inside this very process, while its engine runs; an owner on another host lives while its lease has not
expired. Released owners (an engine that stopped cleanly, or an orchestration that ended) are gone at once.
Exactly one of several hosts racing to take over wins, because :func:`claim` reads and writes under the project lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from specflow_nb import procs
from specflow_nb.errors import OrchestrationConflict, SpecflowError
from specflow_nb.machine import Command
from specflow_nb.models import CamelModel, OrchestrationStatus, utcnow
from specflow_nb.store import atomic_write_text

log = logging.getLogger("specflow_nb.ownership")

#: Engines running in this process (their ids): an owner record naming this process is alive only if listed here.
LIVE_ENGINES: set[str] = set()


class OwnerRecord(CamelModel):
    """The engine that owns (drives) one orchestration."""

    orchestration_id: str
    engine_id: str
    host_id: str
    hostname: str
    pid: int
    create_time: float
    #: What kind of host: ``server``, ``cli``, ``kernel`` or ``engine``.
    kind: str = "engine"
    url: str | None = None
    #: Increases by one on every change of owner: a fencing token.
    epoch: int = 1
    acquired_at: datetime
    renewed_at: datetime
    lease_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    released: bool = False

    def describe(self) -> str:
        return _describe(self.kind, self.pid, self.hostname, self.url)

    def is_engine(self, engine_id: str, epoch: int | None = None) -> bool:
        return self.engine_id == engine_id and not self.released and (epoch is None or self.epoch == epoch)


class Identity(CamelModel):
    """Who this engine is: filled into every owner record it writes."""

    engine_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    host_id: str = Field(default_factory=procs.host_id)
    hostname: str = Field(default_factory=procs.hostname)
    pid: int = Field(default_factory=os.getpid)
    create_time: float = Field(default_factory=procs.self_create_time)
    kind: str = "engine"
    url: str | None = None

    def describe(self) -> str:
        return _describe(self.kind, self.pid, self.hostname, self.url)


def _describe(kind: str, pid: int, hostname: str, url: str | None) -> str:
    """ "server pid 4242 on laptop (http://127.0.0.1:8888/)": how messages and the decision log name an engine."""
    where = f"{kind} pid {pid} on {hostname}"
    return f"{where} ({url})" if url else where


def owner_alive(owner: OwnerRecord | None, *, host_id: str, now: datetime | None = None) -> tuple[bool, str]:
    """Whether ``owner`` still drives its orchestration, and why (the reason goes into the decision log)."""
    if owner is None:
        return False, "it has no owner"
    if owner.released:
        return False, f"its owner ({owner.describe()}) stopped and released it"
    if owner.host_id == host_id:
        if not procs.is_alive(owner.pid, owner.create_time):
            return False, f"its owner's process ({owner.describe()}) has ended"
        same_process = owner.pid == os.getpid() and abs(owner.create_time - procs.self_create_time()) < 1
        if same_process and owner.engine_id not in LIVE_ENGINES:
            return False, f"its owner's engine in this process ({owner.describe()}) has stopped"
        return True, f"owned by {owner.describe()}"
    expires = owner.renewed_at + timedelta(seconds=owner.lease_seconds)
    if (now or utcnow()) >= expires:
        return False, f"the lease of its owner on another machine ({owner.describe()}) expired at {expires:%H:%M:%S}"
    return True, f"owned by {owner.describe()} on another machine (lease until {expires:%H:%M:%S})"


def who_drives(folder: Path, orchestration_id: str, *, host_id: str) -> str:
    """One sentence for a person: which engine drives the orchestration, or that none does and who would take it."""
    owner = read_owner(folder, orchestration_id)
    alive, why = owner_alive(owner, host_id=host_id)
    if alive and owner is not None:
        return f"Driven by {owner.describe()}."
    return (
        f"No engine drives it now ({why}): a Jupyter server on this folder, or "
        "`specflow-nb orchestrate watch --local`, takes it over."
    )


class NotOwner(SpecflowError):
    """This engine no longer owns the orchestration (another took it over): it must not save or act."""

    http_status = 409


class NoOwnerAnswer(OrchestrationConflict):
    """A command was handed to the owner's inbox and no owner took it before its deadline."""


# --------------------------------------------------------------------------------------------------------------
# Owner files


def owner_path(folder: Path, orchestration_id: str) -> Path:
    return folder / f"{orchestration_id}.owner.json"


def read_owner(folder: Path, orchestration_id: str) -> OwnerRecord | None:
    """The owner record (None when absent or unreadable: an unreadable one is no proof of a live owner)."""
    try:
        return OwnerRecord.model_validate_json(owner_path(folder, orchestration_id).read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def write_owner(folder: Path, record: OwnerRecord) -> None:
    """Write an owner record. Hold the project lock. Not fsynced: a lost renewal only shortens a lease."""
    path = owner_path(folder, record.orchestration_id)
    atomic_write_text(path, record.model_dump_json(indent=2) + "\n", durable=False)


def claim(
    folder: Path, orchestration_id: str, me: Identity, *, lease_seconds: float, now: datetime | None = None
) -> tuple[OwnerRecord | None, OwnerRecord | None, str]:
    """Take ownership of ``orchestration_id`` unless a live owner holds it. Hold the project lock.

    Returns ``(mine, previous, why)``: ``mine`` is the new record (None when a live owner keeps it), ``previous``
    the record found, ``why`` why the previous owner is gone (or who holds it)."""
    now = now or utcnow()
    previous = read_owner(folder, orchestration_id)
    if previous is not None and previous.is_engine(me.engine_id):
        return previous, previous, "already owned by this engine"
    alive, why = owner_alive(previous, host_id=me.host_id, now=now)
    if alive:
        return None, previous, why
    mine = OwnerRecord(
        **me.model_dump(),
        orchestration_id=orchestration_id,
        epoch=(previous.epoch + 1) if previous is not None else 1,
        acquired_at=now,
        renewed_at=now,
        lease_seconds=lease_seconds,
    )
    write_owner(folder, mine)
    return mine, previous, why


def renew(folder: Path, mine: OwnerRecord, now: datetime | None = None) -> OwnerRecord | None:
    """Extend this engine's lease. Hold the project lock. None when it is no longer the owner."""
    current = read_owner(folder, mine.orchestration_id)
    if current is None or not current.is_engine(mine.engine_id, mine.epoch):
        return None
    renewed = current.model_copy(update={"renewed_at": now or utcnow()})
    write_owner(folder, renewed)
    return renewed


def release(folder: Path, mine: OwnerRecord) -> None:
    """Give ownership up (the engine stops, or the orchestration ended). Hold the project lock."""
    current = read_owner(folder, mine.orchestration_id)
    if current is not None and current.is_engine(mine.engine_id, mine.epoch):
        write_owner(folder, current.model_copy(update={"released": True, "renewed_at": utcnow()}))


# --------------------------------------------------------------------------------------------------------------
# The command inbox


class CommandEnvelope(CamelModel):
    """A command on its way to the owner of ``orchestration_id``."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    orchestration_id: str
    command: Command
    actor: str | None = None
    #: Who sent it (for the log: "cli pid 4242 on laptop").
    sender: str = ""
    sent_at: datetime = Field(default_factory=utcnow)
    deadline: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.deadline


class CommandReply(CamelModel):
    """What the owner did with a command: applied (status and version after it) or refused (the error)."""

    id: str
    ok: bool
    status: OrchestrationStatus | None = None
    version: int | None = None
    #: The refusal as the server would send it: ``{error, hint?, details?}`` plus the HTTP status and class name.
    error: dict[str, Any] | None = None
    applied_by: str = ""

    def raise_error(self) -> None:
        """Raise the owner's refusal here, as the same kind of error (409 stays 409, 400 stays 400)."""
        from specflow_nb import errors

        err = self.error or {}
        cls = getattr(errors, str(err.get("type", "")), None)
        if not (isinstance(cls, type) and issubclass(cls, SpecflowError)):
            cls = OrchestrationConflict if err.get("httpStatus") == 409 else SpecflowError
        exc = cls(str(err.get("error", "The owner refused the command.")), hint=err.get("hint"))
        exc.details = err.get("details")
        raise exc


def inbox_folder(folder: Path, orchestration_id: str) -> Path:
    """``.specflow/inbox/{id}/`` beside the workflows folder (whose sub-folders are all agent runs)."""
    return folder.parent / "inbox" / orchestration_id


def post(folder: Path, envelope: CommandEnvelope) -> Path:
    """Put a command into the owner's inbox (atomically: the owner never sees half of it)."""
    inbox = inbox_folder(folder, envelope.orchestration_id)
    path = inbox / f"{envelope.id}.json"
    atomic_write_text(path, envelope.model_dump_json() + "\n", durable=False)
    return path


def pending(folder: Path, orchestration_id: str) -> Iterator[Path]:
    """Unclaimed commands in the inbox, oldest file first."""
    inbox = inbox_folder(folder, orchestration_id)
    with contextlib.suppress(OSError):
        paths = [p for p in inbox.glob("*.json") if not p.name.endswith(".reply.json")]
        yield from sorted(paths, key=lambda p: (p.stat().st_mtime_ns if p.exists() else 0, p.name))


def reopen_claimed(folder: Path, orchestration_id: str) -> None:
    """A new owner's first act on the inbox: commands a previous owner claimed but never answered (it died) go
    back into the inbox. Applied ones are recognised by their id in the record and answered, not applied again."""
    inbox = inbox_folder(folder, orchestration_id)
    inbox.mkdir(parents=True, exist_ok=True)
    for claimed in inbox.glob("*.claimed"):
        with contextlib.suppress(OSError):
            os.replace(claimed, claimed.with_suffix(".json"))


def take(path: Path) -> CommandEnvelope | None:
    """Claim one command (rename to ``.claimed``) and read it. Hold the project lock. None if it vanished or is
    unreadable (an unreadable one is removed: nobody could ever apply it)."""
    claimed = path.with_suffix(".claimed")
    try:
        os.replace(path, claimed)
    except FileNotFoundError:
        return None
    try:
        return CommandEnvelope.model_validate_json(claimed.read_bytes())
    except (OSError, ValueError, ValidationError) as exc:
        log.warning("Dropping unreadable command %s: %s", path.name, exc)
        claimed.unlink(missing_ok=True)
        return None


def reply(folder: Path, orchestration_id: str, answer: CommandReply) -> None:
    """Answer a claimed command and drop its claim."""
    inbox = inbox_folder(folder, orchestration_id)
    atomic_write_text(inbox / f"{answer.id}.reply.json", answer.model_dump_json() + "\n", durable=False)
    (inbox / f"{answer.id}.claimed").unlink(missing_ok=True)


def read_reply(folder: Path, orchestration_id: str, command_id: str) -> CommandReply | None:
    path = inbox_folder(folder, orchestration_id) / f"{command_id}.reply.json"
    try:
        return CommandReply.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def withdraw(folder: Path, orchestration_id: str, command_id: str) -> bool:
    """Take back a command no owner claimed. Hold the project lock. False when the owner already claimed it."""
    path = inbox_folder(folder, orchestration_id) / f"{command_id}.json"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def is_claimed(folder: Path, orchestration_id: str, command_id: str) -> bool:
    return (inbox_folder(folder, orchestration_id) / f"{command_id}.claimed").exists()


def error_dict(exc: SpecflowError) -> dict[str, Any]:
    body = exc.to_dict()
    body["httpStatus"] = exc.http_status
    body["type"] = type(exc).__name__
    with contextlib.suppress(TypeError, ValueError):
        json.dumps(body)
        return body
    body.pop("details", None)
    return body
