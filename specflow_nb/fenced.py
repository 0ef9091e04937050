"""The owner's saves of a record, fenced: only the owner writes, and only over its own last write.

Two ways to a durable state (both under the project's lock, after :func:`check_fence`):

- :func:`write_fenced`: the record file itself (atomic: temp file, fsync, rename, folder fsync).
- :func:`write_ahead_fenced` then :func:`write_behind`: for the save right before a spawn (a transition's critical
  path). The state goes to the record's write-ahead journal (:mod:`specflow_nb.journal`: one ``pwrite`` and
  ``fdatasync``), the run's process starts, then the record file is written as above. A reader of the record gets
  the journal's state meanwhile; a host that dies in between leaves the journal one step ahead of the record, and
  whoever takes the orchestration over writes it into the record first (``OrchestrationStore.settle``).

Blocking (the fsyncs): run them in a worker thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

from specflow_nb import journal, ownership, spares
from specflow_nb.engine_state import Slot, signature
from specflow_nb.models import OrchestrationExecution

log = logging.getLogger("specflow_nb.orchestrator")


def write_fenced(slot: Slot, ex: OrchestrationExecution, spare: Path | None = None) -> None:
    """Save ``ex`` under the project's lock, compare-and-swap: only the owner, only over its own last write.
    Blocking (the fsyncs): run it in a worker thread. ``spare``: a temp file made ahead (:mod:`specflow_nb.spares`)."""
    try:
        with slot.store.lock():
            check_fence(slot, ex.id)
            path = slot.store.save(ex, spare=spare)
            spare = None
            slot.fence, slot.fenced_version = signature(path), ex.version
            if not ex.status.is_active:  # ended: no spawn will follow (a resume makes the journal again)
                journal.discard(path)
    finally:
        spares.discard(spare)  # not used (refused by the fence, or the write failed)


def write_ahead_fenced(slot: Slot, ex: OrchestrationExecution) -> bool:
    """Make ``ex`` durable in the record's write-ahead journal: True. False (nothing written) when this platform
    keeps no journal or the record on disk is not the one this owner last wrote (then the caller writes the
    record itself, :func:`write_fenced`): the journal is only ever one step ahead of a record its owner knows."""
    if not journal.AVAILABLE:
        return False
    with slot.store.lock():
        if not check_fence(slot, ex.id):
            return False
        slot.store.write_ahead(ex, slot.fenced_version)
        return True


def write_ahead_or_now(slot: Slot, ex: OrchestrationExecution, spare: Path | None = None) -> bool:
    """:func:`write_ahead_fenced` (True: the record is to be written behind, with ``spare``), else the record
    itself now (:func:`write_fenced`, which uses up ``spare``: False). Raises as they do (``spare`` then dropped)."""
    try:
        if write_ahead_fenced(slot, ex):
            return True
    except BaseException:
        spares.discard(spare)
        raise
    write_fenced(slot, ex, spare)
    return False


def write_behind(slot: Slot, ex: OrchestrationExecution, spare: Path | None = None, *, ahead: bool = True) -> None:
    """The record file after :func:`write_ahead_fenced` (and the spawn it allowed); nothing unless ``ahead``.
    Never raises: the state is durable in the journal, which readers take while the record trails it. The next
    save then writes the record itself (no journal: ``slot.fence`` forgotten), and fails as this one did until the
    storage is fixed, so the engine waits (with backoff) instead of running ahead of its record."""
    if not ahead:
        return
    try:
        write_fenced(slot, ex, spare)
    except Exception as exc:  # not the owner any more, a full disk: logged; nothing is lost
        slot.fence = None
        log.warning("%s: the record of version %d trails its journal: %s", slot.label, ex.version, exc)


def check_fence(slot: Slot, orchestration_id: str) -> bool:
    """Refuse a save unless this engine still owns the orchestration and the file holds what it last wrote.
    Hold the project's file lock. True when the file is exactly this owner's last write (its stamps unchanged);
    False when it is missing, unreadable (the owner writes it anew) or rewritten at the same version."""
    mine = slot.owner
    current_owner = ownership.read_owner(slot.store.folder, orchestration_id)
    if (
        mine is None
        or mine.orchestration_id != orchestration_id
        or current_owner is None
        or not current_owner.is_engine(mine.engine_id, mine.epoch)
    ):
        who = current_owner.describe() if current_owner else "nobody"
        raise ownership.NotOwner(
            f"This host no longer owns orchestration {orchestration_id} (owner: {who}); it did not save.",
            hint="The owner applies commands now: send them again and they go to it.",
        )
    path = slot.store.path_for(orchestration_id)
    sig = signature(path)
    if sig is None:
        return False  # set aside as corrupt: the owner writes it anew
    if sig == slot.fence:
        return True  # unchanged since this owner wrote it
    try:
        on_disk = slot.store._parse(path)
    except (ValueError, UnicodeDecodeError):
        return False
    if on_disk is not None and on_disk.version != slot.fenced_version:
        raise ownership.NotOwner(
            f"Orchestration {orchestration_id} was saved by someone else (version {on_disk.version}, this host "
            f"last wrote {slot.fenced_version}); it did not overwrite it.",
            hint="The orchestration's owner applies commands now: send them again.",
        )
    return False
