"""The write-ahead journal of an orchestration record: ``.specflow/workflows/.orchestration-{id}.journal``.

The save before a spawn is the one on a transition's critical path (write-ahead: the record holds the run before its
process starts). An atomic record write creates and renames a file and fsyncs it and its folder; here the same state
goes to a file made ahead and overwritten in place: one ``pwrite`` and one ``fdatasync`` (about a third of the time,
measured in ``benchmarks/RESULTS.md``). The JSON record is written right after the spawn, as always, under the same
lock and fence (:func:`specflow_nb.fenced.write_behind`), so it trails the journal by the spawn only.

A reader takes the journal's state only when it is exactly one step ahead of the record on disk: its header names
the record version it follows (``base``), and the record still has that version; a checksum rejects a write the host
died in (then the record, which the spawn never outran, is the truth). So the journal never outlives its moment:
once the record is written behind it, or any later save lands, it is stale and ignored. It holds what the record
holds (compact JSON, secrets masked the same way) and is discarded with the record (set aside as corrupt, removed).

The file is made full of zeros (not sparse, not ``fallocate``d: writing an unwritten extent is a metadata change that
``fdatasync`` would have to journal) at twice the size of the state it first holds, at least 64 KiB, and made again,
larger, when a state outgrows it. POSIX only (``pwrite``); elsewhere the caller writes the record as before.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

from pydantic import ValidationError

from specflow_nb.models import OrchestrationExecution
from specflow_nb.redact import redact_json

#: magic, version of the state, version of the record it follows, length of the JSON, its CRC-32
_HEADER = struct.Struct("<4sqqQI")
_MAGIC = b"SFJ1"
_MIN_SIZE = 64 * 1024
_MAX_STATE = 256 * 1024 * 1024  # a header naming more than this is not one of ours
_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

#: Whether this platform can keep a journal (else every save is the atomic record write).
AVAILABLE = hasattr(os, "pwrite") and hasattr(os, "fdatasync")


def journal_path(record: Path) -> Path:
    """The journal of the record file ``record`` (``orchestration-{id}.json``)."""
    return record.with_name(f".{record.stem}.journal")


def write(record: Path, execution: OrchestrationExecution, base_version: int) -> None:
    """Make ``execution`` durable in the journal of ``record``, whose file holds version ``base_version`` now.
    Blocking (``fdatasync``); the caller holds the project's lock and has checked its fence."""
    body = redact_json(execution.model_dump_json()).encode("utf-8")
    data = _HEADER.pack(_MAGIC, execution.version, base_version, len(body), zlib.crc32(body)) + body
    path = journal_path(record)
    fd = _open_sized(path, len(data))
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _open_sized(path: Path, need: int) -> int:
    """The journal open for writing, at least ``need`` bytes of written zeros or older states; made (again) when
    missing or too small (or a link: never followed)."""
    try:
        fd = os.open(path, os.O_RDWR | _FLAGS)
    except OSError:
        fd = -1
    if fd >= 0:
        if os.fstat(fd).st_size >= need:
            return fd
        os.close(fd)
    size = _MIN_SIZE
    while size < 2 * need:
        size *= 2
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _FLAGS, 0o644)  # as the record (spares)
    try:
        zeros = bytes(_MIN_SIZE)
        for offset in range(0, size, _MIN_SIZE):
            os.pwrite(fd, zeros, offset)
        os.fsync(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return fd


def newer(record: Path, on_disk: OrchestrationExecution) -> OrchestrationExecution | None:
    """The state in the journal of ``record`` when it is the step right after ``on_disk`` (the record's content
    now) and whole; else None."""
    try:
        fd = os.open(journal_path(record), os.O_RDONLY | _FLAGS)
    except OSError:
        return None
    try:
        head = os.pread(fd, _HEADER.size, 0)
        if len(head) < _HEADER.size:
            return None
        magic, version, base, length, crc = _HEADER.unpack(head)
        if magic != _MAGIC or base != on_disk.version or version <= base or length > _MAX_STATE:
            return None
        body = os.pread(fd, length, _HEADER.size)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(body) != length or zlib.crc32(body) != crc:
        return None  # a write the host died in: the record is the truth
    try:
        state = OrchestrationExecution.model_validate_json(body)
    except (ValueError, ValidationError):
        return None
    return state if state.id == on_disk.id and state.version == version else None


def discard(record: Path) -> None:
    """Remove the journal of ``record`` (the record was removed or set aside)."""
    with contextlib.suppress(OSError):
        journal_path(record).unlink()
