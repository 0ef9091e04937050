"""Validate REST responses against the shipped OpenAPI document."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from specflow_nb.server.openapi import OPENAPI_PATH


@cache
def document() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """Fail unless ``status`` is documented for the route and ``body`` matches its schema."""
    doc = document()
    operation = doc["paths"][f"/specflow/api/{path}"][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path} answered undocumented status {status}"
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)
