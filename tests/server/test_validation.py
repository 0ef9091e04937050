"""A user's mistake is a 400 with {error, details?, hint?} on every route — never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from specflow_nb.server import api as api_models

from .openapi_check import check_response

POST_ROUTES = [r for r in api_models.ROUTES if r.method == "POST"]

JUNK_BODIES: list[tuple[str, Any, str]] = [
    ("not json", "{projectId: nope", "not valid JSON"),
    ("not utf-8", b"\xff\xfe\x00junk", "not valid JSON"),
    ("a list", "[1, 2]", "JSON object"),
    ("a string", '"projectId"', "JSON object"),
    ("null", "null", "JSON object"),
    ("empty object", "{}", "projectId"),
    ("wrong type", {"projectId": 42}, "projectId"),
    ("unknown field", {"projectId": "p", "projectID": "p"}, "projectID"),
    ("huge projectId", {"projectId": "x" * 5000}, "projectId"),
]


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda r: r.path)
async def test_junk_bodies_are_400(route: api_models.Route, api: Any) -> None:
    for label, body, expected in JUNK_BODIES:
        code, reply = await api("POST", route.path, body=body)
        assert code == 400, (label, reply)
        assert expected in reply["error"], (label, reply)
        assert reply.get("hint"), (label, reply)
        check_response("POST", route.path, 400, reply)


ROUTE_SPECIFIC: list[tuple[str, dict[str, Any], str]] = [
    ("workflow/orchestrate", {"projectId": "p", "config": {"maxHealAttempts": 9}}, "config.maxHealAttempts"),
    ("workflow/orchestrate", {"projectId": "p", "config": {"budget": {"maxTotal": -1}}}, "config.budget.maxTotal"),
    ("workflow/orchestrate", {"projectId": "p", "config": {"skipDesing": True}}, "config.skipDesing"),
    ("workflow/orchestrate", {"projectId": "p", "config": "fast"}, "config"),
    ("workflow/orchestrate/recover", {"projectId": "p"}, "option"),
    ("workflow/orchestrate/recover", {"projectId": "p", "option": "explode"}, "option"),
    ("workflow/orchestrate/recover", {"projectId": "p", "option": "retry", "action": "skip"}, "disagree"),
    ("workflow/orchestrate/go-back", {"projectId": "p"}, "step"),
    ("workflow/orchestrate/go-back", {"projectId": "p", "step": "yesterday"}, "step"),
    ("workflow/orchestrate/answer", {"projectId": "p"}, "answers"),
    ("workflow/orchestrate/answer", {"projectId": "p", "answers": {}}, "answers"),
    ("workflow/orchestrate/answer", {"projectId": "p", "answers": {"q": 3}}, "answers.q"),
    ("workflow/orchestrate/pause", {"projectId": "p", "id": ["a"]}, "id"),
]


@pytest.mark.parametrize(("path", "body", "expected"), ROUTE_SPECIFIC, ids=lambda v: str(v)[:40])
async def test_invalid_fields_name_the_field(path: str, body: dict[str, Any], expected: str, api: Any) -> None:
    code, reply = await api("POST", path, body=body)
    assert code == 400, reply
    assert expected in reply["error"]
    assert reply["details"] and all({"loc", "msg", "type"} <= set(d) for d in reply["details"])
    check_response("POST", path, 400, reply)


def test_invalid_input_is_not_echoed_back() -> None:
    """Field errors carry no input values: a request could hold a secret in additionalContext."""
    from pydantic import ValidationError

    from specflow_nb.server.api import StartRequest
    from specflow_nb.server.handlers import validation_details

    with pytest.raises(ValidationError) as info:
        StartRequest.model_validate({"projectId": "p", "config": {"additionalContext": 7, "secretKey": "sk-123"}})
    assert "sk-123" not in repr(validation_details(info.value))


QUERY_JUNK: list[tuple[str, dict[str, str], str]] = [
    ("workflow/orchestrate/status", {}, "projectId"),
    ("workflow/orchestrate/list", {}, "projectId"),
    ("workflow/orchestrate/status", {"projectId": "p", "since": "abc"}, "since"),
    ("workflow/orchestrate/status", {"projectId": "p", "since": "-5"}, "since"),
    ("workflow/orchestrate/status", {"projectId": "p", "since": "1", "timeout": "1000"}, "timeout"),
    ("workflow/orchestrate/status", {"projectId": "p", "since": "1", "timeout": "nan"}, "timeout"),
    ("workflow/orchestrate/status", {"projectId": "p", "preview": "maybe"}, "preview"),
    ("workflow/orchestrate/status", {"projectId": "p", "preview": "true", "config": "{"}, "config"),
    ("workflow/orchestrate/status", {"projectId": "p", "preview": "1", "config": '{"batchSizeFallback": 0}'}, "batch"),
]


@pytest.mark.parametrize(("path", "params", "expected"), QUERY_JUNK, ids=lambda v: str(v)[:50])
async def test_invalid_queries_are_400(path: str, params: dict[str, str], expected: str, api: Any) -> None:
    code, reply = await api("GET", path, params=params)
    assert code == 400, reply
    assert expected in reply["error"]
    check_response("GET", path, 400, reply)


async def test_wrong_method_is_405_json(api: Any) -> None:
    code, reply = await api("GET", "workflow/orchestrate/pause")
    assert code == 405
    assert reply["error"] and reply["hint"]
    code, reply = await api("POST", "projects", body={})
    assert code == 405


async def test_unknown_route_is_404(api: Any) -> None:
    code, _ = await api("GET", "workflow/orchestrate/nothing-here")
    assert code == 404
