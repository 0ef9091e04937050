"""The DEMO agent on its own: tasks.md edits, scenario scripts, structured output, sessions, the CLI surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from specflow_nb.demo.demo_agent import check_tasks, fill, structured_output, task_ids_in

DEMO = [sys.executable, "-m", "specflow_nb.demo.demo_agent"]


def demo(cwd: Path, prompt: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEMO, "-p", "--output-format", "stream-json", "--verbose", *args],
        input=prompt,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def result_of(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout.splitlines()[-1])


def test_check_tasks_changes_only_checkbox_characters(tmp_path: Path) -> None:
    original = (
        "# Tasks\r\n\r\n## Phase 1\r\n- [ ] T001 First `a.py`\r\n* [ ] T002 [P] Second\r\n"
        "```\r\n- [ ] T003 inside a fence\r\n```\r\n- [x] T004 already done\r\n- [ ] T003 real one\r\n"
    )
    path = tmp_path / "tasks.md"
    path.write_bytes(original.encode())
    assert check_tasks(path, ["T002", "T003", "T004", "T999"]) == ["T002", "T003"]
    after = path.read_bytes().decode()
    assert after == original.replace("* [ ] T002", "* [x] T002").replace("- [ ] T003 real", "- [x] T003 real")


def test_batch_line_wins_over_other_task_ids() -> None:
    prompt = 'See T001 for context.\nExecute only the "Phase 2: Core" section (T008, T009a). Do NOT work on T010.'
    assert task_ids_in(prompt) == ["T008", "T009a"]
    heal = 'Complete only these remaining tasks of the "Phase 2: Core" section: T003, T004. Do NOT work on T005.'
    assert task_ids_in(heal) == ["T003", "T004"]
    # ids shown as examples in design/analyze instructions are not work orders
    assert task_ids_in("Write task lines like `- [ ] T001 [P] [US1] Description` and T002") == []


class Question(BaseModel):
    id: str
    question: str


class StepReport(BaseModel):
    status: Literal["completed", "failed", "needs_input"]
    tasks_completed: list[str]
    needs_input: bool = False
    questions: list[Question] = []
    confidence: float | None = None


def test_structured_output_fills_a_pydantic_schema() -> None:
    schema = StepReport.model_json_schema()
    done = {"checked": ["T001"], "remaining": ["T002"], "taskIds": ["T001", "T002"], "wrote": []}
    ok = StepReport.model_validate(structured_output(schema, done, "success", ""))
    assert ok.status == "completed" and ok.tasks_completed == ["T001"] and not ok.needs_input
    asking = StepReport.model_validate(structured_output(schema, done, "needs_input", ""))
    assert asking.needs_input and asking.status == "needs_input"
    assert asking.questions[0].id == "q1" and "DEMO" in asking.questions[0].question
    assert fill({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}, {}) == {"n": 0}


def test_verify_question_scenario_asks_in_verify_only_and_uses_the_answer(tmp_path: Path) -> None:
    from specflow_nb.agent.prompts import AnalyzeOutput, VerifyOutput, build_step_prompt, json_schema

    schema = json.dumps(json_schema(VerifyOutput))
    env = {"SPECFLOW_DEMO_SCENARIO": "verify_question"}
    prompt = build_step_prompt(tmp_path, "verify", additional_context="", feature_dir=None).text
    asks = VerifyOutput.model_validate(
        result_of(demo(tmp_path, prompt, "--json-schema", schema, env=env))["structured_output"]
    )
    assert asks.status == "needs_input" and not asks.passed and "config file" in asks.questions[0].question
    for answer, passed in (("yes", True), ("no, it must fail", False)):
        answered = build_step_prompt(
            tmp_path, "verify", additional_context="", feature_dir=None, answers={"q1": answer}
        ).text
        out = result_of(demo(tmp_path, answered, "--json-schema", schema, env=env))["structured_output"]
        verdict = VerifyOutput.model_validate(out)
        assert verdict.status == "completed" and verdict.passed is passed and f"q1 = {answer}" in verdict.summary
        assert bool(verdict.failures) is not passed
    # every other run of the scenario succeeds without asking
    analyze = json.dumps(json_schema(AnalyzeOutput))
    other = build_step_prompt(tmp_path, "analyze", additional_context="", feature_dir=None).text
    assert result_of(demo(tmp_path, other, "--json-schema", analyze, env=env))["structured_output"]["status"] == (
        "completed"
    )


def test_script_rules_pick_scenarios_per_run_and_the_log_counts_runs(sample_project: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rules": [{"match": "Phase 2", "run": 1, "scenario": "partial", "cost": 0.25}]}))
    log = tmp_path / "runs.jsonl"
    env = {"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_LOG": str(log)}
    prompt = 'Execute only the "Phase 2" section (T004, T005). Do NOT work on tasks from other sections.'
    first = demo(sample_project, prompt, env=env)
    second = demo(sample_project, prompt, env=env)
    assert result_of(first)["total_cost_usd"] == 0.25 and "left T005" in result_of(first)["result"]
    assert result_of(second)["total_cost_usd"] == 0.01 and "checked T005" in result_of(second)["result"]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["scenario"] for r in runs] == ["partial", "success"]
    assert runs[0]["taskIds"] == ["T004", "T005"]


def test_design_prompt_writes_missing_artifacts(tmp_path: Path) -> None:
    proc = demo(tmp_path, "Design the feature: write spec.md, plan.md and tasks.md.")
    assert proc.returncode == 0, proc.stderr
    feature = tmp_path / "specs" / "0001-demo-feature"
    assert {p.name for p in feature.iterdir()} == {"spec.md", "plan.md", "tasks.md"}
    assert "- [ ] T001" in (feature / "tasks.md").read_text()


def test_sessions_resume_fork_and_unknown(tmp_path: Path) -> None:
    first = result_of(demo(tmp_path, "hello"))
    resumed = result_of(demo(tmp_path, "again", "--resume", first["session_id"]))
    forked = result_of(demo(tmp_path, "again", "--resume", first["session_id"], "--fork-session"))
    assert resumed["session_id"] == first["session_id"] != forked["session_id"]
    unknown = demo(tmp_path, "x", "--resume", "99999999-2222-4333-8444-555555555555")
    assert unknown.returncode == 1
    assert unknown.stderr == "No conversation found with session ID: 99999999-2222-4333-8444-555555555555\n"
    assert result_of(unknown)["subtype"] == "error_during_execution"


def test_protocol_details_match_the_real_cli(tmp_path: Path) -> None:
    no_verbose = subprocess.run(
        [*DEMO, "-p", "--output-format", "stream-json"], input="x", cwd=tmp_path, capture_output=True, text=True
    )
    assert no_verbose.returncode == 1 and "requires --verbose" in no_verbose.stderr
    as_json = subprocess.run(
        [*DEMO, "-p", "--output-format", "json", "--max-budget-usd", "0.001"],
        input="x",
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    body = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and body["subtype"] == "error_max_budget_usd" and body["is_error"] is True
    helptext = subprocess.run([*DEMO, "--help"], capture_output=True, text=True).stdout
    assert "DEMO agent" in helptext
