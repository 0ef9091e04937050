"""REST handlers: one small class per route, each mapping HTTP to one engine call (no orchestration logic here).

Every verb is ``@web.authenticated`` then ``@authorized`` on the resource ``specflow``; jupyter_server derives the
action from the HTTP method (GET → read, POST → write), so a JupyterHub role can grant read-only observers.
Errors are JSON ``{error, details?, hint?}``; a user's mistake is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from specflow_nb import policy
from specflow_nb.errors import ConfigError, OrchestrationNotFound, SpecflowError
from specflow_nb.models import (
    BatchPlan,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
)
from specflow_nb.redact import redact_json
from specflow_nb.server import api, offload
from specflow_nb.server.api import (
    BatchProgress,
    CommandResponse,
    ListedOrchestration,
    ListResponse,
    RunRef,
    StartRequest,
    StartResponse,
    StatusResponse,
    WorkflowRef,
)
from specflow_nb.server.base import AUTH_RESOURCE, SpecflowApp, SpecflowHandler
from specflow_nb.server.requests import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    RequestTooLarge,
    StorageError,
    json_depth,
    parse_json,
    validate,
    validation_details,
)

__all__ = [
    "AUTH_RESOURCE",
    "HANDLERS",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "CommandHandler",
    "RequestTooLarge",
    "SpecflowApp",
    "SpecflowHandler",
    "StorageError",
    "handler_routes",
    "json_depth",
    "parse_json",
    "validate",
    "validation_details",
]

#: Commands that lead to agent runs: continued by a user without execute, an orchestration's runs lose the shell.
SHELL_CONTINUING = frozenset({"resume", "recover", "go_back", "answer", "merge"})


def run_status(ex: OrchestrationExecution, run_id: str) -> str:
    """running, completed, failed or cancelled: what became of one run of ``ex``."""
    run = ex.current_run
    if run is not None and run.execution_id == run_id:
        if run.live:
            return "running"
        if run.outcome is not None:
            return "completed" if run.outcome.ok else "failed"
    if run_id in ex.killed_run_ids:
        return "cancelled"
    for batch in ex.batches.items:
        if run_id in (batch.workflow_execution_id, batch.healer_execution_id):
            return "completed" if batch.status.is_done else "failed"
    for step in (
        OrchestrationPhase.DESIGN,
        OrchestrationPhase.ANALYZE,
        OrchestrationPhase.VERIFY,
        OrchestrationPhase.MERGE,
    ):
        if getattr(ex.executions, step.value) == run_id:
            return "completed" if ex.step_status[step].value == "completed" else "failed"
    return "cancelled" if ex.status is OrchestrationStatus.CANCELLED else "failed"


def workflow_ref(ex: OrchestrationExecution, project: Path | None = None) -> WorkflowRef:
    refs = ex.executions
    phase = ex.current_phase
    execution_id: str | None = None
    if phase is OrchestrationPhase.IMPLEMENT:
        execution_id = refs.implement[-1] if refs.implement else None
    elif phase is not OrchestrationPhase.COMPLETE:
        execution_id = getattr(refs, phase.value)
    skill = None
    if project is not None and phase is not OrchestrationPhase.COMPLETE:
        from specflow_nb.agent.prompts import prompt_agent, prompt_source

        with prompt_agent(ex.config.agent):
            skill = prompt_source(project, phase.value).skill
    session = ex.current_run.session_id if ex.current_run and ex.current_run.execution_id == execution_id else None
    return WorkflowRef(
        step=phase,
        execution_id=execution_id,
        id=execution_id,
        skill=skill,
        status=run_status(ex, execution_id) if execution_id else None,
        session_id=session,
    )


def listed(ex: OrchestrationExecution) -> ListedOrchestration:
    items = ex.batches.items
    progress = BatchProgress(completed=sum(1 for b in items if b.status.is_done), total=len(items))
    return ListedOrchestration.model_validate({**ex.model_dump(), "batch_progress": progress})


# ---------------------------------------------------------------------------------------------------------------
# Routes


class StartHandler(SpecflowHandler):
    """POST workflow/orchestrate → 201 {orchestration, workflow, batchPlan}."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        req = self.parse_body(StartRequest)
        project = self.confine(req.project_id)
        config = self.check_commands(req.config)
        approvals = self.specflow.approved_commands_path
        started_id = None
        if self.may_execute:  # the new orchestration's runs get a shell (specflow_nb.policy, "the agent's shell")
            policy.grant_shell_pending(approvals, project)
        try:
            ex = await self.engine.start(req.project_id, config, actor=self.actor)
            started_id = ex.id
        finally:
            if self.may_execute:
                policy.settle_shell(approvals, project, started_id)
        try:
            preview = await offload.preview(
                self.engine, self.specflow.orchestrator_class, project, req.project_id, config
            )
            plan = preview.batch_plan or BatchPlan()
        except SpecflowError as exc:
            # The orchestration has started (e.g. design will write tasks.md): an unreadable plan must not turn
            # the 201 into an error the client would retry.
            self.log.info("specflow | no batch plan yet for %r: %s", req.project_id, exc)
            plan = BatchPlan()
        self.send(StartResponse(orchestration=ex, workflow=workflow_ref(ex, project), batch_plan=plan), status=201)


