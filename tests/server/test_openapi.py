"""The shipped OpenAPI document is valid, current, and covers every served route."""

from __future__ import annotations

import json

from openapi_spec_validator import validate

from specflow_nb.server.api import ROUTES
from specflow_nb.server.openapi import OPENAPI_PATH, build_openapi, render


def test_document_is_valid_openapi_3_1() -> None:
    doc = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_document_is_up_to_date() -> None:
    """Fails when models or routes changed: run `python -m specflow_nb.server.openapi` and commit the result."""
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render()


def test_every_route_is_documented_with_its_errors() -> None:
    doc = build_openapi()
    for route in ROUTES:
        op = doc["paths"][f"/specflow/api/{route.path}"][route.method.lower()]
        assert str(route.status) in op["responses"]
        assert {"400", "403"} <= set(op["responses"])
        assert ("requestBody" in op) == (route.body is not None)
    assert sum(len(methods) for methods in doc["paths"].values()) == len(ROUTES)


def test_document_ships_in_the_package() -> None:
    import importlib.resources

    text = importlib.resources.files("specflow_nb.server").joinpath("openapi.json").read_text(encoding="utf-8")
    assert json.loads(text)["info"]["title"] == "specflow_nb REST API"
