"""tasks.md: parse tasks, plan implement batches, and check tasks off in place (MISSION §2).

Theory of operation
-------------------
A tasks.md (GitHub spec-kit or SpecFlow) is read line by line; a line is split on ``\\n`` only, so a CRLF file keeps
its ``\\r`` at the end of each line and every byte can be written back unchanged. One scanner (``_scan``) decides
which lines are task lines; the parser and the marker both use it, so they can never disagree about which line is
task ``T005``.

- Sections: only ``##`` (exactly two ``#``) opens a section; ``###`` is a sub-heading inside it. Tasks before the
  first ``##`` belong to :data:`DEFAULT_SECTION`.
- Code fences (```` ``` ```` / ``~~~``, CommonMark rules: the closing fence uses the same character and is at least
  as long) hide their lines: nothing inside is a task or a section. So do HTML comments: from a ``<!--`` that is not
  closed on its line to the next line holding ``-->`` (a task line may end with a comment and stays a task).
- A task line is ``- [ ] T001 [P] [US1] Description`` (``-`` or ``*`` bullet, any indent). Checkbox: space pending,
  ``x``/``X`` done, ``b``/``B`` blocked, ``~``/``-`` deferred. The ID is ``T`` + three or more ASCII digits + an
  optional lowercase letter (``T001``, ``T012a``, ``T1000``: spec-kit goes on to four digits after ``T999``). IDs
  compare by number in ranges (``T998..T1002`` is T998, T999, T1000, T1001, T1002).
- Markers are the bracketed tags right after the ID, in any order: ``[P]`` parallel, ``[V]`` verification, ``[W]``
  wiring, ``[US#]`` story; other tags among them (``[P1]``, ``[FR-001]``) do not hide a later ``[US2]`` and stay in
  the description.
- Not tasks, and not warned about: spec-kit's legend line ``- [P] tasks = different files, no dependencies`` (a
  marker where a checkbox would be, and no ID). Lines meant as tasks that are written wrongly (``-[ ] T002``,
  ``- [ ]T003``, ``[ ] T004``, ``1. [ ] T005``) are named in a warning with the way to write them.
- Dependencies: ``[depends: T001, T002]``, ``[dep: …]``, ``[after: …]`` anywhere on the line, and prose
  "depends on T001", "after T002", "requires T001, T002" / "T001 and T002".
- Parsing never raises on any ``str``: a line it cannot read is skipped and named in ``warnings``.

Planning (``plan_batches``) turns the *pending* tasks into batches; done, blocked and deferred tasks are never
planned. Blocked tasks are named in the plan's warnings (they need a person), so an empty plan caused by blocked
tasks is visible; deferred tasks are named in the summary. An empty plan only means "nothing to run": callers must
not read it as "all batches complete".

"All done" has ONE rule, :func:`all_done`: at least one task, no pending task and no blocked task. Deferred tasks
never hold a phase back. ``status``, the planner's hosts and the engine all use it (the engine through
:attr:`ParsedTasks.settled_ids`: a task is settled when it is done or deferred).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from specflow_nb.errors import ConfigError, TasksFileMissing
from specflow_nb.models import BatchPlan, CamelModel, PlannedBatch, Task, TaskState

__all__ = [
    "DEFAULT_SECTION",
    "MarkResult",
    "ParsedTasks",
    "all_done",
    "expand_task_ids",
    "mark_tasks",
    "mark_tasks_file",
    "next_task",
    "parse_tasks",
    "plan_batches",
    "read_tasks",
    "task_ids_in_text",
]

#: The section of tasks written before the first ``##`` header.
DEFAULT_SECTION = "Tasks"

_ID = r"T[0-9]{3,}[a-z]?"  # ASCII digits only: "T٣٣٣" is not an ID
# ASCII \b: the ID is not part of a longer word ([A-Za-z0-9_]); faster than the equivalent lookarounds.
_ID_RE = re.compile(rf"\b{_ID}\b", re.ASCII)
_ANY_ID_RE = re.compile(r"T[0-9]{3}")
# "- [x] T001 [P] [US1] rest": "box" is the checkbox character (possibly empty, as in "[]") and whitespace or the
# line end follows the "]"; "id" and the leading "markers" are there when the line is a well-formed task.
# "markers" takes every leading tag ([P], [US1], [P1], [FR-001]): tags hold no space or colon, so "[depends: T001]"
# and "[blocked: …]" are never markers.
_TASK_RE = re.compile(
    rf"[ \t]*[-*][ \t]+\[(?P<box>[^\]]?)\](?=[ \t]|$)"
    rf"(?:[ \t]+(?P<id>{_ID})(?![A-Za-z0-9_])(?P<markers>(?:[ \t]*\[[A-Za-z][A-Za-z0-9_.-]*\])*))?"
)
_TAG_RE = re.compile(r"\[[^\]]*\]")
_KNOWN_MARKER_RE = re.compile(r"\[(?:P|V|W|US\d+)\]")
# Where a checkbox would be, a marker letter and no ID: spec-kit's legend "- [P] tasks = different files, …".
_LEGEND_BOXES = frozenset("PVW")
# A line meant as a task but not written as one: the bullet glued to the box ("-[ ] T002"), the ID glued to the box
# ("- [ ]T003"), no bullet ("[ ] T004") or a numbered item ("1. [ ] T005"). Only lines with an ID are reported.
_MALFORMED_RE = re.compile(
    rf"[ \t]*(?:[-*+]|\d+[.)])?[ \t]*\[(?P<box>[^\]]?)\][ \t]*(?P<id>{_ID})(?![A-Za-z0-9_])(?P<rest>.*)$"
)
_STORY_RE = re.compile(r"\[(US\d+)\]")
# Something that was meant as an ID but is not one: "TXXX" (spec-kit's placeholder), "T01", "T0001".
_ID_LIKE_RE = re.compile(r"[ \t]*(T[\dX]+[a-z]?)(?![A-Za-z0-9_])")
_HEADER_RE = re.compile(r" {0,3}##(?:[ \t]+(.*?))?[ \t]*$")
_FENCE_OPEN_RE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)$")
_BRACKET_DEPS_RE = re.compile(r"\[(?i:depends(?:[ \t]+on)?|deps?|after|requires)[ \t]*:([^\]]*)\]")
_SEP = r"(?:[ \t]*,[ \t]*(?:(?i:and)[ \t]+)?|[ \t]+(?i:and)[ \t]+|[ \t]*[&/][ \t]*)"
_PROSE_DEPS_RE = re.compile(
    rf"(?<![A-Za-z])(?i:depends[ \t]+on|after|requires)[ \t]*:?[ \t]*({_ID}(?:{_SEP}{_ID})*)(?![A-Za-z0-9_])"
)
# Both notations in one pass: group 1 is a bracket's content, group 2 a prose list of IDs.
_DEPS_RE = re.compile(f"{_BRACKET_DEPS_RE.pattern}|{_PROSE_DEPS_RE.pattern}")
_BLOCKED_BRACKET_RE = re.compile(r"[ \t]*\[(?i:blocked)[ \t]*:[ \t]*([^\]]*)\]")
_BLOCKED_PROSE_RE = re.compile(r"(?<!\S)(?:—|–|--?)[ \t]*(?i:blocked)[ \t]*:[ \t]*(.*?)[ \t]*$")

_STATE_OF_BOX = {
    " ": TaskState.PENDING,
    "x": TaskState.DONE,
    "X": TaskState.DONE,
    "b": TaskState.BLOCKED,
    "B": TaskState.BLOCKED,
    "~": TaskState.DEFERRED,
    "-": TaskState.DEFERRED,
}
_BOX_OF_STATE = {
    TaskState.PENDING: " ",
    TaskState.DONE: "x",
    TaskState.BLOCKED: "b",
    TaskState.DEFERRED: "~",
}
_BOM = "\ufeff"


# --------------------------------------------------------------------------------------------------------------
# Results


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


class MarkResult(CamelModel):
    """The outcome of :func:`mark_tasks`: the new text and what happened to each requested ID."""

    text: str
    changed: list[str] = Field(default_factory=list)
    #: Already in the requested state (and reason): the line was left as it was.
    unchanged: list[str] = Field(default_factory=list)
    #: Not a task in this file (or not a valid ID).
    missing: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------
# The scanner shared by the parser and the marker


# What _scan yields: (_HEADER, line index, title), (_TASK, line index, match of _TASK_RE on the line without "\r"),
# (_OPEN_FENCE, line index of a fence never closed, ""), (_OPEN_COMMENT, line index of an HTML comment never
# closed, ""), (_MALFORMED, line index, match of _MALFORMED_RE). Plain tuples: the scanner runs once per line.
_HEADER, _TASK, _OPEN_FENCE, _OPEN_COMMENT, _MALFORMED = 0, 1, 2, 3, 4
_ScanItem = tuple[int, int, Any]


def _opens_comment(line: str) -> bool:
    """True when ``line`` opens an HTML comment it does not close (the last ``<!--`` has no ``-->`` after it)."""
    at = line.rfind("<!--")
    return at >= 0 and line.find("-->", at + 4) < 0


def _scan(lines: list[str]) -> Iterator[_ScanItem]:
    """Yield the ``##`` headers and checkbox lines outside code fences and HTML comments, in order (lines without
    their ``\\n``), and the lines that look like tasks but are not written as tasks."""
    fence: str | None = None  # the opening fence's run of ` or ~ while inside a fence
    fence_line = 0
    comment_line = -1  # the line that opened the HTML comment we are in, -1 outside comments
    task_match = _TASK_RE.match
    malformed_match = _MALFORMED_RE.match
    for index, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.lstrip(" ")
        if not stripped:
            continue
        first = stripped[0]
        if fence is not None:
            if first == fence[0] and len(line) - len(stripped) <= 3:
                run = len(stripped) - len(stripped.lstrip(first))
                if run >= len(fence) and not stripped[run:].strip(" \t"):
                    fence = None
            continue
        if comment_line >= 0:
            end = line.find("-->")
            if end >= 0:
                # Whatever follows the "-->" on this line is not read (a task never starts after a comment).
                comment_line = -1 if not _opens_comment(line[end + 3 :]) else index
            continue
        if "<!--" in line and _opens_comment(line):
            comment_line = index  # this line itself is read (a task may end with "<!-- note")
        if first == "-" or first == "*" or first == "\t":
            m = task_match(line)
            if m:
                yield _TASK, index, m
            else:
                bad = malformed_match(line)
                if bad:
                    yield _MALFORMED, index, bad
        elif first == "[" or first == "+" or first.isdigit():
            bad = malformed_match(line)
            if bad:
                yield _MALFORMED, index, bad
        elif first == "`" or first == "~":
            f = _FENCE_OPEN_RE.match(line)
            # A backtick fence's info string may not contain a backtick (CommonMark), else it is inline code.
            if f and not (first == "`" and "`" in f.group(2)):
                fence, fence_line = f.group(1), index
        elif first == "#":
            h = _HEADER_RE.match(line)
            if h:
                text = h.group(1) or ""
                # An ATX closing sequence ("## Setup ##") is not part of the title.
                closing = re.search(r"(?:^|[ \t]+)#+$", text)
                if closing:
                    text = text[: closing.start()]
                yield _HEADER, index, text.strip()
    if fence is not None:
        yield _OPEN_FENCE, fence_line, ""
    if comment_line >= 0:
        yield _OPEN_COMMENT, comment_line, ""


# --------------------------------------------------------------------------------------------------------------
# Parsing

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
    """Parse the tasks.md at ``path`` (undecodable bytes become U+FFFD). Raises TasksFileMissing if it is absent."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise TasksFileMissing(
            f"No tasks file at {path}",
            hint="Run the design step (or /speckit.tasks) to create tasks.md, or choose the right feature folder.",
        ) from exc
    return parse_tasks(data.decode("utf-8", errors="replace"))


