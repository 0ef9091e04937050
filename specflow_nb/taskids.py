"""Task-id lists that stay small on disk and on the wire: a long run of consecutive ids is written ``first..last``.

A phase of 200,000 tasks plans batches of up to thousands of ids each; written one by one they make a record of
megabytes, rewritten on every change, and a preview of as many. In JSON (records, responses, the decision log) a list
of at least :data:`MIN_LIST` ids writes each run of at least :data:`MIN_RUN` consecutive ids as one string
``"T000001..T001000"``; shorter lists stay literal (a sample phase's record reads as it always did). In Python a list
is always every id, in order.

Consecutive means the next number at the first id's width (``T998, T999, T1000`` is a run: ``T1000`` is ``1000``
written with at least three digits) or, for ids with a letter, the same number and the next letter
(``T012a..T012f``). Nothing else is shortened: an id that is not ``T`` + digits (+ one lowercase letter) is kept as
written. Reading accepts both forms; an expansion larger than :data:`MAX_IDS` is refused (a hand-edited
``"T000..T999999999"`` must not eat the server's memory), so such a record is set aside as invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

#: Lists shorter than this stay literal.
MIN_LIST = 64
#: Runs shorter than this stay literal.
MIN_RUN = 3
#: The most ids one list may expand to.
MAX_IDS = 2_000_000

_ID_RE = re.compile(r"T([0-9]{3,})([a-z]?)", re.ASCII)
_SEP = ".."


def _next_id(task_id: str) -> str | None:
    """The id right after ``task_id`` in a run, or None when it has no successor of its own kind."""
    m = _ID_RE.fullmatch(task_id)
    if m is None:
        return None
    digits, letter = m.groups()
    if letter:
        return None if letter == "z" else f"T{digits}{chr(ord(letter) + 1)}"
    return f"T{int(digits) + 1:0{len(digits)}d}"


def compact(ids: Iterable[str]) -> list[str]:
    """``ids`` with each run of :data:`MIN_RUN` or more consecutive ids as ``first..last`` (in long lists)."""
    items = list(ids)
    if len(items) < MIN_LIST:
        return items
    out: list[str] = []
    i, n = 0, len(items)
    while i < n:
        j = i
        nxt = _next_id(items[i])
        while nxt is not None and j + 1 < n and items[j + 1] == nxt:
            j += 1
            nxt = _next_id(items[j])
        if j - i + 1 >= MIN_RUN:
            out.append(f"{items[i]}{_SEP}{items[j]}")
        else:
            out.extend(items[i : j + 1])
        i = j + 1
    return out


def _expand_run(item: str, budget: int) -> list[str]:
    first, _, last = item.partition(_SEP)
    a, b = _ID_RE.fullmatch(first), _ID_RE.fullmatch(last)
    if a is None or b is None:
        raise ValueError(f"{item!r} is neither a task id nor a run first..last of task ids")
    (da, la), (db, lb) = a.groups(), b.groups()
    if la or lb:
        if da != db or not (la and lb) or la > lb:
            raise ValueError(f"{item!r}: a run of lettered ids keeps the number and goes up in letters (T012a..T012f)")
        return [f"T{da}{chr(c)}" for c in range(ord(la), ord(lb) + 1)]
    start, end, width = int(da), int(db), len(da)
    if end < start or f"T{end:0{width}d}" != last:
        raise ValueError(f"{item!r}: a run goes up from its first id at the first id's width (T0998..T1002)")
    if end - start + 1 > budget:
        raise ValueError(f"{item!r}: more than {MAX_IDS:,} task ids in one list")
    return [f"T{k:0{width}d}" for k in range(start, end + 1)]


def expand(items: Iterable[str]) -> list[str]:
    """Every id of a list that may hold ``first..last`` runs, in order. Raises ValueError for a malformed run."""
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("a task id is a string")
        if _SEP in item:
            out.extend(_expand_run(item, MAX_IDS - len(out)))
        else:
            out.append(item)
        if len(out) > MAX_IDS:
            raise ValueError(f"more than {MAX_IDS:,} task ids in one list")
    return out


def describe(ids: Iterable[str], limit: int = 8) -> str:
    """The ids for a sentence: ``"T001, T002"``, with runs ``"T000001..T001000, T001002"``; more than ``limit`` parts
    are cut in the middle: ``"T000001..T000010, T000010a, …, T001000a (1,100 tasks)"``."""
    items = list(ids)
    parts = compact(items)
    if len(parts) <= limit:
        return ", ".join(parts)
    return f"{', '.join(parts[: limit - 1])}, …, {parts[-1]} ({len(items):,} tasks)"


def _validate(value: object) -> object:
    if isinstance(value, (list, tuple)) and value:
        try:  # one scan in C: a record's copy validates every task-id list of it (the machine copies per step)
            has_run = _SEP in "\n".join(value)
        except TypeError:  # not all strings: the list[str] validation that follows says which
            has_run = any(isinstance(v, str) and _SEP in v for v in value)
        if has_run:
            return expand(value)
    return value


#: A list of task ids: every id in Python, runs written ``first..last`` in JSON.
TaskIds = Annotated[
    list[str],
    BeforeValidator(_validate),
    PlainSerializer(compact, return_type=list[str], when_used="json"),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string"},
            "description": f"Task ids in plan order; in a list of {MIN_LIST} or more, a run of {MIN_RUN} or more "
            'consecutive ids is written "first..last" (e.g. "T000001..T001000").',
        }
    ),
]
