"""Properties of the tasks.md planner and marker on arbitrary and on plausible tasks.md texts (hypothesis)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specflow_nb.models import TaskState
from specflow_nb.tasks import ParsedTasks, mark_tasks, parse_tasks, plan_batches
from specflow_nb.tasks_parse import _Read, box_offsets, read_tasks, reparse

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ID_POOL = [f"T{n:03d}" for n in range(1, 9)] + ["T003a", "T1000"]
ids_st = st.sampled_from(ID_POOL)
words = st.text(alphabet="abcdefg XT0123[]:-—`~#*", max_size=20)


@st.composite
def task_line(draw) -> str:
    indent = draw(st.sampled_from(["", "", "  ", "\t"]))
    bullet = draw(st.sampled_from(["-", "*"]))
    box = draw(st.sampled_from([" "] * 6 + ["x", "X", "b", "B", "~", "-", "?", ""]))
    task_id = draw(st.sampled_from([*ID_POOL, "TXXX", "T01"]))
    markers = "".join(draw(st.lists(st.sampled_from([" [P]", " [V]", " [W]", " [US1]", " [US2]"]), max_size=3)))
    deps = draw(st.lists(ids_st, max_size=2))
    dep_text = ""
    if deps:
        form = draw(st.sampled_from(["[depends: {}]", "[dep: {}]", "[after: {}]", "depends on {}", "requires {}"]))
        sep = draw(st.sampled_from([", ", " and ", ","]))
        dep_text = " " + form.format(sep.join(deps))
    blocked = draw(st.sampled_from(["", "", " [blocked: why T002]", " — blocked: later"]))
    trail = draw(st.sampled_from(["", "", "  ", "\t"]))
    return f"{indent}{bullet} [{box}] {task_id}{markers} {draw(words)}{dep_text}{blocked}{trail}"


KINDS = ["task"] * 12 + ["h2"] * 3 + ["h3", "other", "fenced", "stray_fence", "text"]


@st.composite
def block(draw) -> list[str]:
    """One or a few lines: mostly tasks and headers; fences usually closed (an unclosed one hides the rest)."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "task":
        return [draw(task_line())]
    if kind == "h2":
        return [draw(st.one_of(st.builds(lambda t: f"## {t}", words), st.sampled_from(["##", "## Phase 1: Setup"])))]
    if kind == "h3":
        return [draw(st.builds(lambda t: f"### {t}", words))]
    if kind == "other":
        return [draw(st.sampled_from(["", "**Checkpoint**: done", "---", "# Tasks", "- ✅ T001 done", "| a | b |"]))]
    if kind == "fenced":
        fence = draw(st.sampled_from(["```", "~~~", "````"]))
        inner = draw(st.lists(st.one_of(task_line(), st.just("## Not a section")), max_size=3))
        return [fence + draw(st.sampled_from(["", "markdown"])), *inner, fence]
    if kind == "stray_fence":
        return [draw(st.sampled_from(["```", "```python", "~~~"]))]
    return [draw(st.text(max_size=30).map(lambda s: s.replace("\n", " ")))]


@st.composite
def tasks_md(draw) -> str:
    lines = [line for b in draw(st.lists(block(), min_size=4, max_size=40)) for line in b]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    end = draw(st.sampled_from(["", eol]))
    return bom + eol.join(lines) + end


