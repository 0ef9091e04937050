"""Step prompts: project commands vs built-in prompts, $ARGUMENTS, the frame, and the structured-output schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from specflow_nb.agent import prompts
from specflow_nb.agent.prompts import (
    AnalyzeOutput,
    BatchOutput,
    DesignOutput,
    HealOutput,
    MergeOutput,
    Question,
    VerifyOutput,
    batch_sentence,
    build_batch_prompt,
    build_heal_prompt,
    build_step_prompt,
    questions_of,
)
from specflow_nb.healing import FailureContext, TranscriptMessage

CONTEXT = "Use tabs, never spaces. Context-marker-7f3a."
STEPS = ("design", "analyze", "verify", "merge")


@pytest.fixture(autouse=True)
def user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user config folder: the developer's own ~/.claude/commands never leaks into a test."""
    folder = tmp_path_factory.mktemp("claude-config")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "specs" / "0001-x").mkdir(parents=True)
    return tmp_path


def feature(project: Path) -> Path:
    return project / "specs" / "0001-x"


def write_command(project: Path, name: str, text: str) -> Path:
    path = project / ".claude" / "commands" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def heal_context(**overrides: object) -> FailureContext:
    fields: dict[str, object] = {
        "batch_index": 1,
        "section": "Phase 2: Core",
        "error_message": "pytest failed: 2 errors",
        "failure_kind": "process_failed",
        "exit_code": 1,
        "stderr_tail": "Traceback: ImportError $ARGUMENTS",
        "transcript": [TranscriptMessage(role="assistant", text="[tool Bash] pytest -q")],
        "completed_task_ids": ["T004"],
        "remaining_task_ids": ["T005", "T006"],
        "failed_run_id": "run-1",
        "session_id": "sess-1",
    }
    fields.update(overrides)
    return FailureContext.model_validate(fields)


# ---------------------------------------------------------------------------------------------------- built-in


@pytest.mark.parametrize("step", STEPS)
def test_builtin_prompt_for_each_step(project: Path, step: str) -> None:
    p = build_step_prompt(project, step, additional_context="", feature_dir=feature(project))  # type: ignore[arg-type]
    assert p.source == "builtin" and p.command_file is None and p.step == step
    assert p.output_model is prompts.OUTPUT_MODELS[step]
    assert "specs/0001-x" in p.text
    assert "$" not in p.text.replace("$ARGUMENTS", "")  # every placeholder was filled
    assert "$ARGUMENTS" not in p.text
    assert "No human is watching" in p.text
    assert "## When you finish" in p.text
    assert "Additional context" not in p.text  # empty context adds no heading


def test_builtin_prompt_files_ship_as_package_data() -> None:
    for step in ("design", "analyze", "implement", "verify", "merge", "heal"):
        assert prompts.builtin_prompt(step).startswith("# ")  # type: ignore[arg-type]


def test_build_step_prompt_refuses_implement(project: Path) -> None:
    with pytest.raises(ValueError, match="implement"):
        build_step_prompt(project, "implement", additional_context="", feature_dir=None)  # type: ignore[arg-type]


def test_verify_prompt_names_the_verify_command(project: Path) -> None:
    p = build_step_prompt(
        project, "verify", additional_context="", feature_dir=feature(project), verify_command="pytest -q"
    )
    assert "`pytest -q`" in p.text
    d = build_step_prompt(
        project, "design", additional_context="", feature_dir=feature(project), verify_command="pytest -q"
    )
    assert "pytest -q" not in d.text


# ---------------------------------------------------------------------------------------------------- project commands


@pytest.mark.parametrize("step", STEPS)
def test_specflow_command_overrides_builtin(project: Path, step: str) -> None:
    path = write_command(
        project,
        f"flow.{step}.md",
        f"---\ndescription: our {step}\nallowed-tools: Bash(git:*)\n---\n\nOUR-{step.upper()} with $ARGUMENTS here.\n",
    )
    p = build_step_prompt(project, step, additional_context=CONTEXT, feature_dir=feature(project))  # type: ignore[arg-type]
    assert p.source == "project" and p.command_file == path
    assert f"OUR-{step.upper()} with Feature folder: specs/0001-x here." in p.text
    assert "description:" not in p.text and "allowed-tools" not in p.text and "---" not in p.text
    assert CONTEXT in p.text


