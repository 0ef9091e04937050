"""The specflow-nb CLI: every command, human and --json, each error path and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from specflow_nb.cli import REGISTRARS, build_parser, main
from specflow_nb.demo import SAMPLE_FEATURE

ENTRY = Path(sys.executable).parent / "specflow-nb"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tasks_md(project: Path) -> Path:
    return project / "specs" / SAMPLE_FEATURE / "tasks.md"


def assert_user_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0]
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in err


# ---- parser, help, usage errors


def test_help_lists_every_command_and_exits_0(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("status", "plan", "state", "mark", "next"):
        assert name in out


def test_no_command_prints_help_and_exits_2(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage: specflow-nb" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["dance"],
        ["plan", "--batch-size", "0"],
        ["plan", "--batch-size", "51"],
        ["plan", "--batch-size", "x"],
        ["state"],
        ["state", "set"],
        ["mark"],
        ["mark", "T001", "--undo", "--blocked", "why"],
        ["status", "--bogus"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("specflow-nb ")


def test_build_parser_is_extensible():
    def add_hello(sub):
        p = sub.add_parser("hello", help="say hello")
        p.set_defaults(func=lambda args: 7)

    REGISTRARS.append(add_hello)
    try:
        assert main(["hello"]) == 7
        assert "hello" in build_parser().format_help()
    finally:
        REGISTRARS.remove(add_hello)


# ---- status


def test_status_human(capsys, sample_project):
    code, out, err = run(capsys, "--project", str(sample_project), "status")
    assert code == 0 and err == ""
    assert "Phase 0001: todo-cli" in out and "Step: analyze (2/5)" in out
    assert "Tasks: 0/20 (0%)" in out and "Health: ready" in out and "(run_analyze)" in out


def test_status_json_and_options_after_the_command(capsys, sample_project):
    code, out, _ = run(capsys, "status", "--json", "--project", str(sample_project))
    assert code == 0
    data = json.loads(out)
    assert data["nextAction"] == "run_analyze" and data["progress"]["tasksTotal"] == 20
    assert data["phase"]["hasUserGate"] is False and data["context"]["featureDir"] == f"specs/{SAMPLE_FEATURE}"


def test_status_of_an_empty_folder(capsys, tmp_path):
    code, out, _ = run(capsys, "--project", str(tmp_path), "status")
    assert code == 0 and "No active phase" in out and "NOT_A_GIT_REPO" in out and "(start_phase)" in out


@pytest.mark.parametrize("command", ["status", "plan", "next", "mark T001", "state get", "state set a=1"])
def test_missing_project_is_one_line_error_exit_1(capsys, tmp_path, command):
    missing = tmp_path / "nope"
    code, out, err = run(capsys, "--project", str(missing), *command.split())
    assert_user_error(code, out, err, f"Project folder not found: {missing}")
    assert not missing.exists()  # never created by a command that writes


def test_missing_feature_is_an_error(capsys, sample_project):
    code, out, err = run(capsys, "--project", str(sample_project), "--feature", "0009-x", "status")
    assert_user_error(code, out, err, "Feature folder not found: 0009-x")
    assert SAMPLE_FEATURE in err


# ---- plan


def test_plan_human(capsys, sample_project):
    code, out, _ = run(capsys, "--project", str(sample_project), "plan")
    assert code == 0
    assert "4 batches from tasks.md sections (20 tasks)" in out
    assert "Phase 1: Setup" in out and "T001 T002 T003" in out


def test_plan_json(capsys, sample_project):
    code, out, _ = run(capsys, "--project", str(sample_project), "plan", "--json")
    data = json.loads(out)
    assert code == 0 and data["totalIncomplete"] == 20 and data["usedFallback"] is False
    assert data["batches"][0]["section"] == "Phase 1: Setup"
    assert data["batches"][0]["taskIds"] == ["T001", "T002", "T003"]


def test_plan_fallback_with_batch_size_and_warning(capsys, tmp_path):
    d = tmp_path / "specs" / "0001-x"
    d.mkdir(parents=True)
    (d / "tasks.md").write_text("".join(f"- [ ] T00{i} task {i}\n" for i in range(1, 6)))
    code, out, _ = run(capsys, "--project", str(tmp_path), "plan", "--batch-size", "2")
    assert code == 0 and "3 batches (5 tasks, fallback sizing)" in out and "Batch 1" in out
    assert "warning:" in out
    code, out, _ = run(capsys, "--project", str(tmp_path), "plan", "--json", "--batch-size", "2")
    assert [b["taskIds"] for b in json.loads(out)["batches"]] == [["T001", "T002"], ["T003", "T004"], ["T005"]]


def test_plan_without_tasks_md_or_feature_folder(capsys, tmp_path):
    code, out, err = run(capsys, "--project", str(tmp_path), "plan")
    assert_user_error(code, out, err, "No feature folder under")
    (tmp_path / "specs" / "0001-x").mkdir(parents=True)
    code, out, err = run(capsys, "--project", str(tmp_path), "plan", "--json")
    assert_user_error(code, out, err, "No tasks.md in")
    assert out == ""


# ---- state


def test_state_set_and_get(capsys, tmp_path):
    code, out, _ = run(capsys, "--project", str(tmp_path), "state", "set", "orchestration.step.current=verify", "n=3")
    assert code == 0 and "Set orchestration.step.current = verify" in out and "Set n = 3" in out
    code, out, _ = run(capsys, "--project", str(tmp_path), "state", "set", "flag=true", "--json")
    assert json.loads(out)["state"] == {"orchestration": {"step": {"current": "verify"}}, "n": 3, "flag": True}
    assert run(capsys, "--project", str(tmp_path), "state", "get", "n")[1] == "3\n"
    assert run(capsys, "--project", str(tmp_path), "state", "get", "flag")[1] == "true\n"
    assert run(capsys, "--project", str(tmp_path), "state", "get", "orchestration.step.current")[1] == "verify\n"
    assert json.loads(run(capsys, "--project", str(tmp_path), "state", "get", "n", "--json")[1]) == 3
    assert json.loads(run(capsys, "--project", str(tmp_path), "state", "get")[1])["n"] == 3
    # status reads what state set wrote
    assert json.loads(run(capsys, "--project", str(tmp_path), "status", "--json")[1])["step"]["current"] == "verify"


@pytest.mark.parametrize("bad", ["a..b=1", "=1", "novalue", "n.child=1"])
def test_state_set_bad_key_is_an_error_and_writes_nothing(capsys, tmp_path, bad):
    assert run(capsys, "--project", str(tmp_path), "state", "set", "n=1")[0] == 0
    state = tmp_path / ".specflow" / "orchestration-state.json"
    before = state.read_text()
    code, _, err = run(capsys, "--project", str(tmp_path), "state", "set", "ok=2", bad)
    assert code == 1 and err.startswith("error: ") and "hint: " in err and "Traceback" not in err
    assert state.read_text() == before


def test_state_get_missing_key(capsys, tmp_path):
    code, out, err = run(capsys, "--project", str(tmp_path), "state", "get", "a.b")
    assert_user_error(code, out, err, "No state key 'a'")


# ---- mark


def test_mark_done_undo_blocked(capsys, sample_project):
    p = ["--project", str(sample_project)]
    code, out, _ = run(capsys, *p, "mark", "T001", "t002")
    assert code == 0 and "Marked T001, T002 done" in out and "2/20 tasks done (10%)" in out
    assert "- [x] T001 " in tasks_md(sample_project).read_text()
    code, out, _ = run(capsys, *p, "mark", "T001")
    assert code == 0 and "Already done: T001" in out
    code, out, _ = run(capsys, *p, "mark", "T002", "--undo")
    assert code == 0 and "Marked T002 not done" in out and "1/20" in out
    code, out, _ = run(capsys, *p, "mark", "T003", "--blocked", "needs a key")
    assert code == 0 and "Marked T003 blocked" in out and "1 blocked" in out
    assert "- [b] T003 [P] Add `tests/conftest.py` with a temp-folder fixture [blocked: needs a key]" in (
        tasks_md(sample_project).read_text()
    )


def test_mark_json(capsys, sample_project):
    code, out, _ = run(capsys, "--project", str(sample_project), "mark", "T004", "--json")
    data = json.loads(out)
    assert code == 0 and data["changed"] == ["T004"] and data["missing"] == []
    assert data["progress"] == {
        "completed": 1,
        "total": 20,
        "percentage": 5,
        "tasksCompleted": 1,
        "tasksTotal": 20,
        "tasksBlocked": 0,
    }


def test_mark_unknown_ids_reports_them_and_exits_1_but_marks_the_known_ones(capsys, sample_project):
    code, out, err = run(capsys, "--project", str(sample_project), "mark", "T001", "T999", "bogus")
    assert_user_error(code, out, err, "Unknown task id(s): bogus, T999")
    assert "Marked T001 done" in out
    code, out, err = run(capsys, "--project", str(sample_project), "mark", "T998", "--json")
    assert code == 1 and json.loads(out)["missing"] == ["T998"] and err.startswith("error: ")


def test_mark_without_tasks_md(capsys, tmp_path):
    (tmp_path / "specs" / "0001-x").mkdir(parents=True)
    code, out, err = run(capsys, "--project", str(tmp_path), "mark", "T001")
    assert_user_error(code, out, err, "No tasks.md in")


# ---- next


def test_next_human_and_json(capsys, sample_project):
    p = ["--project", str(sample_project)]
    code, out, _ = run(capsys, *p, "next")
    assert code == 0 and out.startswith("T001 Create package layout") and "Section: Phase 1: Setup" in out
    run(capsys, *p, "mark", "T001", "T002", "T003")
    code, out, _ = run(capsys, *p, "next", "--json")
    data = json.loads(out)
    assert code == 0 and data["task"]["id"] == "T004" and data["task"]["section"].startswith("Phase 2")
    assert data["progress"]["tasksPending"] == 17 and data["reason"] is None


def test_next_when_nothing_is_left(capsys, tmp_path):
    d = tmp_path / "specs" / "0001-x"
    d.mkdir(parents=True)
    (d / "tasks.md").write_text("## A\n- [x] T001 a\n- [b] T002 b\n")
    code, out, _ = run(capsys, "--project", str(tmp_path), "next", "--json")
    data = json.loads(out)
    assert code == 0 and data["task"] is None and data["reason"] == "all_tasks_blocked"
    (d / "tasks.md").write_text("## A\n- [x] T001 a\n")
    code, out, _ = run(capsys, "--project", str(tmp_path), "next")
    assert code == 0 and "No task to start: all tasks are done" in out


# ---- the real entry points


def test_console_script_status_json(sample_project):
    proc = subprocess.run(
        [str(ENTRY), "status", "--json"], cwd=sample_project, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["phase"]["name"] == "todo-cli"


def test_python_dash_m_error_path_has_no_traceback(sample_project):
    proc = subprocess.run(
        [sys.executable, "-m", "specflow_nb", "--project", str(sample_project), "mark", "T999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: Unknown task id(s): T999") and "Traceback" not in proc.stderr


def test_python_dash_m_usage_error_exits_2_and_help_exits_0(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "specflow_nb", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    ok = subprocess.run([str(ENTRY), "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "status" in ok.stdout


def test_the_cli_never_imports_jupyter(sample_project):
    code = (
        "import sys; from specflow_nb.cli import main; "
        f"main(['--project', {str(sample_project)!r}, 'status', '--json']); "
        "bad = [m for m in ('jupyter_server', 'tornado', 'ipywidgets', 'ipykernel') if m in sys.modules]; "
        "sys.stderr.write(repr(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "[]"
