"""Wake up when something in a folder changes: inotify on Linux, watchfiles elsewhere, polling on network folders.

``with FolderWatch(folder) as w: await w.wait(timeout)`` returns soon after a file in ``folder`` (not below it) is
created, written, renamed or removed, or after ``timeout`` seconds. Callers always look again after a wake-up, so a
spurious one costs a check, never a wrong answer.

- **Linux fast path**: ONE inotify descriptor per process (one inotify instance, one watch per folder), read by
  its own thread, which wakes the waiting tasks on their event loops. A server watching hundreds of projects and
  runs uses one of the user's (few, typically 128) inotify instances, not hundreds.
- **Portable path** (macOS, Windows, ``SPECFLOW_PORTABLE=1``): ONE watchfiles thread per process serves every watched
  folder of every loop, with a debounce of at most 100 ms. When the set of folders changes, its watch is restarted
  with the new set.
- Both threads are the watchers' own: never the engine's shared worker threads. Each ends when nothing is watched
  any more (:func:`join_idle` waits for that), so no thread outlives the engines that watched.
- **Network folders** (NFS, SMB, sshfs …, or ``SPECFLOW_WATCH_POLL=1``): change events do not cross machines there,
  so the watch simply wakes up every :data:`POLL_SECONDS` (≤ 1 s) and the caller looks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import select
import struct
import threading
from pathlib import Path

import anyio

from specflow_nb import procs

log = logging.getLogger("specflow_nb.watching")

#: How often a watch on a network folder looks again.
POLL_SECONDS = 0.5
#: watchfiles groups changes for at most this long (ms) before it reports them.
DEBOUNCE_MS = 100

_NETWORK_FS = frozenset(
    {"nfs", "nfs4", "cifs", "smbfs", "smb3", "afpfs", "9p", "ceph", "glusterfs", "lustre", "gpfs", "afs", "davfs"}
)


@functools.lru_cache(maxsize=256)
def _mount_fstype(folder: str) -> str:
    import psutil

    best, fstype = "", ""
    with contextlib.suppress(OSError):
        for part in psutil.disk_partitions(all=True):
            mp = part.mountpoint
            if (folder == mp or folder.startswith(mp.rstrip(os.sep) + os.sep)) and len(mp) >= len(best):
                best, fstype = mp, part.fstype
    return fstype.lower()


def is_network_folder(folder: Path) -> bool:
    """The folder lives on a network filesystem, where change events from other machines never arrive."""
    fstype = _mount_fstype(os.path.realpath(folder))
    return fstype in _NETWORK_FS or fstype.startswith("fuse.sshfs") or fstype.startswith("nfs")


def watch_mode(folder: Path) -> str:
    """How ``folder`` is watched here: ``inotify``, ``watchfiles`` or ``poll``."""
    if os.environ.get("SPECFLOW_WATCH_POLL", "") not in ("", "0") or is_network_folder(folder):
        return "poll"
    if not procs.portable() and _libc() is not None:
        return "inotify"
    return "watchfiles"


# --------------------------------------------------------------------------------------------------------------
# inotify (Linux)

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_MOVED_FROM, _IN_CREATE, _IN_DELETE = 0x2, 0x8, 0x80, 0x40, 0x100, 0x200


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.inotify_init1  # noqa: B018  (present only on Linux)
    except (OSError, AttributeError):
        return None
    return libc


class _InotifyThread:
    """The process's one inotify instance: a watch descriptor per folder, read by one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._wake: int | None = None  # the write end of the pipe that tells the reader to stop
        self._wds: dict[int, str] = {}  # watch descriptor -> folder
        self._waiters: dict[str, set[_Waiter]] = {}
        self._thread: threading.Thread | None = None

    def add(self, folder: str, waiter: _Waiter) -> bool:
        """Watch ``folder`` for ``waiter``; False when inotify cannot (no instance left, no such folder)."""
        libc = _libc()
        if libc is None:
            return False
        with self._lock:
            if self._fd is None:
                fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
                if fd < 0:
                    return False
                wake_r, self._wake = os.pipe2(os.O_CLOEXEC)
                self._fd = fd
                # A new instance gets its own reader (the previous one, if any, is on its way out).
                self._thread = threading.Thread(
                    target=self._run, args=(fd, wake_r), name="specflow-inotify", daemon=True
                )
                self._thread.start()
            if folder not in self._waiters:
                mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_MOVED_FROM | _IN_CREATE | _IN_DELETE
                wd = libc.inotify_add_watch(self._fd, os.fsencode(folder), mask)
                if wd < 0:
                    return False
                self._wds[wd] = folder
                self._waiters[folder] = set()
            self._waiters[folder].add(waiter)
        return True

    def remove(self, folder: str, waiter: _Waiter) -> None:
        libc = _libc()
        with self._lock:
            waiters = self._waiters.get(folder)
            if waiters is None:
                return
            waiters.discard(waiter)
            if waiters:
                return
            del self._waiters[folder]
            for wd, name in list(self._wds.items()):
                if name == folder:
                    del self._wds[wd]
                    if libc is not None and self._fd is not None:
                        libc.inotify_rm_watch(self._fd, wd)
            if not self._waiters and self._wake is not None:
                # Nothing is watched any more: the reader closes the instance and ends (no thread outlives the
                # engines that watched; the next watch starts a new instance and reader).
                wake, self._wake, self._fd = self._wake, None, None
                self._wds.clear()
                with contextlib.suppress(OSError):
                    os.write(wake, b"x")
                os.close(wake)

    def idle_thread(self) -> threading.Thread | None:
        """The reader thread when nothing is watched (it is ending), to join; None while something is watched."""
        with self._lock:
            return self._thread if not self._waiters else None

    def _run(self, fd: int, wake: int) -> None:
        try:
            self._read(fd, wake)
        finally:
            os.close(fd)
            os.close(wake)

    def _read(self, fd: int, wake: int) -> None:
        while True:
            try:
                ready, _, _ = select.select([fd, wake], [], [])
                if wake in ready:
                    return
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # the descriptor is gone
                return
            touched: set[str] = set()
            offset = 0
            with self._lock:
                while offset + 16 <= len(data):
                    wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                    offset += 16 + length
                    folder = self._wds.get(wd)
                    if folder is not None:
                        touched.add(folder)
                hit = [w for folder in touched for w in self._waiters.get(folder, ())]
            for waiter in hit:
                waiter.fire()