def test_speckit_commands_map_to_steps(project: Path) -> None:
    write_command(project, "speckit.analyze.md", "SPECKIT-ANALYZE\n```text\n$ARGUMENTS\n```\n")
    write_command(project, "speckit.implement.md", "---\ndescription: x\n---\nSPECKIT-IMPLEMENT\n$ARGUMENTS\n")
    write_command(project, "speckit.checklist.md", "SPECKIT-CHECKLIST $ARGUMENTS")
    a = build_step_prompt(project, "analyze", additional_context="", feature_dir=feature(project))
    assert a.source == "project" and "SPECKIT-ANALYZE" in a.text
    b = build_batch_prompt(
        project, section="Setup", task_ids=["T001"], additional_context="", feature_dir=feature(project)
    )
    assert b.source == "project" and "SPECKIT-IMPLEMENT" in b.text and "description: x" not in b.text
    # spec-kit has no verify or merge command: built-in prompts
    assert build_step_prompt(project, "verify", additional_context="", feature_dir=None).source == "builtin"
    assert build_step_prompt(project, "merge", additional_context="", feature_dir=None).source == "builtin"


def test_speckit_design_needs_plan_and_tasks(project: Path) -> None:
    plan = write_command(project, "speckit.plan.md", "---\ndescription: plan\n---\nSPECKIT-PLAN $ARGUMENTS\n")
    only_plan = build_step_prompt(project, "design", additional_context="", feature_dir=feature(project))
    assert only_plan.source == "builtin"  # half a design would never pass the design confirmation
    tasks = write_command(project, "speckit.tasks.md", "SPECKIT-TASKS $ARGUMENTS\n")
    p = build_step_prompt(project, "design", additional_context=CONTEXT, feature_dir=feature(project))
    assert p.source == "project" and p.command_files == (plan, tasks)
    assert p.text.index("SPECKIT-PLAN") < p.text.index("SPECKIT-TASKS")
    assert "Part 1 of 2: /speckit.plan" in p.text and "Part 2 of 2: /speckit.tasks" in p.text
    assert CONTEXT in p.text and p.text.count(CONTEXT) == 1


def test_specflow_preferred_over_speckit(project: Path) -> None:
    write_command(project, "speckit.implement.md", "SPECKIT $ARGUMENTS")
    flow = write_command(project, "flow.implement.md", "FLOW $ARGUMENTS")
    p = build_batch_prompt(project, section="S", task_ids=["T001"], additional_context="", feature_dir=None)
    assert p.command_file == flow and "FLOW" in p.text and "SPECKIT" not in p.text
    assert prompts.has_project_command(project, "implement")
    assert not prompts.has_project_command(project, "merge")


def test_command_without_arguments_placeholder_gets_them_appended(project: Path) -> None:
    write_command(project, "flow.implement.md", "Implement the tasks.\n")
    p = build_batch_prompt(project, section="S", task_ids=["T001", "T002"], additional_context="", feature_dir=None)
    assert "## Arguments" in p.text
    assert batch_sentence("S", ["T001", "T002"]) in p.text


def test_every_arguments_occurrence_is_replaced(project: Path) -> None:
    write_command(project, "flow.analyze.md", "A: $ARGUMENTS\nB: $ARGUMENTS\n")
    p = build_step_prompt(project, "analyze", additional_context="", feature_dir=feature(project))
    assert p.text.count("Feature folder: specs/0001-x") == 2 and "$ARGUMENTS" not in p.text


# ---------------------------------------------------------------------------------------------------- batch sentence


