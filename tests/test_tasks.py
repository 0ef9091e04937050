"""The tasks.md parser, batch planner, marker and next-task picker (MISSION §2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from specflow_nb.demo import SAMPLE_DIR, SAMPLE_FEATURE
from specflow_nb.errors import ConfigError, TasksFileMissing
from specflow_nb.models import Task, TaskState
from specflow_nb.tasks import (
    DEFAULT_SECTION,
    ParsedTasks,
    mark_tasks,
    mark_tasks_file,
    next_task,
    parse_tasks,
    plan_batches,
    read_tasks,
    task_ids_in_text,
)

SAMPLE_TASKS = SAMPLE_DIR / "specs" / SAMPLE_FEATURE / "tasks.md"

# The shape of github/spec-kit templates/tasks-template.md: front matter, a TOC and format sections without tasks,
# "### " sub-headings inside phases, "**Checkpoint**" lines, "---" rules, placeholder "TXXX" IDs in the last phase,
# and a fenced example whose lines look like tasks.
SPEC_KIT = """\
---

description: "Task list template for feature implementation"
---

# Tasks: Photo albums

**Input**: Design documents from `/specs/001-photo-albums/`

## Format: `[ID] [P?] [Story] Description`

- **[P]**: Can run in parallel (different files, no dependencies)
- **[Story]**: Which user story this task belongs to (e.g., US1, US2, US3)

## Phase 1: Setup (Shared Infrastructure)

**Purpose**: Project initialization and basic structure

- [ ] T001 Create project structure per implementation plan
- [ ] T002 Initialize Python project with FastAPI dependencies
- [ ] T003 [P] Configure linting and formatting tools

---

## Phase 2: Foundational (Blocking Prerequisites)

**⚠️ CRITICAL**: No user story work can begin until this phase is complete

- [ ] T004 Setup database schema and migrations framework
- [ ] T005 [P] Implement authentication/authorization framework
- [ ] T006 [P] Setup API routing and middleware structure

**Checkpoint**: Foundation ready - user story implementation can now begin in parallel

---

## Phase 3: User Story 1 - Albums (Priority: P1) 🎯 MVP

**Goal**: Albums by date

### Tests for User Story 1 (OPTIONAL - only if tests requested) ⚠️

- [ ] T010 [P] [US1] Contract test for /albums in tests/contract/test_albums.py
- [ ] T011 [P] [US1] Integration test for album journey in tests/integration/test_albums.py

### Implementation for User Story 1

- [ ] T012 [P] [US1] Create Album model in src/models/album.py
- [ ] T013 [P] [US1] Create Photo model in src/models/photo.py
- [ ] T014 [US1] Implement AlbumService in src/services/album.py (depends on T012, T013)
- [ ] T015 [US1] Implement /albums endpoint in src/api/albums.py

**Checkpoint**: At this point, User Story 1 should be fully functional and testable independently

---

## Phase N: Polish & Cross-Cutting Concerns

- [ ] TXXX [P] Documentation updates in docs/
- [ ] TXXX Code cleanup and refactoring

---

## Parallel Example: User Story 1

```bash
# Launch all models for User Story 1 together:
- [ ] T012 Create Album model
- [ ] T099 Not a task: inside a fence
```

## Notes

- [P] tasks = different files, no dependencies
"""

# SpecFlow's shape: a "Progress Dashboard" with a table and a "Quick Status" list (emoji, no checkboxes) before the
# phases, "###" sub-headings, and "**Checkpoint**" lines; some tasks done, one deferred.
SPECFLOW = """\
# Tasks: Workflow Decomposition

## Progress Dashboard

> Last updated: 2026-01-18 | Run `specflow tasks sync` to refresh

| Phase | Status | Progress |
|-------|--------|----------|
| Setup | COMPLETE | 2/2 |
| Foundational | IN PROGRESS | 1/3 |
| US1: Dashboard Runs Design | PENDING | 0/3 |

**Overall**: 3/8 (37%) | **Current**: Phase 2 (Foundational)

### Quick Status

- ✅ T001 Create project directory structure
- ⬜ T004 Create main entry point

---

**Input**: Design documents from `specs/1047-workflow-decomposition-design/`

## Phase 1: Setup

- [x] T001 Create project directory structure
- [X] T002 [P] Configure package.json