def all_done(parsed: ParsedTasks | None) -> bool:
    """THE rule for "every task is done": at least one task, none pending and none blocked.

    Deferred tasks (``[~]``/``[-]``) never hold a phase back. ``status`` (next action, ``stepComplete``), ``next``
    and the engine (smart config skipping implement, implement's completion) all decide with this rule.
    """
    if parsed is None or not parsed.tasks:
        return False
    holding = (TaskState.PENDING, TaskState.BLOCKED)
    return all(t.state not in holding for t in parsed.tasks)


# --------------------------------------------------------------------------------------------------------------
# Planning


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _order(group: list[Task], position: dict[str, int]) -> tuple[list[Task], list[str] | None]:
    """Stable topological order of ``group`` by the dependencies among its own tasks.

    Ties go to file order. With a cycle the group keeps its file order and the tasks left in the cycle (or waiting
    on it) are returned so the caller can warn.
    """
    members = {t.id for t in group}
    # Common case first: every dependency is written above its task, so file order already is the answer (the
    # stable sort below would return it unchanged).
    seen: set[str] = set()
    for t in group:
        if any(d in members and d not in seen for d in t.depends_on):
            break
        seen.add(t.id)
    else:
        return group, None
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for t in group:
        inner = [d for d in t.depends_on if d in members]
        waiting[t.id] = len(inner)
        for d in inner:
            dependents.setdefault(d, []).append(t.id)
    if not dependents:
        return group, None
    by_id = {t.id: t for t in group}
    ready = [(position[t.id], t.id) for t in group if waiting[t.id] == 0]
    heapq.heapify(ready)
    ordered: list[Task] = []
    while ready:
        _, tid = heapq.heappop(ready)
        ordered.append(by_id[tid])
        for nxt in dependents.get(tid, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, (position[nxt], nxt))
    if len(ordered) < len(group):
        return group, [t.id for t in group if waiting[t.id] > 0]
    return ordered, None


