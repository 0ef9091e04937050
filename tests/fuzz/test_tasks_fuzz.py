"""Arbitrary tasks.md files: through the planner (bytes on disk, any encoding damage) and through a whole start.

The planner's own properties on plausible texts are in tests/test_tasks_properties.py; here the input is hostile:
random bytes, invalid UTF-8, NUL, BOM, CR-only line ends, huge lines. The planner may only answer with a plan or a
:class:`SpecflowError`; a start through the live server may only answer 201 or a 4xx, and then the orchestration
comes to rest with a valid record (completed, or needs_attention with a message saying why).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from benchmarks.common import LiveServer, corrupt_files, fast_config, state_files, tasks_file
from specflow_nb.errors import SpecflowError
from specflow_nb.tasks import plan_batches, read_tasks

from .conftest import LONG, settle

LINES = [
    "## Phase 1: Setup",
    "## Phase 2: Core",
    "##",
    "### Sub",
    "- [ ] T001 Do a",
    "- [ ] T002 [P] Do b [depends: T001]",
    "* [x] T003 done",
    "- [ ] T004 requires T002, T099",
    "- [ ] T002 duplicate id",
    "- [b] T005 blocked",
    "- [~] T006 deferred",
    "- [ ] T007a sub-task after T007a",
    "```",
    "~~~",
    "",
    "- [ ] T00",
    "- [ ]T008 no space",
]
line_bytes = st.sampled_from(LINES).map(str.encode) | st.binary(max_size=40) | st.text(max_size=40).map(str.encode)
endings = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n"])
documents = st.builds(
    lambda prefix, lines, ends: prefix + b"".join(line + end for line, end in zip(lines, itertools.cycle(ends))),
    st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe", b"# Tasks\n"]),
    st.lists(line_bytes, max_size=40),
    st.lists(endings, min_size=1, max_size=3),
)


@settings(max_examples=1500 if LONG else 300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=documents, fallback=st.integers(1, 50))
def test_planner_takes_any_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes, fallback: int) -> None:
    path = tmp_path_factory.mktemp("t") / "tasks.md"
    path.write_bytes(data)
    try:
        parsed = read_tasks(path)
    except SpecflowError:
        return
    plan = plan_batches(parsed, fallback)
    planned = [t for b in plan.batches for t in b.task_ids]
    assert len(planned) == len(set(planned)), "a task planned twice"
    assert plan.total_incomplete == len(planned)


_counter = itertools.count()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@settings(max_examples=60 if LONG else 15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=documents)
def test_whole_start_on_any_tasks_md(server: LiveServer, client: httpx.Client, data: bytes) -> None:
    name = f"start{next(_counter):03d}"
    project = server.root / name
    shutil.copytree(server.root / "fz001", project, symlinks=True)
    shutil.rmtree(project / ".specflow", ignore_errors=True)
    tasks_file(project).write_bytes(data)
    r = client.post("workflow/orchestrate", json={"projectId": name, "config": fast_config()})
    assert r.status_code in (201, 400), (r.status_code, r.text[:500])
    event(f"start answered {r.status_code}")
    if r.status_code == 400:
        assert r.json()["error"] and state_files(project) == []
        return
    ex = settle(client, name)
    assert ex is not None
    assert ex["status"] in ("completed", "needs_attention"), (ex["status"], ex["errorMessage"])
    event(f"came to rest {ex['status']}")
    if ex["status"] == "needs_attention":
        assert ex["recoveryContext"]["issue"], ex  # the message saying why and what to do
        client.post("workflow/orchestrate/recover", json={"projectId": name, "option": "abort"})
    assert corrupt_files(project) == []
    for path in state_files(project):
        json.loads(path.read_text(encoding="utf-8"))
