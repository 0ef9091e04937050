"""Checking tasks off in tasks.md, in place: every other byte of the file is kept, writers serialize on a lock
beside the project (never beside the file), and the write is atomic.

Apart from the parser because it writes: one module owns every change to a tasks.md.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from specflow_nb.errors import ConfigError, TasksFileMissing
from specflow_nb.models import CamelModel, TaskState
from specflow_nb.tasks_parse import _split
from specflow_nb.tasks_scan import _BLOCKED_BRACKET_RE, _BOX_OF_STATE, _STATE_OF_BOX, _TASK, _scan


class MarkResult(CamelModel):
    """The outcome of :func:`mark_tasks`: the new text and what happened to each requested ID."""

    text: str
    changed: list[str] = Field(default_factory=list)
    #: Already in the requested state (and reason): the line was left as it was.
    unchanged: list[str] = Field(default_factory=list)
    #: Not a task in this file (or not a valid ID).
    missing: list[str] = Field(default_factory=list)


_ID_ARG_RE = re.compile(r"[Tt]([0-9]{3,})([A-Za-z]?)", re.ASCII)
_RANGE_ARG_RE = re.compile(r"[Tt]([0-9]{3,})[A-Za-z]?\.\.[Tt]([0-9]{3,})[A-Za-z]?", re.ASCII)
#: The longest range ``mark`` expands (``T001..T99999`` is a typo, not 99,999 tasks).
MAX_RANGE = 10_000


def _normalize_id(raw: str) -> str | None:
    m = _ID_ARG_RE.fullmatch(raw.strip())
    return f"T{m.group(1)}{m.group(2).lower()}" if m else None


def expand_task_ids(args: Iterable[str], known: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Task IDs from command-line arguments: ``T001``, ``t001`` and numeric ranges ``T998..T1002``.

    A range covers the numbers from its first to its last ID (letters on the ends are ignored, as the original's
    ``mark`` does) and names, for each number, the task of ``known`` with that number and no letter (so ``T0998``
    written with four digits is found too), else the three-digit-padded ID (reported missing by the caller).
    Returns (IDs in order, each once; arguments that are neither an ID nor a range).
    """
    if isinstance(args, str):
        args = [args]
    by_number: dict[int, str] = {}
    for task_id in known:
        m = _ID_ARG_RE.fullmatch(task_id)
        if m and not m.group(2):
            by_number.setdefault(int(m.group(1)), task_id)
    ids: dict[str, None] = {}
    invalid: list[str] = []
    for raw in args:
        text = raw.strip()
        rng = _RANGE_ARG_RE.fullmatch(text)
        if rng:
            start, end = int(rng.group(1)), int(rng.group(2))
            if start > end or end - start >= MAX_RANGE:
                invalid.append(raw)
                continue
            for n in range(start, end + 1):
                ids.setdefault(by_number.get(n) or f"T{n:03d}", None)
            continue
        norm = _normalize_id(text)
        if norm is None:
            invalid.append(raw)
        else:
            ids.setdefault(norm, None)
    return list(ids), invalid


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    # One line, and no brackets that would end the "[blocked: …]" annotation early.
    cleaned = " ".join(reason.replace("[", "(").replace("]", ")").split())
    return cleaned or None


def _rewrite(line: str, m: re.Match[str], state: TaskState, reason: str | None) -> str:
    """``line`` (with any ``\\r``) with its checkbox set to ``state``; the blocked annotation added or dropped."""
    old_state = _STATE_OF_BOX.get(m.group("box"))
    new = line
    if old_state is not state:  # "[X]" is already done and "[-]" already deferred: keep the author's spelling
        # Only lines with a known, one-character checkbox reach here; the match was made on this line minus "\r".
        at = m.start("box")
        new = line[:at] + _BOX_OF_STATE[state] + line[at + 1 :]
    if state is TaskState.BLOCKED and reason:
        annotation = f" [blocked: {reason}]"
        if _BLOCKED_BRACKET_RE.search(new):
            new = _BLOCKED_BRACKET_RE.sub(lambda _m: annotation, new, count=1)
        else:
            end = len(new.rstrip(" \t\r"))
            new = new[:end] + annotation + new[end:]
    elif old_state is TaskState.BLOCKED and state is not TaskState.BLOCKED:
        # Our own annotation goes away with the block; prose ("— blocked: …") is the author's and stays.
        new = _BLOCKED_BRACKET_RE.sub("", new, count=1)
    return new


