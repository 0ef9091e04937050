"""The REST API's request and response bodies: one source for the handlers, the client and the OpenAPI document.

This module must stay importable without jupyter_server (the client and the CLI import it in a plain kernel).
Requests forbid unknown fields so that a typo (``projectID``) is a clear 400 instead of a silently ignored option.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from specflow_nb import summary
from specflow_nb.activity import Activity
from specflow_nb.machine import Command, parse_command
from specflow_nb.models import (
    BatchPlan,
    BudgetChange,
    CamelModel,
    Estimate,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    Preflight,
    Preview,
    ProjectStatus,
    PromptSource,
    RecoveryOption,
)
from specflow_nb.ownership import OwnerRecord
from specflow_nb.transcript import Transcript

#: Path of every route below the server's base URL.
API_PREFIX = "specflow/api"

#: The live channel's defaults (``GET …/status?since=<version>&timeout=<s>``).
LONG_POLL_DEFAULT_TIMEOUT = 25.0
LONG_POLL_MAX_TIMEOUT = 60.0

_PROJECT_ID = Field(
    description="The project's folder relative to the server's root dir ('' or '.' is the root itself).",
    max_length=4096,
)
_ORCHESTRATION_ID = Field(
    None, description="An orchestration id; default: the project's newest (active first).", max_length=128
)


class RequestModel(CamelModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------------------------
# Requests


class StartRequest(RequestModel):
    """``POST workflow/orchestrate``."""

    project_id: str = _PROJECT_ID
    config: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig,
        description="agentCommand, verifyCommand, model and fallbackModel other than the server's defaults and "
        "presets need execute permission on kernels or terminals (else 403).",
    )


class TargetRequest(RequestModel):
    """``POST …/pause|resume|cancel|merge``: which orchestration."""

    project_id: str = _PROJECT_ID
    id: str | None = _ORCHESTRATION_ID


class ResumeRequest(TargetRequest):
    """``POST …/resume``; ``budget``: new limits first (e.g. after "budget reached"); the limits not given stay."""

    budget: BudgetChange | None = None


class RecoverRequest(TargetRequest):
    """``POST …/recover``. ``option`` (or the original system's ``action``) is retry, skip or abort."""

    option: RecoveryOption | None = None
    budget: BudgetChange | None = Field(
        None, description="New budget limits before recovering; the limits not given stay as they are."
    )
    action: RecoveryOption | None = Field(None, description="Accepted for the original system's clients.")

    @model_validator(mode="after")
    def _one_option(self) -> RecoverRequest:
        if self.option is None and self.action is None:
            raise ValueError("'option' is required: one of retry, skip, abort")
        if self.option is not None and self.action is not None and self.option != self.action:
            raise ValueError("'option' and 'action' disagree; send only 'option'")
        if self.option is None:
            self.option = self.action
        return self


class GoBackRequest(TargetRequest):
    """``POST …/go-back``: return to an earlier step."""

    step: OrchestrationPhase


class AnswerRequest(TargetRequest):
    """``POST …/answer``: answers to the questions of a run waiting for input (question id or text → answer)."""

    answers: dict[str, str] = Field(min_length=1)


# ---------------------------------------------------------------------------------------------------------------
# Responses


class ErrorBody(CamelModel):
    """Every 4xx response: what happened, the details (e.g. field errors), and what to do."""

    error: str
    details: Any | None = None
    hint: str | None = None
    code: str | None = Field(
        None, description="The specflow_nb.errors class (e.g. OrchestrationConflict); clients re-raise it."
    )


class WorkflowRef(CamelModel):
    """The step an orchestration is on and its agent run (null until the loop has spawned it).

    ``id``, ``skill``, ``status`` and ``sessionId`` are the original dashboard's ``workflow`` fields."""

    step: OrchestrationPhase
    execution_id: str | None = None
    id: str | None = Field(None, description="The run's id (the same as executionId).")
    skill: str | None = Field(
        None, description="The step's command: e.g. flow.implement (a project or user command) or builtin:implement."
    )
    status: str | None = Field(
        None, description="The run's status: running, completed, failed or cancelled (null before it starts)."
    )
    session_id: str | None = None


class RunRef(CamelModel):
    """An agent run (or the built-in merge) by id, with its status."""

    id: str
    status: str


class BatchProgress(CamelModel):
    completed: int
    total: int


class ListedOrchestration(OrchestrationExecution):
    """An orchestration in ``list``, with its batch progress (the original dashboard's ``batchProgress``)."""

    batch_progress: BatchProgress


class StartResponse(CamelModel):
    orchestration: OrchestrationExecution
    workflow: WorkflowRef
    batch_plan: BatchPlan


class Permissions(CamelModel):
    """What the requester may choose in the Start form (specflow_nb.policy): commands need ``execute`` permission."""

    may_execute: bool = Field(description="The authorizer grants execute on kernels or terminals.")
    command_fields: list[str] = Field(description="The fields that choose what runs.")
    editable_command_fields: list[str] = Field(description="Those this user may set (empty without execute).")
    agent_commands: dict[str, str] = Field(default_factory=dict, description="Named agent commands anyone may pick.")
    verify_commands: dict[str, str] = Field(
        default_factory=dict, description="Named verify commands anyone may pick (send the name or the command)."
    )
    models: list[str] = Field(default_factory=list, description="Models anyone may pick besides the default.")
    missing: str | None = Field(None, description="The permission needed to set the others, when lacking.")


class StatusResponse(CamelModel):
    """The project's orchestration (``null`` when it has none); with ``preview=true`` also the form's data."""

    orchestration: OrchestrationExecution | None = None
    owner: OwnerRecord | None = Field(
        None, description="The engine that drives the active orchestration (null when none, or it has ended)."
    )
    batch_plan: BatchPlan | None = None
    estimate: Estimate | None = Field(
        None, description="With preview: the plan's estimated time and cost per batch, per step and in total."
    )
    preflight: Preflight | None = Field(
        None, description="With preview: the checks before Start (problems block it, warnings do not)."
    )
    project_status: ProjectStatus | None = Field(
        None, description="With preview: the project's phase status (`specflow-nb status --json`)."
    )
    prompt_sources: list[PromptSource] = Field(
        default_factory=list, description="With preview: where each step's prompt comes from."
    )
    permissions: Permissions | None = Field(
        None, description="With preview: which command fields this user may set (the form shows the others read-only)."
    )

    @classmethod
    def with_preview(cls, preview: Preview, **fields: Any) -> StatusResponse:
        """The answer of ``status?preview=true``: the engine's :class:`Preview`, field by field, and ``fields``."""
        return cls(
            batch_plan=preview.batch_plan,
            estimate=preview.estimate,
            preflight=preview.preflight,
            project_status=preview.project_status,
            prompt_sources=preview.prompt_sources,
            **fields,
        )

    def preview(self) -> Preview | None:
        """The preview this answer carries (``None`` without ``preview=true``)."""
        if self.preflight is None:
            return None
        return Preview(
            batch_plan=self.batch_plan,
            estimate=self.estimate,
            preflight=self.preflight,
            project_status=self.project_status,
            prompt_sources=self.prompt_sources,
        )


class ListResponse(CamelModel):
    orchestrations: list[ListedOrchestration] = Field(default_factory=list)
    total: int = Field(0, description="How many orchestrations the project has.")


class CommandResponse(CamelModel):
    orchestration: OrchestrationExecution
    workflow_execution: RunRef | None = Field(
        None, description="merge only: the merge run ({id, status}), or null when no merge run has started."
    )


class OrchestrationSummary(CamelModel):
    """The projects overview's view of one orchestration."""

    id: str
    status: OrchestrationStatus
    current_phase: OrchestrationPhase
    batch_current: int
    batch_total: int
    version: int
    updated_at: datetime
    badge: str


class ProjectSummary(CamelModel):
    project_id: str = Field(description="Folder relative to the server's root dir ('' is the root).")
    name: str
    status: ProjectStatus | None = Field(None, description="The project's phase status (`specflow-nb status --json`).")
    status_error: str | None = None
    orchestration: OrchestrationSummary | None = None
    badge: str | None = None


class ProjectsResponse(CamelModel):
    projects: list[ProjectSummary] = Field(default_factory=list)
    truncated: bool = Field(False, description="True when the scan stopped at its limit.")


class DiffFile(CamelModel):
    """One file of View diff: lines added and deleted (null for a binary file) and its patch."""

    path: str
    added: int | None = None
    deleted: int | None = None
    state: Literal["committed", "uncommitted", "untracked"] = "committed"
    patch: str = ""
    truncated: bool = Field(False, description="The patch was cut at the server's limit.")


class DiffResponse(CamelModel):
    """``GET workflow/orchestrate/diff``: what merging the feature branch into the target brings in."""

    feature_branch: str
    target_branch: str
    files: list[DiffFile] = Field(default_factory=list)
    more_files: int = Field(0, description="Files left out beyond the server's limit.")

    @classmethod
    def of(cls, diff: Any) -> DiffResponse:
        """From :class:`specflow_nb.gitops.BranchDiff`."""
        return cls(
            feature_branch=diff.feature_branch,
            target_branch=diff.target_branch,
            files=[
                DiffFile(
                    path=f.path, added=f.added, deleted=f.deleted, state=f.state, patch=f.patch, truncated=f.truncated
                )
                for f in diff.files
            ],
            more_files=diff.more_files,
        )


class ActivityResponse(CamelModel):
    """``GET workflow/orchestrate/activity``: the live run's Now line (``null`` when no agent run is live)."""

    activity: Activity | None = None
    etag: str = Field("", description="Pass back as since= to wait for the next change.")


class TranscriptResponse(Transcript):
    """``GET workflow/orchestrate/transcript``: ``available: false`` (no content) without read access to files."""


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Route:
    """One REST route: the handlers, the client and the OpenAPI document are all built from this table."""

    method: Literal["GET", "POST"]
    path: str  # below ``{base_url}specflow/api/``
    summary: str
    response: type[CamelModel]
    body: type[RequestModel] | None = None
    status: int = 200
    query: tuple[QueryParam, ...] = ()
    errors: tuple[int, ...] = (400, 403, 404, 409, 413, 503)


@dataclass(frozen=True)
class CommandRoute:
    """One user command's route. Adding a command = a command model in ``machine/commands.py`` + one row here."""

    action: str  # the machine's command ``action``
    path: str
    summary: str
    body: type[TargetRequest] = TargetRequest

    def command(self, request: TargetRequest) -> Command:
        """The request body as the machine's typed command (400 naming the problem when it is not one)."""
        fields = request.model_dump(mode="json", exclude={"project_id", "id", "action"}, exclude_none=True)
        return parse_command({"action": self.action, **fields})


COMMAND_ROUTES: tuple[CommandRoute, ...] = (
    CommandRoute("cancel", "workflow/orchestrate/cancel", "Cancel now (kills the running agent)"),
    CommandRoute("pause", "workflow/orchestrate/pause", "Pause after the current batch"),
    CommandRoute("resume", "workflow/orchestrate/resume", "Resume a paused orchestration", ResumeRequest),
    CommandRoute("merge", "workflow/orchestrate/merge", "Merge (only when waiting_merge)"),
    CommandRoute("recover", "workflow/orchestrate/recover", "Recover from needs_attention", RecoverRequest),
    CommandRoute("go_back", "workflow/orchestrate/go-back", "Go back to an earlier step", GoBackRequest),
    CommandRoute("answer", "workflow/orchestrate/answer", "Answer a run's questions", AnswerRequest),
)
#: The machine's command action -> its route.
COMMAND_ROUTE_OF: dict[str, CommandRoute] = {c.action: c for c in COMMAND_ROUTES}

_Q_PROJECT = QueryParam("projectId", {"type": "string"}, "Project folder relative to the server root.", True)
_Q_ID = QueryParam("id", {"type": "string"}, "Orchestration id (default: the newest, active first).")

ROUTES: tuple[Route, ...] = (
    Route("POST", "workflow/orchestrate", "Start an orchestration", StartResponse, StartRequest, status=201),
    Route(
        "GET",
        "workflow/orchestrate/status",
        "Status; preview=true adds the batch plan, estimate and preflight; since=<version> long-polls",
        StatusResponse,
        query=(
            _Q_PROJECT,
            _Q_ID,
            QueryParam(
                "preview", {"type": "boolean"}, "Add batchPlan, estimate, preflight and projectStatus (the form)."
            ),
            QueryParam(
                "since",
                {"type": "integer", "minimum": -1},
                "Long-poll: answer as soon as the orchestration's version exceeds this, or at the timeout.",
            ),
            QueryParam(
                "knownId",
                {"type": "string"},
                "Long-poll: the orchestration id the caller has; another one (a new start) answers at once.",
            ),
            QueryParam(
                "timeout",
                {"type": "number", "exclusiveMinimum": 0, "maximum": LONG_POLL_MAX_TIMEOUT},
                f"Long-poll timeout in seconds (default {LONG_POLL_DEFAULT_TIMEOUT:g}, max {LONG_POLL_MAX_TIMEOUT:g}).",
            ),
            QueryParam("config", {"type": "string"}, "With preview: an OrchestrationConfig as JSON."),
        ),
        errors=(400, 403, 404, 503),
    ),
    Route(
        "GET",
        "workflow/orchestrate/list",
        "Every orchestration of a project, newest first",
        ListResponse,
        query=(_Q_PROJECT,),
        errors=(400, 403, 404, 503),
    ),
    *(Route("POST", c.path, c.summary, CommandResponse, c.body) for c in COMMAND_ROUTES),
    Route(
        "GET",
        "projects",
        "Projects under the server root with their status and badge",
        ProjectsResponse,
        errors=(400, 403, 503),
    ),
    Route(
        "GET",
        "workflow/orchestrate/diff",
        "View diff: the feature branch against the target, file by file (needs read access to files too)",
        DiffResponse,
        query=(_Q_PROJECT, _Q_ID),
        errors=(400, 403, 404, 503),
    ),
    Route(
        "GET",
        "workflow/orchestrate/activity",
        "Now: the live run's latest tool call in words, turns, cost, last output, tasks; since=<etag> long-polls",
        ActivityResponse,
        query=(
            _Q_PROJECT,
            QueryParam(
                "since",
                {"type": "string"},
                "Long-poll: answer as soon as the activity's etag differs from this, or at the timeout.",
            ),
            QueryParam(
                "timeout",
                {"type": "number", "exclusiveMinimum": 0, "maximum": LONG_POLL_MAX_TIMEOUT},
                f"Long-poll timeout in seconds (default {LONG_POLL_DEFAULT_TIMEOUT:g}, max {LONG_POLL_MAX_TIMEOUT:g}).",
            ),
        ),
        errors=(400, 403, 404, 503),
    ),
    Route(
        "GET",
        "workflow/orchestrate/transcript",
        "A run's transcript (prompt, text, tool calls, result, stderr tail; redacted); content needs read on files",
        TranscriptResponse,
        query=(_Q_PROJECT, QueryParam("runId", {"type": "string"}, "The run's id (its folder's name).", True)),
        errors=(400, 403, 404, 503),
    ),
)


def summarize(ex: OrchestrationExecution) -> OrchestrationSummary:
    return OrchestrationSummary(
        id=ex.id,
        status=ex.status,
        current_phase=ex.current_phase,
        batch_current=ex.batches.current,
        batch_total=ex.batches.total,
        version=ex.version,
        updated_at=ex.updated_at,
        badge=summary.badge_text(ex),
    )
