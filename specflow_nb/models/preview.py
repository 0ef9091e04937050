"""What a host shows before Start: the project's phase status, the preflight checks and the whole preview.

Served by ``GET …/status?preview=true`` (``StatusResponse``), returned by ``Orchestrator.preview`` and the client,
read field by field by the widget and ``orchestrate start --dry-run``. Apart from the record: computed from the
project on every request, never saved.

Each warning has one owner: the batch plan's own (fallback sizing, unknown dependencies) are in
``BatchPlan.warnings`` only; ``Preflight.warnings`` holds what the checks found (agent, git, branches).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specflow_nb.models.base import CamelModel
from specflow_nb.models.plan import BatchPlan, Estimate

# --------------------------------------------------------------------------------------------------------------
# The project's phase status (MISSION §7, ``specflow-nb status --json``; computed by specflow_nb.project)

NextAction = Literal[
    "start_phase",
    "run_design",
    "run_analyze",
    "continue_implement",
    "run_verify",
    "ready_to_merge",
    "fix_health",
    "awaiting_user_gate",
    "archive_phase",
]
#: ``ready`` is the original's word for a healthy project.
HealthStatus = Literal["ready", "warning", "error"]
Severity = Literal["warning", "error"]


class PhaseInfo(CamelModel):
    #: The feature folder's number as written (``"001"``), or the state's ``orchestration.phase.number`` as a string.
    number: str | None = None
    name: str | None = None
    branch: str | None = None
    status: str | None = None
    has_user_gate: bool = False


class StepInfo(CamelModel):
    current: str | None = None
    index: int = 0
    status: str | None = None


class Progress(CamelModel):
    tasks_completed: int = 0
    tasks_total: int = 0
    tasks_blocked: int = 0
    percentage: int = 0
    #: Deferred tasks (``[~]``/``[-]``): counted in the total, not done, and never holding the phase back.
    tasks_deferred: int = 0


class HealthIssue(CamelModel):
    code: str
    severity: Severity
    message: str


class Health(CamelModel):
    status: HealthStatus = "ready"
    issues: list[HealthIssue] = Field(default_factory=list)


class StatusContext(CamelModel):
    feature_dir: str | None = None
    has_spec: bool = False
    has_plan: bool = False
    has_tasks: bool = False
    has_checklists: bool = False
    current_branch: str | None = None


class ProjectStatus(CamelModel):
    """The ``status --json`` view of a project (the original SpecFlow shape, plus ``context.currentBranch``)."""

    phase: PhaseInfo
    step: StepInfo
    progress: Progress
    health: Health
    next_action: NextAction
    blockers: list[str] = Field(default_factory=list)
    context: StatusContext

    @property
    def phase_open(self) -> bool:
        """The project has a feature folder (``specs/NNNN-name/``): a phase to complete."""
        return self.next_action != "start_phase" and bool(self.context.feature_dir)


# --------------------------------------------------------------------------------------------------------------
# The preview before start

#: Where a step's prompt comes from: the project's commands, the user's, or the built-in prompt.
Source = Literal["project", "user", "builtin"]


class PromptSource(CamelModel):
    """Which prompt a step will use, as the preview and ``orchestrate start --dry-run`` show it."""

    step: str
    #: ``project``, ``user`` or ``builtin``.
    source: Source
    #: The command's name (``flow.implement``; ``speckit.plan+speckit.tasks``) or ``builtin:<step>``.
    skill: str
    #: The command file(s): relative to the project for project commands, absolute for the user's; empty for builtin.
    files: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        """One line: ``implement: /flow.implement (user: ~/.claude/commands/flow.implement.md)``."""
        if self.source == "builtin":
            return f"{self.step}: built-in prompt ({self.skill})"
        names = " + ".join(f"/{n}" for n in self.skill.split("+"))
        return f"{self.step}: {names} ({self.source}: {', '.join(self.files)})"


class Preflight(CamelModel):
    """What the checks before Start found: problems block it, warnings do not (the plan's warnings are the plan's)."""

    ok: bool = Field(description="No problem: Start may go ahead.")
    problems: list[str] = Field(default_factory=list, description="What blocks a start, each with what to do.")
    warnings: list[str] = Field(
        default_factory=list, description="What the checks found that does not block (not the plan's warnings)."
    )
    agent_command: str = Field(description="The agent command a start would run (as the host resolves it).")
    agent_found: bool = Field(description="The agent command was found (false: a problem names it).")
    feature_dir: str | None = Field(None, description="The feature folder, relative to the project.")
    has_tasks: bool = False
    branch: str | None = Field(None, description="The project's current git branch.")
    target_branch: str | None = Field(None, description="The branch the merge step merges into.")
    active_orchestration_id: str | None = Field(None, description="The orchestration that blocks a second start.")


class Preview(CamelModel):
    """What the Start form shows (nothing is started): the plan, its estimate, the checks, the phase status."""

    batch_plan: BatchPlan | None = None
    #: The plan's estimated time and cost (per batch, per step, in total) and the budget check.
    estimate: Estimate | None = None
    preflight: Preflight
    project_status: ProjectStatus | None = None
    #: Where each step's prompt comes from (the project's commands, the user's, or the built-in prompt).
    prompt_sources: list[PromptSource] = Field(default_factory=list)