def mark_tasks(text: str, ids: Iterable[str], state: TaskState, reason: str | None = None) -> MarkResult:
    """Set the checkbox of each task in ``ids`` to ``state`` and return the new text.

    Only the checkbox character changes (``[ ]``, ``[x]``, ``[b]`` or ``[~]``), so every other byte of the file —
    line endings, a BOM, trailing spaces, code fences, other lines — stays as it was. Two documented extras:
    marking *blocked* with a ``reason`` writes `` [blocked: reason]`` at the end of the line (replacing an earlier
    ``[blocked: …]``), and moving a task *out of* blocked removes that ``[blocked: …]`` annotation. A task that
    appears twice is marked at its first line, the one the parser keeps.
    """
    if isinstance(ids, str):  # mark_tasks(text, "T001", …) means one ID, not the characters "T", "0", "0", "1"
        ids = [ids]
    bom, lines = _split(text)
    reason = _clean_reason(reason) if state is TaskState.BLOCKED else None

    found: dict[str, tuple[int, re.Match[str]]] = {}
    for kind, index, m in _scan(lines):
        if kind != _TASK:
            continue
        task_id = m.group("id")
        if task_id is not None and task_id not in found and m.group("box") in _STATE_OF_BOX:
            found[task_id] = (index, m)
    expanded, missing = expand_task_ids(ids, found)
    wanted = dict.fromkeys(expanded)

    changed: list[str] = []
    unchanged: list[str] = []
    for task_id in wanted:
        hit = found.get(task_id)
        if hit is None:
            missing.append(task_id)
            continue
        index, m = hit
        raw = lines[index]
        new = _rewrite(raw, m, state, reason)
        if new == raw:
            unchanged.append(task_id)
        else:
            lines[index] = new
            changed.append(task_id)
    new_text = bom + "\n".join(lines) if changed else text
    return MarkResult(text=new_text, changed=changed, unchanged=unchanged, missing=missing)


#: How often a writer re-reads and merges again when tasks.md keeps changing under it (an agent editing it).
MARK_RETRIES = 20


def tasks_lock_path(path: Path) -> Path:
    """The lock specflow_nb's own tasks.md writers share: ``{project}/.specflow/locks/tasks.lock`` (never beside
    tasks.md, where the phase's merge would commit it)."""
    path = Path(path).resolve()
    for folder in path.parents:
        if folder.name == "specs":
            return folder.parent / ".specflow" / "locks" / "tasks.lock"
        if (folder / ".specflow").is_dir() or (folder / ".git").exists():
            return folder / ".specflow" / "locks" / "tasks.lock"
    # a tasks.md outside any project: the writers still meet, in the temp folder
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"specflow-tasks-{digest}.lock"


def mark_tasks_file(path: Path, ids: Iterable[str], state: TaskState, reason: str | None = None) -> MarkResult:
    """:func:`mark_tasks` on a file, written atomically (temp file in the same folder, fsync, rename).

    Writers in specflow_nb (``mark``, the engine; any host) serialize on :func:`tasks_lock_path`, so two of them
    never lose each other's marks. An agent edits tasks.md without that lock, so the file is read again right
    before it is replaced: if it changed meanwhile, the marks are merged into the new content and tried again,
    never written over it. Bytes that are not UTF-8 survive unchanged. The file is not touched when nothing changes.
    """
    from filelock import FileLock, Timeout

    path = Path(path)
    ids = [ids] if isinstance(ids, str) else list(ids)
    lock_file = tasks_lock_path(path)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only project: nothing to serialize with, the write itself will say what is wrong
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        lock_file = Path(tempfile.gettempdir()) / f"specflow-tasks-{digest}.lock"
    try:
        with FileLock(lock_file, timeout=30):
            return _mark_merging(path, ids, state, reason)
    except Timeout:
        raise ConfigError(
            f"tasks.md is being written by another specflow-nb process (waited 30 s for {lock_file}).",
            hint="Retry when it is done; the lock is released when its holder exits.",
        ) from None


def _mark_merging(path: Path, ids: list[str], state: TaskState, reason: str | None) -> MarkResult:
    for _ in range(MARK_RETRIES):
        data = _read_tasks_bytes(path)
        result = mark_tasks(data.decode("utf-8", errors="surrogateescape"), ids, state, reason)
        if not result.changed:
            return result
        if _read_tasks_bytes(path) != data:
            continue  # changed under us (an agent's edit): merge the marks into the new content
        _atomic_write(path, result.text.encode("utf-8", errors="surrogateescape"))
        return result
    raise ConfigError(
        f"{path} kept changing while it was being marked; nothing was written.",
        hint="Wait for the agent editing it to finish, then mark again.",
    )


def _read_tasks_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise TasksFileMissing(
            f"No tasks file at {path}", hint="Check the feature folder, or run the design step to create tasks.md."
        ) from exc


def _atomic_write(path: Path, data: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
