"""What the agent is doing now, derived by ANY host from the run's ``stream.jsonl`` (and the project's tasks.md).

The owner of an orchestration follows its run's stream; observers (a second server on a shared folder, ``orchestrate
watch``, the engine in a kernel that does not own it) see the same files. So the "Now" line is never a message
from the owner: every host reads the run folder itself, incrementally (one :class:`ActivityReader` per run, which
only parses the bytes the file gained since its last look), and answers with the same :class:`Activity`. Its
``etag`` is a pure function of what was read (run id, bytes consumed, tasks done/total, finished), so a client's
``since=<etag>`` means the same thing on every host and every restart.

Words come from :func:`describe_tool`: "Editing src/todo/store.py", "Running pytest -q", "Reading tasks.md".
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
from pydantic import Field

from specflow_nb.agent.stream import (
    AssistantMessage,
    CodexError,
    ItemEvent,
    ResultMessage,
    StreamEvent,
    StreamParser,
    SystemInit,
    TurnCompleted,
    TurnFailed,
    UserMessage,
)
from specflow_nb.models import CamelModel, OrchestrationExecution

WORKFLOWS = Path(".specflow") / "workflows"
STREAM_FILE = "stream.jsonl"
STDERR_FILE = "stderr.log"
#: Lines kept for the Now view's short history.
RECENT_LINES = 6
#: How long a long-poll waits at most between two looks (status and tasks.md changes are not in the run folder).
RECHECK_SECONDS = 0.5
#: Readers kept per process (one per run recently asked about).
MAX_READERS = 64
#: Longest text of one line.
LINE_CHARS = 160


class ActivityLine(CamelModel):
    """One thing the agent did: ``kind`` is tool, text, result or error."""

    kind: str
    text: str


class Activity(CamelModel):
    """The live run of an orchestration as a person reads it."""

    orchestration_id: str | None = None
    run_id: str
    #: "Editing src/todo/store.py"; "" before the first tool call or text.
    now: str = ""
    #: The newest tool call in words (kept while the agent writes text after it).
    tool: str = ""
    turns: int = 0
    #: Cost so far, when the agent has reported one (Claude Code reports it with its final result).
    cost_usd: float | None = None
    started_at: datetime | None = None
    last_output_at: datetime | None = Field(None, description="When the run last wrote to stream.jsonl or stderr.log")
    tasks_done: int | None = Field(None, description="Tasks checked in tasks.md right now (done or deferred)")
    tasks_total: int | None = None
    recent: list[ActivityLine] = Field(default_factory=list)
    finished: bool = False
    is_error: bool = False
    #: Same on every host for the same files: pass it back as ``since`` to wait for the next change.
    etag: str = ""


def _clip(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rel(path: Any, cwd: Path | None) -> str:
    text = str(path or "").strip()
    if not text:
        return "a file"
    if cwd is not None:
        try:
            return Path(text).resolve().relative_to(cwd.resolve()).as_posix()
        except (ValueError, OSError):
            pass
    return text


def describe_tool(name: str, tool_input: Any, cwd: Path | None = None) -> str:
    """A tool call in words: ``Edit {file_path}`` → "Editing src/todo/store.py"; ``Bash`` → "Running pytest -q"."""
    args = tool_input if isinstance(tool_input, dict) else {}
    path = args.get("file_path") or args.get("notebook_path") or args.get("path")
    lowered = name.lower()
    if name in ("Edit", "MultiEdit", "NotebookEdit") or lowered in ("edit", "apply_patch"):
        return f"Editing {_rel(path, cwd)}"
    if name == "Write" or lowered == "write":
        return f"Writing {_rel(path, cwd)}"
    if name == "Read" or lowered == "read":
        return f"Reading {_rel(path, cwd)}"
    if name == "Bash" or lowered in ("bash", "exec_command", "shell", "command_execution"):
        command = args.get("command")
        if isinstance(command, list):
            command = " ".join(str(c) for c in command)
        first = str(command or "").strip().splitlines()[0] if str(command or "").strip() else "a command"
        return _clip(f"Running {first}", 100)
    if name == "Grep":
        return _clip(f"Searching for {args.get('pattern', '')}", 100)
    if name in ("Glob", "LS"):
        return _clip(f"Listing {args.get('pattern') or _rel(path, cwd)}", 100)
    if name == "WebFetch":
        return _clip(f"Fetching {args.get('url', '')}", 100)
    if name == "WebSearch" or lowered == "web_search":
        return _clip(f"Searching the web for {args.get('query', '')}", 100)
    if name == "TodoWrite" or lowered == "todo_list":
        return "Updating its to-do list"
    if name in ("Task", "Agent"):
        return _clip(f"Delegating: {args.get('description') or 'a sub-task'}", 100)
    if name == "StructuredOutput":
        return "Reporting its result"
    return _clip(f"Using {name}", 100)


class ActivityTracker:
    """Folds stream events (Claude Code or Codex) into the Now line's state."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd
        self.tool = ""
        self.now = ""
        self.turns = 0
        self.cost_usd: float | None = None
        self.finished = False
        self.is_error = False
        self.recent: deque[ActivityLine] = deque(maxlen=RECENT_LINES)
        self._messages: set[str] = set()

    def _line(self, kind: str, text: str) -> None:
        text = _clip(text)
        if not text:
            return
        self.recent.append(ActivityLine(kind=kind, text=text))
        self.now = text
        if kind == "tool":
            self.tool = text

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, SystemInit):
            if event.cwd and self.cwd is None:
                self.cwd = Path(event.cwd)
            return
        if isinstance(event, AssistantMessage):
            msg_id = str(event.message.get("id") or len(self._messages))
            if msg_id not in self._messages:
                self._messages.add(msg_id)
                self.turns += 1
            if event.error:
                self._line("error", f"Error: {event.error}")
            for block in event.content:
                if block.get("type") == "tool_use":
                    self._line("tool", describe_tool(str(block.get("name") or "tool"), block.get("input"), self.cwd))
                elif block.get("type") == "text" and str(block.get("text") or "").strip():
                    self._line("text", str(block.get("text")))
            return
        if isinstance(event, UserMessage):
            for block in event.tool_results:
                if block.get("is_error"):
                    self._line("error", f"A tool failed: {_result_text(block.get('content'))}")
            return
        if isinstance(event, ResultMessage):
            self.finished = True
            self.is_error = bool(event.is_error)
            self.cost_usd = float(event.total_cost_usd or 0.0)
            self.turns = max(self.turns, int(event.num_turns or 0))
            verdict = "Failed" if event.is_error else "Finished"
            self._line("result", f"{verdict} after {self.turns} turn(s), ${self.cost_usd:.2f}")
            return
        if isinstance(event, ItemEvent):
            item = event.item
            kind = event.item_type
            if event.type == "item.started" and kind == "command_execution":
                self._line("tool", describe_tool("exec_command", {"command": item.get("command")}, self.cwd))
            elif event.type == "item.completed":
                if kind == "agent_message" and event.text.strip():
                    self.turns += 1
                    self._line("text", event.text)
                elif kind == "file_change":
                    changes = item.get("changes") or []
                    paths = [c.get("path") for c in changes if isinstance(c, dict)]
                    what = ", ".join(_rel(p, self.cwd) for p in paths[:3]) or "files"
                    self._line("tool", f"Editing {what}")
                elif kind == "command_execution" and self.tool == "":
                    self._line("tool", describe_tool("exec_command", {"command": item.get("command")}, self.cwd))
                elif kind == "mcp_tool_call":
                    self._line("tool", f"Using {item.get('tool') or 'a tool'}")
                elif kind == "web_search":
                    self._line("tool", describe_tool("WebSearch", {"query": item.get("query")}))
            return
        if isinstance(event, TurnCompleted):
            return
        if isinstance(event, TurnFailed):
            self.is_error = True
            self._line("error", f"Turn failed: {event.message}")
            return
        if isinstance(event, CodexError) and event.message:
            self._line("error", event.message)


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return str(content or "")


