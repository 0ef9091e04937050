"""Fixtures for the server extension's tests: a real Jupyter server (pytest-jupyter) with specflow enabled.

pytest-jupyter's fixtures are imported here rather than enabled as a plugin in the root conftest: its autouse
fixtures (an event loop, a ServerApp cleanup) would otherwise run around every test of the engine too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from specflow_nb.server.extension import SpecflowExtension

Fetch = Callable[..., Awaitable[HTTPResponse]]


@pytest.fixture
def jp_server_config() -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"specflow_nb.server": True},
                # a broken extension must fail the test, not just log a warning
                "reraise_server_extension_failures": True,
            }
        }
    )


@pytest.fixture
def specflow_ext(jp_serverapp: Any) -> SpecflowExtension:
    """The extension instance the test server loaded."""
    ext = jp_serverapp.web_app.settings["specflow"]
    assert isinstance(ext, SpecflowExtension)
    return ext


@pytest.fixture
def api(jp_fetch: Fetch) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """``await api("GET", "workflow/orchestrate/status", params=…)`` or ``api("POST", path, body=…)`` → (code, json).

    ``body`` may be a dict (sent as JSON) or a str/bytes (sent as is, for junk-input tests).
    """

    async def call(method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, **kw: Any):
        kwargs: dict[str, Any] = {"method": method, "raise_error": False, **kw}
        if method == "POST":
            kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body if body is not None else {})
        response = await jp_fetch("specflow", "api", *path.split("/"), params=params, **kwargs)
        text = response.body.decode() if response.body else ""
        if "json" not in response.headers.get("Content-Type", ""):
            return response.code, text
        return response.code, (json.loads(text) if text else None)

    return call
