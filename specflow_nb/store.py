"""Orchestration records on disk: ``{project}/.specflow/workflows/orchestration-{id}.json``.

Three promises, because "state on disk is the truth" (ARCHITECTURE.md):

- **Atomic.** Every write goes to a temp file in the same folder, is flushed and fsynced, then ``os.replace``-d over
  the target and the folder is fsynced. A reader (or a process killed mid-write) sees the old file or the new one,
  never half of either. The save right before a spawn goes first to the record's write-ahead journal
  (:mod:`specflow_nb.journal`), the record file after the spawn: a reader gets the journal's state while it is one
  step ahead of the record.
- **One lock per project** (``.specflow/workflows/.lock``, a ``filelock.FileLock``). Writers that read-modify-write
  hold it (``with store.lock(): ...``); waiting longer than the timeout raises :class:`StateLocked` naming the lock
  file. The OS releases the lock when its holder dies, so a crash never leaves a stale lock behind.
- **Nothing vanishes.** A corrupt or truncated record is renamed to ``orchestration-{id}.json.corrupt-<UTC time>``
  with a logged warning and skipped; :meth:`OrchestrationStore.corrupt_files` lists what was set aside.

:class:`StateFile` keeps ``.specflow/orchestration-state.json`` (what ``specflow-nb state set`` writes) under the same
lock with the same atomic write.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
from pydantic import ValidationError

from specflow_nb import journal, spares
from specflow_nb.errors import ConfigError, OrchestrationNotFound, StateLocked
from specflow_nb.models import OrchestrationExecution
from specflow_nb.redact import redact_json

logger = logging.getLogger("specflow_nb.store")

SPECFLOW_DIR = ".specflow"
WORKFLOWS_DIR = "workflows"
STATE_FILE = "orchestration-state.json"
LOCK_FILE = ".lock"
DEFAULT_LOCK_TIMEOUT = 10.0

_PREFIX = "orchestration-"
_SUFFIX = ".json"
# Ids become file names: letters, digits, dot, dash, underscore; no leading dot, no "..".
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# --------------------------------------------------------------------------------------------------------------
# Atomic files and the project lock


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable. Directories cannot be opened for fsync on Windows; there the rename is enough."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, durable: bool = True, spare: Path | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that readers see either the old or the new content, never a part.

    ``durable=False`` skips the fsyncs: for files whose loss in a power cut costs nothing (a lease renewal).
    ``spare``: an empty file made ahead on the same file system (:mod:`specflow_nb.spares`) to write the new content
    to instead of a new temp file (creating a file is the slow part of a write); used up by the write."""
    path = Path(path)
    fd = spares.open_record_spare(spare)
    if fd is not None and spare is not None:
        tmp = spare
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if tmp is spare and isinstance(exc, OSError) and exc.errno == errno.EXDEV:
            # the spare is on another file system than the record (a folder mounted over .specflow/workflows)
            atomic_write_text(path, text, durable=durable)
            return
        raise
    if durable:
        _fsync_dir(path.parent)


def lock_path(project: Path) -> Path:
    """The one lock file of a project's orchestration state."""
    return Path(project) / SPECFLOW_DIR / WORKFLOWS_DIR / LOCK_FILE


