"""The original SpecFlow CLI's JSON contract (issue 16 item 4), exact shapes, through the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = Path(sys.executable).parent / "specflow-nb"
ROOT = Path(__file__).resolve().parents[1]

TASKS = """\
# Tasks

## Phase 1: Core

- [x] T998 Done before
- [ ] T999 [P] Next up

## Phase 2: Converge

- [ ] T1000 [P1] [US2] Four digits (depends on T999)
- [ ] T1001 More
- [~] T1002 Deferred
"""


def cli(project: Path, *argv: str, check: int | None = 0) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [str(ENTRY), *argv], cwd=project, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc.returncode, json.loads(proc.stdout) if "--json" in argv else {}, proc.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    feature = tmp_path / "specs" / "001-albums"
    feature.mkdir(parents=True)
    (feature / "spec.md").write_text("# Spec\n")
    (feature / "plan.md").write_text("# Plan\n")
    (feature / "tasks.md").write_text(TASKS)
    return tmp_path


def tasks_text(project: Path) -> str:
    return (project / "specs" / "001-albums" / "tasks.md").read_text()


# ---- mark


def test_mark_json_exact_shape(project):
    _, data, _ = cli(project, "mark", "T999", "--json")
    assert data == {
        "status": "success",
        "command": "mark",
        "marked": ["T999"],
        "newStatus": "complete",
        "progress": {
            "completed": 2,
            "total": 5,
            "percentage": 40,
            "tasksCompleted": 2,
            "tasksTotal": 5,
            "tasksBlocked": 0,
        },
        "next": {"id": "T1000", "description": "[P1] Four digits (depends on T999)", "dependenciesMet": True},
        "stepComplete": False,
        "itemType": "task",
        "state": "done",
        "changed": ["T999"],
        "unchanged": [],
        "missing": [],
    }


def test_mark_range_across_t999_completes_the_step(project):
    _, data, _ = cli(project, "mark", "T998..T1001", "--json")
    assert data["marked"] == ["T999", "T1000", "T1001", "T998"]  # changed first, then already done
    assert data["changed"] == ["T999", "T1000", "T1001"] and data["unchanged"] == ["T998"]
    # The deferred T1002 does not hold the step back (the one all-done rule).
    assert data["stepComplete"] is True and data["next"] is None
    assert data["nextAction"] == "run_verify" and data["message"] == "All tasks complete! Ready for verification."
    assert "- [x] T1000 [P1] [US2]" in tasks_text(project) and "- [~] T1002" in tasks_text(project)


def test_mark_incomplete_and_blocked(project):
    cli(project, "mark", "T999")
    _, data, _ = cli(project, "mark", "T999", "--incomplete", "--json")
    assert (data["newStatus"], data["changed"], data["state"]) == ("incomplete", ["T999"], "pending")
    _, data, _ = cli(project, "mark", "T1001", "--blocked", "needs a key", "--json")
    assert (data["newStatus"], data["progress"]["tasksBlocked"]) == ("blocked", 1)
    assert "- [b] T1001 More [blocked: needs a key]" in tasks_text(project)


def test_mark_unknown_id_is_an_error_in_the_same_shape(project):
    _, data, err = cli(project, "mark", "T999", "T5000", "--json", check=1)
    assert data["status"] == "error" and data["command"] == "mark" and data["missing"] == ["T5000"]
    assert data["error"]["message"] == "Unknown task id(s): T5000" and data["error"]["hint"]
    assert err.startswith("error: Unknown task id(s): T5000")
    assert data["changed"] == ["T999"]  # the known ones are marked (see the README's differences)


def test_mark_checklist_items(project):
    checklists = project / "specs" / "001-albums" / "checklists"
    checklists.mkdir()
    (checklists / "verification.md").write_text("# Verification\n\n- [ ] V-001 Tests pass\n- [ ] V-002 Docs\n")
    _, data, _ = cli(project, "mark", "v-001", "--json")
    assert data == {
        "status": "success",
        "command": "mark",
        "marked": ["V-001"],
        "newStatus": "complete",
        "progress": {"completed": 1, "total": 2, "percentage": 50},
        "next": {"id": "V-002", "description": "Docs"},
        "stepComplete": False,
        "itemType": "checklist",
        "changed": ["V-001"],
        "unchanged": [],
        "missing": [],
    }
    _, data, _ = cli(project, "mark", "V-002", "--json")
    assert data["stepComplete"] is True and data["nextAction"] == "ready_to_close"
    assert (
        checklists / "verification.md"
    ).read_text() == "# Verification\n\n- [x] V-001 Tests pass\n- [x] V-002 Docs\n"
    _, _, err = cli(project, "mark", "V-001", "T999", check=1)
    assert "Cannot mix task and checklist IDs" in err


# ---- next


def test_next_json_exact_shape(project):
    _, data, _ = cli(project, "next", "--json")
    task = data.pop("task")
    assert data == {
        "action": "task",
        "queue": ["T1000", "T1001"],
        "reason": None,
        "progress": {"tasksCompleted": 1, "tasksTotal": 5, "tasksBlocked": 0, "tasksPending": 3},
    }
    assert {k: task[k] for k in ("id", "description", "section", "dependencies")} == {
        "id": "T999",
        "description": "Next up",
        "section": "Phase 1: Core",
        "dependencies": [],
    }
    cli(project, "mark", "T999")
    _, data, _ = cli(project, "next", "--json")
    assert data["task"]["id"] == "T1000" and data["task"]["dependencies"] == ["T999"] and data["task"]["story"] == "US2"


def test_next_json_at_the_end(project):
    cli(project, "mark", "T999..T1001")
    _, data, _ = cli(project, "next", "--json")
    assert {k: data[k] for k in ("action", "task", "queue", "reason")} == {
        "action": "none",
        "task": None,
        "queue": [],
        "reason": "all_tasks_complete",
    }
    cli(project, "mark", "T1001", "--blocked", "waiting")
    assert cli(project, "next", "--json")[1]["reason"] == "all_tasks_blocked"


def test_next_json_without_a_feature(tmp_path):
    _, data, _ = cli(tmp_path, "next", "--json")
    assert {k: data[k] for k in ("action", "task", "queue", "reason")} == {
        "action": "none",
        "task": None,
        "queue": [],
        "reason": "no_feature",
    }


# ---- state set


def test_state_set_json_exact_shape(project):
    _, data, _ = cli(
        project, "state", "set", "orchestration.step.current=implement", "memory.reviews.0082=true", "--json"
    )
    assert data == {
        "status": "success",
        "command": "state set",
        "updates": [
            {"key": "orchestration.step.current", "value": "implement", "previousValue": None},
            {"key": "memory.reviews.0082", "value": True, "previousValue": None},
        ],
        "state": {"orchestration": {"step": {"current": "implement"}}, "memory": {"reviews": {"0082": True}}},
    }
    _, data, _ = cli(
        project, "state", "set", "orchestration.step.current=verify", "orchestration.step.index=3", "--json"
    )
    assert data["updates"] == [
        {"key": "orchestration.step.current", "value": "verify", "previousValue": "implement"},
        {"key": "orchestration.step.index", "value": 3, "previousValue": None},
    ]


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("novalue", 'Invalid format for "novalue". Expected key=value'),
        ("=1", "Key cannot be empty"),
        ("a..b=1", "Invalid key 'a..b'"),
        ("my-key=1", "Invalid key 'my-key'"),
        ("1a=1", "Invalid key '1a'"),
        ("k" * 257 + "=1", "Key too long (max 256 characters)"),
    ],
)
def test_state_set_errors_in_the_same_shape_and_nothing_written(project, pair, message):
    cli(project, "state", "set", "n=1")
    before = (project / ".specflow" / "orchestration-state.json").read_text()
    _, data, err = cli(project, "state", "set", "ok=2", pair, "--json", check=1)
    assert set(data) == {"status", "command", "updates", "error"}
    assert (data["status"], data["command"], data["updates"]) == ("error", "state set", [])
    assert data["error"]["message"].startswith(message) and data["error"]["hint"]
    assert err.startswith("error: ")
    assert (project / ".specflow" / "orchestration-state.json").read_text() == before


def test_state_keys_up_to_256_characters_are_accepted(project):
    key = "k" * 256
    _, data, _ = cli(project, "state", "set", f"{key}=1", "--json")
    assert data["updates"] == [{"key": key, "value": 1, "previousValue": None}]


# ---- status


def test_status_json_phase_number_string_and_ready(project):
    subprocess.run(["git", "init", "-q", "-b", "001-albums"], cwd=project, check=True)
    _, data, _ = cli(project, "status", "--json")
    assert data["phase"]["number"] == "001" and data["health"] == {"status": "ready", "issues": []}
    assert data["progress"] == {
        "tasksCompleted": 1,
        "tasksTotal": 5,
        "tasksBlocked": 0,
        "percentage": 20,
        "tasksDeferred": 1,
    }
    assert set(data) == {"phase", "step", "progress", "health", "nextAction", "blockers", "context"}
    cli(project, "mark", "T999..T1001")
    _, data, _ = cli(project, "status", "--json")
    # The one all-done rule: the deferred task does not hold the phase back, status agrees with the engine.
    assert data["nextAction"] == "run_verify" and data["step"]["current"] == "verify"


def test_status_json_no_project_in_the_original_shape(tmp_path):
    _, data, _ = cli(tmp_path, "--project", str(tmp_path / "missing"), "status", "--json")
    assert data == {
        "phase": {"number": None, "name": None, "branch": None, "status": None, "hasUserGate": False},
        "step": {"current": None, "index": 0, "status": None},
        "progress": {"tasksCompleted": 0, "tasksTotal": 0, "tasksBlocked": 0, "percentage": 0, "tasksDeferred": 0},
        "health": {
            "status": "error",
            "issues": [
                {
                    "code": "NO_PROJECT",
                    "severity": "error",
                    "message": f"Project folder not found: {tmp_path / 'missing'}",
                }
            ],
        },
        "nextAction": "fix_health",
        "blockers": [f"Project folder not found: {tmp_path / 'missing'}"],
        "context": {
            "featureDir": None,
            "hasSpec": False,
            "hasPlan": False,
            "hasTasks": False,
            "hasChecklists": False,
            "currentBranch": None,
        },
    }


def test_status_json_no_state(project):
    (project / ".specflow").mkdir()
    (project / ".specflow" / "orchestration-state.json").write_text("{broken")
    _, data, _ = cli(project, "status", "--json")
    assert data["health"]["status"] == "error" and data["nextAction"] == "fix_health"
    assert "NO_STATE" in [i["code"] for i in data["health"]["issues"]]


# ---- the `specflow` alias is opt-in only


def test_no_specflow_console_script_is_installed():
    from importlib.metadata import entry_points

    scripts = {e.name for e in entry_points(group="console_scripts") if e.value.startswith("specflow_nb")}
    assert "specflow-nb" in scripts and "specflow" not in scripts
    assert "\nspecflow =" not in (ROOT / "pyproject.toml").read_text()
    assert not (Path(sys.executable).parent / "specflow").exists()


# ---- prompt sources: the user's commands (CLAUDE_CONFIG_DIR) are picked up and named


def test_plan_names_each_steps_prompt_source_with_user_commands(project, tmp_path):
    config = tmp_path / "claude-config"
    (config / "commands").mkdir(parents=True)
    (config / "commands" / "flow.implement.md").write_text("USER IMPLEMENT $ARGUMENTS\n")
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "flow.verify.md").write_text("PROJECT VERIFY\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "nohome"), "CLAUDE_CONFIG_DIR": str(config)}
    proc = subprocess.run([str(ENTRY), "plan", "--json"], cwd=project, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    sources = {s["step"]: s for s in json.loads(proc.stdout)["promptSources"]}
    assert sources["implement"] == {
        "step": "implement",
        "source": "user",
        "skill": "flow.implement",
        "files": [str(config / "commands" / "flow.implement.md")],
    }
    assert (sources["verify"]["source"], sources["verify"]["skill"]) == ("project", "flow.verify")
    assert (sources["design"]["source"], sources["design"]["skill"]) == ("builtin", "builtin:design")
    human = subprocess.run([str(ENTRY), "plan"], cwd=project, capture_output=True, text=True, env=env).stdout
    assert f"implement: /flow.implement (user: {config / 'commands' / 'flow.implement.md'})" in human
    assert "verify: /flow.verify (project: .claude/commands/flow.verify.md)" in human
    # Without CLAUDE_CONFIG_DIR the user's folder is ~/.claude/commands.
    home = tmp_path / "home"
    (home / ".claude" / "commands").mkdir(parents=True)
    (home / ".claude" / "commands" / "flow.merge.md").write_text("HOME MERGE\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    proc = subprocess.run([str(ENTRY), "plan", "--json"], cwd=project, capture_output=True, text=True, env=env)
    merge = next(s for s in json.loads(proc.stdout)["promptSources"] if s["step"] == "merge")
    assert (merge["source"], merge["skill"]) == ("user", "flow.merge")