@pytest.mark.parametrize("with_command", [False, True])
def test_batch_prompt_has_the_exact_sentence(project: Path, with_command: bool) -> None:
    if with_command:
        write_command(project, "flow.implement.md", "---\nx: y\n---\nRun $ARGUMENTS\n")
    p = build_batch_prompt(
        project,
        section="Phase 2: Foundational - model and storage",
        task_ids=["T004", "T005", "T006", "T007", "T008"],
        additional_context=CONTEXT,
        feature_dir=feature(project),
    )
    sentence = (
        'Execute only the "Phase 2: Foundational - model and storage" section (T004, T005, T006, T007, T008). '
        "Do NOT work on tasks from other sections."
    )
    assert sentence in p.text
    assert "`- [x]`" in p.text and "specs/0001-x/tasks.md" in p.text
    assert p.output_model is BatchOutput
    assert CONTEXT in p.text


# ---------------------------------------------------------------------------------------------------- frame


@pytest.mark.parametrize("layout", ["builtin", "specflow", "speckit"])
def test_additional_context_reaches_every_step(project: Path, layout: str) -> None:
    if layout == "specflow":
        for step in ("design", "analyze", "implement", "verify", "merge"):
            write_command(project, f"flow.{step}.md", f"{step} $ARGUMENTS")
    elif layout == "speckit":
        for cmd in ("plan", "tasks", "analyze", "implement"):
            write_command(project, f"speckit.{cmd}.md", f"{cmd} $ARGUMENTS")
    built = [
        build_step_prompt(project, step, additional_context=CONTEXT, feature_dir=feature(project))  # type: ignore[arg-type]
        for step in STEPS
    ]
    built.append(
        build_batch_prompt(project, section="S", task_ids=["T001"], additional_context=CONTEXT, feature_dir=None)
    )
    built.append(build_heal_prompt(heal_context(), additional_context=CONTEXT, feature_dir=feature(project)))
    for p in built:
        assert "## Additional context from the user" in p.text, p.step
        assert CONTEXT in p.text, p.step
    assert {p.step for p in built} == {"design", "analyze", "implement", "verify", "merge", "heal"}


def test_answers_are_appended(project: Path) -> None:
    answers = {"q1": "Use SQLite", "Which port?": "8080"}
    p = build_step_prompt(project, "design", additional_context="", feature_dir=None, answers=answers)
    assert "Answers to your questions:" in p.text
    assert "- q1: Use SQLite" in p.text and "- Which port?: 8080" in p.text
    b = build_batch_prompt(
        project, section="S", task_ids=["T1"], additional_context="", feature_dir=None, answers=answers
    )
    assert "- q1: Use SQLite" in b.text
    assert (
        "Answers to your questions"
        not in build_step_prompt(project, "design", additional_context="", feature_dir=None).text
    )


def test_verify_and_merge_can_ask_and_a_needs_input_verify_validates(project: Path) -> None:
    verify = prompts.json_schema(VerifyOutput)
    assert verify["properties"]["status"]["enum"] == ["completed", "needs_input"]
    assert "status" not in verify["required"]  # outputs written before it existed stay valid
    assert VerifyOutput.model_validate({"passed": True}).status == "completed"
    asks = {"passed": False, "status": "needs_input", "questions": [{"id": "q1", "question": "Accept?"}]}
    jsonschema.validate(asks, verify)
    assert questions_of(VerifyOutput.model_validate(asks))[0].question == "Accept?"
    merge = prompts.json_schema(MergeOutput)
    assert merge["properties"]["status"]["enum"] == ["merged", "conflict", "failed", "needs_input"]
    assert "questions" in merge["properties"]
    for step in ("verify", "merge"):
        text = build_step_prompt(project, step, additional_context="", feature_dir=None).text
        assert "`needs_input` when" in text and "resumes this session with" in text, step


