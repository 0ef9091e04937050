"""Files made ahead, while an agent runs, so that the transition after it creates none: a spare temp file for the
next save of the record and a spare run folder (its files already there) for the next run.

Apart because both the store (the record's atomic write) and the launcher (a run's folder) take from it, and it is
about neither: creating a file costs this host's file system a few hundred microseconds of kernel time (an inode,
a directory entry, the journal), several times over per transition (the record's temp file, the run folder,
run.lock, prompt.md, argv.json), while writing into a file that exists and renaming it costs a few microseconds.
Nothing else changes: the record is still written to a temp file, fsynced and renamed over the old one (then its
folder fsynced), and a run's folder still appears whole, by a rename, before its process starts.

Spares live in ``.specflow/spares/`` (never read by anyone else), named after the process that made them; a
spare that vanished or cannot be used is simply not used (the caller creates its files as it always did), and
spares of processes that no longer run are removed when a new one is made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

SPARES_DIR = Path(".specflow") / "spares"

#: The files a spare run folder holds (empty) under a name of their own, renamed to theirs when the folder is used
#: (nothing looking for a run's files finds a spare's).
SPARE_SUFFIX = ".spare"


def _folder(project: Path, *, create: bool = True) -> Path | None:
    """The project's spares folder (made if needed); None unless it and ``.specflow`` are real folders (a link is
    never written through)."""
    folder = Path(project) / SPARES_DIR
    try:
        if not stat.S_ISDIR(os.lstat(folder.parent).st_mode):  # lstat: a symlink is not a directory here
            return None
        if create:
            folder.mkdir(exist_ok=True)
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
    except OSError:
        return None
    return folder


def _sweep(folder: Path) -> None:
    """Remove the spares of processes that no longer run (a spare in use by a live one is never touched; one
    removed by mistake only means its owner creates its files itself)."""
    me = os.getpid()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            head = entry.name.split("-", 1)[0]
            if not head.isdigit() or int(head) == me:
                continue
            try:
                os.kill(int(head), 0)
                continue
            except ProcessLookupError:
                pass
            except OSError:
                continue  # exists (another user's): leave it
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def make_record_spare(project: Path) -> Path | None:
    """A spare (an empty file) for the next save of a record of ``project``; None if none can be made."""
    folder = _folder(project)
    if folder is None:
        return None
    _sweep(folder)
    path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.record.tmp"
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644))
    except OSError:
        return None
    return path


def open_record_spare(spare: Path | None) -> int | None:
    """The spare, opened (truncated) for writing; None when it is gone or its folder is no longer a real one."""
    if spare is None or _folder(spare.parent.parent.parent, create=False) is None:
        return None
    flags = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(spare, flags)
    except OSError:
        return None


def discard(spare: Path | None) -> None:
    """Remove a spare that will not be used (a file or a run folder)."""
    if spare is None:
        return
    if spare.is_dir() and not spare.is_symlink():
        shutil.rmtree(spare, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            spare.unlink()


def make_run_spare(project: Path, names: tuple[str, ...]) -> Path | None:
    """A spare run folder for the next run in ``project``, holding empty files for ``names`` (the files a launch
    writes before its process starts), each under ``name + SPARE_SUFFIX``."""
    folder = _folder(project)
    if folder is None:
        return None
    path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.run"
    try:
        path.mkdir()
        for name in names:
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            os.close(os.open(path / (name + SPARE_SUFFIX), flags, 0o644))
    except OSError:
        shutil.rmtree(path, ignore_errors=True)
        return None
    return path


def take_run_spare(spare: Path | None, run_dir: Path) -> bool:
    """Move a spare run folder into place as ``run_dir`` (one rename); False when there is no usable spare or the
    run folder already exists (then the caller makes it as always)."""
    if spare is None or _folder(spare.parent.parent.parent, create=False) is None:
        return False
    try:
        os.rename(spare, run_dir)  # refuses an existing, non-empty run folder
    except OSError:
        return False
    with contextlib.suppress(OSError), os.scandir(run_dir) as entries:
        for entry in list(entries):
            if entry.name.endswith(SPARE_SUFFIX):
                os.rename(entry.path, os.path.join(run_dir, entry.name[: -len(SPARE_SUFFIX)]))
    return True


class Shelf:
    """The spares an engine holds, per project: taken by a transition's save and launch, made again (in a worker
    thread, while the next agent runs) by :meth:`restock`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[Path, Path] = {}
        self._runs: dict[Path, Path] = {}
        self._busy: set[Path] = set()
        self._drops: dict[Path, int] = {}  # how often each project's spares were dropped (a restock in flight
        # when they are dropped throws away what it made)

    def take_record(self, project: Path) -> Path | None:
        with self._lock:
            return self._records.pop(project, None)

    def take_run(self, project: Path) -> Path | None:
        with self._lock:
            return self._runs.pop(project, None)

    def wants(self, project: Path) -> bool:
        """A spare of ``project`` is missing and none is being made."""
        with self._lock:
            return project not in self._busy and (project not in self._records or project not in self._runs)

    def generation(self, project: Path) -> int:
        """Changes whenever ``project``'s spares are dropped: pass it to :meth:`restock` when scheduling one."""
        with self._lock:
            return self._drops.get(project, 0)

    def restock(self, project: Path, make_run: Callable[[Path], Path | None], generation: int) -> None:
        """Make the missing spares of ``project`` (blocking: file creations). ``make_run`` makes a run folder;
        ``generation``: :meth:`generation` when the restock was asked for (spares dropped since are not made)."""
        with self._lock:
            if project in self._busy:
                return
            self._busy.add(project)
        try:
            with self._lock:
                need_record, need_run = project not in self._records, project not in self._runs
                drops = generation
            record = make_record_spare(project) if need_record else None
            run = make_run(project) if need_run else None
            with self._lock:
                dropped = self._drops.get(project, 0) != drops
                for shelf, spare in ((self._records, record), (self._runs, run)):
                    if spare is not None and (dropped or shelf.setdefault(project, spare) is not spare):
                        discard(spare)
        finally:
            with self._lock:
                self._busy.discard(project)

    def drop(self, project: Path) -> None:
        """Remove ``project``'s spares (its orchestration has ended: no transition will take them)."""
        with self._lock:
            self._drops[project] = self._drops.get(project, 0) + 1
            spares = [self._records.pop(project, None), self._runs.pop(project, None)]
        for spare in spares:
            discard(spare)
