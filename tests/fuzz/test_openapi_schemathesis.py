"""schemathesis against the shipped OpenAPI document on a live server: no 500, and every answer matches the document.

Checks: ``not_a_server_error``, ``status_code_conformance`` (only documented statuses), ``content_type_conformance``
and ``response_schema_conformance`` (bodies match the documented schemas). Bounded examples per operation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import specflow_nb.server as server_pkg
from benchmarks.common import LiveServer

from .conftest import LONG, settle, snapshot

# Until pyproject's test extra lists it (asked of the lead); then this is a plain import.
schemathesis = pytest.importorskip("schemathesis", minversion="4")

from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

OPENAPI = Path(server_pkg.__file__).parent / "openapi.json"
SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_operation_conforms(server: LiveServer, operation: schemathesis.APIOperation) -> None:
    import requests

    session = requests.Session()
    session.headers.update(server.headers)

    @settings(max_examples=100 if LONG else 15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        if case.query and "since" in case.query:
            case.query["timeout"] = 0.01  # a valid long-poll would wait up to a minute
        before = snapshot(server.root)
        response = case.call_and_validate(base_url=server.url.rstrip("/"), session=session, checks=CHECKS)
        if response.status_code >= 400:
            assert snapshot(server.root) == before, "a rejected request changed state"
        elif case.method.upper() == "POST":
            with server.client() as client:
                for project in ("fz000", "fz001"):
                    settle(client, project)

    run()


#: Operations with something to violate (GET projects takes no parameters).
WITH_INPUT = [op for op in OPERATIONS if not op.path.endswith("/projects")]


@pytest.mark.parametrize("operation", WITH_INPUT, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_schema_violating_requests_are_documented_4xx(server: LiveServer, operation: schemathesis.APIOperation) -> None:
    """schemathesis's negative mode (values the document forbids: numbers past a maximum such as a budget over
    10,000 USD, wrong types, missing fields): never a 5xx, only documented statuses, and nothing changes."""
    import requests

    session = requests.Session()
    session.headers.update(server.headers)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]

    @settings(max_examples=100 if LONG else 15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))
    def run(case: schemathesis.Case) -> None:
        if case.query and "since" in case.query:
            case.query["timeout"] = 0.01
        before = snapshot(server.root)
        response = case.call_and_validate(base_url=server.url.rstrip("/"), session=session, checks=checks)
        assert response.status_code < 500, response.text[:300]
        if response.status_code >= 400:
            assert snapshot(server.root) == before, "a rejected request changed state"
        elif case.method.upper() == "POST":
            with server.client() as client:
                for project in ("fz000", "fz001"):
                    settle(client, project)

    run()