def test_a_retry_of_a_lost_session_is_told_what_the_lost_one_did(project: Path) -> None:
    did = "- **assistant**: Checked T001; asking about the config next."
    answers = {"q1": "yes"}
    built = [
        build_step_prompt(
            project, "verify", additional_context="", feature_dir=None, answers=answers, lost_session=did
        ),
        build_batch_prompt(
            project, section="S", task_ids=["T1"], additional_context="", feature_dir=None, lost_session=did
        ),
        build_heal_prompt(heal_context(), additional_context="", project=project, answers=answers, lost_session=did),
    ]
    for p in built:
        assert "## What the previous session did before it was lost" in p.text, p.step
        assert did in p.text and "this is a new session" in p.text, p.step
    assert "- q1: yes" in built[0].text and "- q1: yes" in built[2].text  # answers ride along (healers too)
    empty = build_step_prompt(project, "verify", additional_context="", feature_dir=None, lost_session="")
    assert "(nothing was recorded)" in empty.text
    plain = build_step_prompt(project, "verify", additional_context="", feature_dir=None).text
    assert "before it was lost" not in plain


def test_front_matter_stripping() -> None:
    assert prompts.strip_front_matter("---\na: 1\nb: [x]\n---\nBody\n---\nmore") == "Body\n---\nmore"
    assert prompts.strip_front_matter("\ufeff---\r\na: 1\r\n---\r\nBody") == "Body"
    assert prompts.strip_front_matter("No front matter\n---\n") == "No front matter\n---\n"


# ---------------------------------------------------------------------------------------------------- heal prompt


def test_heal_prompt_is_limited_to_remaining_tasks(project: Path) -> None:
    ctx = heal_context()
    p = build_heal_prompt(ctx, additional_context="", feature_dir=feature(project), project=project)
    assert p.step == "heal" and p.output_model is HealOutput and p.source == "builtin"
    assert (
        'Complete only these remaining tasks of the "Phase 2: Core" section: T005, T006. '
        "Do NOT work on tasks from other sections." in p.text
    )
    assert "Already done in this batch (do not redo): T004." in p.text
    assert "pytest failed: 2 errors" in p.text and "process_failed" in p.text and "Exit code: 1" in p.text
    assert "[tool Bash] pytest -q" in p.text
    # a value containing "$ARGUMENTS" is inserted verbatim, not substituted again
    assert "Traceback: ImportError $ARGUMENTS" in p.text
    assert "specs/0001-x/tasks.md" in p.text


def test_heal_prompt_with_nothing_left_and_no_transcript(project: Path) -> None:
    ctx = heal_context(remaining_task_ids=[], completed_task_ids=["T004", "T005"], transcript=[], stderr_tail="")
    p = build_heal_prompt(ctx, additional_context="", project=project)
    assert "Every task of the" in p.text and "(no transcript was recorded)" in p.text and "(empty)" in p.text


# ---------------------------------------------------------------------------------------------------- schemas

