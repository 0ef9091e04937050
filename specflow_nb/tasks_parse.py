"""Parsing tasks.md into :class:`ParsedTasks` (never raises on any text), reading it from disk, and the one
"all done" rule :func:`all_done`.

Apart from planning and marking: every host reads tasks, fewer plan or write them.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import NamedTuple

from pydantic import Field, PrivateAttr

from specflow_nb.errors import TasksFileMissing
from specflow_nb.models import CamelModel, Task, TaskState, all_tasks_done
from specflow_nb.tasks_scan import (
    _ANY_ID_RE,
    _BLOCKED_BRACKET_RE,
    _BLOCKED_PROSE_RE,
    _BOM,
    _BRACKET_DEPS_RE,
    _DEPS_RE,
    _HEADER,
    _ID_LIKE_RE,
    _ID_RE,
    _KNOWN_MARKER_RE,
    _LEGEND_BOXES,
    _MALFORMED,
    _OPEN_COMMENT,
    _OPEN_FENCE,
    _STATE_OF_BOX,
    _STORY_RE,
    _TAG_RE,
    DEFAULT_SECTION,
    _scan,
)


class ParsedTasks(CamelModel):
    """Everything read from one tasks.md."""

    tasks: list[Task] = Field(default_factory=list)
    #: The ``##`` header texts in file order (without ``## ``); the default section is not listed.
    sections: list[str] = Field(default_factory=list)
    #: True when at least one ``##`` section holds a task (then batches follow sections, else fixed-size chunks).
    has_sections: bool = False
    warnings: list[str] = Field(default_factory=list)

    # Position of each task's section among the headers (-1: default section), parallel to ``tasks``. Two headers
    # with the same text are two sections; this keeps them apart. Absent when the model was built by hand.
    _section_index: list[int] | None = PrivateAttr(default=None)

    def by_id(self) -> dict[str, Task]:
        """Tasks keyed by ID (IDs are unique: duplicates were dropped with a warning)."""
        return {t.id: t for t in self.tasks}

    @property
    def completed_ids(self) -> list[str]:
        """IDs of done tasks, in file order."""
        return [t.id for t in self.tasks if t.state is TaskState.DONE]

    @property
    def incomplete_ids(self) -> list[str]:
        """IDs of pending tasks (the ones a batch can run), in file order. Blocked and deferred ones are not here."""
        return [t.id for t in self.tasks if t.state is TaskState.PENDING]

    @property
    def total(self) -> int:
        return len(self.tasks)

    @property
    def done(self) -> int:
        return sum(1 for t in self.tasks if t.state is TaskState.DONE)

    @property
    def blocked(self) -> int:
        return sum(1 for t in self.tasks if t.state is TaskState.BLOCKED)

    @property
    def deferred(self) -> int:
        return sum(1 for t in self.tasks if t.state is TaskState.DEFERRED)

    @property
    def pending(self) -> int:
        return sum(1 for t in self.tasks if t.state is TaskState.PENDING)

    @property
    def deferred_ids(self) -> list[str]:
        """IDs of deferred tasks (``[~]``/``[-]``), in file order: they never hold a phase back."""
        return [t.id for t in self.tasks if t.state is TaskState.DEFERRED]

    @property
    def settled_ids(self) -> list[str]:
        """IDs of tasks that hold nothing back (done or deferred), in file order. The engine's "done" set."""
        return [t.id for t in self.tasks if t.state is TaskState.DONE or t.state is TaskState.DEFERRED]

    @property
    def all_done(self) -> bool:
        """The one "all done" rule (see :func:`all_done`)."""
        return all_done(self)


# Every parsed task sets every field, so all of them share one "fields set". pydantic only ever adds field names
# to it (already present) or copies it (model_copy), so sharing is safe and saves 10,000 sets in a large file.
_ALL_FIELDS_SET = set(Task.model_fields)
_new_object = object.__new__
_set = object.__setattr__


