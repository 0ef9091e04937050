"""The scanner of tasks.md shared by the parser and the marker: which lines are task lines, headers, fences,
comments or malformed tasks (the rules are in :mod:`specflow_nb.tasks`' docstring).

Apart so the parser (:mod:`specflow_nb.tasks_parse`) and the marker (:mod:`specflow_nb.tasks_mark`) import one scanner
and can never disagree about which line is task ``T005``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from specflow_nb.models import TaskState

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