class _FlockLock:
    """A project lock in this process (POSIX): one per lock file. Threads exclude each other through a re-entrant
    thread lock; the process holds the file's ``flock`` while any of its threads is inside, so other processes wait.

    What ``filelock.FileLock(is_singleton=True)`` gave, for about a tenth of its cost (it is taken on every save of
    every transition): two stores of one project in one process share it (re-entrant, no self-deadlock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._threads.acquire(timeout=max(0.0, timeout)):
            raise Timeout(str(self.path))
        try:
            if self._depth == 0:
                self._fd = self._flock(deadline)
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise

    def _flock(self, deadline: float) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.close(fd)
                    raise Timeout(str(self.path)) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
            except BaseException:
                os.close(fd)
                raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._threads.release()

    def _forget(self) -> None:
        """In a forked child: the parent's holders are not this process's."""
        self._threads = threading.RLock()
        self._depth, self._fd = 0, None


_flock_locks: dict[str, _FlockLock] = {}
_flock_guard = threading.Lock()


def _after_fork() -> None:
    for lock in _flock_locks.values():
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _file_lock(path: Path) -> _FlockLock | FileLock:
    # One lock object per lock file in this process: two stores for the same project in one process then share the
    # lock's re-entrancy instead of deadlocking on each other's flock; threads stay mutually exclusive.
    if fcntl is None:  # Windows
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path, is_singleton=True)
    key = str(path)
    lock = _flock_locks.get(key)
    if lock is None:
        with _flock_guard:
            real = os.path.join(os.path.realpath(path.parent), path.name)  # one lock whatever the path's spelling
            lock = _flock_locks.setdefault(real, _FlockLock(Path(real)))
            _flock_locks[key] = lock
    return lock


@contextlib.contextmanager
def project_lock(project: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the project's state lock for a read-modify-write; re-entrant within one thread.

    Raises :class:`StateLocked` when another holder keeps it longer than ``timeout`` seconds.
    """
    path = lock_path(project)
    lock = _file_lock(path)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise StateLocked(
            f"The project's state is locked by another process (waited {timeout:g} s for {path})",
            hint="Another specflow-nb command or server is writing this project's state; retry when it is done. "
            "The lock is released automatically when its holder exits.",
            details={"lockFile": str(path), "timeoutSeconds": timeout},
        ) from None
    try:
        yield
    finally:
        lock.release()


def _utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


# --------------------------------------------------------------------------------------------------------------
# Orchestration records