def _make_task(values: dict[str, object]) -> Task:
    """A Task from values the parser has already checked, without validating them again.

    ``Task.model_construct`` spends ~20 µs per task on alias lookups, which alone would eat the 100 ms budget of a
    10,000-task file; this sets the same four slots ``model_construct`` sets at its end. ``values`` must hold every
    field with its final type (a test compares the result with ``Task(**values)``).
    """
    task = _new_object(Task)
    _set(task, "__dict__", values)
    _set(task, "__pydantic_fields_set__", _ALL_FIELDS_SET)
    _set(task, "__pydantic_extra__", None)
    _set(task, "__pydantic_private__", None)
    return task


def _split(text: str) -> tuple[str, list[str]]:
    """The BOM (or "") and the lines split on ``\\n`` only (joining them with ``\\n`` gives the text back)."""
    bom = _BOM if text.startswith(_BOM) else ""
    return bom, text[len(bom) :].split("\n")


def _dependencies(body: str, own_id: str) -> list[str]:
    # Every notation contains "dep", "after" or "requires", usually near the end of the line: start the (slow,
    # case-insensitive) pattern just before the first of them instead of at every character of the description.
    low = body.lower()
    starts = [i for i in (low.find("dep"), low.find("after"), low.find("requires")) if i >= 0]
    if not starts:
        return []
    # lower() keeps positions unless some character changes length (e.g. "İ"); then scan the whole line.
    start = max(min(starts) - 1, 0) if len(low) == len(body) else 0
    found: list[str] = []
    for m in _DEPS_RE.finditer(body, start):
        found.extend(_ID_RE.findall(m.group(1) if m.group(1) is not None else m.group(2)))
    if not found:
        return found
    return [d for d in dict.fromkeys(found) if d != own_id]


def _squeeze(text: str) -> str:
    """``text`` on one line with single spaces (the brackets taken out of a description leave gaps)."""
    text = text.strip()
    return " ".join(text.split()) if "  " in text or "\t" in text or "\r" in text else text


def _blocked_reason(rest: str) -> str | None:
    m = _BLOCKED_BRACKET_RE.search(rest) or _BLOCKED_PROSE_RE.search(rest)
    if m is None:
        return None
    return m.group(1).strip() or None


