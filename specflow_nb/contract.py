"""The original SpecFlow CLI's JSON contract (``mark``, ``next``, ``state set``), so its scripts and skills work.

Each builder returns the dict a ``--json`` command prints. The original's fields come first and keep its names and
values; the fields ``specflow-nb`` printed before (``changed``, ``missing``, ``progress.tasksCompleted`` …) stay
beside them. The README's "original → specflow_nb" table lists every contract and the remaining differences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from specflow_nb.errors import ConfigError
from specflow_nb.models import Task, TaskState
from specflow_nb.store import DEFAULT_LOCK_TIMEOUT, StateFile, atomic_write_text, parse_value, project_lock
from specflow_nb.tasks import ParsedTasks, all_done, next_task

__all__ = [
    "MAX_KEY_LENGTH",
    "NEXT_QUEUE_LENGTH",
    "STATE_KEY_RE",
    "next_json",
    "set_state",
    "state_key_error",
    "task_progress",
]

#: The original's rule for ``state set`` keys: dot-separated identifiers or numbers.
STATE_KEY_RE = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*|[0-9]+)(\.([a-zA-Z_][a-zA-Z0-9_]*|[0-9]+))*$")
MAX_KEY_LENGTH = 256
#: How many task IDs ``next --json`` lists in ``queue`` after the task it gives.
NEXT_QUEUE_LENGTH = 10

_KEY_HINT = "Use format: orchestration.step.current"
_PAIR_HINT = "Use format: specflow-nb state set orchestration.step.current=implement"


# --------------------------------------------------------------------------------------------------------------
# state set


def state_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid state key (the original's messages), or None when it is."""
    if not key:
        return "Key cannot be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"Key too long (max {MAX_KEY_LENGTH} characters)"
    if not STATE_KEY_RE.match(key):
        return (
            f"Invalid key {key!r}: keys must be dot-separated identifiers "
            "(e.g., orchestration.step.current, memory.archive_reviews.0082)"
        )
    return None


def _get(data: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def set_state(project: Path, assignments: list[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> dict[str, Any]:
    """Apply ``key=value`` pairs to ``.specflow/orchestration-state.json``; the ``state set --json`` answer.

    ``{status: "success", command: "state set", updates: [{key, value, previousValue}], state}``: ``previousValue``
    is null when the key was not set. Every pair is checked before anything is written (one bad pair writes
    nothing); errors raise :class:`ConfigError` (see :func:`state_error_json` for their JSON shape). The read of the
    previous values and the write happen under the project lock, so ``previousValue`` is exact.
    """
    if not assignments:
        raise ConfigError("No assignments given", hint=_PAIR_HINT)
    pairs: list[tuple[str, Any]] = []
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f'Invalid format for "{item}". Expected key=value', hint=_PAIR_HINT)
        problem = state_key_error(key)
        if problem:
            raise ConfigError(problem, hint=_KEY_HINT)
        pairs.append((key, parse_value(text)))
    state_file = StateFile(project, lock_timeout=lock_timeout)
    updates: list[dict[str, Any]] = []
    with project_lock(Path(project), lock_timeout):
        data = state_file.load()
        for key, value in pairs:
            parts = key.split(".")
            previous = _get(data, parts)
            node = data
            for depth, part in enumerate(parts[:-1]):
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    where = ".".join(parts[: depth + 1])
                    raise ConfigError(
                        f"Cannot set {key!r}: {where!r} is {json.dumps(child)}, not an object",
                        hint=f"Set {where} to an object first, or choose another key.",
                    )
                node = child
            node[parts[-1]] = value
            updates.append({"key": key, "value": value, "previousValue": previous})
        atomic_write_text(state_file.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return {"status": "success", "command": "state set", "updates": updates, "state": data}


def error_json(command: str, message: str, hint: str | None, **extra: Any) -> dict[str, Any]:
    """The original's error answer: ``{status: "error", command, …, error: {message, hint}}``."""
    return {"status": "error", "command": command, **extra, "error": {"message": message, "hint": hint or ""}}


# --------------------------------------------------------------------------------------------------------------
# mark and next


def task_progress(parsed: ParsedTasks) -> dict[str, int]:
    """``{completed, total, percentage}`` (the original's) plus ``tasksCompleted/tasksTotal/tasksBlocked``."""
    total, done = parsed.total, parsed.done
    return {
        "completed": done,
        "total": total,
        "percentage": round(done * 100 / total) if total else 0,
        "tasksCompleted": done,
        "tasksTotal": total,
        "tasksBlocked": parsed.blocked,
    }


def _deps_met(task: Task, parsed: ParsedTasks) -> bool:
    by_id = parsed.by_id()
    return all(by_id[d].state is TaskState.DONE for d in task.depends_on if d in by_id)


def next_up(parsed: ParsedTasks) -> tuple[Task | None, bool]:
    """The task to work on next and whether its dependencies are met: the first startable pending task, else the
    first pending one (waiting on others), else None."""
    task = next_task(parsed)
    if task is not None:
        return task, True
    for t in parsed.tasks:
        if t.state is TaskState.PENDING:
            return t, _deps_met(t, parsed)
    return None, False


def mark_next(parsed: ParsedTasks) -> dict[str, Any] | None:
    """``mark --json``'s ``next``: ``{id, description, dependenciesMet}`` or null."""
    task, met = next_up(parsed)
    return None if task is None else {"id": task.id, "description": task.description, "dependenciesMet": met}


_NONE_SUGGESTIONS = {
    "all_tasks_complete": "Every task is done (deferred ones never hold the phase back): run the verify step.",
    "all_tasks_blocked": "The remaining tasks are blocked or wait on blocked tasks: unblock them (mark --incomplete).",
    "no_tasks_found": "No tasks found in tasks.md. Expected format: '- [ ] T001 Description'.",
    "no_feature": "No feature folder with a tasks.md: start a phase first (specs/NNN-name/tasks.md).",
}


def next_none(reason: str, parsed: ParsedTasks | None = None) -> dict[str, Any]:
    """``next --json`` when there is nothing to start: ``{action: "none", task: null, queue: [], reason, …}``."""
    data: dict[str, Any] = {
        "action": "none",
        "task": None,
        "queue": [],
        "reason": reason,
        "suggestion": _NONE_SUGGESTIONS[reason],
    }
    if parsed is not None:
        data["progress"] = _next_progress(parsed)
    return data


def _next_progress(parsed: ParsedTasks) -> dict[str, int]:
    return {
        "tasksCompleted": parsed.done,
        "tasksTotal": parsed.total,
        "tasksBlocked": parsed.blocked,
        "tasksPending": parsed.pending,
    }


def next_json(parsed: ParsedTasks) -> dict[str, Any]:
    """``next --json``: ``{action: "task", task{id, description, section, dependencies, …}, queue[], reason: null}``
    for the next startable task, else ``{action: "none", …, reason}`` with ``all_tasks_complete`` (the one rule of
    :func:`~specflow_nb.tasks.all_done`), ``all_tasks_blocked`` or ``no_tasks_found``."""
    task = next_task(parsed)
    if task is None:
        if not parsed.tasks:
            return next_none("no_tasks_found", parsed)
        return next_none("all_tasks_complete" if all_done(parsed) else "all_tasks_blocked", parsed)
    queue = [t.id for t in parsed.tasks if t.state is TaskState.PENDING and t.id != task.id][:NEXT_QUEUE_LENGTH]
    return {
        "action": "task",
        "task": {**task.model_dump(mode="json"), "dependencies": list(task.depends_on)},
        "queue": queue,
        "reason": None,
        "progress": _next_progress(parsed),
    }
