"""The prompt of every agent run: design, analyze, implement (one batch), verify, merge and heal.

Each step's prompt is the project's own slash command when it has one, else a built-in prompt shipped in
``builtin_prompts/``. Commands are looked up where Claude Code reads them: first the project's
``{project}/.claude/commands/``, then the user's (``$CLAUDE_CONFIG_DIR/commands/`` when that variable is set, else
``~/.claude/commands/``, where SpecFlow installs its ``flow.*`` commands). A folder that holds a step's command wins
over the next folder, whatever the command's name; within a folder the names are tried in this order:

============  ====================  ==========================================================================
step          SpecFlow              spec-kit (github/spec-kit ``speckit.*`` commands)
============  ====================  ==========================================================================
design        ``flow.design.md``    ``speckit.plan.md`` then ``speckit.tasks.md`` (both needed; composed into
                                    one prompt). ``speckit.specify`` is not used: it needs a feature
                                    description from a human, and the phase's spec.md is its input.
analyze       ``flow.analyze.md``   ``speckit.analyze.md``
implement     ``flow.implement.md`` ``speckit.implement.md``
verify        ``flow.verify.md``    none (``speckit.checklist`` checks requirement quality, not the code)
merge         ``flow.merge.md``     none
heal          built-in only
============  ====================  ==========================================================================

:func:`prompt_sources` says, without building anything, which source each step will use (``skill``:
``flow.implement``, ``speckit.plan+speckit.tasks`` or ``builtin:implement``; ``source``: project, user or builtin);
the Start form's preview and ``orchestrate start --dry-run`` show it.

A command's YAML front matter is dropped and ``$ARGUMENTS`` replaced by the step's arguments (for a batch: the
exact "Execute only the …" sentence); a command without ``$ARGUMENTS`` gets them under an "Arguments" heading.
Around the body every prompt gets the same frame: an unattended-run preamble (no human is there to answer; ask
through ``needs_input``), the user's additionalContext (EVERY step: the original only sent it to implement), the
answers to earlier questions, and what to report in the structured output.

The structured outputs are pydantic models whose JSON schema (``StepPrompt.json_schema``, ``$ref``-free) goes to
the CLI's ``--json-schema``; the CLI returns the validated object as ``structured_output``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from specflow_nb.models import CamelModel, Question
from specflow_nb.models.preview import PromptSource, Source  # the preview serves them

if TYPE_CHECKING:
    from specflow_nb.agent.failure_context import FailureContext

Step = Literal["design", "analyze", "implement", "verify", "merge", "heal"]
StepName = Literal["design", "analyze", "verify", "merge"]
#: The steps whose prompt source the preview names (heal is always built in).
PHASE_STEPS: tuple[Step, ...] = ("design", "analyze", "implement", "verify", "merge")

# --------------------------------------------------------------------------------------------------------------
# Structured outputs


class DesignOutput(CamelModel):
    status: Literal["completed", "needs_input", "failed"]
    summary: str
    questions: list[Question] = Field(default_factory=list)


class AnalyzeOutput(CamelModel):
    status: Literal["completed", "needs_input", "failed"]
    findings: list[str] = Field(default_factory=list)
    fixed_artifacts: bool = Field(False, description="True when spec.md, plan.md or tasks.md was edited")
    questions: list[Question] = Field(default_factory=list)
    summary: str = ""


class BatchOutput(CamelModel):
    status: Literal["completed", "partial", "needs_input", "failed"]
    tasks_completed: list[str] = Field(default_factory=list)
    tasks_remaining: list[str] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    summary: str = ""


class VerifyOutput(CamelModel):
    passed: bool
    failures: list[str] = Field(default_factory=list)
    #: ``needs_input``: a human must decide before the verdict (``passed`` is then no verdict); the orchestration
    #: waits for answers and resumes this session with them. Defaults to ``completed`` (outputs without it stay valid).
    status: Literal["completed", "needs_input"] = Field(
        "completed", description="completed when you could judge (the verdict is `passed`); needs_input to ask first"
    )
    questions: list[Question] = Field(default_factory=list)
    summary: str = ""


class MergeOutput(CamelModel):
    status: Literal["merged", "conflict", "failed", "needs_input"]
    conflict_files: list[str] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)
    summary: str = ""


class HealOutput(CamelModel):
    status: Literal["fixed", "partial", "failed"]
    tasks_completed: list[str] = Field(default_factory=list)
    tasks_remaining: list[str] = Field(default_factory=list)
    fix_applied: str = Field("", description="What was wrong and what was changed")
    blocker_reason: str = Field("", description="Why the rest cannot be done, when status is not fixed")


OutputModel = type[CamelModel]

#: The structured output of each kind of run.
OUTPUT_MODELS: dict[str, OutputModel] = {
    "design": DesignOutput,
    "analyze": AnalyzeOutput,
    "implement": BatchOutput,
    "verify": VerifyOutput,
    "merge": MergeOutput,
    "heal": HealOutput,
}


def questions_of(output: CamelModel | None) -> list[Question]:
    """The questions an output asks (empty for outputs that cannot ask, and for None)."""
    questions = getattr(output, "questions", None)
    return list(questions) if questions else []


def json_schema(model: OutputModel) -> dict[str, Any]:
    """The model's camelCase JSON schema with every ``$ref`` inlined (simple for the CLI's ``--json-schema``)."""
    schema = model.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                resolved = inline(defs[ref.removeprefix("#/$defs/")])
                extra = {k: inline(v) for k, v in node.items() if k != "$ref"}
                return {**resolved, **extra}
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


# --------------------------------------------------------------------------------------------------------------
# Prompts


@dataclass(frozen=True)
class StepPrompt:
    """The text to send on stdin and the model its structured output must match."""

    step: Step
    text: str
    output_model: OutputModel
    source: Source
    #: The project command file(s) the text came from (two for spec-kit's design), empty for built-in prompts.
    command_files: tuple[Path, ...] = field(default_factory=tuple)
    #: What replaced ``$ARGUMENTS``.
    arguments: str = ""

    @property
    def command_file(self) -> Path | None:
        return self.command_files[0] if self.command_files else None

    @property
    def json_schema(self) -> dict[str, Any]:
        return json_schema(self.output_model)


#: Project command files per step, in order of preference: each entry is a set of files that must all exist.
PROJECT_COMMANDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "design": (("flow.design.md",), ("speckit.plan.md", "speckit.tasks.md")),
    "analyze": (("flow.analyze.md",), ("speckit.analyze.md",)),
    "implement": (("flow.implement.md",), ("speckit.implement.md",)),
    "verify": (("flow.verify.md",),),
    "merge": (("flow.merge.md",),),
    "heal": (),
}

_PREAMBLE = (
    "You are running unattended, as one step of an automated spec-driven workflow (specflow_nb). No human is "
    "watching this session: do not ask questions in the conversation and do not wait for a confirmation. When you "
    "cannot go on without a human decision, stop and ask through the structured result's `questions` instead."
)

_REPORTS: dict[str, str] = {
    "design": (
        "- `status`: `completed` when spec.md, plan.md and tasks.md (with at least one task) are written; "
        "`needs_input` when you need answers first (put them in `questions`); `failed` when the design cannot be "
        "done.\n- `summary`: what you wrote, in a few sentences."
    ),
    "analyze": (
        "- `status`: `completed` when the analysis is done (with or without findings); `needs_input` when a finding "
        "needs a human decision (put it in `questions`); `failed` when you could not analyze.\n"
        "- `findings`: one line per problem found.\n"
        "- `fixedArtifacts`: true if you edited spec.md, plan.md or tasks.md.\n- `summary`: a few sentences."
    ),
    "implement": (
        "- `status`: `completed` when every task of this batch is done AND checked in tasks.md; `partial` when "
        "some remain; `needs_input` when you cannot continue without answers (put them in `questions`); `failed` "
        "when the batch cannot be done.\n"
        "- `tasksCompleted` / `tasksRemaining`: this batch's task IDs you finished / did not finish.\n"
        "- `summary`: what you did and, for each remaining task, why it remains."
    ),
    "verify": (
        "- `status`: `completed` when you could judge the feature (your verdict goes in `passed`); `needs_input` "
        "when you cannot judge without a human decision (e.g. the spec and the code disagree and either could be "
        "meant, or a check fails for a reason only the team can accept): put the questions in `questions` and set "
        "`passed` false; the workflow waits for the answers and resumes this session with them.\n"
        "- `passed`: true only when every task is done, the requirements are met and the checks pass.\n"
        "- `failures`: one line per problem (failed test, unmet requirement, unchecked task).\n"
        "- `questions`: only with `needs_input`.\n- `summary`: a few sentences."
    ),
    "merge": (
        "- `status`: `merged` when git confirms the feature branch is merged into the target branch; `conflict` "
        "when the merge conflicted and was aborted; `needs_input` when a human must decide before you merge (put "
        "the questions in `questions`; the workflow resumes this session with the answers); `failed` otherwise.\n"
        "- `conflictFiles`: the conflicting files.\n- `questions`: only with `needs_input`.\n"
        "- `summary`: a few sentences."
    ),
    "heal": (
        "- `status`: `fixed` when the cause is fixed and every remaining task is done AND checked in tasks.md; "
        "`partial` when some remain; `failed` when you could not fix it.\n"
        "- `tasksCompleted` / `tasksRemaining`: the batch's task IDs now done / still not done.\n"
        "- `fixApplied`: what was wrong and what you changed.\n"
        "- `blockerReason`: when not `fixed`, what blocks the rest and what a human should do."
    ),
}

_PLACEHOLDER = re.compile(r"\$(ARGUMENTS|FEATURE_DIR|TASKS_FILE|SECTION|FAILURE|TRANSCRIPT|STDERR)\b")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n.*?^---[ \t]*\r?$\n?", re.DOTALL | re.MULTILINE)


def _substitute(template: str, values: dict[str, str]) -> str:
    """Replace known ``$NAME`` placeholders in one pass (a value containing ``$ARGUMENTS`` stays as it is)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def strip_front_matter(text: str) -> str:
    """Drop a leading YAML front matter block (``---`` … ``---``), as Claude Code does for slash commands."""
    return _FRONT_MATTER.sub("", text, count=1).lstrip("\n")


