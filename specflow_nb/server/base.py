"""``SpecflowHandler``: the base of every route (auth resource, who asks, projectId confinement, parsing, errors).

Apart from the routes (:mod:`specflow_nb.server.handlers`) so each holds one concern; it reaches the extension only
through the :class:`SpecflowApp` protocol, so the handlers never import the extension that registers them.
"""

from __future__ import annotations

import errno
import getpass
import json
import math
import os
import re
from http.client import responses
from pathlib import Path
from typing import Any, Protocol, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import BaseModel
from tornado import web

from specflow_nb import policy
from specflow_nb.engine import Engine
from specflow_nb.errors import ConfigError, SpecflowError
from specflow_nb.models import OrchestrationConfig
from specflow_nb.redact import redact_json
from specflow_nb.server.requests import (
    MAX_BODY_BYTES,
    MAX_NUMBER_CHARS,
    REQUEST_PATH_ERRNOS,
    M,
    RequestTooLarge,
    StorageError,
    parse_json,
    validate,
)

AUTH_RESOURCE = "specflow"

_HTTP_HINTS = {
    403: "Ask the server's administrator for the 'specflow' permission (read to watch, write to control).",
    405: "See the OpenAPI document (specflow_nb/server/openapi.json) for each route's method.",
}
_ANON_ID = re.compile(r"[0-9a-f]{32}")


class SpecflowApp(Protocol):
    """What the handlers read of the extension (:class:`specflow_nb.server.extension.SpecflowExtension`), besides
    the settings :mod:`specflow_nb.policy` reads of it."""

    orchestrator_class: str
    scan_depth: int
    projects_scan_limit: int

    @property
    def root_dir(self) -> Path: ...

    @property
    def orchestrator(self) -> Engine: ...

    @property
    def approved_commands_path(self) -> Path: ...


class SpecflowHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every route: body/query parsing, projectId confinement and the error format."""

    auth_resource = AUTH_RESOURCE

    # -- access to the extension and the engine ------------------------------------------------------------

    @property
    def specflow(self) -> SpecflowApp:
        return cast(SpecflowApp, self.extensionapp)

    @property
    def engine(self) -> Engine:
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