class ActivityReader:
    """Incremental reader of one run folder's stream: ``poll()`` parses only what the file gained."""

    def __init__(self, run_dir: Path, cwd: Path | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.tracker = ActivityTracker(cwd)
        self.parser = StreamParser()
        self.offset = 0
        self._inode: int | None = None
        self.lock = threading.Lock()

    def poll(self) -> ActivityTracker:
        path = self.run_dir / STREAM_FILE
        with self.lock:
            try:
                st = path.stat()
            except OSError:
                return self.tracker
            if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
                # the file was replaced (a retry reusing the folder): start over
                self.tracker = ActivityTracker(self.tracker.cwd)
                self.parser = StreamParser()
                self.offset = 0
            self._inode = st.st_ino
            if st.st_size > self.offset:
                with path.open("rb") as f:
                    f.seek(self.offset)
                    while chunk := f.read(1 << 16):
                        self.offset += len(chunk)
                        for event in self.parser.feed(chunk):
                            self.tracker.feed(event)
            return self.tracker


_readers: OrderedDict[str, ActivityReader] = OrderedDict()
_readers_lock = threading.Lock()
_tasks_cache: dict[str, tuple[tuple[int, int, int], int, int]] = {}
_feature_cache: dict[str, tuple[float, Path | None]] = {}


def reader_for(run_dir: Path, cwd: Path | None = None) -> ActivityReader:
    key = str(run_dir)
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = ActivityReader(run_dir, cwd)
        _readers.move_to_end(key)
        while len(_readers) > MAX_READERS:
            _readers.popitem(last=False)
        return reader


def task_counts_now(project: Path) -> tuple[int, int] | None:
    """(settled, total) of the project's tasks.md as it is on disk now (parsed again only when it changed)."""
    from specflow_nb.project import find_feature_dir
    from specflow_nb.tasks import parse_tasks

    key = str(project)
    cached = _feature_cache.get(key)
    if cached is None or time.monotonic() - cached[0] > 5.0:
        try:
            feature = find_feature_dir(project)
        except Exception:
            feature = None
        cached = _feature_cache[key] = (time.monotonic(), feature)
    feature = cached[1]
    if feature is None:
        return None
    path = feature / "tasks.md"
    try:
        st = path.stat()
    except OSError:
        return None
    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _tasks_cache.get(str(path))
    if hit is not None and hit[0] == sig:
        return hit[1], hit[2]
    try:
        parsed = parse_tasks(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    result = (len(parsed.settled_ids), parsed.total)
    _tasks_cache[str(path)] = (sig, *result)
    return result


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def run_folder(project: Path, run_id: str) -> Path:
    return Path(project) / WORKFLOWS / run_id


def activity_of(project: Path, execution: OrchestrationExecution | None) -> Activity | None:
    """The Now line of ``execution``'s current agent run (None when it has none, or the run is the built-in merge)."""
    if execution is None or execution.current_run is None or execution.current_run.builtin:
        return None
    run = execution.current_run
    folder = run_folder(project, run.execution_id)
    tracker = reader_for(folder, Path(project)).poll()
    times = [t for t in (_mtime(folder / STREAM_FILE), _mtime(folder / STDERR_FILE)) if t is not None]
    last = datetime.fromtimestamp(max(times), timezone.utc) if times else None
    counts = task_counts_now(Path(project))
    finished = tracker.finished or run.outcome is not None
    offset = reader_for(folder).offset
    etag = "|".join(str(x) for x in (run.execution_id, offset, counts or "", finished, execution.status.value))
    return Activity(
        orchestration_id=execution.id,
        run_id=run.execution_id,
        now=tracker.now,
        tool=tracker.tool,
        turns=tracker.turns,
        cost_usd=tracker.cost_usd,
        started_at=run.started_at,
        last_output_at=last,
        tasks_done=counts[0] if counts else None,
        tasks_total=counts[1] if counts else None,
        recent=list(tracker.recent),
        finished=finished,
        is_error=tracker.is_error,
        etag=etag,
    )


async def wait_activity(
    project: Path,
    current: Callable[[], OrchestrationExecution | None],
    since: str | None = None,
    timeout: float = 0.0,
) -> Activity | None:
    """The activity now; with ``since`` (an etag) wait up to ``timeout`` seconds for a different one.

    Wakes on the run folder's file events (inotify / watchfiles / polling, :mod:`specflow_nb.watching`) and looks
    again at least every :data:`RECHECK_SECONDS` (tasks.md and the record live elsewhere).
    """
    from specflow_nb.watching import FolderWatch

    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        execution = current()
        run = execution.current_run if execution is not None else None
        folder = run_folder(project, run.execution_id) if run is not None else Path(project) / WORKFLOWS
        watch = FolderWatch(folder) if folder.is_dir() else None
        try:
            if watch is not None:
                watch.__enter__()
            act = await anyio.to_thread.run_sync(activity_of, project, execution)
            etag = act.etag if act is not None else ""
            left = deadline - time.monotonic()
            if since is None or etag != since or left <= 0:
                return act
            if watch is not None:
                await watch.wait(min(RECHECK_SECONDS, left))
            else:
                await anyio.sleep(min(RECHECK_SECONDS, left))
        finally:
            if watch is not None:
                watch.__exit__(None, None, None)


def since_text(last: datetime | None, now: datetime | None = None) -> str:
    """ "last output 4s ago" / "2m ago"."""
    if last is None:
        return ""
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - last).total_seconds()))
    if seconds < 60:
        return f"last output {seconds}s ago"
    if seconds < 3600:
        return f"last output {seconds // 60}m {seconds % 60:02d}s ago"
    return f"last output {seconds // 3600}h {seconds // 60 % 60:02d}m ago"


def now_text(act: Activity | None, now: datetime | None = None) -> str:
    """The one-line Now text every host shows: "Editing src/todo/store.py · turn 7 · $0.12 · last output 3s ago"
    (the task counts go to each host's progress bar)."""
    if act is None:
        return ""
    if act.finished and act.now:
        return act.now  # "Finished after 10 turn(s), $0.12"
    parts = [act.now or "Starting the agent…"]
    if act.turns:
        parts.append(f"turn {act.turns}")
    if act.cost_usd is not None:
        parts.append(f"${act.cost_usd:.2f}")
    if not act.finished:
        ago = since_text(act.last_output_at, now)
        if ago:
            parts.append(ago)
    return " · ".join(parts)


__all__ = [
    "Activity",
    "ActivityLine",
    "ActivityReader",
    "ActivityTracker",
    "activity_of",
    "describe_tool",
    "now_text",
    "since_text",
    "task_counts_now",
    "wait_activity",
]


def matches(act: Activity | None, execution: OrchestrationExecution | None) -> bool:
    """The activity is of the execution's current run (not a previous run's, read before the record moved on)."""
    run = execution.current_run if execution is not None else None
    return act is not None and run is not None and act.run_id == run.execution_id