def plan_batches(parsed: ParsedTasks, batch_size_fallback: int = 15) -> BatchPlan:
    """Plan the implement batches from the *pending* tasks of ``parsed``.

    One batch per section (the default section first, then each ``##`` section in file order) that has pending
    tasks, named by the full header text and ordered by dependencies inside the batch. When no ``##`` section holds
    a task: chunks of ``batch_size_fallback`` tasks named "Batch 1", "Batch 2", … (``used_fallback``).

    ``warnings`` holds the parser's warnings, then: blocked tasks (never planned: they need a person), unknown
    dependencies (ignored), dependencies on a task that will not be done first (blocked, deferred or in a later
    batch), and dependency cycles (the batch keeps its file order).
    """
    if batch_size_fallback < 1:
        raise ConfigError(
            f"batch_size_fallback must be at least 1, got {batch_size_fallback}",
            hint="Set batchSizeFallback between 1 and 50.",
        )
    warnings = list(parsed.warnings)
    tasks = parsed.tasks
    # Fallback sizing is only "used" when there is something to size: a file with no pending task plans nothing.
    used_fallback = not parsed.has_sections and any(t.state is TaskState.PENDING for t in tasks)
    keys = parsed._section_index
    if keys is None or len(keys) != len(tasks):
        keys = []  # built by hand: a new section starts wherever the section name changes
        for i, t in enumerate(tasks):
            keys.append(keys[-1] if i and tasks[i - 1].section == t.section else i)

    # One pass over the file (10,000 tasks must plan in milliseconds): index the tasks, collect the pending ones
    # grouped by section occurrence, and report the blocked ones.
    by_id: dict[str, Task] = {}
    position: dict[str, int] = {}
    pending: list[Task] = []
    groups: list[tuple[str, list[Task]]] = []
    current_key: int | None = None
    pending_state, blocked_state = TaskState.PENDING, TaskState.BLOCKED
    for i, (t, k) in enumerate(zip(tasks, keys, strict=True)):
        by_id.setdefault(t.id, t)
        position.setdefault(t.id, i)
        if t.state is pending_state:
            pending.append(t)
            if k != current_key:
                groups.append((t.section, []))
                current_key = k
            groups[-1][1].append(t)
        elif t.state is blocked_state:
            why = f": {t.blocked_reason}" if t.blocked_reason else ""
            warnings.append(f"{t.id} is blocked{why}; it is not planned until it is unblocked.")

    if used_fallback:
        groups = []
        if pending:
            ordered, stuck = _order(pending, position)
            if stuck:
                warnings.append(f"Dependency cycle among {', '.join(stuck)}; these tasks keep their file order.")
            size = batch_size_fallback
            groups = [(f"Batch {n + 1}", ordered[i : i + size]) for n, i in enumerate(range(0, len(ordered), size))]

    batches: list[PlannedBatch] = []
    batch_of: dict[str, int] = {}
    for index, (name, group) in enumerate(groups):
        if not used_fallback:
            group, stuck = _order(group, position)
            if stuck:
                warnings.append(
                    f"Dependency cycle in section {name!r} among {', '.join(stuck)}; the batch keeps file order."
                )
        batches.append(PlannedBatch(index=index, section=name, task_ids=[t.id for t in group]))
        for t in group:
            batch_of[t.id] = index

    for t in pending:
        for d in t.depends_on:
            dep = by_id.get(d)
            if dep is None:
                warnings.append(f"{t.id} depends on {d}, which is not in tasks.md; the dependency is ignored.")
            elif dep.state is TaskState.BLOCKED or dep.state is TaskState.DEFERRED:
                warnings.append(f"{t.id} depends on {d}, which is {dep.state.value}.")
            elif dep.state is TaskState.PENDING and batch_of[d] > batch_of[t.id]:
                warnings.append(f"{t.id} depends on {d}, which is planned in a later batch ({batch_of[d] + 1}).")

    total = len(pending)
    if not batches:
        summary = "No incomplete tasks found"
    elif used_fallback:
        summary = f"{_plural(len(batches), 'batch', 'batches')} ({_plural(total, 'task')}, fallback sizing)"
        warnings.append(
            f"No sections detected in tasks.md (no '## ' header holds a task); "
            f"using fixed-size batches of {batch_size_fallback} tasks. "
            "Add '## Phase N: Name' headers to batch by section."
        )
    else:
        summary = f"{_plural(len(batches), 'batch', 'batches')} from tasks.md sections ({_plural(total, 'task')})"
    deferred = parsed.deferred_ids
    if deferred:
        shown = ", ".join(deferred[:10]) + (", …" if len(deferred) > 10 else "")
        summary += f"; {len(deferred)} deferred ({shown}), not planned"
    return BatchPlan(
        batches=batches, total_incomplete=total, used_fallback=used_fallback, summary=summary, warnings=warnings
    )


def next_task(parsed: ParsedTasks) -> Task | None:
    """The first pending task (file order) whose dependencies are all done.

    A dependency on an ID that is not in the file is ignored (as the planner does), so a typo cannot hide work; a
    dependency on a blocked or deferred task keeps its dependents waiting. ``None``: nothing can start now.
    """
    by_id = parsed.by_id()
    for t in parsed.tasks:
        if t.state is not TaskState.PENDING:
            continue
        if all(by_id[d].state is TaskState.DONE for d in t.depends_on if d in by_id):
            return t
    return None


def task_ids_in_text(text: str) -> list[str]:
    """Every task ID mentioned in ``text``, in order of first mention, each once."""
    return list(dict.fromkeys(_ID_RE.findall(text)))


# --------------------------------------------------------------------------------------------------------------
# Marking


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