def builtin_prompt(step: Step) -> str:
    """The built-in prompt template of a step (package data ``builtin_prompts/<step>.md``)."""
    return resources.files("specflow_nb.agent").joinpath("builtin_prompts").joinpath(f"{step}.md").read_text("utf-8")


#: The agent whose prompt folders are looked in (set around a run's prompt building by :func:`prompt_agent`).
_AGENT: contextvars.ContextVar[str] = contextvars.ContextVar("specflow_prompt_agent", default="claude")


@contextlib.contextmanager
def prompt_agent(agent: str) -> Iterator[None]:
    """Build prompts for ``agent`` inside this block: Codex reads the project's ``.codex/prompts/`` (where spec-kit
    writes its Codex commands) and the user's ``$CODEX_HOME/prompts/`` instead of the ``.claude/commands/`` pair."""
    token = _AGENT.set(agent)
    try:
        yield
    finally:
        _AGENT.reset(token)


def user_commands_dir(env: Mapping[str, str] | None = None, agent: str | None = None) -> Path:
    """The user's commands folder: for Claude ``$CLAUDE_CONFIG_DIR/commands`` if set, else ``~/.claude/commands``;
    for Codex ``$CODEX_HOME/prompts`` if set, else ``~/.codex/prompts``."""
    env = os.environ if env is None else env
    if (agent or _AGENT.get()) == "codex":
        codex_home = env.get("CODEX_HOME", "").strip()
        if codex_home:
            return Path(codex_home).expanduser() / "prompts"
        home = env.get("HOME", "").strip()
        return (Path(home) if home else Path.home()) / ".codex" / "prompts"
    config = env.get("CLAUDE_CONFIG_DIR", "").strip()
    if config:
        return Path(config).expanduser() / "commands"
    home = env.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".claude" / "commands"


