"""What an engine holds in memory, and the task group every background task of it lives in.

Apart from the engine's behaviour (performing actions, stepping, owning, the host surface) because every one of those
collaborators shares it: one :class:`Slot` per project this engine knows (its store, its lock, the execution it
drives or observes, that execution's runs, the save fence), the :class:`Projects` registry that resolves project ids
and scans the root (with the one scanner, :mod:`specflow_nb.scanner`), and the :class:`TaskScope` (structured concurrency: every background task of the engine is
started in its anyio task group, so nothing outlives ``async with``; callbacks of hosts that return coroutines are
scheduled there too). Nothing here decides a transition (``machine.py`` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from specflow_nb.agent.claude import AgentRun
from specflow_nb.errors import OrchestrationNotFound, SpecflowError
from specflow_nb.machine import Notify
from specflow_nb.models import OrchestrationExecution
from specflow_nb.ownership import OwnerRecord
from specflow_nb.project import find_feature_dir, resolve_project
from specflow_nb.scanner import find_projects
from specflow_nb.store import OrchestrationStore

log = logging.getLogger("specflow_nb.orchestrator")

WORKFLOWS = Path(".specflow") / "workflows"


@dataclass
class Slot:
    """One project this host knows: its store, its lock, the execution it drives and that execution's runs."""

    project: Path
    project_id: str
    store: OrchestrationStore
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    execution: OrchestrationExecution | None = None
    runs: dict[str, AgentRun] = field(default_factory=dict)
    merge_conflicts: list[str] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    #: The scope of a long action (verify command, merge) a cancel or go-back may interrupt.
    busy: anyio.CancelScope | None = None
    #: orchestration id -> the repository's default branch (the merge target when the config names none).
    default_branch: dict[str, str] = field(default_factory=dict)
    #: This engine's owner record while it owns ``execution`` (None: it observes).
    owner: OwnerRecord | None = None
    #: The record file's stat signature and version right after this owner's last write (the save fence).
    fence: tuple[int, int, int] | None = None
    fenced_version: int = -1
    #: The record as last loaded by an observer (folder and file signatures), to reload only on change.
    seen: tuple[Any, ...] | None = None
    observing: bool = False

    @property
    def label(self) -> str:
        """The project as log lines name it."""
        return self.project_id or "."


def owns(slot: Slot) -> bool:
    """This engine drives the slot's current execution."""
    ex, mine = slot.execution, slot.owner
    return ex is not None and mine is not None and mine.orchestration_id == ex.id


