"""specflow_nb's own tasks.md writers on several hosts at once: none loses another's marks.

Four real processes mark their own tasks of one tasks.md one at a time, as fast as they can (as `specflow-nb mark`
in a terminal and the engine of a server would at the same moment). They serialize on the project's
``.specflow/locks/tasks.lock`` and re-read before writing, so every mark survives. The lock is never beside
tasks.md (the phase's merge would commit it).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from specflow_nb.models import TaskState
from specflow_nb.tasks import mark_tasks_file, parse_tasks, tasks_lock_path

from .conftest import tasks_text

WRITERS, PER_WRITER = 4, 25


def _writer(path: str, ids: list[str]) -> None:
    for task_id in ids:
        mark_tasks_file(Path(path), [task_id], TaskState.DONE)


def test_concurrent_markers_lose_nothing(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    tasks = project / "specs" / "0001-x" / "tasks.md"
    tasks.parent.mkdir(parents=True)
    tasks.write_text(tasks_text(WRITERS, PER_WRITER), encoding="utf-8")
    ids = [t.id for t in parse_tasks(tasks.read_text()).tasks]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_writer, args=(str(tasks), ids[i * PER_WRITER : (i + 1) * PER_WRITER]))
        for i in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    final = parse_tasks(tasks.read_text())
    assert [t.id for t in final.tasks if not t.done] == []
    assert tasks_lock_path(tasks) == project / ".specflow" / "locks" / "tasks.lock"
    assert sorted(p.name for p in tasks.parent.iterdir()) == ["tasks.md"]  # nothing beside tasks.md