class OrchestrationStore:
    """The orchestration records of one project.

    ``save`` does not bump ``version`` or ``updatedAt``: the caller owns the record's content and, for a
    read-modify-write, holds :meth:`lock` around load + change + save.
    """

    def __init__(self, project: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.project = Path(project)
        self.folder = self.project / SPECFLOW_DIR / WORKFLOWS_DIR
        self.lock_timeout = lock_timeout

    # ---- ids and paths

    @staticmethod
    def new_id(now: datetime | None = None) -> str:
        """A new id that sorts by creation time: ``20261125T165000-ab12cd`` (UTC second + 6 random hex digits)."""
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S")
        return f"{stamp}-{secrets.token_hex(3)}"

    def path_for(self, orchestration_id: str) -> Path:
        """The record's file; an id that is not a plain file-name fragment is refused (no path tricks)."""
        if not isinstance(orchestration_id, str) or not _ID_RE.match(orchestration_id) or ".." in orchestration_id:
            raise OrchestrationNotFound(
                f"Invalid orchestration id: {orchestration_id!r}",
                hint="Use an id from `list` (letters, digits, '-', '_' and '.').",
            )
        return self.folder / f"{_PREFIX}{orchestration_id}{_SUFFIX}"

    # ---- locking

    def lock(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """``with store.lock(): ...`` around a read-modify-write. Raises :class:`StateLocked` on timeout."""
        return project_lock(self.project, self.lock_timeout if timeout is None else timeout)

    # ---- writing

    def save(self, execution: OrchestrationExecution, *, spare: Path | None = None) -> Path:
        """Write ``execution`` atomically (temp file, fsync, rename, fsync folder) and return its path. ``spare``:
        a temp file made ahead (see :func:`atomic_write_text`)."""
        path = self.path_for(execution.id)
        self._confined()
        # secrets (the server's keys, agent_env values) never reach the file, whatever a run printed
        atomic_write_text(path, redact_json(execution.model_dump_json(indent=2), indent=2) + "\n", spare=spare)
        return path

    def write_ahead(self, execution: OrchestrationExecution, base_version: int) -> None:
        """Make ``execution`` durable in the record's write-ahead journal (:mod:`specflow_nb.journal`), the record
        file holding version ``base_version`` now; :meth:`save` writes the record itself after. Readers get the
        journal's state until then. The caller holds :meth:`lock` (and its fence)."""
        self._confined()
        journal.write(self.path_for(execution.id), execution, base_version)

    def _confined(self) -> None:
        from specflow_nb.confinement import check_links

        check_links(self.project)

    # ---- reading

    def load(self, orchestration_id: str) -> OrchestrationExecution:
        """The record ``orchestration_id``; :class:`OrchestrationNotFound` if absent or set aside as corrupt."""
        path = self.path_for(orchestration_id)
        execution = self._read(path)
        if execution is None:
            raise OrchestrationNotFound(
                f"No orchestration {orchestration_id} in {self.project}",
                hint="Run `specflow-nb orchestrate list` to see this project's orchestrations.",
            )
        return execution

    def settle(self, execution: OrchestrationExecution) -> None:
        """For a new owner, under :meth:`lock`: ``execution`` as :meth:`load` returned it. When that is the journal's
        step (the host that wrote it stopped before writing the record behind it), it is written as the record, so
        the record on disk is the state the new owner fences its saves against."""
        on_file = self._read_file(self.path_for(execution.id))
        if on_file is None or on_file.version != execution.version:
            self.save(execution)

    def list(self) -> list[OrchestrationExecution]:
        """Every readable record, newest first (by ``startedAt``, then id). Corrupt files are set aside."""
        if not self.folder.is_dir():
            return []
        from specflow_nb.confinement import link_outside

        if link_outside(self.project) is not None:  # nothing is read through a link out of the project
            logger.warning("Not reading %s: a folder of the project is a link leading outside it", self.folder)
            return []
        found = []
        for path in self.folder.glob(f"{_PREFIX}*{_SUFFIX}"):
            execution = self._read(path)
            if execution is not None:
                found.append(execution)
        found.sort(key=lambda e: (e.started_at, e.id), reverse=True)
        return found

    def active(self) -> OrchestrationExecution | None:
        """The newest active record (running, paused, waiting_merge, needs_attention), or None."""
        return next((e for e in self.list() if e.status.is_active), None)

    def corrupt_files(self) -> builtins.list[Path]:
        """Files set aside as corrupt, oldest name first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"{_PREFIX}*{_SUFFIX}.corrupt-*"))

    def _parse(self, path: Path) -> OrchestrationExecution | None:
        """The record in ``path``; None if absent. Raises ValueError/ValidationError when unreadable."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        execution = OrchestrationExecution.model_validate_json(raw)
        check_record(execution, path)
        return execution

    def _read(self, path: Path) -> OrchestrationExecution | None:
        """The record in ``path``, or the state its write-ahead journal holds one step ahead of it (the host that
        wrote it stopped before writing the record); None if absent or set aside as corrupt."""
        execution = self._read_file(path)
        if execution is None:
            return None
        ahead = journal.newer(path, execution)
        if ahead is None:
            return execution
        try:
            check_record(ahead, path)  # the record's own checks: its id, its folders inside the project
        except ValueError:
            return execution
        return ahead

    def _read_file(self, path: Path) -> OrchestrationExecution | None:
        try:
            return self._parse(path)
        except (ValueError, ValidationError, UnicodeDecodeError):
            pass
        # Looks corrupt. Confirm under the lock: a writer may have replaced it since we read, and renaming a good
        # record aside would lose it.
        try:
            with self.lock():
                try:
                    return self._parse(path)
                except (ValueError, ValidationError, UnicodeDecodeError) as exc:
                    self._set_aside(path, exc)
                    return None
        except StateLocked:
            logger.warning("Skipping unreadable %s (state lock busy; it will be set aside on a later read)", path)
            return None

    def _set_aside(self, path: Path, exc: BaseException) -> Path:
        stamp = _utc_stamp()
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        os.replace(path, target)
        _fsync_dir(path.parent)
        journal.discard(path)  # it followed the record set aside: never a step ahead of a rebuilt one
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("Corrupt orchestration record %s set aside as %s: %s", path.name, target.name, reason)
        return target


def check_record(execution: OrchestrationExecution, path: Path) -> None:
    """A record whose id is not its file's, or whose folders leave the project, is invalid (ValueError): it is set
    aside like a corrupt one and never blocks the project (a hand-edited ``id: "../../x"`` or ``featureDir``)."""
    expected = path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX)
    if not _ID_RE.match(expected) or ".." in expected:
        raise ValueError(f"its file name {path.name[:80]!r} holds no valid orchestration id")
    if execution.id != expected:
        raise ValueError(f"its id {execution.id[:80]!r} is not the one its file name says ({expected!r})")
    if execution.version < 0:
        raise ValueError(f"its version {execution.version} is negative")
    for name, value in (("featureDir", execution.feature_dir),):
        if value is None:
            continue
        parts = PurePosixPath(value.replace("\\", "/")).parts
        if not value or value.startswith(("/", "\\")) or ".." in parts or "\x00" in value or ":" in value[:3]:
            raise ValueError(f"its {name} {value[:80]!r} leaves the project")


# --------------------------------------------------------------------------------------------------------------
# .specflow/orchestration-state.json


def parse_value(text: str) -> Any:
    """A ``state set`` value: JSON numbers, true/false/null, objects, arrays and quoted strings; else the text."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN/Infinity are not JSON; keep them as strings

    try:
        return json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text


def split_key(key: str) -> list[str]:
    """``a.b.c`` -> ``["a", "b", "c"]``; an empty key or an empty part raises :class:`ConfigError`."""
    parts = key.split(".")
    if not key or any(not p.strip() for p in parts):
        raise ConfigError(
            f"Invalid state key {key!r}",
            hint="Use a dot path of non-empty names, e.g. orchestration.step.current=implement",
        )
    return parts


class StateFile:
    """``{project}/.specflow/orchestration-state.json``: free-form JSON written by ``state set``, read by status."""

    def __init__(self, project: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.project = Path(project)
        self.path = self.project / SPECFLOW_DIR / STATE_FILE
        self.lock_timeout = lock_timeout

    def load(self) -> dict[str, Any]:
        """The state as a dict ({} when the file does not exist). Unparseable JSON raises :class:`ConfigError`."""
        try:
            text = self.path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"Cannot read {self.path}: {exc}", hint="Fix the file's permissions or encoding, or delete it."
            ) from None
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise ConfigError(
                f"{self.path} is not valid JSON ({exc})", hint="Fix the file or delete it to start over."
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} does not hold a JSON object", hint="Fix the file or delete it.")
        return data

    def get(self, key: str | None = None) -> Any:
        """The whole state, or the value at a dot path; a missing key raises :class:`ConfigError`."""
        data: Any = self.load()
        if key is None:
            return data
        for i, part in enumerate(parts := split_key(key)):
            if not isinstance(data, dict) or part not in data:
                raise ConfigError(
                    f"No state key {'.'.join(parts[: i + 1])!r}",
                    hint="Run `specflow-nb state get` to see what is set.",
                )
            data = data[part]
        return data

    def set(self, assignments: list[str]) -> dict[str, Any]:
        """Apply ``key=value`` assignments (dot paths, typed values) atomically under the project lock.

        All assignments are validated before anything is written: one bad key leaves the file untouched.
        Returns the new state.
        """
        if not assignments:
            raise ConfigError(
                "No assignments given", hint="Pass key=value pairs, e.g. orchestration.step.current=verify"
            )
        parsed: list[tuple[list[str], Any]] = []
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"Expected key=value, got {item!r}", hint="e.g. orchestration.step.status=complete")
            parsed.append((split_key(key.strip()), parse_value(value)))
        with project_lock(self.project, self.lock_timeout):
            data = self.load()
            for parts, value in parsed:
                node = data
                for depth, part in enumerate(parts[:-1]):
                    child = node.setdefault(part, {})
                    if not isinstance(child, dict):
                        raise ConfigError(
                            f"Cannot set {'.'.join(parts)!r}: {'.'.join(parts[: depth + 1])!r} is "
                            f"{json.dumps(child)}, not an object",
                            hint=f"Set {'.'.join(parts[: depth + 1])} to an object first, or choose another key.",
                        )
                    node = child
                node[parts[-1]] = value
            atomic_write_text(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return data
