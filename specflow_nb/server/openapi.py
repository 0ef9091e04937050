"""The OpenAPI 3.1 document of the REST API, generated from :mod:`specflow_nb.server.api` (routes and models).

``openapi.json`` beside this file is the committed output; a test fails when it is out of date. Regenerate with
``python -m specflow_nb.server.openapi``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from specflow_nb.models import Preview
from specflow_nb.server.api import API_PREFIX, ROUTES, ErrorBody
from specflow_nb.version import __version__

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
_REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Invalid request (body, query or state precondition such as a missing tasks.md)",
    403: "Not authorized, or projectId outside the server root",
    404: "Project or orchestration not found",
    409: "An orchestration is already in progress, or the command is not valid in its state",
    413: "The request body is larger than 1 MiB",
    503: "The project's state could not be read or written (disk full, read-only folder): fix it and retry",
}


def build_openapi() -> dict[str, Any]:
    """The document as a dict (deterministic: same models → same JSON)."""
    # Preview: the engine's preview as a whole (``Orchestrator.preview``, ``orchestrate start --dry-run --json``);
    # ``status?preview=true`` spreads its parts into StatusResponse.
    models: list[Any] = [(ErrorBody, "serialization"), (Preview, "serialization")]
    for route in ROUTES:
        models.append((route.response, "serialization"))
        if route.body is not None:
            models.append((route.body, "validation"))
    keys, defs = models_json_schema(models, ref_template=_REF)

    paths: dict[str, Any] = {}
    for route in ROUTES:
        op: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{route.path.replace('/', '_').replace('-', '_')}",
            "summary": route.summary,
            "security": [{"token": []}, {"cookie": []}],
            "responses": {
                str(route.status): {
                    "description": "OK" if route.status == 200 else "Created",
                    "content": {"application/json": {"schema": keys[(route.response, "serialization")]}},
                },
                **{
                    str(code): {
                        "description": _ERROR_TEXT[code],
                        "content": {"application/json": {"schema": keys[(ErrorBody, "serialization")]}},
                    }
                    for code in route.errors
                },
            },
        }
        if route.query:
            op["parameters"] = [
                {
                    "name": q.name,
                    "in": "query",
                    "required": q.required,
                    "description": q.description,
                    "schema": q.schema,
                }
                for q in route.query
            ]
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(route.body, "validation")]}},
            }
        paths.setdefault(f"/{API_PREFIX}/{route.path}", {})[route.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "specflow_nb REST API",
            "version": __version__,
            "description": (
                "Served by the specflow Jupyter server extension below the server's base URL. Authenticate like "
                "any Jupyter API call (Authorization: token <token>, or the session cookie plus the _xsrf token "
                "for POSTs). Read routes need the 'read' permission on the 'specflow' resource, the others "
                "'write'. Live updates: GET workflow/orchestrate/status?since=<version> is a long-poll that "
                "answers as soon as the orchestration's version exceeds `since`, or after `timeout` seconds with "
                "the current state; clients compare `version`."
            ),
        },
        "servers": [{"url": "/", "description": "The Jupyter server's base URL"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "_xsrf"},
            },
        },
    }


def render() -> str:
    return json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write ``openapi.json`` beside this module."""
    OPENAPI_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {OPENAPI_PATH}")


if __name__ == "__main__":
    main()