def _malformed_warning(lineno: int, m: re.Match[str]) -> str:
    """What was not read on a line meant as a task, and how to write it."""
    box, task_id, rest = m.group("box"), m.group("id"), m.group("rest").strip()
    if box not in _STATE_OF_BOX:
        box = " "
    written = m.string.strip()
    fixed = f"- [{box}] {task_id}" + (f" {rest}" if rest else "")
    return (
        f"Line {lineno}: {_clip(written)!r} was not read as a task ({task_id}): write it as {_clip(fixed)!r} "
        "(a '-' bullet, a space, the checkbox, a space, then the ID)."
    )


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_tasks(text: str) -> ParsedTasks:
    """Read a tasks.md text. Never raises on a ``str``: unreadable lines are skipped and named in ``warnings``."""
    _, lines = _split(text)
    tasks: list[Task] = []
    section_index: list[int] = []
    sections: list[str] = []
    warnings: list[str] = []
    first_line: dict[str, int] = {}
    current, current_index = DEFAULT_SECTION, -1
    has_sections = False
    no_id_lines: list[int] = []
    header_lines: dict[str, int] = {}

    for kind, index, value in _scan(lines):
        lineno = index + 1
        if kind == _HEADER:
            title = value
            if not title:
                title = f"(untitled section, line {lineno})"
                warnings.append(f"Line {lineno}: a '##' header without a title; its tasks go under {title!r}.")
            elif title in header_lines:
                warnings.append(
                    f"Line {lineno}: section {title!r} appears again (first on line {header_lines[title]}); "
                    "each header is planned as its own batch."
                )
            header_lines.setdefault(title, lineno)
            sections.append(title)
            current, current_index = title, len(sections) - 1
            continue
        if kind == _OPEN_FENCE:
            warnings.append(f"Line {lineno}: a code fence is never closed; no task after it is read. Close the fence.")
            continue
        if kind == _OPEN_COMMENT:
            warnings.append(
                f"Line {lineno}: an HTML comment ('<!--') is never closed; no task after it is read. Close it with '-->'."
            )
            continue
        if kind == _MALFORMED:
            warnings.append(_malformed_warning(lineno, value))
            continue
        m: re.Match[str] = value
        box, task_id, markers = m.groups()
        if task_id is None:
            if box in _LEGEND_BOXES:
                continue  # "- [P] tasks = different files, no dependencies": a legend, not a task
            bad = _ID_LIKE_RE.match(m.string, m.end())
            if bad:
                warnings.append(
                    f"Line {lineno}: {bad.group(1)!r} is not a task ID (T001, T001a); the line was skipped."
                )
            else:
                no_id_lines.append(lineno)
            continue
        state = _STATE_OF_BOX.get(box)
        if state is None:
            warnings.append(
                f"Line {lineno}: {task_id} has an unknown checkbox '[{box}]' "
                "(use [ ], [x], [b], [~] or [-]); the line was skipped."
            )
            continue
        if task_id in first_line:
            warnings.append(
                f"Line {lineno}: duplicate task ID {task_id} (first on line {first_line[task_id]}); "
                "kept the first, skipped this one."
            )
            continue
        first_line[task_id] = lineno
        story: str | None = None
        body = m.string[m.end() :]
        if markers:
            if "[US" in markers:
                story_match = _STORY_RE.search(markers)
                story = story_match.group(1) if story_match else None
            known = _KNOWN_MARKER_RE.findall(markers)
            if len(known) != markers.count("["):
                # Tags we do not know ("[P1]", "[FR-001]") stay in the description, in their order.
                others = [t for t in _TAG_RE.findall(markers) if not _KNOWN_MARKER_RE.fullmatch(t)]
                body = " " + " ".join(others) + body
                markers = "".join(known)
        blocked_reason = _blocked_reason(body) if state is TaskState.BLOCKED else None
        # Most lines name no other task: one quick search spares them the slower dependency patterns.
        has_id = _ANY_ID_RE.search(body) is not None
        if "[" in body:
            # A "[blocked: …]" reason is free text: an ID in it is not a dependency, nor part of the description.
            if ":" in body:
                body = _BLOCKED_BRACKET_RE.sub("", body)
            depends_on = _dependencies(body, task_id) if has_id else []
            description = _BRACKET_DEPS_RE.sub("", body) if depends_on or ":" in body else body
        else:
            depends_on = _dependencies(body, task_id) if has_id else []
            description = body
        if current_index >= 0:
            has_sections = True
        tasks.append(
            _make_task(
                {
                    "id": task_id,
                    "description": _squeeze(description),
                    "state": state,
                    "section": current,
                    "line": lineno,
                    "parallel": bool(markers) and "[P]" in markers,
                    "verification": bool(markers) and "[V]" in markers,
                    "wiring": bool(markers) and "[W]" in markers,
                    "story": story,
                    "depends_on": depends_on,
                    "blocked_reason": blocked_reason,
                }
            )
        )
        section_index.append(current_index)

    if no_id_lines:
        shown = ", ".join(str(n) for n in no_id_lines[:10]) + (", …" if len(no_id_lines) > 10 else "")
        warnings.append(
            f"{len(no_id_lines)} checkbox line(s) without a task ID were ignored (line {shown}). "
            "Give a line an ID like T001 to make it a task."
        )
    parsed = ParsedTasks(tasks=[], sections=sections, has_sections=has_sections, warnings=warnings)
    # Set after construction: the tasks were built from checked values, validating 10,000 of them again is waste.
    parsed.tasks = tasks
    parsed._section_index = section_index
    return parsed


