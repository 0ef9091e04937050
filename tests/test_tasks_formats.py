"""tasks.md as real projects write it (issue 16 item 1): one test per format the planner must read."""

from __future__ import annotations

import pytest

from specflow_nb.models import TaskState
from specflow_nb.tasks import (
    all_done,
    expand_task_ids,
    mark_tasks,
    next_task,
    parse_tasks,
    plan_batches,
)

# spec-kit's converge goes on from T999 to T1000; a project that did T001–T999 then added tasks.
FOUR_DIGITS = """\
# Tasks

## Phase 1: Core

- [x] T998 Old work, done before
- [x] T999 [P] Old work, done before

## Phase 2: Converge

- [ ] T1000 [P] [US2] New work after T999
- [ ] T1001 More new work (depends on T1000)

## Phase 3: Polish

- [ ] T1002 Last one
"""


def test_ids_past_t999_are_tasks_and_planned():
    parsed = parse_tasks(FOUR_DIGITS)
    assert [t.id for t in parsed.tasks] == ["T998", "T999", "T1000", "T1001", "T1002"]
    assert parsed.warnings == []
    by_id = parsed.by_id()
    assert by_id["T1000"].story == "US2" and by_id["T1000"].parallel
    assert by_id["T1001"].depends_on == ["T1000"]
    assert not all_done(parsed)  # today's bug: the new tasks were skipped, so "all done" skipped implement
    plan = plan_batches(parsed)
    assert [(b.section, b.task_ids) for b in plan.batches] == [
        ("Phase 2: Converge", ["T1000", "T1001"]),
        ("Phase 3: Polish", ["T1002"]),
    ]
    assert plan.summary == "2 batches from tasks.md sections (3 tasks)"


def test_four_digit_ids_with_suffix_and_in_dependencies():
    parsed = parse_tasks("## A\n- [ ] T1000a first\n- [ ] T1234 second [depends: T1000a, T0999]\n")
    assert [t.id for t in parsed.tasks] == ["T1000a", "T1234"]
    assert parsed.by_id()["T1234"].depends_on == ["T1000a", "T0999"]


def test_ranges_are_numeric_across_t999():
    known = ["T997", "T998", "T999", "T1000", "T1001", "T1002", "T1003"]
    assert expand_task_ids(["T998..T1002"], known) == (["T998", "T999", "T1000", "T1001", "T1002"], [])
    # Without the file's IDs a range still counts by number, padded to three digits.
    assert expand_task_ids(["T998..T1001"]) == (["T998", "T999", "T1000", "T1001"], [])
    # A file that writes four digits throughout (T0998) is matched by number too.
    assert expand_task_ids(["T0998..T1000"], ["T0998", "T0999", "T1000"])[0] == ["T0998", "T0999", "T1000"]
    # Lower case, duplicates, letters on the ends (ignored, as the original does), bad ranges.
    assert expand_task_ids(["t001", "T001", "T002a..T003", "T005..T004", "V-001", "T001..T99999"]) == (
        ["T001", "T002", "T003"],
        ["T005..T004", "V-001", "T001..T99999"],
    )


def test_mark_a_range_across_t999():
    result = mark_tasks(FOUR_DIGITS, ["T999..T1001"], TaskState.DONE)
    assert result.changed == ["T1000", "T1001"] and result.unchanged == ["T999"] and result.missing == []
    parsed = parse_tasks(result.text)
    assert [t.id for t in parsed.tasks if t.done] == ["T998", "T999", "T1000", "T1001"]
    missing = mark_tasks(FOUR_DIGITS, ["T1001..T1004"], TaskState.DONE)
    assert missing.changed == ["T1001", "T1002"] and missing.missing == ["T1003", "T1004"]


def test_spec_kit_legend_line_is_neither_task_nor_warning():
    text = (
        "## Phase 1\n- [ ] T001 real\n\n## Notes\n\n"
        "- [P] tasks = different files, no dependencies\n"
        "- [V] tasks = verification\n"
        "- [Story] label maps task to specific user story for traceability\n"
    )
    parsed = parse_tasks(text)
    assert [t.id for t in parsed.tasks] == ["T001"]
    assert parsed.warnings == []
    assert plan_batches(parsed).warnings == []


def test_a_file_with_no_tasks_does_not_use_fallback():
    for text in ("", "# Tasks\n\n## Phase 1\n\nTBD\n", "## Notes\n\n- [P] tasks = different files\n"):
        plan = plan_batches(parse_tasks(text))
        assert not plan.used_fallback and plan.batches == [] and plan.summary == "No incomplete tasks found"
        assert not any("No sections detected" in w for w in plan.warnings)
    # With pending tasks and no section, fallback sizing is used (and said).
    plan = plan_batches(parse_tasks("- [ ] T001 a\n- [ ] T002 b\n"), batch_size_fallback=1)
    assert plan.used_fallback and [b.section for b in plan.batches] == ["Batch 1", "Batch 2"]


