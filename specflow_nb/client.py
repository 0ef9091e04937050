"""A typed client of the specflow REST API that finds its Jupyter server by itself.

Discovery order (first match wins):

1. ``SpecflowClient(url=..., token=...)`` given explicitly;
2. the environment override ``SPECFLOW_SERVER_URL`` (and ``SPECFLOW_SERVER_TOKEN``);
3. JupyterHub: ``JUPYTERHUB_SERVICE_URL`` (the user's server, base path included) and ``JUPYTERHUB_API_TOKEN`` —
   both are set in every kernel a JupyterHub single-user server starts;
4. the running-server files jupyter_server writes (``jpserver-*.json`` in ``jupyter_runtime_dir()``): live
   servers only (pid alive), the one whose ``root_dir`` contains the caller's working directory first, newest
   first; when none contains it, the newest live server.

Errors are the engine's own classes (``OrchestrationConflict``, ``ProjectOutsideRoot`` …, re-raised from the
response's ``code``), plus :class:`NoServerFound`, :class:`PermissionDenied` and :class:`ServerUnavailable`.
This module never imports jupyter_server: it runs in a plain kernel or terminal.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel

from specflow_nb import errors
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import (
    CancelCommand,
    Command,
    MergeCommand,
    PauseCommand,
    RecoverCommand,
    ResumeCommand,
    parse_command,
)
from specflow_nb.models import (
    BudgetChange,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    RecoveryOption,
)
from specflow_nb.server.api import (
    API_PREFIX,
    COMMAND_ROUTE_OF,
    LONG_POLL_DEFAULT_TIMEOUT,
    ActivityResponse,
    CommandResponse,
    DiffResponse,
    ErrorBody,
    ListResponse,
    ProjectsResponse,
    ProjectSummary,
    StartResponse,
    StatusResponse,
    TranscriptResponse,
)

M = TypeVar("M", bound=BaseModel)

ENV_URL = "SPECFLOW_SERVER_URL"
ENV_TOKEN = "SPECFLOW_SERVER_TOKEN"
HUB_URL = "JUPYTERHUB_SERVICE_URL"
HUB_TOKEN = "JUPYTERHUB_API_TOKEN"

#: Connection retries of ``watch``/``iter_updates``: delays in seconds, then ServerUnavailable.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


class NoServerFound(SpecflowError):
    """No Jupyter server with the specflow extension could be found."""

    http_status = 503
    exit_code = 2


class ServerUnavailable(SpecflowError):
    """The server was found but cannot be reached (stopped, restarting, network down)."""

    http_status = 503
    exit_code = 2


class PermissionDenied(SpecflowError):
    """The server refused the request for this identity (e.g. a read-only JupyterHub role)."""

    http_status = 403


_START_HINT = (
    "Start one in the project's folder or above it with `jupyter server` (or `jupyter lab`), "
    f"or point the client at one with {ENV_URL}=http://host:port/base/ and {ENV_TOKEN}=<token>."
)


# ---------------------------------------------------------------------------------------------------------------
# Discovery


@dataclass(frozen=True)
class ServerInfo:
    """Where the server is: ``url`` includes the base path and ends with ``/``."""

    url: str
    token: str | None
    source: str  # "explicit" | "env" | "jupyterhub" | "runtime-file"
    root_dir: Path | None = None


def _normalize_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise NoServerFound(f"Not a server URL: {url!r}", hint="Use e.g. http://127.0.0.1:8888/ (with base path).")
    host = parts.netloc
    # A server bound to every interface (0.0.0.0, JupyterHub's default) is reached on the loopback.
    if parts.hostname in ("0.0.0.0", "::", ""):
        host = host.replace(parts.hostname or "", "127.0.0.1", 1)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, host, path, "", ""))


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    except OSError:
        return False
    return True


def runtime_servers(runtime_dir: Path | None = None) -> list[tuple[dict[str, Any], float]]:
    """The live servers' ``jpserver-*.json`` contents with their mtime, newest first (dead pids skipped)."""
    if runtime_dir is None:
        from jupyter_core.paths import jupyter_runtime_dir

        runtime_dir = Path(jupyter_runtime_dir())
    found = []
    for path in Path(runtime_dir).glob("jpserver-*.json"):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime
        except (OSError, ValueError):
            continue  # a server writing or removing its file right now
        if isinstance(info, dict) and info.get("url") and _pid_alive(info.get("pid")):
            found.append((info, mtime))
    found.sort(key=lambda pair: pair[1], reverse=True)
    return found


