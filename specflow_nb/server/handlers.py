"""REST handlers: one small class per route, each mapping HTTP to one engine call (no orchestration logic here).

Every verb is ``@web.authenticated`` then ``@authorized`` on the resource ``specflow``; jupyter_server derives the
action from the HTTP method (GET → read, POST → write), so a JupyterHub role can grant read-only observers.
Errors are JSON ``{error, details?, hint?}``; a user's mistake is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import errno
import getpass
import json
import math
import os
import re
from http.client import responses
from pathlib import Path
from typing import Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import BaseModel, ValidationError
from tornado import web

from specflow_nb import policy
from specflow_nb.errors import ConfigError, OrchestrationNotFound, SpecflowError
from specflow_nb.models import BatchPlan, OrchestrationConfig, OrchestrationExecution, OrchestrationPhase
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
from specflow_nb.server.extension import SpecflowExtension

M = TypeVar("M", bound=BaseModel)

AUTH_RESOURCE = "specflow"

_HTTP_HINTS = {
    403: "Ask the server's administrator for the 'specflow' permission (read to watch, write to control).",
    405: "See the OpenAPI document (specflow_nb/server/openapi.json) for each route's method.",
}


#: The largest request body (1 MiB): a larger one is a 413 before it is parsed.
MAX_BODY_BYTES = 1 << 20
#: The deepest JSON nesting a request may have (bodies and the ``config`` query): deeper is a 400, never a
#: RecursionError.
MAX_JSON_DEPTH = 64
#: Longest text of a numeric query parameter: a longer one cannot be a sensible version or timeout (no overflow).
MAX_NUMBER_CHARS = 32
#: errno values of path errors a request causes (a name too long, a file where a folder is expected, a link loop):
#: the request's fault, a 400, not a storage error.
REQUEST_PATH_ERRNOS = frozenset(
    e for e in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EINVAL, getattr(errno, "EILSEQ", None)) if e
)
_ANON_ID = re.compile(r"[0-9a-f]{32}")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


#: Commands that lead to agent runs: continued by a user without execute, an orchestration's runs lose the shell.
SHELL_CONTINUING = frozenset({"resume", "recover", "go_back", "answer", "merge"})


class RequestTooLarge(SpecflowError):
    """The request body is over :data:`MAX_BODY_BYTES`."""

    http_status = 413


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text ``raw`` (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes, what: str) -> Any:
    """``raw`` as JSON, with a 400 naming ``what`` for invalid or too deeply nested input."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ConfigError(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.",
            hint="Send a flat JSON object as the OpenAPI document describes.",
            details=[{"loc": [what], "msg": "too deeply nested", "type": "json_depth"}],
        )

    try:
        # NaN and Infinity parse (Python's json does): the models refuse them naming the field (allow_inf_nan=False)
        return json.loads(raw)
    except RecursionError:  # the depth check missed a pathological case: still the request's fault
        raise ConfigError(f"{what} is nested too deeply.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{what} is not valid JSON: {exc}",
            hint="Send a JSON object with Content-Type: application/json.",
        ) from None


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field errors without the offending input (it may hold secrets) or non-JSON context objects."""
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class StorageError(SpecflowError):
    """The server could not read or write a project's files (disk full, read-only folder, I/O error): a 503 with the
    reason, not a 500 — the request was fine and may succeed once the storage is fixed."""

    http_status = 503

    @classmethod
    def from_os_error(cls, exc: OSError) -> StorageError:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return cls(
            f"The server could not read or write the project's files ({reason}{where}).",
            hint="Check the project's .specflow folder: is the disk full, or the folder read-only or owned by "
            "another user? Fix it, then retry; the last saved state is kept.",
            details={"errno": errno.errorcode.get(exc.errno or 0)},
        )


class SpecflowHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every route: body/query parsing, projectId confinement and the error format."""

    auth_resource = AUTH_RESOURCE

    # -- access to the extension and the engine ------------------------------------------------------------

    @property
    def specflow(self) -> SpecflowExtension:
        return cast(SpecflowExtension, self.extensionapp)

    @property
    def engine(self) -> Any:
        return self.specflow.orchestrator

    @property
    def actor(self) -> str:
        """Who asked, for the decision log, stable across requests: the JupyterHub user on a hub; elsewhere the
        identity provider's named user when it has one, else the OS user running the server (a plain token server
        makes up a new anonymous user for every request)."""
        user = self.current_user
        hub_user = getattr(user, "hub_user", None)
        if isinstance(hub_user, dict) and hub_user.get("name"):
            return str(hub_user["name"])
        username = str(getattr(user, "username", None) or "")
        display = str(getattr(user, "name", None) or "")
        anonymous = not username or (_ANON_ID.fullmatch(username) is not None and display.startswith("Anonymous "))
        if not anonymous:
            return username
        try:
            return getpass.getuser()
        except Exception:  # no user name for this uid (a container): still stable
            return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "user"

    @property
    def may_execute(self) -> bool:
        """May this user run code on the server anyway (execute on kernels or terminals, as jupyter_server checks)?"""
        return policy.may_execute(self.authorizer.is_authorized, self, self.current_user)

    def check_commands(self, config: OrchestrationConfig) -> OrchestrationConfig:
        """``config`` with presets resolved; 403 when it chooses what runs and this user may not run code. A choice
        of a user who may is approved, so the engine runs it (now and after a restart)."""
        given = config.model_fields_set
        config = policy.resolve_presets(config, self.specflow)
        chosen = policy.choices(config, given, self.specflow)
        if not chosen:
            return config
        if not self.may_execute:
            raise policy.CommandNotAllowed(
                f"Choosing {', '.join(chosen)} needs permission to run code on this server (execute on kernels or "
                "terminals), which this user does not have.",
                hint="Leave these fields at the server's defaults or pick a preset the preview lists "
                "(permissions.verifyCommands, permissions.agentCommands), or ask the administrator for execute "
                "permission.",
                details={"fields": chosen, "missing": "execute on kernels or terminals"},
            )
        policy.approve_config(self.specflow.approved_commands_path, config)
        return config

    def confine(self, project_id: str) -> Path:
        """The project's folder; raises ProjectOutsideRoot (403) / ProjectNotFound (404) before any engine call."""
        from specflow_nb.project import resolve_project

        return resolve_project(self.specflow.root_dir, project_id)

    # -- parsing ---------------------------------------------------------------------------------------------

    def parse_body(self, model: type[M]) -> M:
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY_BYTES:
            raise RequestTooLarge(
                f"The request body is {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted.",
                hint="Send only the fields the OpenAPI document lists.",
            )
        data = parse_json(raw, "The request body")
        if not isinstance(data, dict):
            raise ConfigError(
                f"The request body must be a JSON object, not {type(data).__name__}.",
                hint='Send e.g. {"projectId": "my-project"}.',
            )
        return validate(model, data)

    def query(self, name: str, *, required: bool = False) -> str | None:
        values = self.get_query_arguments(name)
        if not values:
            if required:
                raise ConfigError(f"Query parameter '{name}' is required.", hint=f"Add ?{name}=… to the URL.")
            return None
        return values[-1]

    def query_number(self, name: str, *, integer: bool, low: float, high: float | None = None) -> float | None:
        text = self.query(name)
        if text is None:
            return None
        try:
            if len(text) > MAX_NUMBER_CHARS:
                raise ValueError(text)
            value = float(int(text)) if integer else float(text)
        except (ValueError, OverflowError):
            raise ConfigError(
                f"Query parameter '{name}' must be {'an integer' if integer else 'a number'}, not {text!r}.",
                details=[{"loc": ["query", name], "msg": "not a number", "type": "number_parsing"}],
            ) from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ConfigError(
                f"Query parameter '{name}' must be {bound}, not {text!r}.",
                details=[{"loc": ["query", name], "msg": f"must be {bound}", "type": "number_range"}],
            )
        return value

    def query_bool(self, name: str) -> bool:
        text = self.query(name)
        if text is None:
            return False
        if text.lower() in ("1", "true", "yes", "on", ""):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"Query parameter '{name}' must be true or false, not {text!r}.")

    # -- output ----------------------------------------------------------------------------------------------

    def send(self, model: BaseModel, status: int = 200) -> None:
        self.set_status(status)
        self.finish(redact_json(model.model_dump_json(by_alias=True)))  # secrets never leave the server

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SpecflowError):
            body = {**exc.to_dict(), "code": type(exc).__name__}
        elif isinstance(exc, web.HTTPError):
            body = {"error": exc.log_message or exc.reason or responses.get(status_code, "Error")}
            if status_code == 403:
                body["code"] = "PermissionDenied"
            if status_code in _HTTP_HINTS:
                body["hint"] = _HTTP_HINTS[status_code]
        else:
            body = {"error": "Internal server error.", "hint": "See the Jupyter server's log for the traceback."}
        self.set_header("Content-Type", "application/json")
        self.finish(redact_json(json.dumps(body)))

    def _handle_request_exception(self, e: BaseException) -> None:
        # A file-system failure (ENOSPC, EROFS, EACCES, EIO …) is the storage's fault, not the code's: a 503 that
        # names it. Connection errors are not storage errors and keep tornado's own handling.
        if isinstance(e, OSError) and e.errno in REQUEST_PATH_ERRNOS:
            # a name too long, a file where a folder should be, a link loop: caused by what the request named
            e = ConfigError(
                f"The request names a path the server cannot use ({e.strerror or e}).",
                hint="Check projectId and id: folder names of at most 255 bytes, folders (not files) on the way.",
                details={"errno": errno.errorcode.get(e.errno or 0)},
            )
        elif isinstance(e, OSError) and not isinstance(e, ConnectionError | TimeoutError):
            self.log.warning("specflow | %s %s: storage error: %s", self.request.method, self.request.path, e)
            e = StorageError.from_os_error(e)
        # A SpecflowError is the user's (or the state's) answer, not a server fault: send its own status, and log
        # one line instead of a traceback.
        if isinstance(e, SpecflowError):
            self.log.info("specflow | %s %s -> %s: %s", self.request.method, self.request.path, e.http_status, e)
            if not self._finished:
                self.send_error(e.http_status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model``; a failure is a 400 that lists each field's problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        problems = "; ".join(f"{'.'.join(d['loc']) or 'body'}: {d['msg']}" for d in details[:3])
        more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
        raise ConfigError(
            f"Invalid request: {problems}{more}",
            details=details,
            hint="See the OpenAPI document (specflow_nb/server/openapi.json) for the request's fields.",
        ) from None


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
    return "cancelled" if ex.status.value == "cancelled" else "failed"


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
        from specflow_nb.server.projects import projects_overview

        ext = self.specflow
        response = await projects_overview(
            ext.root_dir, lambda: ext.orchestrator, depth=ext.projects_scan_depth, limit=ext.projects_scan_limit
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
