"""Every verb is authenticated and authorized; a read-only identity can watch but not control; XSRF as jupyter does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado import web
from traitlets.config import Config

from specflow_nb.server import api as api_models
from specflow_nb.server.handlers import AUTH_RESOURCE, HANDLERS, CommandHandler, SpecflowHandler, handler_routes

from .openapi_check import check_response

READ_ROUTES = [r for r in api_models.ROUTES if r.method == "GET"]
WRITE_ROUTES = [r for r in api_models.ROUTES if r.method == "POST"]


def _wrapper_chain(method: Any) -> list[str]:
    """Qualified names of the decorator wrappers around a handler method, outermost first."""
    names = []
    while hasattr(method, "__wrapped__"):
        code = method.__code__
        names.append(getattr(code, "co_qualname", code.co_name) + "@" + code.co_filename.replace("\\", "/"))
        method = method.__wrapped__
    return names


def _implemented_verbs(cls: type[web.RequestHandler]) -> list[str]:
    return [
        verb
        for verb in cls.SUPPORTED_METHODS
        if getattr(cls, verb.lower()) is not web.RequestHandler._unimplemented_method and verb != "OPTIONS"
    ]


def _served() -> list[tuple[str, type[SpecflowHandler]]]:
    """(path, handler class) of every registered route, the command routes included."""
    prefix = "specflow/api/"
    return [(route[0][len(prefix) : -2], route[1]) for route in handler_routes()]


def test_every_handler_verb_is_authenticated_then_authorized() -> None:
    checked = 0
    for path, cls in _served():
        assert issubclass(cls, SpecflowHandler)
        assert cls.auth_resource == AUTH_RESOURCE == "specflow"
        verbs = _implemented_verbs(cls)
        assert verbs, f"{cls.__name__} ({path}) implements no verb"
        for verb in verbs:
            chain = _wrapper_chain(getattr(cls, verb.lower()))
            assert len(chain) >= 2, f"{verb} {path}: no decorators ({chain})"
            # outermost: tornado's @web.authenticated; next: jupyter_server's @authorized
            assert chain[0].endswith("tornado/web.py"), f"{verb} {path}: not @web.authenticated first: {chain}"
            assert "authorized" in chain[1] and "jupyter_server/auth/decorator.py" in chain[1], (
                f"{verb} {path}: not @authorized second: {chain}"
            )
            checked += 1
    assert checked == len(api_models.ROUTES)


def test_route_table_matches_handlers() -> None:
    """The OpenAPI route table and the registered handlers describe the same routes and verbs."""
    documented = {(r.path, r.method) for r in api_models.ROUTES}
    served = {(path, verb) for path, cls in _served() for verb in _implemented_verbs(cls)}
    assert documented == served
    paths = [route[0] for route in handler_routes()]
    assert paths == [f"specflow/api/{p}/?" for p in HANDLERS] + [
        f"specflow/api/{c.path}/?" for c in api_models.COMMAND_ROUTES
    ]
    # one handler class serves every command route; adding a command is a row in api.COMMAND_ROUTES
    assert {route[1] for route in handler_routes() if len(route) == 3} == {CommandHandler}


def test_server_sees_no_unauthenticated_verbs(jp_serverapp: Any) -> None:
    """jupyter_server's own audit of the handlers (the check behind allow_unauthenticated_access=False)."""
    for pattern, cls, *_ in handler_routes():
        assert jp_serverapp.web_app._check_handler_auth(pattern, cls) == []


@pytest.mark.parametrize("route", api_models.ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_no_token_is_403(route: api_models.Route, jp_fetch: Any) -> None:
    kwargs: dict[str, Any] = {"method": route.method, "raise_error": False, "headers": {"Authorization": ""}}
    if route.method == "POST":
        kwargs["body"] = json.dumps({"projectId": "p"})
    response = await jp_fetch("specflow", "api", *route.path.split("/"), params={"projectId": "p"}, **kwargs)
    assert response.code == 403
    body = json.loads(response.body)
    assert body["error"]
    check_response(route.method, route.path, 403, body)


class ReadOnlyAuthorizer(Authorizer):
    """An observer: may read 'specflow', may not write it."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "specflow" and action == "write")


class TestReadOnlyIdentity:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["ServerApp"]["authorizer_class"] = ReadOnlyAuthorizer
        return jp_server_config

    @pytest.mark.parametrize("route", WRITE_ROUTES, ids=lambda r: r.path)
    async def test_mutating_routes_are_403(self, route: api_models.Route, api: Any) -> None:
        code, body = await api("POST", route.path, body={"projectId": "p"})
        assert code == 403
        assert "not authorized to write on resource: specflow" in body["error"]
        assert "permission" in body["hint"]
        check_response("POST", route.path, 403, body)

    async def test_reads_still_work(self, api: Any) -> None:
        code, body = await api("GET", "projects")
        assert code == 200, body
        check_response("GET", "projects", 200, body)
        # a read that fails validation is a 400, not a 403: the identity was authorized to read
        code, body = await api("GET", "workflow/orchestrate/status")
        assert code == 400
        assert "projectId" in body["error"]


class TestXsrf:
    """Cookie-authenticated POSTs need the _xsrf token; token-authenticated ones (headers) do not."""

    async def _login_cookies(self, jp_fetch: Any, token: str) -> str:
        # A page request with ?token= logs in and sets the login cookie (and the _xsrf cookie).
        response = await jp_fetch("api", "status", params={"token": token}, headers={"Authorization": ""})
        cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
        assert any(c.startswith("username-") for c in cookies), cookies
        return "; ".join(cookies)

    async def test_cookie_post_without_xsrf_is_rejected(self, jp_fetch: Any, jp_serverapp: Any) -> None:
        cookie = await self._login_cookies(jp_fetch, jp_serverapp.identity_provider.token)
        response = await jp_fetch(
            "specflow",
            "api",
            "workflow",
            "orchestrate",
            "pause",
            method="POST",
            body=json.dumps({"projectId": "p"}),
            headers={"Authorization": "", "Cookie": cookie},
            raise_error=False,
        )
        assert response.code == 403
        assert "_xsrf" in json.loads(response.body)["error"]

    async def test_cookie_post_with_xsrf_passes_the_check(self, jp_fetch: Any, jp_serverapp: Any) -> None:
        cookie = await self._login_cookies(jp_fetch, jp_serverapp.identity_provider.token)
        # the login page (not logged in) hands out an _xsrf cookie, as a browser would receive it
        page = await jp_fetch("login", headers={"Authorization": ""}, raise_error=False, follow_redirects=False)
        cookie += "; " + "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("Set-Cookie"))
        xsrf = next(c.split("=", 1)[1] for c in cookie.split("; ") if c.startswith("_xsrf="))
        response = await jp_fetch(
            "specflow",
            "api",
            "workflow",
            "orchestrate",
            "pause",
            method="POST",
            body="[]",  # past auth and XSRF, the body is validated: 400 proves the request got through
            headers={"Authorization": "", "Cookie": cookie, "X-XSRFToken": xsrf},
            raise_error=False,
        )
        assert response.code == 400, response.body
        assert "JSON object" in json.loads(response.body)["error"]

    async def test_token_header_post_needs_no_xsrf(self, api: Any) -> None:
        code, body = await api("POST", "workflow/orchestrate/pause", body="[]")
        assert code == 400
        assert "JSON object" in body["error"]