def _contains(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def discover_server(
    url: str | None = None,
    token: str | None = None,
    *,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    runtime_dir: Path | None = None,
) -> ServerInfo:
    """Find the server (see the module docstring for the order); raises :class:`NoServerFound`."""
    env = os.environ if environ is None else environ
    if url:
        return ServerInfo(_normalize_url(url), token or env.get(ENV_TOKEN) or env.get(HUB_TOKEN), "explicit")
    if env.get(ENV_URL):
        return ServerInfo(_normalize_url(env[ENV_URL]), token or env.get(ENV_TOKEN), "env")
    if env.get(HUB_URL):
        # A hub's single-user server serves JUPYTERHUB_ROOT_DIR when the spawner sets one, else the user's home
        # (its default notebook_dir): knowing the root lets a terminal map a folder to its projectId.
        hub_root = env.get("JUPYTERHUB_ROOT_DIR") or env.get("HOME")
        return ServerInfo(
            _normalize_url(env[HUB_URL]),
            token or env.get(HUB_TOKEN),
            "jupyterhub",
            Path(hub_root).expanduser() if hub_root else None,
        )

    here = Path.cwd() if cwd is None else Path(cwd)
    servers = runtime_servers(runtime_dir)
    containing = [
        info for info, _ in servers if info.get("root_dir") and _contains(Path(info["root_dir"]).expanduser(), here)
    ]
    chosen = containing[0] if containing else (servers[0][0] if servers else None)
    if chosen is None:
        raise NoServerFound("No running Jupyter server found.", hint=_START_HINT)
    root = Path(chosen["root_dir"]).expanduser() if chosen.get("root_dir") else None
    return ServerInfo(_normalize_url(chosen["url"]), token or chosen.get("token") or None, "runtime-file", root)


# ---------------------------------------------------------------------------------------------------------------
# Errors from responses


def error_from_response(response: httpx.Response) -> SpecflowError:
    """The exception a 4xx/5xx answer stands for: the engine's class when the server named it."""
    try:
        body = ErrorBody.model_validate(response.json())
    except (ValueError, TypeError):
        body = ErrorBody(error=f"HTTP {response.status_code} {response.reason_phrase} from {response.request.url}")
    cls: type[SpecflowError] | None = None
    if body.code == "PermissionDenied":
        cls = PermissionDenied
    elif body.code:
        candidate = getattr(errors, body.code, None)
        if isinstance(candidate, type) and issubclass(candidate, SpecflowError):
            cls = candidate
    if cls is None:
        cls = {403: PermissionDenied, 404: errors.ProjectNotFound, 409: errors.OrchestrationConflict}.get(
            response.status_code, ServerUnavailable if response.status_code >= 500 else SpecflowError
        )
    hint = body.hint
    if response.status_code == 404 and body.code is None:
        hint = hint or "Is the specflow extension enabled? Check `jupyter server extension list`."
    return cls(body.error, hint=hint, details=body.details)


# ---------------------------------------------------------------------------------------------------------------
# The client


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)