def command_dirs(
    project: Path, env: Mapping[str, str] | None = None, agent: str | None = None
) -> list[tuple[Source, Path]]:
    """The folders commands are looked up in, first wins: the project's, then the user's (per agent)."""
    agent = agent or _AGENT.get()
    own = Path(project) / (".codex/prompts" if agent == "codex" else ".claude/commands")
    return [("project", own), ("user", user_commands_dir(env, agent))]


def find_command_files(
    project: Path, step: Step, env: Mapping[str, str] | None = None
) -> tuple[Source, tuple[Path, ...]]:
    """(source, command file(s)) for ``step``: the project's, else the user's, else ``("builtin", ())``."""
    for source, folder in command_dirs(project, env):
        if _AGENT.get() == "codex" and step == "merge":
            break  # Codex's sandbox keeps .git read-only: merging stays the engine's built-in git merge
        for names in PROJECT_COMMANDS[step]:
            paths = tuple(folder / name for name in names)
            if all(p.is_file() for p in paths):
                return source, paths
    return "builtin", ()


def project_command_files(project: Path, step: Step, env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The command file(s) ``step`` will use (the project's or the user's), or ``()`` for the built-in prompt."""
    return find_command_files(project, step, env)[1]


def has_project_command(project: Path, step: Step, env: Mapping[str, str] | None = None) -> bool:
    """True when ``step`` runs a command of the project or of the user (e.g. a ``flow.merge``), not the built-in."""
    return bool(project_command_files(project, step, env))


def prompt_source(project: Path, step: Step, env: Mapping[str, str] | None = None) -> PromptSource:
    """The prompt source of one step (see :class:`PromptSource`)."""
    source, files = find_command_files(project, step, env)
    if not files:
        return PromptSource(step=step, source="builtin", skill=f"builtin:{step}")
    shown = [_rel(project, f) if source == "project" else str(f) for f in files]
    return PromptSource(step=step, source=source, skill="+".join(f.stem for f in files), files=shown)


def prompt_sources(project: Path, env: Mapping[str, str] | None = None) -> list[PromptSource]:
    """The prompt source of each step of a phase, design to merge."""
    return [prompt_source(project, step, env) for step in PHASE_STEPS]


def batch_sentence(section: str, task_ids: list[str]) -> str:
    """The one sentence that limits an implement run to its batch (MISSION §1), verbatim."""
    return f'Execute only the "{section}" section ({", ".join(task_ids)}). Do NOT work on tasks from other sections.'


def _rel(project: Path, path: Path | None) -> str:
    if path is None:
        return "the feature folder under specs/"
    return _rel_text(str(project), str(path))


@functools.lru_cache(maxsize=256)
def _rel_text(project: str, path: str) -> str:
    """``path`` as the prompt names it: relative to ``project`` (links resolved). Kept: resolving both costs a
    dozen system calls on every run's prompt, and the text only tells the agent where to look."""
    try:
        return str(Path(path).resolve().relative_to(Path(project).resolve())) or "."
    except ValueError:
        return path


def _render_body(
    project: Path, step: Step, arguments: str, values: dict[str, str], env: Mapping[str, str] | None = None
) -> tuple[str, Source, tuple[Path, ...]]:
    source, files = find_command_files(project, step, env)
    if not files:
        return _substitute(builtin_prompt(step), {**values, "ARGUMENTS": arguments}).strip(), "builtin", ()
    parts: list[str] = []
    for path in files:
        body = strip_front_matter(path.read_text("utf-8", errors="replace")).strip()
        if arguments and "$ARGUMENTS" not in body:
            body = f"{body}\n\n## Arguments\n\n{arguments}"
        parts.append(body.replace("$ARGUMENTS", arguments))
    if len(parts) == 1:
        return parts[0], source, files
    numbered = [
        f"# Part {i} of {len(parts)}: /{p.stem}\n\n{body}"
        for i, (p, body) in enumerate(zip(files, parts, strict=True), 1)
    ]
    header = "Do the following parts in order; finish each before starting the next."
    return "\n\n".join([header, *numbered]), source, files


#: The heading of what a lost session did, in the prompt of the new session that retries it.
LOST_SESSION_HEADING = "What the previous session did before it was lost"


def lost_session_section(messages: str) -> str:
    """The prompt section of a retry whose session could not be resumed: what the lost session did (its last
    messages), so the new session goes on from there instead of starting blind."""
    return (
        f"## {LOST_SESSION_HEADING}\n\n"
        "This work was started in an earlier session that can no longer be resumed, so this is a new session. "
        f"{LOST_SESSION_HEADING}: its last messages (oldest first):\n\n"
        f"{messages.strip() or '(nothing was recorded)'}\n\n"
        "Check the project's files for what is already done and do not redo it."
    )


def _frame(
    step: Step,
    body: str,
    *,
    additional_context: str,
    answers: dict[str, str] | None,
    lost_session: str | None = None,
) -> str:
    sections = [_PREAMBLE, body]
    if additional_context.strip():
        sections.append(f"## Additional context from the user\n\n{additional_context.strip()}")
    if lost_session is not None:
        sections.append(lost_session_section(lost_session))
    if answers:
        lines = "\n".join(f"- {q}: {a}" for q, a in answers.items())
        sections.append(f"## Answers to your questions\n\nAnswers to your questions:\n{lines}")
    sections.append(f"## When you finish\n\nEnd with the structured result:\n{_REPORTS[step]}")
    return "\n\n".join(sections) + "\n"


def _feature_args(project: Path, feature_dir: Path | None, verify_command: str | None = None) -> str:
    lines = [f"Feature folder: {_rel(project, feature_dir)}"] if feature_dir is not None else []
    if verify_command:
        lines.append(f"The project's verification command is `{verify_command}`; run it and report its failures.")
    return "\n".join(lines)


def _values(project: Path, feature_dir: Path | None) -> dict[str, str]:
    folder = _rel(project, feature_dir)
    tasks_file = f"{folder}/tasks.md" if feature_dir is not None else "tasks.md (in the feature folder)"
    return {"FEATURE_DIR": folder, "TASKS_FILE": tasks_file}


def build_step_prompt(
    project: Path,
    step: StepName,
    *,
    additional_context: str,
    feature_dir: Path | None,
    answers: dict[str, str] | None = None,
    verify_command: str | None = None,
    env: Mapping[str, str] | None = None,
    lost_session: str | None = None,
) -> StepPrompt:
    """The prompt of a design, analyze, verify or merge run (implement batches: :func:`build_batch_prompt`).

    ``verify_command`` (verify only) is named to the agent so it runs it too; the orchestrator still runs it
    itself to confirm (an agent's word is not enough). ``env`` is the agent's environment, where the user's
    commands folder is looked up (``CLAUDE_CONFIG_DIR``, ``HOME``); default: this process's. ``lost_session``
    (a retry of a session that could not be resumed): the lost session's last messages, shown under
    :data:`LOST_SESSION_HEADING` (the same for every builder).
    """
    if step not in ("design", "analyze", "verify", "merge"):
        raise ValueError(f"build_step_prompt does not build {step!r} prompts")
    arguments = _feature_args(project, feature_dir, verify_command if step == "verify" else None)
    body, source, files = _render_body(project, step, arguments, _values(project, feature_dir), env)
    text = _frame(step, body, additional_context=additional_context, answers=answers, lost_session=lost_session)
    return StepPrompt(step, text, OUTPUT_MODELS[step], source, files, arguments)


def build_batch_prompt(
    project: Path,
    *,
    section: str,
    task_ids: list[str],
    additional_context: str,
    feature_dir: Path | None,
    answers: dict[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    lost_session: str | None = None,
) -> StepPrompt:
    """The prompt of one implement batch: the batch sentence (verbatim), the check-off rule and the frame."""
    values = _values(project, feature_dir)
    arguments = (
        f"{batch_sentence(section, task_ids)}\n"
        f"As soon as a task is finished, mark it done in {values['TASKS_FILE']} by changing its `- [ ]` to `- [x]`."
    )
    body, source, files = _render_body(project, "implement", arguments, values, env)
    text = _frame("implement", body, additional_context=additional_context, answers=answers, lost_session=lost_session)
    return StepPrompt("implement", text, BatchOutput, source, files, arguments)


def build_heal_prompt(
    context: FailureContext,
    *,
    additional_context: str,
    feature_dir: Path | None = None,
    project: Path | None = None,
    answers: dict[str, str] | None = None,
    lost_session: str | None = None,
) -> StepPrompt:
    """The healer's prompt: the failure context, limited to the batch's remaining tasks (output: HealOutput)."""
    remaining = list(context.remaining_task_ids)
    if remaining:
        arguments = (
            f'Complete only these remaining tasks of the "{context.section}" section: {", ".join(remaining)}. '
            "Do NOT work on tasks from other sections."
        )
    else:
        arguments = (
            f'Every task of the "{context.section}" section is checked in tasks.md; make sure the failure above left '
            "nothing broken (run the tests) and report `fixed` when all is well. Do NOT work on other sections."
        )
    if context.completed_task_ids:
        arguments += f"\nAlready done in this batch (do not redo): {', '.join(context.completed_task_ids)}."
    base = project if project is not None else (feature_dir.parent.parent if feature_dir is not None else Path("."))
    values = {
        **_values(base, feature_dir),
        "ARGUMENTS": arguments,
        "SECTION": context.section,
        "FAILURE": context.describe_failure(),
        "TRANSCRIPT": context.describe_transcript(),
        "STDERR": context.stderr_tail.strip() or "(empty)",
    }
    body = _substitute(builtin_prompt("heal"), values).strip()
    text = _frame("heal", body, additional_context=additional_context, answers=answers, lost_session=lost_session)
    return StepPrompt("heal", text, HealOutput, "builtin", (), arguments)