class StatusHandler(SpecflowHandler):
    """GET workflow/orchestrate/status: the state; ``preview=true`` adds the form's data; ``since`` long-polls.

    The live channel is a long-poll rather than server-sent events: it passes every proxy (JupyterHub's
    configurable-http-proxy, nginx buffering) unchanged, needs no extra client library, and a reconnect is just
    the next request. The answer always has the current state; the client compares ``version``.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        project_id = self.query("projectId", required=True) or ""
        orchestration_id = self.query("id")
        preview = self.query_bool("preview")
        since = self.query_number("since", integer=True, low=-1)
        known_id = self.query("knownId")
        timeout = self.query_number("timeout", integer=False, low=0, high=api.LONG_POLL_MAX_TIMEOUT)
        config_text = self.query("config")
        config = OrchestrationConfig()
        if config_text is not None:
            if len(config_text) > MAX_BODY_BYTES:
                raise RequestTooLarge(f"Query parameter 'config' is over {MAX_BODY_BYTES} bytes.")
            config_data = parse_json(config_text.encode("utf-8", "surrogatepass"), "Query parameter 'config'")
            config = validate(OrchestrationConfig, config_data)
        project = self.confine(project_id)

        if since is not None:
            wait = api.LONG_POLL_DEFAULT_TIMEOUT if timeout is None else timeout
            await self.engine.wait_for_change(project_id, int(since), wait, known_id=known_id)
        ex = self.engine.status(project_id, orchestration_id)
        if ex is None and orchestration_id is not None:
            raise OrchestrationNotFound(
                f"No orchestration {orchestration_id!r} in project {project_id!r}.",
                hint="List the project's orchestrations with GET workflow/orchestrate/list.",
            )
        owner = None
        if ex is not None and ex.status.is_active:
            owner = self.engine.owner_of(project_id, ex.id)
        if not preview:
            self.send(StatusResponse(orchestration=ex, owner=owner))
            return
        permissions = policy.permissions(self.may_execute, self.specflow)
        # reading tasks.md, planning and serializing a big phase take seconds: off the event loop (a worker process
        # for a big tasks.md, else a thread), so the server keeps answering every other request meanwhile
        found = await offload.preview(self.engine, self.specflow.orchestrator_class, project, project_id, config)

        def build() -> str:
            response = StatusResponse.with_preview(found, orchestration=ex, owner=owner, permissions=permissions)
            return redact_json(response.model_dump_json(by_alias=True))

        self.finish(await asyncio.to_thread(build))


class ListHandler(SpecflowHandler):
    """GET workflow/orchestrate/list → {orchestrations: [...]} newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        project_id = self.query("projectId", required=True) or ""
        self.confine(project_id)
        items = self.engine.list(project_id)
        self.send(ListResponse(orchestrations=[listed(ex) for ex in items], total=len(items)))


class CommandHandler(SpecflowHandler):
    """Every POST …/<command> route: body → the machine's typed command → the engine (which hands it to the
    orchestration's owner when that is another host) → {orchestration}. One instance per row of
    ``api.COMMAND_ROUTES``."""

    route: api.CommandRoute

    def initialize(self, name: str, *args: Any, route: api.CommandRoute | None = None, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)
        assert route is not None
        self.route = route

    @web.authenticated
    @authorized
    async def post(self) -> None:
        req = self.parse_body(self.route.body)
        self.confine(req.project_id)
        command = self.route.command(req)
        if command.action in SHELL_CONTINUING and not self.may_execute:
            # a user without execute continues it: its next runs get no shell (before the command, which may spawn)
            target = self.engine.status(req.project_id, req.id)
            if target is not None:
                policy.revoke_shell(self.specflow.approved_commands_path, target.id)
        ex = await self.engine.command(req.project_id, command, orchestration_id=req.id, actor=self.actor)
        merge_run = None
        if command.action == "merge" and ex.executions.merge:
            merge_run = RunRef(id=ex.executions.merge, status=run_status(ex, ex.executions.merge))
        self.send(CommandResponse(orchestration=ex, workflow_execution=merge_run))


