"""Checklist items of a feature (``checklists/*.md``), the other thing the original's ``mark`` checks off.

An item is a checkbox line whose text starts with an item ID: ``- [ ] V-001 Tests pass`` (``-`` or ``*`` bullet,
any indent). IDs are a letter of V (verification), I (implementation), C, D, a dash and letters/digits (``V-001``,
``I-SEC2``, ``V-UI1``), compared without case, as the original's ``mark`` reads them. ``[x]``/``[X]`` is done,
``[ ]`` not done; lines inside code fences are not items. Marking changes only the checkbox character and writes
the file atomically; an item listed in two files is marked in the first (files in name order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from specflow_nb.tasks_mark import _atomic_write

__all__ = ["CHECKLIST_ID_RE", "ChecklistItem", "ChecklistMark", "is_checklist_id", "mark_items", "read_items"]

#: An argument that names a checklist item (the original's pattern).
CHECKLIST_ID_RE = re.compile(r"[VICD]-[A-Z0-9]+", re.IGNORECASE)
_ITEM_RE = re.compile(r"[ \t]*[-*][ \t]+\[(?P<box>[ xX])\][ \t]+(?P<id>[VICD]-[A-Z0-9]+)\b[ \t]*(?P<text>.*)$", re.I)
_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")


def is_checklist_id(arg: str) -> bool:
    return CHECKLIST_ID_RE.fullmatch(arg.strip()) is not None


@dataclass
class ChecklistItem:
    id: str
    description: str
    done: bool
    file: Path
    line: int  # 0-based index in the file's lines


@dataclass
class ChecklistMark:
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    items: list[ChecklistItem] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return sum(1 for i in self.items if i.done)

    @property
    def all_done(self) -> bool:
        return bool(self.items) and all(i.done for i in self.items)


def _files(feature_dir: Path) -> list[Path]:
    folder = Path(feature_dir) / "checklists"
    try:
        return sorted(p for p in folder.glob("*.md") if p.is_file())
    except OSError:
        return []


def _items_of(path: Path, lines: list[str]) -> list[ChecklistItem]:
    items: list[ChecklistItem] = []
    fence: str | None = None
    for index, raw in enumerate(lines):
        line = raw.rstrip("\r")
        f = _FENCE_RE.match(line)
        if f:
            run = f.group(1)
            if fence is None:
                fence = run
            elif run[0] == fence[0] and len(run) >= len(fence):
                fence = None
            continue
        if fence is not None:
            continue
        m = _ITEM_RE.match(line)
        if m:
            items.append(
                ChecklistItem(m.group("id").upper(), m.group("text").strip(), m.group("box") != " ", path, index)
            )
    return items


def read_items(feature_dir: Path) -> list[ChecklistItem]:
    """Every checklist item of the feature, file by file (name order), in line order."""
    items: list[ChecklistItem] = []
    for path in _files(feature_dir):
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        items.extend(_items_of(path, text.split("\n")))
    return items


def mark_items(feature_dir: Path, ids: list[str], done: bool) -> ChecklistMark:
    """Check (``done``) or uncheck the items ``ids`` in the feature's checklists; unknown IDs are ``missing``."""
    wanted = list(dict.fromkeys(i.strip().upper() for i in ids))
    result = ChecklistMark()
    first: dict[str, ChecklistItem] = {}
    texts: dict[Path, list[str]] = {}
    for path in _files(feature_dir):
        lines = path.read_bytes().decode("utf-8", errors="surrogateescape").split("\n")
        texts[path] = lines
        for found in _items_of(path, lines):
            first.setdefault(found.id, found)
    touched: set[Path] = set()
    for item_id in wanted:
        item = first.get(item_id)
        if item is None:
            result.missing.append(item_id)
            continue
        if item.done == done:
            result.unchanged.append(item_id)
            continue
        lines = texts[item.file]
        m = _ITEM_RE.match(lines[item.line].rstrip("\r"))
        assert m is not None  # the line was read as an item a moment ago
        at = m.start("box")
        lines[item.line] = lines[item.line][:at] + ("x" if done else " ") + lines[item.line][at + 1 :]
        touched.add(item.file)
        result.changed.append(item_id)
    for path in touched:
        _atomic_write(path, "\n".join(texts[path]).encode("utf-8", errors="surrogateescape"))
    result.items = read_items(feature_dir)
    return result