def signature(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and content stamp: every atomic replace changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def run_dir(project: Path, run_id: str) -> Path:
    return project / WORKFLOWS / run_id


def feature_folder(slot: Slot, ex: OrchestrationExecution) -> Path | None:
    """The execution's feature folder (as recorded at start, else the project's current one)."""
    if ex.feature_dir:
        candidate = slot.project / ex.feature_dir
        if candidate.is_dir():
            return candidate
    return find_feature_dir(slot.project)


def target(slot: Slot, orchestration_id: str | None) -> OrchestrationExecution:
    ex = slot.execution
    if ex is not None and orchestration_id in (None, ex.id) and (ex.status.is_active or orchestration_id):
        return ex
    if orchestration_id is not None:
        return slot.store.load(orchestration_id)
    active = slot.store.active()
    if active is not None:
        return active
    newest = slot.store.list()
    if newest:
        return newest[0]
    raise OrchestrationNotFound(
        f"No orchestration in {slot.project_id or 'the project root'}.",
        hint="Start one with Complete Phase (POST workflow/orchestrate).",
    )


class Projects:
    """The projects under ``root`` this engine knows: one slot each, project ids resolved (and confined), a scan."""

    def __init__(self, root: Path, scan_depth: int) -> None:
        self.root = root
        self.scan_depth = scan_depth
        self.slots: dict[Path, Slot] = {}

    def slot(self, project: Path, project_id: str | None = None) -> Slot:
        slot = self.slots.get(project)
        if slot is None:
            pid = project_id if project_id is not None else self.project_id(project)
            slot = Slot(project=project, project_id=pid, store=OrchestrationStore(project))
            self.slots[project] = slot
        return slot

    def project_id(self, project: Path) -> str:
        rel = project.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    def resolve(self, project_id: str) -> Slot:
        project = resolve_project(self.root, project_id)
        return self.slot(project, self.project_id(project))

    def scan(self) -> Iterator[Path]:
        """Project folders under the root, at most ``scan_depth`` levels down: :func:`specflow_nb.scanner.find_projects`
        (the overview's scanner), without its limits (every project whose orchestration may need resuming)."""
        found, _ = find_projects(self.root, depth=self.scan_depth, limit=None, max_dirs=None)
        for _project_id, folder in found:
            yield folder


class TaskScope:
    """The engine's task group and its subscribers: every background task and every coroutine a host's callback
    returns runs in the task group, so leaving the engine's ``async with`` ends (and awaits) all of them."""

    def __init__(self) -> None:
        self.tg: anyio.abc.TaskGroup | None = None
        self.subscribers: list[Callable[[OrchestrationExecution], Any]] = []
        self.notify_subscribers: list[Callable[[OrchestrationExecution, Notify], Any]] = []

    def require(self) -> anyio.abc.TaskGroup:
        if self.tg is None:
            raise SpecflowError(
                "The orchestration loop is not running.",
                hint="Use `async with Orchestrator(root)` or await start_loop() first.",
            )
        return self.tg

    def background(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` in the loop's task group; an error in it is logged and never ends the loop (one project's
        disk-full must not stop every other project)."""

        async def guarded() -> None:
            try:
                await fn(*args, **kwargs)
            except Exception:
                log.exception("background task %s failed", getattr(fn, "__name__", fn))

        self.require().start_soon(guarded)

    def call(self, cb: Callable[..., Any], *args: Any) -> None:
        """Call a host's callback; a coroutine it returns runs in the task group. It never breaks the loop."""
        try:
            result = cb(*args)
            if asyncio.iscoroutine(result):
                if self.tg is None:
                    result.close()  # the loop has stopped: nothing may run past it
                    log.warning("subscriber %s called while the loop is stopped: its coroutine was dropped", cb)
                    return
                self.background(_awaited, result)
        except Exception:  # a host's callback must never break the loop
            log.exception("subscriber failed")

    def changed(self, slot: Slot, ex: OrchestrationExecution) -> None:
        """The slot's execution changed (saved here, or loaded from another owner's save): wake waiters, tell
        subscribers."""
        changed, slot.changed = slot.changed, anyio.Event()
        changed.set()
        for cb in list(self.subscribers):
            self.call(cb, ex)

    def notify(self, ex: OrchestrationExecution, action: Notify) -> None:
        for notify_cb in list(self.notify_subscribers):
            self.call(notify_cb, ex, action)


async def _awaited(coro: Awaitable[Any]) -> None:
    await coro


def refresh(slot: Slot, scope: TaskScope) -> None:
    """An observed project: load its current orchestration again if its files changed since the last look."""
    if owns(slot):
        return
    folder = slot.store.folder
    ex = slot.execution
    try:
        folder_sig = folder.stat().st_mtime_ns
    except OSError:
        folder_sig = None
    seen = (folder_sig, signature(slot.store.path_for(ex.id)) if ex else None)
    if seen == slot.seen and folder_sig is not None:
        return
    slot.seen = seen
    try:
        fresh = slot.store.active() or next(iter(slot.store.list()), None)
    except SpecflowError:
        return
    if fresh is None:
        return
    if ex is None or (fresh.id, fresh.version) != (ex.id, ex.version):
        slot.execution = fresh
        scope.changed(slot, fresh)