EXAMPLES = [
    DesignOutput(status="needs_input", summary="s", questions=[Question(id="q1", question="Which DB?", options=["a"])]),
    AnalyzeOutput(status="completed", findings=["T003 names no file"], fixed_artifacts=True),
    BatchOutput(status="partial", tasks_completed=["T001"], tasks_remaining=["T002"], summary="s"),
    VerifyOutput(passed=False, failures=["test_x failed"]),
    MergeOutput(status="conflict", conflict_files=["README.md"], summary="s"),
    HealOutput(status="fixed", tasks_completed=["T002"], fix_applied="import fixed"),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_schema_is_valid_ref_free_and_round_trips(example: prompts.CamelModel) -> None:
    model = type(example)
    schema = prompts.json_schema(model)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    payload = json.loads(example.model_dump_json())
    jsonschema.validate(payload, schema)  # what the CLI would accept is what we parse
    assert model.model_validate(payload) == example
    for bad in ({}, {**payload, **{k: 12345 for k in schema["required"]}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_schemas_use_camel_case_and_enums() -> None:
    heal = prompts.json_schema(HealOutput)
    assert set(heal["required"]) == {"status"}
    assert heal["properties"]["status"]["enum"] == ["fixed", "partial", "failed"]
    assert {"tasksCompleted", "tasksRemaining", "fixApplied", "blockerReason"} <= set(heal["properties"])
    batch = prompts.json_schema(BatchOutput)
    assert batch["properties"]["status"]["enum"] == ["completed", "partial", "needs_input", "failed"]
    question = batch["properties"]["questions"]["items"]
    assert set(question["required"]) == {"id", "question"}


def test_questions_of() -> None:
    q = Question(id="q1", question="?")
    assert questions_of(DesignOutput(status="needs_input", summary="", questions=[q])) == [q]
    assert questions_of(MergeOutput(status="merged")) == []
    assert questions_of(None) == []
    assert (
        questions_of(
            BatchOutput.model_validate({"status": "needs_input", "questions": [{"id": "a", "question": "b"}]})
        )[0].id
        == "a"
    )


# ---------------------------------------------------------------------------------------------------- user commands


def write_user_command(config: Path, name: str, text: str) -> Path:
    path = config / "commands" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_user_commands_are_used_when_the_project_has_none(project: Path, user_config: Path) -> None:
    user_flow = write_user_command(user_config, "flow.implement.md", "---\ndescription: x\n---\nUSER-FLOW $ARGUMENTS\n")
    p = build_batch_prompt(project, section="S", task_ids=["T1000"], additional_context="", feature_dir=None)
    assert p.source == "user" and p.command_file == user_flow
    assert 'USER-FLOW Execute only the "S" section (T1000).' in p.text
    assert prompts.has_project_command(project, "implement")
    source = prompts.prompt_source(project, "implement")
    assert (source.source, source.skill, source.files) == ("user", "flow.implement", [str(user_flow)])
    assert source.describe() == f"implement: /flow.implement (user: {user_flow})"


def test_the_projects_command_wins_over_the_users(project: Path, user_config: Path) -> None:
    write_user_command(user_config, "flow.implement.md", "USER $ARGUMENTS")
    write_user_command(user_config, "flow.verify.md", "USER-VERIFY $ARGUMENTS")
    ours = write_command(project, "speckit.implement.md", "PROJECT $ARGUMENTS")
    p = build_batch_prompt(project, section="S", task_ids=["T001"], additional_context="", feature_dir=None)
    # The project's folder is read first, whatever the name: its speckit command beats the user's flow command.
    assert p.source == "project" and p.command_file == ours and "USER" not in p.text
    assert build_step_prompt(project, "verify", additional_context="", feature_dir=None).source == "user"


def test_claude_config_dir_then_home(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_user_command(home / ".claude", "flow.merge.md", "HOME-MERGE")
    config = tmp_path / "cfg"
    assert prompts.user_commands_dir({"HOME": str(home)}) == home / ".claude" / "commands"
    assert prompts.user_commands_dir({"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config)}) == config / "commands"
    # The agent's environment decides (the engine passes the one the agent runs with).
    assert prompts.prompt_source(project, "merge", {"HOME": str(home)}).source == "user"
    assert prompts.prompt_source(project, "merge", {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(config)}).source == (
        "builtin"
    )
    m = build_step_prompt(project, "merge", additional_context="", feature_dir=None, env={"HOME": str(home)})
    assert m.source == "user" and "HOME-MERGE" in m.text


def test_prompt_sources_name_every_step(project: Path, user_config: Path) -> None:
    write_command(project, "speckit.plan.md", "PLAN")
    write_command(project, "speckit.tasks.md", "TASKS")
    write_user_command(user_config, "flow.analyze.md", "ANALYZE")
    sources = {s.step: s for s in prompts.prompt_sources(project)}
    assert list(sources) == ["design", "analyze", "implement", "verify", "merge"]
    assert sources["design"].model_dump() == {
        "step": "design",
        "source": "project",
        "skill": "speckit.plan+speckit.tasks",
        "files": [".claude/commands/speckit.plan.md", ".claude/commands/speckit.tasks.md"],
    }
    assert sources["design"].describe() == (
        "design: /speckit.plan + /speckit.tasks (project: .claude/commands/speckit.plan.md, "
        ".claude/commands/speckit.tasks.md)"
    )
    assert (sources["analyze"].source, sources["analyze"].skill) == ("user", "flow.analyze")
    assert [(sources[s].source, sources[s].skill) for s in ("implement", "verify", "merge")] == [
        ("builtin", "builtin:implement"),
        ("builtin", "builtin:verify"),
        ("builtin", "builtin:merge"),
    ]
