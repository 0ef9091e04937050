"""project.py: confinement, feature folders, artifacts, git branches and the `status --json` view."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specflow_nb.demo import SAMPLE_FEATURE
from specflow_nb.errors import ConfigError, ProjectNotFound, ProjectOutsideRoot
from specflow_nb.project import (
    collect_artifacts,
    find_feature_dir,
    list_feature_dirs,
    parse_feature_name,
    project_status,
    resolve_project,
)
from specflow_nb.store import OrchestrationStore, StateFile

TASKS = "## Phase 1: Setup\n\n- [x] T001 First\n- [ ] T002 Second [depends: T001]\n- [ ] T003 Third\n"


def feature(project: Path, name: str = "0001-demo", *, spec=True, plan=True, tasks: str | None = TASKS) -> Path:
    d = project / "specs" / name
    d.mkdir(parents=True)
    if spec:
        (d / "spec.md").write_text("# Spec\n")
    if plan:
        (d / "plan.md").write_text("# Plan\n")
    if tasks is not None:
        (d / "tasks.md").write_text(tasks)
    return d


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# ---- resolve_project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "a" / "b").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return r


@pytest.mark.parametrize(
    ("pid", "rel"), [("", "."), (".", "."), ("a", "a"), ("a/b", "a/b"), ("a/b/..", "a"), (" a ", "a")]
)
def test_resolve_project_inside_root(root, pid, rel):
    assert resolve_project(root, pid) == (root / rel).resolve()


def test_resolve_project_accepts_an_absolute_path_inside_the_root(root):
    assert resolve_project(root, str(root / "a")) == (root / "a").resolve()


@pytest.mark.parametrize("pid", ["..", "../outside", "a/../../outside", "a/b/../../../outside"])
def test_resolve_project_refuses_dotdot_escapes(root, pid):
    with pytest.raises(ProjectOutsideRoot) as info:
        resolve_project(root, pid)
    assert info.value.http_status == 403 and info.value.hint


def test_resolve_project_refuses_absolute_paths_and_symlinks_leading_out(root):
    with pytest.raises(ProjectOutsideRoot):
        resolve_project(root, str(root.parent / "outside"))
    with pytest.raises(ProjectOutsideRoot):
        resolve_project(root, "/")
    (root / "link").symlink_to(root.parent / "outside")
    with pytest.raises(ProjectOutsideRoot):
        resolve_project(root, "link")
    # an escape is refused even when the target does not exist: the answer never reveals what is outside
    with pytest.raises(ProjectOutsideRoot):
        resolve_project(root, "../no-such-folder")


def test_resolve_project_follows_symlinks_that_stay_inside(root):
    (root / "alias").symlink_to(root / "a" / "b")
    assert resolve_project(root, "alias") == (root / "a" / "b").resolve()


def test_resolve_project_missing_folder_or_file_is_not_found(root):
    with pytest.raises(ProjectNotFound) as info:
        resolve_project(root, "nope")
    assert info.value.http_status == 404
    (root / "file.txt").write_text("x")
    with pytest.raises(ProjectNotFound):
        resolve_project(root, "file.txt")
    with pytest.raises(ProjectNotFound):
        resolve_project(root / "missing-root", "")


def test_resolve_project_rejects_nul(root):
    with pytest.raises(ConfigError):
        resolve_project(root, "a\x00b")


# ---- feature folders


@pytest.mark.parametrize(
    ("name", "parsed"),
    [("0001-todo-cli", (1, "todo-cli")), ("012-x", (12, "x")), ("01-x", None), ("todo", None), ("0001-", None)],
)
def test_parse_feature_name(name, parsed):
    assert parse_feature_name(name) == parsed


def test_feature_dirs_newest_number_first_and_spec_kit_three_digits(tmp_path):
    for name in ["0001-a", "0002-b", "010-c", "notes", "0003"]:
        (tmp_path / "specs" / name).mkdir(parents=True)
    (tmp_path / "specs" / "0099-file.md").write_text("not a folder")
    assert [p.name for p in list_feature_dirs(tmp_path)] == ["010-c", "0002-b", "0001-a"]
    assert find_feature_dir(tmp_path).name == "010-c"  # type: ignore[union-attr]


def test_find_feature_dir_explicit_by_name_number_or_path(tmp_path):
    feature(tmp_path, "0001-a")
    feature(tmp_path, "0002-b")
    assert find_feature_dir(tmp_path, "0001-a") == (tmp_path / "specs" / "0001-a").resolve()
    assert find_feature_dir(tmp_path, "1") == tmp_path / "specs" / "0001-a"
    assert find_feature_dir(tmp_path, "specs/0001-a") == (tmp_path / "specs" / "0001-a").resolve()
    assert find_feature_dir(tmp_path, str(tmp_path / "specs" / "0001-a")) == (tmp_path / "specs" / "0001-a").resolve()
    with pytest.raises(ProjectNotFound) as info:
        find_feature_dir(tmp_path, "0003-c")
    assert "0002-b, 0001-a" in (info.value.hint or "")
    with pytest.raises(ProjectOutsideRoot):
        find_feature_dir(tmp_path, "../..")


def test_find_feature_dir_honors_the_state_feature_key_when_it_exists(tmp_path):
    feature(tmp_path, "0001-a")
    feature(tmp_path, "0002-b")
    StateFile(tmp_path).set(["feature=0001-a"])
    assert find_feature_dir(tmp_path).name == "0001-a"  # type: ignore[union-attr]
    assert find_feature_dir(tmp_path, "0002-b").name == "0002-b"  # type: ignore[union-attr]  # explicit wins
    StateFile(tmp_path).set(["feature=0009-gone"])
    assert find_feature_dir(tmp_path).name == "0002-b"  # type: ignore[union-attr]


def test_find_feature_dir_none_and_missing_project(tmp_path):
    assert find_feature_dir(tmp_path) is None
    with pytest.raises(ProjectNotFound):
        find_feature_dir(tmp_path / "missing")


# ---- artifacts


def test_artifacts_of_a_full_feature(tmp_path):
    d = feature(tmp_path)
    (d / "checklists").mkdir()
    (d / "checklists" / "verification.md").write_text("- [ ] ok\n")
    (d / "checklists" / "implementation.md").write_text("- [ ] ok\n")
    art = collect_artifacts(d)
    assert art.has_spec and art.has_plan and art.has_tasks and art.design_complete and art.has_checklists
    assert [p.name for p in art.checklists] == ["implementation.md", "verification.md"]
    assert art.task_count == 3 and art.parsed_tasks is not None and art.parsed_tasks.done == 1


def test_has_tasks_needs_at_least_one_task(tmp_path):
    art = collect_artifacts(feature(tmp_path, tasks="# Tasks\n\nNothing yet.\n"))
    assert art.tasks is not None and not art.has_tasks and not art.design_complete
    assert collect_artifacts(None).feature_dir is None


# ---- the status view


def test_status_of_the_sample_project(sample_project):
    status = project_status(sample_project)
    data = status.model_dump(mode="json")
    assert set(data) == {"phase", "step", "progress", "health", "nextAction", "blockers", "context"}
    # The original's contract: the phase number is the feature folder's number string, healthy is "ready".
    assert data["phase"] == {
        "number": SAMPLE_FEATURE.split("-")[0],
        "name": "todo-cli",
        "branch": SAMPLE_FEATURE,
        "status": "in_progress",
        "hasUserGate": False,
    }
    assert data["step"] == {"current": "analyze", "index": 1, "status": "not_started"}
    assert data["progress"] == {
        "tasksCompleted": 0,
        "tasksTotal": 20,
        "tasksBlocked": 0,
        "percentage": 0,
        "tasksDeferred": 0,
    }
    assert data["health"] == {"status": "ready", "issues": []}
    assert data["nextAction"] == "run_analyze"
    assert data["blockers"] == []
    assert data["context"] == {
        "featureDir": f"specs/{SAMPLE_FEATURE}",
        "hasSpec": True,
        "hasPlan": True,
        "hasTasks": True,
        "hasChecklists": False,
        "currentBranch": SAMPLE_FEATURE,
    }


def test_status_of_an_empty_folder_says_start_phase(tmp_path):
    status = project_status(tmp_path)
    assert status.next_action == "start_phase"
    assert status.phase.number is None and status.phase.status is None and status.context.feature_dir is None
    assert [i.code for i in status.health.issues] == ["NOT_A_GIT_REPO"]
    assert status.health.status == "warning"


def codes(status) -> list[str]:
    return [i.code for i in status.health.issues]


@pytest.mark.parametrize(
    ("kwargs", "step", "step_status", "action"),
    [
        ({"spec": False, "plan": False, "tasks": None}, "design", "not_started", "run_design"),
        ({"plan": False, "tasks": None}, "design", "in_progress", "run_design"),
        ({"tasks": "## A\n"}, "design", "in_progress", "run_design"),
        ({"tasks": "## A\n- [ ] T001 a\n"}, "analyze", "not_started", "run_analyze"),
        ({}, "implement", "in_progress", "continue_implement"),
        ({"tasks": "## A\n- [x] T001 a\n- [~] T002 later\n"}, "verify", "not_started", "run_verify"),
    ],
)
def test_status_derived_from_artifacts(tmp_path, kwargs, step, step_status, action):
    feature(tmp_path, **kwargs)
    status = project_status(tmp_path)
    assert (status.step.current, status.step.status, status.next_action) == (step, step_status, action)


@pytest.mark.parametrize(
    ("assignments", "plan_text", "action"),
    [
        (["orchestration.step.current=analyze", "orchestration.step.status=complete"], "", "continue_implement"),
        (["orchestration.step.current=verify"], "", "run_verify"),
        (["orchestration.step.current=verify", "orchestration.step.status=complete"], "", "ready_to_merge"),
        (
            ["orchestration.step.current=verify", "orchestration.step.status=complete"],
            "**USER GATE**",
            "awaiting_user_gate",
        ),
        (
            [
                "orchestration.step.current=verify",
                "orchestration.step.status=complete",
                "orchestration.phase.hasUserGate=true",
            ],
            "",
            "awaiting_user_gate",
        ),
        (["orchestration.phase.status=awaiting_user_gate"], "", "awaiting_user_gate"),
        (["orchestration.step.current=merge"], "", "ready_to_merge"),
        (["orchestration.step.current=merge", "orchestration.step.status=complete"], "", "archive_phase"),
        (["orchestration.phase.status=complete"], "", "archive_phase"),
        (["orchestration.phase.status=not_started"], "", "start_phase"),
    ],
)
def test_status_uses_the_recorded_state(tmp_path, assignments, plan_text, action):
    d = feature(tmp_path)
    (d / "plan.md").write_text(f"# Plan\n{plan_text}\n")
    StateFile(tmp_path).set(assignments)
    assert project_status(tmp_path).next_action == action


def test_recorded_phase_and_step_fields_win(tmp_path):
    feature(tmp_path)
    StateFile(tmp_path).set(
        [
            "orchestration.phase.number=0042",
            "orchestration.phase.name=Renamed",
            "orchestration.phase.branch=feat/x",
            "orchestration.step.current=implement",
            "orchestration.step.index=7",
            "orchestration.step.status=blocked",
        ]
    )
    status = project_status(tmp_path)
    assert (status.phase.number, status.phase.name, status.phase.branch) == ("0042", "Renamed", "feat/x")
    assert (status.step.current, status.step.index, status.step.status) == ("implement", 7, "blocked")
    assert status.blockers == ["The implement step is blocked"]


def test_unknown_recorded_step_is_a_warning_not_a_crash(tmp_path):
    feature(tmp_path)
    StateFile(tmp_path).set(["orchestration.step.current=dance", "orchestration.phase.number=abc"])
    status = project_status(tmp_path)
    assert status.step.current == "implement"
    assert codes(status).count("STATE_INVALID") == 2


def test_unreadable_state_file_is_a_health_error(tmp_path):
    feature(tmp_path)
    (tmp_path / ".specflow").mkdir()
    (tmp_path / ".specflow" / "orchestration-state.json").write_text("{oops")
    status = project_status(tmp_path)
    assert status.health.status == "error" and status.next_action == "fix_health"
    assert "NO_STATE" in codes(status)  # the original's code
    assert status.context.has_tasks  # the rest is still derived from the artifacts
    assert any("not valid JSON" in b for b in status.blockers)


def test_tasks_warnings_empty_tasks_blocked_tasks(tmp_path):
    feature(tmp_path, tasks="## A\n- [ ] T001 a\n- [ ] T001 again\n- [b] T002 b [blocked: needs a key]\n")
    status = project_status(tmp_path)
    assert "TASKS_WARNING" in codes(status)
    assert status.progress.tasks_blocked == 1 and status.progress.tasks_total == 2
    assert "T002 is blocked: needs a key" in status.blockers
    empty = tmp_path / "other"
    feature(empty, tasks="no tasks here\n")
    assert "TASKS_EMPTY" in codes(project_status(empty))


def test_state_feature_pointing_nowhere_is_reported(tmp_path):
    feature(tmp_path)
    StateFile(tmp_path).set(["feature=0007-gone"])
    status = project_status(tmp_path)
    assert "STATE_FEATURE_MISSING" in codes(status) and status.context.feature_dir == "specs/0001-demo"


def test_branch_mismatch_and_corrupt_records_are_warnings(sample_project):
    git(sample_project, "checkout", "-q", "main")
    store = OrchestrationStore(sample_project)
    store.path_for("x").parent.mkdir(parents=True)
    store.path_for("x").write_text("{")
    assert store.list() == []
    status = project_status(sample_project)
    assert set(codes(status)) == {"BRANCH_MISMATCH", "CORRUPT_RECORDS"}
    assert status.health.status == "warning" and status.next_action == "run_analyze"


def test_progress_percentage_rounds(tmp_path):
    feature(tmp_path, tasks="## A\n- [x] T001 a\n- [ ] T002 b\n- [ ] T003 c\n")
    assert project_status(tmp_path).progress.percentage == 33


def test_status_errors_for_a_missing_project_or_explicit_feature(tmp_path):
    with pytest.raises(ProjectNotFound):
        project_status(tmp_path / "missing")
    with pytest.raises(ProjectNotFound):
        project_status(tmp_path, "0001-nope")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tasks=st.text(max_size=300),
    state=st.one_of(
        st.text(max_size=50),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: (
                st.lists(c, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "orchestration",
                            "phase",
                            "step",
                            "current",
                            "status",
                            "number",
                            "index",
                            "feature",
                            "hasUserGate",
                            "name",
                            "branch",
                        ]
                    ),
                    c,
                    max_size=4,
                )
            ),
            max_leaves=12,
        ).map(json.dumps),
    ),
)
def test_status_never_raises_on_a_weird_project(tasks, state):
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        d = project / "specs" / "0001-x"
        d.mkdir(parents=True)
        (d / "tasks.md").write_bytes(tasks.encode("utf-8", errors="surrogatepass"))
        (project / ".specflow").mkdir()
        (project / ".specflow" / "orchestration-state.json").write_text(state, errors="surrogatepass")
        status = project_status(project)
        assert 0 <= status.progress.percentage <= 100
        json.dumps(status.model_dump(mode="json"))