class SpecflowClient:
    """Typed methods for every route of ``{base_url}specflow/api/``.

    ``url``/``token`` override discovery. Every method raises a :class:`SpecflowError` subclass on failure.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        cwd: Path | None = None,
    ) -> None:
        self.server = discover_server(url, token, cwd=cwd)
        self.timeout = timeout
        headers = {"Accept": "application/json"}
        if self.server.token:
            headers["Authorization"] = f"token {self.server.token}"
        self._headers = headers
        self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)

    @property
    def api_url(self) -> str:
        return f"{self.server.url}{API_PREFIX}/"

    def project_id_for(self, path: Path) -> str:
        """The projectId of a folder: its path relative to the server's root (needs a runtime-file discovery)."""
        if self.server.root_dir is None:
            raise errors.ConfigError(
                "The server's root folder is unknown (found through a URL, not its runtime file).",
                hint="Pass the project id: the folder path relative to the server's root.",
            )
        root = self.server.root_dir.resolve()
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            raise errors.ProjectOutsideRoot(
                f"{resolved} is outside the server's root folder {root}",
                hint="Start the server in a folder that contains the project.",
            )
        rel = resolved.relative_to(root).as_posix()
        return "" if rel == "." else rel

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SpecflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, model: type[M], *, params: dict[str, Any] | None = None, body: Any = None
    ) -> M:
        try:
            response = self._http.request(method, path, params=params, json=body)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"Cannot reach the Jupyter server at {self.server.url}: {exc}", hint=_START_HINT
            ) from exc
        return self._parse(response, model)

    @staticmethod
    def _parse(response: httpx.Response, model: type[M]) -> M:
        if response.status_code >= 400:
            raise error_from_response(response)
        return model.model_validate(response.json())

    # -- routes ------------------------------------------------------------------------------------------------

    def start(self, project_id: str, config: OrchestrationConfig | None = None) -> StartResponse:
        """Start an orchestration (POST workflow/orchestrate) → orchestration, workflow and batchPlan."""
        body = {"projectId": project_id, "config": _dump(config or OrchestrationConfig())}
        return self._request("POST", "workflow/orchestrate", StartResponse, body=body)

    def status(self, project_id: str, id: str | None = None) -> OrchestrationExecution | None:
        """The project's orchestration (``id`` or the newest, active first); None when it has none."""
        params = {"projectId": project_id, **({"id": id} if id else {})}
        return self._request("GET", "workflow/orchestrate/status", StatusResponse, params=params).orchestration

    def status_with_owner(self, project_id: str, id: str | None = None) -> StatusResponse:
        """The whole status answer: the orchestration and the engine that drives it (``owner``)."""
        params = {"projectId": project_id, **({"id": id} if id else {})}
        return self._request("GET", "workflow/orchestrate/status", StatusResponse, params=params)

    def preview(self, project_id: str, config: OrchestrationConfig | None = None) -> StatusResponse:
        """What the form shows: batchPlan, preflight and projectStatus (plus the current orchestration)."""
        params = {"projectId": project_id, "preview": "true"}
        if config is not None:
            params["config"] = config.model_dump_json(by_alias=True)
        return self._request("GET", "workflow/orchestrate/status", StatusResponse, params=params)

    def list(self, project_id: str) -> list[OrchestrationExecution]:
        """Every orchestration of the project, newest first."""
        params = {"projectId": project_id}
        return list(self._request("GET", "workflow/orchestrate/list", ListResponse, params=params).orchestrations)

    def command(
        self, project_id: str, command: Command | Mapping[str, Any], id: str | None = None
    ) -> OrchestrationExecution:
        """Send one typed command (the machine's model, or a dict it validates) to its route; the server hands it
        to the orchestration's owner and answers with what the owner did."""
        cmd = command if isinstance(command, BaseModel) else parse_command(dict(command))
        route = COMMAND_ROUTE_OF[cmd.action]
        fields = cmd.model_dump(mode="json", exclude={"action"}, exclude_none=True)
        body = {"projectId": project_id, "id": id, **fields}
        return self._request("POST", route.path, CommandResponse, body=body).orchestration

    def pause(self, project_id: str, id: str | None = None) -> OrchestrationExecution:
        """Pause after the current batch."""
        return self.command(project_id, PauseCommand(), id)

    def resume(self, project_id: str, id: str | None = None, *, budget: Any = None) -> OrchestrationExecution:
        """Resume; ``budget`` (limits, as a dict or a BudgetConfig): new limits first, the others stay."""
        return self.command(
            project_id, ResumeCommand(budget=BudgetChange.model_validate(budget) if budget else None), id
        )

    def cancel(self, project_id: str, id: str | None = None) -> OrchestrationExecution:
        """Cancel now: the running agent is stopped."""
        return self.command(project_id, CancelCommand(), id)

    def merge(self, project_id: str, id: str | None = None) -> OrchestrationExecution:
        """Merge (only when the orchestration is waiting_merge)."""
        return self.command(project_id, MergeCommand(), id)

    def recover(
        self, project_id: str, option: RecoveryOption | str, id: str | None = None, *, budget: Any = None
    ) -> OrchestrationExecution:
        """Recover from needs_attention: retry, skip or abort; ``budget`` as for :meth:`resume`."""
        limits = BudgetChange.model_validate(budget) if budget else None
        return self.command(project_id, RecoverCommand(option=RecoveryOption(option), budget=limits), id)

    def go_back(self, project_id: str, step: OrchestrationPhase | str, id: str | None = None) -> OrchestrationExecution:
        """Return to an earlier step (design, analyze, implement, verify)."""
        return self.command(project_id, {"action": "go_back", "step": OrchestrationPhase(step).value}, id)

    def answer(self, project_id: str, answers: Mapping[str, str], id: str | None = None) -> OrchestrationExecution:
        """Answer the questions of a run waiting for input (question id or text → answer)."""
        return self.command(project_id, {"action": "answer", "answers": dict(answers)}, id)

    def projects(self) -> builtins.list[ProjectSummary]:
        """Every project under the server's root with its status and badge."""
        return self._request("GET", "projects", ProjectsResponse).projects

    def diff(self, project_id: str, id: str | None = None) -> DiffResponse:
        """View diff: the feature branch against the target branch, file by file (needs read access to files)."""
        params = {"projectId": project_id, **({"id": id} if id else {})}
        return self._request("GET", "workflow/orchestrate/diff", DiffResponse, params=params)

    def activity(
        self, project_id: str, since: str | None = None, *, timeout: float = LONG_POLL_DEFAULT_TIMEOUT
    ) -> ActivityResponse:
        """Now: the live run's latest tool call in words, turns, cost, last output, tasks (``activity`` is None when
        no agent run is live). With ``since`` (an etag) the server waits up to ``timeout`` s for a change."""
        params: dict[str, Any] = {"projectId": project_id}
        if since is not None:
            params.update(since=since, timeout=timeout)
            response = self._http.get("workflow/orchestrate/activity", params=params, timeout=timeout + self.timeout)
            return self._parse(response, ActivityResponse)
        return self._request("GET", "workflow/orchestrate/activity", ActivityResponse, params=params)

    async def watch_activity(
        self, project_id: str, *, poll_timeout: float = LONG_POLL_DEFAULT_TIMEOUT
    ) -> AsyncIterator[ActivityResponse]:
        """Yield the activity now, then on every change (long-poll ``activity?since=<etag>``); runs until the caller
        stops. Network errors are raised (the caller reconnects)."""
        etag: str | None = None
        async with httpx.AsyncClient(
            base_url=self.api_url, headers=self._headers, timeout=poll_timeout + self.timeout
        ) as http:
            while True:
                params: dict[str, Any] = {"projectId": project_id}
                if etag is not None:
                    params.update(since=etag, timeout=poll_timeout)
                response = await http.get("workflow/orchestrate/activity", params=params)
                result = self._parse(response, ActivityResponse)
                if result.etag != etag:
                    etag = result.etag
                    yield result

    def transcript(self, project_id: str, run_id: str) -> TranscriptResponse:
        """A run's transcript (redacted); ``available`` is False without read access to the project's files."""
        params = {"projectId": project_id, "runId": run_id}
        return self._request("GET", "workflow/orchestrate/transcript", TranscriptResponse, params=params)

    # -- live updates ------------------------------------------------------------------------------------------

    def _poll_params(
        self, project_id: str, id: str | None, since: int, timeout: float, known_id: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"projectId": project_id, "since": since, "timeout": timeout}
        if id:
            params["id"] = id
        elif known_id:  # a new orchestration (another id) wakes the poll even when its version is lower
            params["knownId"] = known_id
        return params

    async def watch(
        self,
        project_id: str,
        since: int = 0,
        *,
        id: str | None = None,
        poll_timeout: float = LONG_POLL_DEFAULT_TIMEOUT,
        until_finished: bool = True,
    ) -> AsyncIterator[OrchestrationExecution]:
        """Yield the orchestration on every change (long-poll ``status?since=``), from ``since`` on.

        Ends after a finished (terminal) state when ``until_finished``. A lost connection is retried with
        backoff (``RETRY_DELAYS``), then :class:`ServerUnavailable` is raised.
        """
        tracker = _Tracker(since)
        async with httpx.AsyncClient(
            base_url=self.api_url, headers=self._headers, timeout=poll_timeout + self.timeout
        ) as http:
            failures = 0
            while True:
                params = self._poll_params(project_id, id, tracker.since, poll_timeout, tracker.seen_id)
                try:
                    response = await http.get("workflow/orchestrate/status", params=params)
                    if response.status_code >= 500:
                        raise error_from_response(response)
                except (httpx.TransportError, ServerUnavailable) as exc:
                    if failures >= len(RETRY_DELAYS):
                        raise _lost(self.server.url, exc) from exc
                    await asyncio.sleep(RETRY_DELAYS[failures])
                    failures += 1
                    continue
                failures = 0
                ex = self._parse(response, StatusResponse).orchestration
                if tracker.is_new(ex):
                    assert ex is not None
                    yield ex
                    if until_finished and ex.status.is_terminal:
                        return

    def iter_updates(
        self,
        project_id: str,
        since: int = 0,
        *,
        id: str | None = None,
        poll_timeout: float = LONG_POLL_DEFAULT_TIMEOUT,
        until_finished: bool = True,
    ) -> Iterator[OrchestrationExecution]:
        """The blocking twin of :meth:`watch` (for scripts and the terminal)."""
        tracker = _Tracker(since)
        failures = 0
        while True:
            params = self._poll_params(project_id, id, tracker.since, poll_timeout, tracker.seen_id)
            try:
                response = self._http.get(
                    "workflow/orchestrate/status", params=params, timeout=poll_timeout + self.timeout
                )
                if response.status_code >= 500:
                    raise error_from_response(response)
            except (httpx.TransportError, ServerUnavailable) as exc:
                if failures >= len(RETRY_DELAYS):
                    raise _lost(self.server.url, exc) from exc
                time.sleep(RETRY_DELAYS[failures])
                failures += 1
                continue
            failures = 0
            ex = self._parse(response, StatusResponse).orchestration
            if tracker.is_new(ex):
                assert ex is not None
                yield ex
                if until_finished and ex.status.is_terminal:
                    return


class _Tracker:
    """Which state the watcher has seen: a change is a new (id, version) pair."""

    def __init__(self, since: int) -> None:
        self.since = since
        self.seen: tuple[str, int] | None = None

    @property
    def seen_id(self) -> str | None:
        return self.seen[0] if self.seen else None

    def is_new(self, ex: OrchestrationExecution | None) -> bool:
        if ex is None:
            return False
        key = (ex.id, ex.version)
        other = self.seen is not None and ex.id != self.seen[0]
        if key == self.seen or (not other and ex.version <= self.since):
            # nothing newer than what the caller already has (the long-poll timed out)
            return False
        self.seen = key
        self.since = ex.version
        return True


def _lost(url: str, exc: BaseException) -> ServerUnavailable:
    return ServerUnavailable(
        f"Lost the connection to the Jupyter server at {url} ({exc}); gave up after {len(RETRY_DELAYS)} retries.",
        hint="Check that the server is still running, then watch again; the orchestration itself keeps going.",
    )