def read_tasks(path: Path) -> ParsedTasks:
    """Parse the tasks.md at ``path`` (undecodable bytes become U+FFFD). Raises TasksFileMissing if it is absent.

    The text last read from each path is kept with its parse (a few paths, texts up to
    :data:`REREAD_MAX_CHARS`): a text that differs from it only in task checkboxes, as after an agent checked its
    batch's tasks off, is parsed by changing those tasks' states (:func:`reparse`), with the same result."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise TasksFileMissing(
            f"No tasks file at {path}",
            hint="Run the design step (or /speckit.tasks) to create tasks.md, or choose the right feature folder.",
        ) from exc
    text = data.decode("utf-8", errors="replace")
    if len(text) > REREAD_MAX_CHARS:
        return parse_tasks(text)
    key = str(path)
    with _LAST_READ_LOCK:  # hosts read tasks from the event loop and from worker threads
        last = _LAST_READ.pop(key, None)
    parsed = reparse(last, text) if last is not None else None
    if parsed is None:
        parsed = parse_tasks(text)
        last = _Read(text, parsed, box_offsets(text, parsed))
    else:
        assert last is not None
        last = _Read(text, parsed, last.boxes)
    with _LAST_READ_LOCK:
        _LAST_READ[key] = last
        while len(_LAST_READ) > _LAST_READ_KEPT:
            _LAST_READ.pop(next(iter(_LAST_READ)))
    return parsed


#: The longest tasks.md text whose last read is kept for :func:`reparse` (a larger one is parsed whole each time).
REREAD_MAX_CHARS = 1_000_000
_LAST_READ_KEPT = 8


class _Read(NamedTuple):
    text: str
    parsed: ParsedTasks
    #: The offset in ``text`` of each task's checkbox character, parallel to ``parsed.tasks``.
    boxes: list[int]


_LAST_READ: dict[str, _Read] = {}
_LAST_READ_LOCK = threading.Lock()


def box_offsets(text: str, parsed: ParsedTasks) -> list[int]:
    """The offset in ``text`` of each task's checkbox character (the one between ``[`` and ``]``)."""
    bom, lines = _split(text)
    starts, offset = [], len(bom)
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return [starts[t.line - 1] + lines[t.line - 1].index("[") + 1 for t in parsed.tasks]


def reparse(last: _Read, text: str) -> ParsedTasks | None:
    """``parse_tasks(text)`` when ``text`` is ``last.text`` with only task checkboxes changed, between states no
    warning or reason depends on (pending, done, deferred); None otherwise (the caller parses it whole)."""
    old, boxes = last.text, last.boxes
    if len(text) != len(old) or not boxes:
        return None
    pieces: list[str] = []
    previous = 0
    for offset in boxes:
        pieces += (old[previous:offset], text[offset])
        previous = offset + 1
    pieces.append(old[previous:])
    if "".join(pieces) != text:
        return None
    tasks = list(last.parsed.tasks)
    for i, offset in enumerate(boxes):
        box = text[offset]
        if box == old[offset]:
            continue
        state = _STATE_OF_BOX.get(box)
        if state is None or state is TaskState.BLOCKED or tasks[i].state is TaskState.BLOCKED:
            return None
        tasks[i] = _make_task({**tasks[i].__dict__, "state": state})
    before = last.parsed
    parsed = ParsedTasks(
        tasks=[], sections=list(before.sections), has_sections=before.has_sections, warnings=list(before.warnings)
    )
    parsed.tasks = tasks
    parsed._section_index = before._section_index
    return parsed


def all_done(parsed: ParsedTasks | None) -> bool:
    """Every task of ``parsed`` is done (deferred ones count): :func:`specflow_nb.models.all_tasks_done`, the one rule
    the engine and ``status`` decide with too."""
    return parsed is not None and all_tasks_done([t.id for t in parsed.tasks], parsed.settled_ids)