**Checkpoint**: setup done

## Phase 2: Foundational

### Storage

- [x] T003 Create the state schema in src/state.ts
- [ ] T004 Create main entry point in src/index.ts
- [~] T005 Mobile support (deferred to next phase)

### Wiring

- [ ] T006 [W] Register the commands in src/cli.ts [depends: T004]

**Checkpoint**: Foundation ready

## Phase 3: User Story 1 - Dashboard Runs Design (Priority: P1)

- [ ] T007 [US1] Add the Design button in src/ui/button.tsx
- [ ] T008 [US1] [V] Verify the design run end to end (requires T007)
"""


def ids(plan_or_list) -> list[list[str]]:
    return [b.task_ids for b in plan_or_list.batches]


# --------------------------------------------------------------------------------------------------------------
# Parsing: the two real shapes and the bundled sample


def test_spec_kit_template_shape():
    parsed = parse_tasks(SPEC_KIT)
    assert [t.id for t in parsed.tasks] == ["T001", "T002", "T003", "T004", "T005", "T006"] + [
        f"T0{n}" for n in range(10, 16)
    ]
    assert parsed.has_sections
    assert parsed.sections == [
        "Format: `[ID] [P?] [Story] Description`",
        "Phase 1: Setup (Shared Infrastructure)",
        "Phase 2: Foundational (Blocking Prerequisites)",
        "Phase 3: User Story 1 - Albums (Priority: P1) 🎯 MVP",
        "Phase N: Polish & Cross-Cutting Concerns",
        "Parallel Example: User Story 1",
        "Notes",
    ]
    t014 = parsed.by_id()["T014"]
    assert t014.section == "Phase 3: User Story 1 - Albums (Priority: P1) 🎯 MVP"  # "###" did not open a section
    assert t014.story == "US1" and not t014.parallel and t014.depends_on == ["T012", "T013"]
    t010 = parsed.by_id()["T010"]
    assert t010.parallel and t010.story == "US1"
    assert t010.description == "Contract test for /albums in tests/contract/test_albums.py"
    # The placeholder IDs are reported, not taken as tasks; the fenced lines are not tasks at all.
    txxx = [w for w in parsed.warnings if "'TXXX' is not a task ID" in w]
    assert len(txxx) == 2
    assert not any("T099" in w for w in parsed.warnings)

    plan = plan_batches(parsed)
    assert [b.section for b in plan.batches] == [
        "Phase 1: Setup (Shared Infrastructure)",
        "Phase 2: Foundational (Blocking Prerequisites)",
        "Phase 3: User Story 1 - Albums (Priority: P1) 🎯 MVP",
    ]
    assert ids(plan)[2] == ["T010", "T011", "T012", "T013", "T014", "T015"]
    assert plan.summary == "3 batches from tasks.md sections (12 tasks)"
    assert not plan.used_fallback and plan.total_incomplete == 12


def test_specflow_shape_with_dashboard_subheadings_and_checkpoints():
    parsed = parse_tasks(SPECFLOW)
    assert [t.id for t in parsed.tasks] == [f"T00{n}" for n in range(1, 9)]  # Quick Status lines are not tasks
    assert parsed.sections[0] == "Progress Dashboard"
    by_id = parsed.by_id()
    assert by_id["T006"].section == "Phase 2: Foundational"
    assert by_id["T006"].wiring and by_id["T006"].depends_on == ["T004"]
    assert by_id["T008"].verification and by_id["T008"].story == "US1" and by_id["T008"].depends_on == ["T007"]
    assert by_id["T005"].state is TaskState.DEFERRED
    assert (parsed.total, parsed.done, parsed.blocked, parsed.deferred, parsed.pending) == (8, 3, 0, 1, 4)
    assert parsed.completed_ids == ["T001", "T002", "T003"]
    assert parsed.incomplete_ids == ["T004", "T006", "T007", "T008"]
    assert parsed.warnings == []

    plan = plan_batches(parsed)
    assert [(b.index, b.section, b.task_ids) for b in plan.batches] == [
        (0, "Phase 2: Foundational", ["T004", "T006"]),
        (1, "Phase 3: User Story 1 - Dashboard Runs Design (Priority: P1)", ["T007", "T008"]),
    ]
    # The deferred task does not hold the phase back and is named in the summary.
    assert plan.summary == "2 batches from tasks.md sections (4 tasks); 1 deferred (T005), not planned"
    assert plan.warnings == []


def test_bundled_sample_has_four_sections_and_twenty_tasks():
    parsed = read_tasks(SAMPLE_TASKS)
    assert parsed.total == 20 and parsed.pending == 20 and parsed.warnings == []
    by_id = parsed.by_id()
    assert by_id["T007"].depends_on == ["T005", "T006"]  # prose in parentheses
    assert by_id["T008"].depends_on == ["T005"]  # [after: …]
    assert by_id["T013"].depends_on == ["T011"]  # prose "after"
    assert by_id["T015"].depends_on == ["T013", "T014"]  # prose "requires"
    assert by_id["T016"].depends_on == ["T015"]  # [dep: …]
    assert by_id["T019"].verification and by_id["T020"].wiring
    plan = plan_batches(parsed)
    assert plan.summary == "4 batches from tasks.md sections (20 tasks)"
    assert [len(b.task_ids) for b in plan.batches] == [3, 5, 8, 4]
    assert plan.batches[1].section == "Phase 2: Foundational - model and storage"
    assert plan.warnings == []


# --------------------------------------------------------------------------------------------------------------
# Parsing: line-level rules


def test_task_line_variants():
    text = (
        "## S\n"
        "- [ ] T001 plain\n"
        "* [x] T002 star bullet, done\n"
        "- [X] T003 upper X\n"
        "  - [b] T004 indented and blocked — blocked: waiting for the API key\n"
        "- [B] T005 blocked with bracket [blocked: needs a decision]\n"
        "- [~] T006 deferred\n"
        "- [-] T007 deferred too\n"
        "- [ ] T008a suffix letter [P] [US12] markers after text stay text\n"
        "- [ ] T009 [US3] [P] [V] [W] all markers, any order\n"
        "\t- [ ] T010 tab indent\n"
    )
    parsed = parse_tasks(text)
    by_id = parsed.by_id()
    assert list(by_id) == ["T001", "T002", "T003", "T004", "T005", "T006", "T007", "T008a", "T009", "T010"]
    P, D, B, F = TaskState.PENDING, TaskState.DONE, TaskState.BLOCKED, TaskState.DEFERRED
    assert [t.state for t in parsed.tasks] == [P, D, D, B, B, F, F, P, P, P]
    assert by_id["T004"].blocked_reason == "waiting for the API key"
    assert by_id["T005"].blocked_reason == "needs a decision"
    assert by_id["T005"].description == "blocked with bracket"
    assert not by_id["T008a"].parallel and by_id["T008a"].story is None
    t9 = by_id["T009"]
    assert (t9.story, t9.parallel, t9.verification, t9.wiring) == ("US3", True, True, True)
    assert t9.description == "all markers, any order"
    assert by_id["T001"].line == 2 and by_id["T010"].line == 11
    assert (parsed.done, parsed.blocked) == (2, 2)


def test_lines_that_are_not_tasks():
    text = (
        "## S\n"
        "- [ ] T001 real\n"
        "-[ ] T002 no space after the bullet\n"
        "- [ ]T003 no space after the box\n"
        "+ [ ] T004 plus bullet\n"
        "> - [ ] T005 quoted\n"
        "T006 not a list item\n"
        "- T007 no checkbox\n"
        "- [ ] Buy milk\n"
        "- [ ] The end\n"
        "- [ ] T01 two digits\n"
        "- [?] T008 unknown box\n"
        "- [] T009 empty box\n"
    )
    parsed = parse_tasks(text)
    assert [t.id for t in parsed.tasks] == ["T001"]
    joined = "\n".join(parsed.warnings)
    assert "Line 11: 'T01' is not a task ID" in joined
    # Lines meant as tasks but written wrongly are named, with the way to write them.
    assert (
        "Line 3: '-[ ] T002 no space after the bullet' was not read as a task (T002): write it as '- [ ] T002 no space after the bullet'"
        in joined
    )
    assert (
        "Line 4: '- [ ]T003 no space after the box' was not read as a task (T003): write it as '- [ ] T003 no space after the box'"
        in joined
    )
    assert "Line 5: '+ [ ] T004 plus bullet' was not read as a task (T004)" in joined
    assert "Line 12: T008 has an unknown checkbox '[?]'" in joined
    assert "Line 13: T009 has an unknown checkbox '[]'" in joined
    assert "2 checkbox line(s) without a task ID were ignored (line 9, 10)" in joined


def test_dependencies_in_both_notations():
    text = (
        "## S\n"
        "- [ ] T001 first\n"
        "- [ ] T002 second\n"
        "- [ ] T003 a [depends: T001, T002]\n"
        "- [ ] T004 b [dep: T001]\n"
        "- [ ] T005 c [after: T002]\n"
        "- [ ] T006 d Depends on T001 and T002\n"
        "- [ ] T007 e, after T003\n"
        "- [ ] T008 f requires T004, T005 and T006\n"
        "- [ ] T009 g [Depends on: T001] requires: T002\n"
        "- [ ] T010 h mentions T001 without a keyword; afterwards T002\n"
        "- [ ] T011 i depends on T011 itself [depends: T001, T001]\n"
    )
    by_id = parse_tasks(text).by_id()
    assert by_id["T003"].depends_on == ["T001", "T002"]
    assert by_id["T003"].description == "a"
    assert by_id["T004"].depends_on == ["T001"]
    assert by_id["T005"].depends_on == ["T002"]
    assert by_id["T006"].depends_on == ["T001", "T002"]
    assert by_id["T007"].depends_on == ["T003"]
    assert by_id["T008"].depends_on == ["T004", "T005", "T006"]
    assert by_id["T009"].depends_on == ["T001", "T002"]
    assert by_id["T010"].depends_on == []
    assert by_id["T011"].depends_on == ["T001"]


def test_code_fences_hide_tasks_and_headers():
    text = (
        "## A\n"
        "- [ ] T001 in A\n"
        "```markdown\n"
        "## Not a section\n"
        "- [ ] T002 example\n"
        "~~~\n"  # a ~~~ line does not close a ``` fence
        "- [ ] T003 still example\n"
        "```\n"
        "~~~~\n"
        "- [ ] T004 in a tilde fence\n"
        "```\n"
        "~~~~~\n"
        "- [ ] T005 back in A\n"
        "``` not a fence `inline` ```\n"
        "- [ ] T006 also in A\n"
    )
    parsed = parse_tasks(text)
    assert [t.id for t in parsed.tasks] == ["T001", "T005", "T006"]
    assert parsed.sections == ["A"]
    assert {t.section for t in parsed.tasks} == {"A"}


def test_unclosed_fence_warns():
    parsed = parse_tasks("- [ ] T001 a\n```\n- [ ] T002 b\n")
    assert [t.id for t in parsed.tasks] == ["T001"]
    assert any("Line 2: a code fence is never closed" in w for w in parsed.warnings)


def test_only_two_hashes_open_a_section():
    text = (
        "- [ ] T001 before any header\n"
        "# Title\n"
        "- [ ] T002 still default\n"
        "## Phase 1: Setup ##\n"
        "### Sub\n"
        "- [ ] T003 under a sub-heading\n"
        "#### Deeper\n"
        "- [ ] T004 deeper\n"
        "##NoSpace is not a header\n"
        "   ## Indented three\n"
        "- [ ] T005 in indented\n"
        "##\n"
        "- [ ] T006 untitled\n"
    )
    parsed = parse_tasks(text)
    sections = [t.section for t in parsed.tasks]
    assert sections == [
        DEFAULT_SECTION,
        DEFAULT_SECTION,
        "Phase 1: Setup",
        "Phase 1: Setup",
        "Indented three",
        "(untitled section, line 12)",
    ]
    assert parsed.sections == ["Phase 1: Setup", "Indented three", "(untitled section, line 12)"]
    plan = plan_batches(parsed)
    # Default-section tasks come first as their own batch when other tasks are in sections.
    assert [(b.section, b.task_ids) for b in plan.batches] == [
        (DEFAULT_SECTION, ["T001", "T002"]),
        ("Phase 1: Setup", ["T003", "T004"]),
        ("Indented three", ["T005"]),
        ("(untitled section, line 12)", ["T006"]),
    ]


def test_crlf_and_bom_are_tolerated():
    text = "\ufeff## Phase 1: Setup\r\n- [ ] T001 Do it [depends: T002]\r\n- [x] T002 Done   \r\n```\r\n- [ ] T003 x\r\n```\r\n"
    parsed = parse_tasks(text)
    assert parsed.sections == ["Phase 1: Setup"]
    assert [(t.id, t.state, t.description, t.line) for t in parsed.tasks] == [
        ("T001", TaskState.PENDING, "Do it", 2),
        ("T002", TaskState.DONE, "Done", 3),
    ]
    assert parsed.tasks[0].depends_on == ["T002"]
    assert plan_batches(parsed).summary == "1 batch from tasks.md sections (1 task)"


def test_bom_before_a_task_line():
    assert [t.id for t in parse_tasks("\ufeff- [ ] T001 first line").tasks] == ["T001"]


def test_duplicate_ids_keep_the_first():
    parsed = parse_tasks("## A\n- [ ] T001 first\n## B\n- [x] T001 second\n- [ ] T002 other\n")
    assert [(t.id, t.section, t.description) for t in parsed.tasks] == [
        ("T001", "A", "first"),
        ("T002", "B", "other"),
    ]
    assert parsed.warnings == ["Line 4: duplicate task ID T001 (first on line 2); kept the first, skipped this one."]


@pytest.mark.parametrize(
    "text",
    ["", "\ufeff", "\n\n", "```", "##", "- [", "- [ ] T", "\r\r\r", "\x00\ud800\U0010ffff", "- [x] T001" * 3],
)
def test_odd_inputs_do_not_raise(text):
    parsed = parse_tasks(text)
    plan = plan_batches(parsed)
    assert plan.total_incomplete == sum(len(b) for b in ids(plan))


# --------------------------------------------------------------------------------------------------------------
# Planning


def test_no_sections_uses_fixed_size_chunks():
    text = "# Tasks\n\n" + "".join(f"- [ ] T{n:03d} task {n}\n" for n in range(1, 36))
    plan = plan_batches(parse_tasks(text))
    assert plan.used_fallback
    assert [b.section for b in plan.batches] == ["Batch 1", "Batch 2", "Batch 3"]
    assert [len(b.task_ids) for b in plan.batches] == [15, 15, 5]
    assert plan.summary == "3 batches (35 tasks, fallback sizing)"
    assert any(w.startswith("No sections detected") for w in plan.warnings)
    small = plan_batches(parse_tasks(text), batch_size_fallback=35)
    assert small.summary == "1 batch (35 tasks, fallback sizing)"


def test_sections_without_tasks_still_mean_fallback():
    text = "- [ ] T001 a\n- [ ] T002 b\n## Notes\nno tasks\n"
    parsed = parse_tasks(text)
    assert not parsed.has_sections
    plan = plan_batches(parsed, batch_size_fallback=1)
    assert [(b.section, b.task_ids) for b in plan.batches] == [("Batch 1", ["T001"]), ("Batch 2", ["T002"])]


def test_fallback_orders_by_dependencies_before_chunking():
    text = "- [ ] T001 a [after: T003]\n- [ ] T002 b\n- [ ] T003 c\n"
    plan = plan_batches(parse_tasks(text), batch_size_fallback=2)
    assert ids(plan) == [["T002", "T003"], ["T001"]]


def test_fallback_size_must_be_positive():
    with pytest.raises(ConfigError, match="at least 1"):
        plan_batches(parse_tasks("- [ ] T001 a\n"), batch_size_fallback=0)


def test_all_done_gives_an_empty_plan_not_a_complete_one():
    parsed = parse_tasks("## A\n- [x] T001 a\n- [X] T002 b\n")
    plan = plan_batches(parsed)
    assert plan.batches == [] and plan.total_incomplete == 0
    assert plan.summary == "No incomplete tasks found"
    assert next_task(parsed) is None


def test_empty_file_plan():
    # A file with no tasks plans nothing, so it does not report fallback sizing either (issue 16).
    for text in ("", "# Tasks\n\nNothing yet.\n", "- [x] T001 done, no section\n"):
        plan = plan_batches(parse_tasks(text))
        assert (plan.batches, plan.summary, plan.used_fallback) == ([], "No incomplete tasks found", False)
    assert plan.warnings == []  # no "No sections detected" warning when there is nothing to run


def test_completed_tasks_are_dropped_and_sections_without_pending_skipped():
    text = "## A\n- [x] T001 a\n## B\n- [x] T002 b\n- [ ] T003 c\n- [~] T004 d\n## C\n- [x] T005 e\n"
    plan = plan_batches(parse_tasks(text))
    assert [(b.index, b.section, b.task_ids) for b in plan.batches] == [(0, "B", ["T003"])]


def test_topological_order_within_a_batch_is_stable():
    text = (
        "## A\n"
        "- [ ] T001 needs T004 [depends: T004]\n"
        "- [ ] T002 free\n"
        "- [ ] T003 needs T001 (depends on T001)\n"
        "- [ ] T004 free\n"
        "- [ ] T005 free\n"
    )
    plan = plan_batches(parse_tasks(text))
    assert ids(plan) == [["T002", "T004", "T001", "T003", "T005"]]
    assert plan.warnings == []


def test_cycle_keeps_file_order_and_warns():
    text = "## A\n- [ ] T001 a [after: T002]\n- [ ] T002 b [after: T001]\n- [ ] T003 c\n"
    plan = plan_batches(parse_tasks(text))
    assert ids(plan) == [["T001", "T002", "T003"]]
    assert plan.warnings == ["Dependency cycle in section 'A' among T001, T002; the batch keeps file order."]


def test_unknown_dependency_warns_and_is_ignored():
    parsed = parse_tasks("## A\n- [ ] T002 b [depends: T001]\n- [ ] T003 c requires T099\n")
    plan = plan_batches(parsed)
    assert ids(plan) == [["T002", "T003"]]
    assert plan.warnings == [
        "T002 depends on T001, which is not in tasks.md; the dependency is ignored.",
        "T003 depends on T099, which is not in tasks.md; the dependency is ignored.",
    ]
    assert next_task(parsed).id == "T002"  # type: ignore[union-attr]


def test_blocked_and_deferred_are_not_planned_and_blocked_is_reported():
    text = (
        "## A\n"
        "- [b] T001 a [blocked: needs credentials]\n"
        "- [ ] T002 b [after: T001]\n"
        "- [~] T003 c\n"
        "- [ ] T004 d [after: T003]\n"
        "## B\n"
        "- [ ] T005 e [after: T006]\n"
        "## C\n"
        "- [ ] T006 f\n"
    )
    plan = plan_batches(parse_tasks(text))
    assert ids(plan) == [["T002", "T004"], ["T005"], ["T006"]]
    assert plan.total_incomplete == 4
    assert plan.warnings == [
        "T001 is blocked: needs credentials; it is not planned until it is unblocked.",
        "T002 depends on T001, which is blocked.",
        "T004 depends on T003, which is deferred.",
        "T005 depends on T006, which is planned in a later batch (3).",
    ]


def test_only_blocked_tasks_leave_an_empty_plan_with_a_warning():
    plan = plan_batches(parse_tasks("## A\n- [b] T001 a\n"))
    assert plan.batches == [] and plan.summary == "No incomplete tasks found"
    assert plan.warnings == ["T001 is blocked; it is not planned until it is unblocked."]


def test_repeated_header_text_is_two_batches():
    parsed = parse_tasks("## Polish\n- [ ] T001 a\n## Polish\n- [ ] T002 b\n")
    assert any("appears again" in w for w in parsed.warnings)
    assert ids(plan_batches(parsed)) == [["T001"], ["T002"]]


def test_hand_built_parsed_tasks_plan_by_section_runs():
    tasks = [
        Task(id="T001", description="a", section="A", line=1),
        Task(id="T002", description="b", section="A", line=2, depends_on=["T003"]),
        Task(id="T003", description="c", section="A", line=3),
        Task(id="T004", description="d", section="B", line=4),
    ]
    plan = plan_batches(ParsedTasks(tasks=tasks, sections=["A", "B"], has_sections=True))
    assert [(b.section, b.task_ids) for b in plan.batches] == [("A", ["T001", "T003", "T002"]), ("B", ["T004"])]


def test_plan_json_is_camel_case():
    data = plan_batches(read_tasks(SAMPLE_TASKS)).model_dump(mode="json")
    assert set(data) == {"batches", "totalIncomplete", "usedFallback", "summary", "warnings", "batchCount", "taskCount"}
    assert data["batchCount"] == len(data["batches"])  # the original dashboard's fields
    assert data["taskCount"] == sum(len(b["taskIds"]) for b in data["batches"])
    assert set(data["batches"][0]) == {"index", "section", "taskIds"}
    assert "hasSections" in parse_tasks("").model_dump()


# --------------------------------------------------------------------------------------------------------------
# next_task and task_ids_in_text


def test_next_task_follows_dependencies():
    text = "## A\n- [ ] T001 a [after: T002]\n- [ ] T002 b\n- [b] T003 c\n"
    parsed = parse_tasks(text)
    assert next_task(parsed).id == "T002"  # type: ignore[union-attr]
    done = parse_tasks(mark_tasks(text, ["T002"], TaskState.DONE).text)
    assert next_task(done).id == "T001"  # type: ignore[union-attr]


def test_next_task_none_when_all_waiting_on_blocked():
    assert next_task(parse_tasks("- [b] T001 a\n- [ ] T002 b [after: T001]\n")) is None


def test_task_ids_in_text():
    prompt = (
        'Execute only the "Phase 2" section (T008, T009, T008, T010a, T1000). Do NOT work on T01 or XT012 or T013x2.'
    )
    assert task_ids_in_text(prompt) == ["T008", "T009", "T010a", "T1000"]
    assert task_ids_in_text("") == []


# --------------------------------------------------------------------------------------------------------------
# mark


def test_mark_changes_only_the_checkbox_character():
    text = "\ufeff# T\r\n\r\n## A\r\n- [ ] T001 a   \r\n* [ ] T002 b\t\r\n- [ ] T003 c\r\n"
    result = mark_tasks(text, ["T001", "T002"], TaskState.DONE)
    assert result.text == "\ufeff# T\r\n\r\n## A\r\n- [x] T001 a   \r\n* [x] T002 b\t\r\n- [ ] T003 c\r\n"
    assert (result.changed, result.unchanged, result.missing) == (["T001", "T002"], [], [])


def test_mark_reports_unchanged_and_missing():
    text = "- [X] T001 a\n- [-] T002 b\n```\n- [ ] T003 in a fence\n```\n"
    result = mark_tasks(text, ["T001", "t002", "T003", "bogus", "T001"], TaskState.DONE)
    assert result.changed == ["T002"]
    assert result.unchanged == ["T001"]
    assert result.missing == ["bogus", "T003"]
    assert result.text == "- [X] T001 a\n- [x] T002 b\n```\n- [ ] T003 in a fence\n```\n"
    again = mark_tasks(text, ["T002"], TaskState.DEFERRED)
    assert again.unchanged == ["T002"] and again.text is text


@pytest.mark.parametrize(
    ("state", "box"), [(TaskState.PENDING, " "), (TaskState.BLOCKED, "b"), (TaskState.DEFERRED, "~")]
)
def test_mark_each_state(state, box):
    result = mark_tasks("- [x] T001 a\n", ["T001"], state)
    assert result.text == f"- [{box}] T001 a\n"
    assert parse_tasks(result.text).tasks[0].state is state


def test_mark_blocked_with_reason_appends_one_annotation_before_trailing_space():
    text = "## A\r\n- [ ] T001 a  \r\n- [ ] T002 b"
    blocked = mark_tasks(text, ["T001", "T002"], TaskState.BLOCKED, reason="needs\nthe [prod] key ")
    assert (
        blocked.text
        == "## A\r\n- [b] T001 a [blocked: needs the (prod) key]  \r\n- [b] T002 b [blocked: needs the (prod) key]"
    )
    parsed = parse_tasks(blocked.text)
    assert [t.blocked_reason for t in parsed.tasks] == ["needs the (prod) key"] * 2
    assert parsed.tasks[0].description == "a"
    # A new reason replaces the old annotation; the same reason changes nothing.
    again = mark_tasks(blocked.text, ["T001"], TaskState.BLOCKED, reason="other")
    assert again.text.splitlines()[1] == "- [b] T001 a [blocked: other]  "
    same = mark_tasks(again.text, ["T001"], TaskState.BLOCKED, reason="other")
    assert same.unchanged == ["T001"]
    # Unblocking removes our annotation and restores the original line exactly.
    unblocked = mark_tasks(blocked.text, ["T001", "T002"], TaskState.PENDING)
    assert unblocked.text == text


def test_unblocking_keeps_prose_reasons():
    text = "- [b] T001 a — blocked: waiting on T009\n"
    assert mark_tasks(text, ["T001"], TaskState.DONE).text == "- [x] T001 a — blocked: waiting on T009\n"


def test_blocked_reason_ids_are_not_dependencies():
    text = mark_tasks("- [ ] T001 a\n", ["T001"], TaskState.BLOCKED, reason="after T005 lands").text
    assert parse_tasks(text).tasks[0].depends_on == []


def test_mark_accepts_a_single_id_string():
    assert mark_tasks("- [ ] T001 a\n", "T001", TaskState.DONE).changed == ["T001"]


def test_mark_duplicate_id_marks_the_first_only():
    text = "- [ ] T001 a\n- [ ] T001 again\n"
    assert mark_tasks(text, ["T001"], TaskState.DONE).text == "- [x] T001 a\n- [ ] T001 again\n"


def test_mark_skips_lines_the_parser_skips():
    text = "- [?] T001 odd box\n- [ ] T001 real\n"
    assert mark_tasks(text, ["T001"], TaskState.DONE).text == "- [?] T001 odd box\n- [x] T001 real\n"


# --------------------------------------------------------------------------------------------------------------
# Files


def test_read_tasks_missing_file(tmp_path):
    with pytest.raises(TasksFileMissing, match="No tasks file"):
        read_tasks(tmp_path / "tasks.md")


def test_read_tasks_replaces_bad_bytes(tmp_path):
    path = tmp_path / "tasks.md"
    path.write_bytes(b"## A\n- [ ] T001 caf\xe9\n")
    assert read_tasks(path).tasks[0].description == "caf\ufffd"


def test_mark_tasks_file_preserves_every_other_byte(tmp_path):
    original = (
        b"\xef\xbb\xbf# Tasks\r\n"
        b"## Phase 1\r\n"
        b"- [ ] T001 first  \r\n"
        b"- [ ] T002 latin-1 byte \xe9 survives\t\r\n"
        b"```\r\n- [ ] T003 fenced\r\n```\r\n"
        b"- [ ] T003 real"  # no final newline
    )
    path = tmp_path / "tasks.md"
    path.write_bytes(original)
    os.chmod(path, 0o640)
    result = mark_tasks_file(path, ["T002", "T003"], TaskState.DONE)
    assert result.changed == ["T002", "T003"]
    assert path.read_bytes() == original.replace(b"- [ ] T002", b"- [x] T002").replace(
        b"- [ ] T003 real", b"- [x] T003 real"
    )
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.md"]  # no temp file left behind
    assert mark_tasks_file(path, ["T001"], TaskState.PENDING).unchanged == ["T001"]


def test_mark_tasks_file_missing(tmp_path):
    with pytest.raises(TasksFileMissing):
        mark_tasks_file(tmp_path / "nope.md", ["T001"], TaskState.DONE)


def test_mark_tasks_file_leaves_an_unchanged_file_alone(fs):
    # pyfakefs: pure file logic. The file's mtime must not move when nothing changes.
    path = Path("/p/specs/0001-x/tasks.md")
    fs.create_file(path, contents="- [x] T001 a\n")
    os.utime(path, (1_000_000, 1_000_000))
    result = mark_tasks_file(path, ["T001"], TaskState.DONE)
    assert result.unchanged == ["T001"] and path.stat().st_mtime == 1_000_000


def test_parsed_tasks_are_ordinary_pydantic_tasks():
    # The parser builds Task objects without re-validating them (speed); they must equal validated ones.
    parsed = parse_tasks(SPECFLOW + "- [b] T009 blocked [blocked: reason]\n")
    for task in parsed.tasks:
        assert Task(**task.model_dump(by_alias=False)) == task
        assert Task.model_validate_json(task.model_dump_json()) == task
        assert task.model_fields_set == set(Task.model_fields)
        copy = task.model_copy(update={"state": TaskState.DONE})
        assert copy.done and task.model_fields_set == set(Task.model_fields)
        assert repr(task).startswith("Task(id=")
    assert ParsedTasks.model_validate_json(parsed.model_dump_json()).tasks == parsed.tasks