def assert_partition(parsed: ParsedTasks, size: int) -> None:
    plan = plan_batches(parsed, batch_size_fallback=size)
    planned = [tid for b in plan.batches for tid in b.task_ids]
    pending = parsed.incomplete_ids
    assert Counter(planned) == Counter(pending)  # each pending task exactly once, nothing else
    assert plan.total_incomplete == len(pending)
    assert [b.index for b in plan.batches] == list(range(len(plan.batches)))
    assert all(b.task_ids for b in plan.batches)  # no empty batch
    # Fallback sizing is reported only when there are pending tasks to size.
    assert plan.used_fallback == (not parsed.has_sections and parsed.pending > 0)
    by_id = parsed.by_id()
    if plan.used_fallback:
        assert [b.section for b in plan.batches] == [f"Batch {i + 1}" for i in range(len(plan.batches))]
        assert all(len(b.task_ids) <= size for b in plan.batches)
    else:
        assert all(by_id[t].section == b.section for b in plan.batches for t in b.task_ids)
    if not plan.batches:
        assert plan.summary.startswith("No incomplete tasks found")
    assert ("deferred" in plan.summary) == bool(parsed.deferred)
    # Within a batch a task never comes before a same-batch dependency, unless the planner reported a cycle.
    if not any("cycle" in w for w in plan.warnings):
        for b in plan.batches:
            seen: set[str] = set()
            members = set(b.task_ids)
            for tid in b.task_ids:
                assert all(d in seen for d in by_id[tid].depends_on if d in members)
                seen.add(tid)


@BOUNDED
@given(st.text(), st.integers(min_value=1, max_value=50))
def test_planner_never_raises_on_any_text(text, size):
    assert_partition(parse_tasks(text), size)


@BOUNDED
@given(tasks_md(), st.integers(min_value=1, max_value=6))
def test_batches_partition_the_pending_tasks(text, size):
    parsed = parse_tasks(text)
    assert len({t.id for t in parsed.tasks}) == len(parsed.tasks)
    assert_partition(parsed, size)


@BOUNDED
@given(
    tasks_md(),
    st.lists(ids_st, max_size=5),
    st.sampled_from(list(TaskState)),
    st.one_of(st.none(), st.text(max_size=15)),
)
def test_mark_round_trips_and_preserves_other_lines(text, ids, state, reason):
    before = parse_tasks(text)
    result = mark_tasks(text, ids, state, reason)
    after = parse_tasks(result.text)

    # The same tasks, in the same order, on the same lines; only the marked ones changed state.
    assert [(t.id, t.line) for t in after.tasks] == [(t.id, t.line) for t in before.tasks]
    known = set(before.by_id())
    assert set(result.changed) | set(result.unchanged) == set(ids) & known
    assert set(result.missing) == set(ids) - known
    for old, new in zip(before.tasks, after.tasks, strict=True):
        if old.id in ids:
            assert new.state is state
            expected_reason = " ".join(reason.replace("[", "(").replace("]", ")").split()) if reason else ""
            if state is TaskState.BLOCKED and expected_reason:
                assert new.blocked_reason == expected_reason
        else:
            assert new.state is old.state
            assert new.model_dump() == old.model_dump()

    # Every line not belonging to a changed task is byte-for-byte the same.
    changed_lines = {t.line - 1 for t in before.tasks if t.id in result.changed}
    old_lines, new_lines = text.split("\n"), result.text.split("\n")
    assert len(old_lines) == len(new_lines)
    for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)):
        if i not in changed_lines:
            assert a == b
        elif not (state is TaskState.BLOCKED and reason) and "[blocked" not in a.lower():
            # Without an annotation to add or drop, exactly one character (the checkbox) differs.
            assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1
    if not result.changed:
        assert result.text == text


@BOUNDED
@given(tasks_md(), st.lists(ids_st, max_size=5))
def test_mark_then_unmark_restores_pending_lines(text, ids):
    before = parse_tasks(text)
    pending = [t.id for t in before.tasks if t.state is TaskState.PENDING and t.id in ids]
    done = mark_tasks(text, pending, TaskState.DONE)
    back = mark_tasks(done.text, pending, TaskState.PENDING)
    assert back.text == text


@st.composite
def dependency_graph(draw) -> str:
    """Tasks T001..Tn, each depending on random others (cycles likely), spread over a few sections."""
    n = draw(st.integers(min_value=1, max_value=12))
    sectioned = draw(st.booleans())
    lines = []
    for i in range(1, n + 1):
        if sectioned and (i == 1 or draw(st.integers(0, 3)) == 0):
            lines.append(f"## Section {i}")
        box = draw(st.sampled_from([" ", " ", " ", "x", "b", "~"]))
        deps = draw(st.lists(st.integers(1, n), max_size=3))
        dep = f" [depends: {', '.join(f'T{d:03d}' for d in deps)}]" if deps else ""
        lines.append(f"- [{box}] T{i:03d} task{dep}")
    return "\n".join(lines)