# --------------------------------------------------------------------------------------------------------------
# watchfiles: one thread for the whole process


class _Waiter:
    """One FolderWatch's wake-up flag, set from the watch thread on the waiter's own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def fire(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(self.event.set)


class _WatchThread:
    """The process's one watchfiles thread: watches the union of every registered folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = {}
        self._thread: threading.Thread | None = None
        self._ending: threading.Thread | None = None  # the thread that found nothing to watch and returned
        self._stop = threading.Event()

    def add(self, folder: str, waiter: _Waiter) -> None:
        with self._lock:
            self._waiters.setdefault(folder, set()).add(waiter)
            self._restart_locked()

    def remove(self, folder: str, waiter: _Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(folder)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[folder]
                    self._restart_locked()

    def idle_thread(self) -> threading.Thread | None:
        """The watch thread when nothing is watched (it is ending), to join; None while something is watched."""
        with self._lock:
            return (self._thread or self._ending) if not self._waiters else None

    def _restart_locked(self) -> None:
        self._stop.set()  # the running watch ends and the loop below starts one with the new set
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="specflow-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import watchfiles

        while True:
            with self._lock:
                folders = [f for f in self._waiters if os.path.isdir(f)]
                if not self._waiters:
                    self._ending, self._thread = self._thread, None
                    return
                stop = self._stop = threading.Event()
            if not folders:
                stop.wait(POLL_SECONDS)
                continue
            try:
                first = True
                for changes in watchfiles.watch(
                    *folders,
                    watch_filter=None,
                    debounce=DEBOUNCE_MS,
                    step=20,
                    stop_event=stop,
                    rust_timeout=200,
                    yield_on_timeout=True,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    if first:
                        # The watch is live from here on: everyone looks once, so a change made while the watch
                        # was being (re)started is not missed.
                        first = False
                        self._dispatch(set(folders))
                    self._dispatch({os.path.dirname(path) for _, path in changes} | {p for _, p in changes})
            except Exception as exc:  # a folder vanished under the watch: start again with what exists
                log.debug("folder watch restarted: %s", exc)
                stop.wait(0.1)

    def _dispatch(self, touched: set[str]) -> None:
        with self._lock:
            hit = [w for folder in touched for w in self._waiters.get(folder, ())]
        for waiter in hit:
            waiter.fire()


_THREAD = _WatchThread()
_INOTIFY = _InotifyThread()


def join_idle(timeout: float = 5.0) -> None:
    """Wait until the process's watch threads have ended if nothing is watched any more (an engine that stops
    calls this in a worker thread, so no thread of it outlives it); returns at once while anything is watched."""
    for watcher in (_INOTIFY, _THREAD):
        thread = watcher.idle_thread()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


# --------------------------------------------------------------------------------------------------------------
# The public watch


class FolderWatch:
    """Wakes up when a file directly in ``folder`` changes; see the module docstring for how."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.mode = watch_mode(self.folder)
        self._waiter: _Waiter | None = None
        self._key = os.path.realpath(self.folder)

    def __enter__(self) -> FolderWatch:
        if self.mode == "inotify":
            self._waiter = _Waiter()
            if not _INOTIFY.add(self._key, self._waiter):
                self._waiter, self.mode = None, "poll"
        elif self.mode == "watchfiles":
            self._waiter = _Waiter()
            _THREAD.add(self._key, self._waiter)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._waiter is not None:
            (_INOTIFY if self.mode == "inotify" else _THREAD).remove(self._key, self._waiter)
            self._waiter = None

    async def wait(self, timeout: float | None) -> None:
        """Return after a change in the folder, or after ``timeout`` seconds (None: no limit)."""
        if self._waiter is not None:
            with anyio.move_on_after(timeout):
                await self._waiter.event.wait()
            self._waiter.event.clear()
            return
        await anyio.sleep(POLL_SECONDS if timeout is None else max(0.0, min(timeout, POLL_SECONDS)))
