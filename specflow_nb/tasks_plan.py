"""Planning implement batches from parsed tasks: ``##`` sections (fixed-size fallback), dependency order, and
the next task to do.

Apart from the parser because it only reads :class:`~specflow_nb.tasks_parse.ParsedTasks`; it never reads a file.
"""

from __future__ import annotations

import heapq

from specflow_nb.errors import ConfigError
from specflow_nb.models import BatchPlan, PlannedBatch, Task, TaskState
from specflow_nb.tasks_parse import ParsedTasks
from specflow_nb.tasks_scan import _ID_RE


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