@pytest.mark.parametrize(
    ("line", "fixed"),
    [
        ("-[ ] T002 glued bullet", "- [ ] T002 glued bullet"),
        ("- [ ]T003 glued id", "- [ ] T003 glued id"),
        ("- [x]T004 glued id, done", "- [x] T004 glued id, done"),
        ("*[ ] T005 star glued", "- [ ] T005 star glued"),
        ("[ ] T006 no bullet", "- [ ] T006 no bullet"),
        ("1. [ ] T007 numbered", "- [ ] T007 numbered"),
        ("- [ ]T1000 four digits", "- [ ] T1000 four digits"),
    ],
)
def test_malformed_task_lines_are_named_with_the_fix(line, fixed):
    parsed = parse_tasks(f"## A\n- [ ] T001 ok\n{line}\n")
    assert [t.id for t in parsed.tasks] == ["T001"]
    assert len(parsed.warnings) == 1
    warning = parsed.warnings[0]
    assert warning.startswith(f"Line 3: {line!r} was not read as a task")
    assert f"write it as {fixed!r}" in warning


def test_lines_without_an_id_are_not_called_malformed():
    parsed = parse_tasks("## A\n-[ ] buy milk\n[x] done thing\n1. [ ] step\n- [ ] T001 ok\n")
    assert [t.id for t in parsed.tasks] == ["T001"] and parsed.warnings == []


def test_story_after_other_markers():
    parsed = parse_tasks(
        "## A\n"
        "- [ ] T007 [P1] [US2] [FR-001] Priority first, then the story\n"
        "- [ ] T008 [FR-002] [P] [US3] Requirement first\n"
        "- [ ] T009 [US4] plain\n"
        "- [ ] T010 no markers [US5] later in the text stays text\n"
    )
    by_id = parsed.by_id()
    assert by_id["T007"].story == "US2" and not by_id["T007"].parallel
    assert by_id["T007"].description == "[P1] [FR-001] Priority first, then the story"
    assert by_id["T008"].story == "US3" and by_id["T008"].parallel
    assert by_id["T008"].description == "[FR-002] Requirement first"
    assert by_id["T009"].story == "US4" and by_id["T009"].description == "plain"
    assert by_id["T010"].story is None
    assert parsed.warnings == []


def test_tasks_inside_multi_line_html_comments_are_ignored():
    text = (
        "## Phase 1\n"
        "- [ ] T001 visible\n"
        "<!--\n"
        "- [ ] T002 commented out\n"
        "## Not a section\n"
        "-->\n"
        "- [ ] T003 visible again <!-- a one-line comment -->\n"
        "- [ ] T004 ends with an opening <!-- note\n"
        "- [ ] T005 inside the note\n"
        "still the note --> - [ ] T006 after a closing on the same line is not a task\n"
        "  <!-- indented opening\n"
        "  - [ ] T007 hidden\n"
        "  -->\n"
        "- [ ] T008 visible\n"
    )
    parsed = parse_tasks(text)
    assert [t.id for t in parsed.tasks] == ["T001", "T003", "T004", "T008"]
    assert parsed.sections == ["Phase 1"]
    assert parsed.warnings == []
    # The marker skips what the parser skips: T002 inside the comment is "missing", not marked.
    result = mark_tasks(text, ["T002", "T004"], TaskState.DONE)
    assert result.changed == ["T004"] and result.missing == ["T002"]


def test_an_unclosed_html_comment_warns():
    parsed = parse_tasks("## A\n- [ ] T001 a\n<!-- start\n- [ ] T002 hidden\n")
    assert [t.id for t in parsed.tasks] == ["T001"]
    assert parsed.warnings == [
        "Line 3: an HTML comment ('<!--') is never closed; no task after it is read. Close it with '-->'."
    ]


def test_a_comment_marker_inside_a_fence_is_code():
    parsed = parse_tasks("## A\n```html\n<!--\n```\n- [ ] T001 after the fence\n")
    assert [t.id for t in parsed.tasks] == ["T001"] and parsed.warnings == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),  # no task: not "all done"
        ("- [x] T001 a\n", True),
        ("- [x] T001 a\n- [~] T002 deferred\n- [-] T003 deferred\n", True),  # deferred never holds back
        ("- [x] T001 a\n- [ ] T002 pending\n", False),
        ("- [x] T001 a\n- [b] T002 blocked\n", False),  # blocked needs a person
        ("- [~] T001 only deferred\n", True),
    ],
)
def test_the_one_all_done_rule(text, expected):
    parsed = parse_tasks(text)
    assert all_done(parsed) is expected and parsed.all_done is expected
    # The engine decides with settled_ids: every task settled (done or deferred) is the same rule.
    assert (bool(parsed.tasks) and set(parsed.settled_ids) == {t.id for t in parsed.tasks}) is expected
    # And next_task agrees: when all is done there is nothing to start.
    if expected:
        assert next_task(parsed) is None
    assert all_done(None) is False


def test_deferred_tasks_are_listed_in_the_plan_summary():
    parsed = parse_tasks("## A\n- [x] T001 a\n- [~] T002 later\n- [-] T003 later too\n")
    plan = plan_batches(parsed)
    assert plan.batches == []
    assert plan.summary == "No incomplete tasks found; 2 deferred (T002, T003), not planned"
    assert parsed.deferred_ids == ["T002", "T003"] and parsed.settled_ids == ["T001", "T002", "T003"]
