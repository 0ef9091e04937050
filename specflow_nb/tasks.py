"""tasks.md: parse tasks, plan implement batches, and check tasks off in place (MISSION §2).

This module holds the rules (below) and re-exports the public names of the four modules that implement them:
:mod:`specflow_nb.tasks_scan` (the scanner), :mod:`specflow_nb.tasks_parse` (:func:`parse_tasks`, :func:`all_done`),
:mod:`specflow_nb.tasks_plan` (:func:`plan_batches`) and :mod:`specflow_nb.tasks_mark` (:func:`mark_tasks_file`).

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

from specflow_nb.tasks_mark import (
    MARK_RETRIES,
    MAX_RANGE,
    MarkResult,
    expand_task_ids,
    mark_tasks,
    mark_tasks_file,
    tasks_lock_path,
)
from specflow_nb.tasks_parse import ParsedTasks, all_done, parse_tasks, read_tasks
from specflow_nb.tasks_plan import next_task, plan_batches, task_ids_in_text
from specflow_nb.tasks_scan import DEFAULT_SECTION

__all__ = [
    "DEFAULT_SECTION",
    "MARK_RETRIES",
    "MAX_RANGE",
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
    "tasks_lock_path",
]