def has_cycle(nodes: list[str], edges: dict[str, list[str]]) -> bool:
    members, state = set(nodes), dict.fromkeys(nodes, 0)  # 0 new, 1 on the stack, 2 finished

    def visit(v: str) -> bool:
        state[v] = 1
        for w in edges[v]:
            if w in members and w != v and (state[w] == 1 or (state[w] == 0 and visit(w))):
                return True
        state[v] = 2
        return False

    return any(state[v] == 0 and visit(v) for v in nodes)


@BOUNDED
@given(dependency_graph(), st.integers(min_value=1, max_value=5))
def test_cycles_are_reported_exactly_when_a_batch_has_one(text, size):
    parsed = parse_tasks(text)
    assert_partition(parsed, size)
    plan = plan_batches(parsed, batch_size_fallback=size)
    edges = {t.id: t.depends_on for t in parsed.tasks}
    if plan.used_fallback:
        expected = has_cycle(parsed.incomplete_ids, edges)
        reported = any(w.startswith("Dependency cycle among") for w in plan.warnings)
        assert reported == expected
    else:
        for b in plan.batches:
            reported = any(w.startswith(f"Dependency cycle in section {b.section!r}") for w in plan.warnings)
            assert reported == has_cycle(b.task_ids, edges)
            if reported:  # a cycle keeps the file order
                lines = [parsed.by_id()[t].line for t in b.task_ids]
                assert lines == sorted(lines)


@BOUNDED
@given(tasks_md(), st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(list(" xX~-bB?"))), max_size=8))
def test_a_reread_with_only_checkboxes_changed_parses_as_a_whole_parse_does(text, changes):
    """``read_tasks`` re-parses a text that differs from the last one read only in task checkboxes by changing
    those tasks' states (``reparse``): its result equals a whole parse of the new text, whatever changed."""
    first = parse_tasks(text)
    boxes = box_offsets(text, first)
    chars = list(text)
    for pick, box in changes:
        if boxes:
            chars[boxes[pick % len(boxes)]] = box
    changed = "".join(chars)
    quick = reparse(_Read(text, first, boxes), changed)
    whole = parse_tasks(changed)
    if quick is not None:
        assert quick.model_dump() == whole.model_dump()
        assert quick._section_index == whole._section_index
    if changed == text and boxes:
        assert quick is not None  # nothing changed: never a whole parse


def test_read_tasks_rereads_an_agents_check_offs_without_a_whole_parse(tmp_path, monkeypatch):
    """The file read again after an agent checked two tasks: the same result as a whole parse, without one."""
    import specflow_nb.tasks_parse as tp

    path = tmp_path / "tasks.md"
    path.write_text("# Tasks\n\n## Setup\n\n- [ ] T001 One\n- [ ] T002 Two [P]\n- [ ] T003 Three\n", encoding="utf-8")
    assert read_tasks(path).incomplete_ids == ["T001", "T002", "T003"]
    path.write_text("# Tasks\n\n## Setup\n\n- [x] T001 One\n- [X] T002 Two [P]\n- [ ] T003 Three\n", encoding="utf-8")
    whole = parse_tasks(path.read_text(encoding="utf-8"))
    monkeypatch.setattr(tp, "parse_tasks", lambda text: pytest.fail("parsed whole"))
    again = read_tasks(path)
    assert again.model_dump() == whole.model_dump() and again.completed_ids == ["T001", "T002"]
    monkeypatch.undo()
    path.write_text("# Tasks\n\n## Setup\n\n- [x] T001 One, now longer\n- [X] T002 Two [P]\n", encoding="utf-8")
    assert [t.id for t in read_tasks(path).tasks] == ["T001", "T002"]  # any other change: parsed whole