class ProjectsHandler(SpecflowHandler):
    """GET projects → every project folder under the root with its status and active orchestration."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from specflow_nb.projects_view import projects_overview

        ext = self.specflow
        response = await projects_overview(
            ext.root_dir, lambda: ext.orchestrator, depth=ext.scan_depth, limit=ext.projects_scan_limit
        )
        self.send(response)


class DiffHandler(SpecflowHandler):
    """GET workflow/orchestrate/diff → the feature branch against the target, file by file with patches.

    A diff shows the project's files, so besides ``specflow`` read access it needs what reading files needs on this
    server: jupyter_server's ``contents`` read permission (a read-only observer role without it gets a 403).
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        import asyncio

        from specflow_nb import gitops

        if not self.authorizer.is_authorized(self, self.current_user, "read", "contents"):
            raise web.HTTPError(403, "Viewing the diff needs permission to read the project's files.")
        project_id = self.query("projectId", required=True) or ""
        orchestration_id = self.query("id")
        project = self.confine(project_id)
        ex = self.engine.status(project_id, orchestration_id)
        if ex is None and orchestration_id is not None:
            raise OrchestrationNotFound(f"No orchestration {orchestration_id!r} in project {project_id!r}.")

        def compute() -> api.DiffResponse:
            feature = (ex.feature_branch if ex else None) or gitops.current_branch(project)
            target = (ex.config.target_branch if ex else None) or gitops.default_branch(project)
            if not feature or not target:
                raise ConfigError(
                    "No diff: the project has no feature branch or no target branch.",
                    hint="Check out the phase's branch; set targetBranch when the repository has no main/master.",
                )
            return api.DiffResponse.of(gitops.branch_diff(project, feature, target))

        self.send(await asyncio.to_thread(compute))


class ActivityHandler(SpecflowHandler):
    """GET workflow/orchestrate/activity → the live run's Now line, derived from its run folder by this host (owner
    or observer alike); ``since=<etag>`` waits for the next change (the run folder's file events)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from specflow_nb.activity import wait_activity

        project_id = self.query("projectId", required=True) or ""
        since = self.query("since")
        timeout = self.query_number("timeout", integer=False, low=0, high=api.LONG_POLL_MAX_TIMEOUT)
        project = self.confine(project_id)
        wait = 0.0 if since is None else (api.LONG_POLL_DEFAULT_TIMEOUT if timeout is None else timeout)
        act = await wait_activity(project, lambda: self.engine.status(project_id), since, wait)
        self.send(api.ActivityResponse(activity=act, etag=act.etag if act is not None else ""))


class TranscriptHandler(SpecflowHandler):
    """GET workflow/orchestrate/transcript → a run's transcript, redacted. Its content shows the project's files and
    the agent's work, so it needs jupyter_server's ``contents`` read permission too; without it the answer says the
    run exists (``available: false``) and nothing more."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        import asyncio

        from specflow_nb import transcript

        project_id = self.query("projectId", required=True) or ""
        project = self.confine(project_id)  # a project outside the root is a 403 whatever else the query says
        run_id = self.query("runId", required=True) or ""
        if not self.authorizer.is_authorized(self, self.current_user, "read", "contents"):
            found = (project / transcript.WORKFLOWS / run_id).is_dir() and "/" not in run_id
            reason = "Reading a transcript needs permission to read the project's files."
            t = transcript.unavailable(run_id, project_id, reason if found else "No such run.")
        else:
            t = await asyncio.to_thread(transcript.build, project, run_id, project_id)
        if not t.available and t.reason == "No such run.":
            raise OrchestrationNotFound(f"No run {run_id!r} in project {project_id!r}.")
        self.send(api.TranscriptResponse.model_validate(t.model_dump(mode="json", by_alias=True)))


#: Route path (below ``specflow/api/``) → handler class; the command routes come from ``api.COMMAND_ROUTES``.
HANDLERS: dict[str, type[SpecflowHandler]] = {
    "workflow/orchestrate": StartHandler,
    "workflow/orchestrate/status": StatusHandler,
    "workflow/orchestrate/list": ListHandler,
    "projects": ProjectsHandler,
    "workflow/orchestrate/diff": DiffHandler,
    "workflow/orchestrate/activity": ActivityHandler,
    "workflow/orchestrate/transcript": TranscriptHandler,
}


def handler_routes() -> list[tuple[Any, ...]]:
    """``(pattern, handler[, kwargs])`` for ``ExtensionApp.handlers`` (the server prepends its base URL)."""
    routes: list[tuple[Any, ...]] = [(f"{api.API_PREFIX}/{path}/?", cls) for path, cls in HANDLERS.items()]
    routes += [(f"{api.API_PREFIX}/{c.path}/?", CommandHandler, {"route": c}) for c in api.COMMAND_ROUTES]
    return routes
