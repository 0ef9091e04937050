"""Random JSON and random bytes to every route of a live server: never a 500, and a rejected request changes nothing.

Bodies are drawn from the fields the API knows (projectId, id, config, option, action, step, answers, budget) with
random values, plus arbitrary JSON and raw bytes; query strings likewise for the GET routes. A 2xx (a request that
happened to be valid) is allowed; the next example then starts from the state it left, once it has settled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.common import LiveServer

from .conftest import EXAMPLES, RESTING_PROJECT, settle, snapshot

POST_ROUTES = (
    "workflow/orchestrate",
    "workflow/orchestrate/cancel",
    "workflow/orchestrate/pause",
    "workflow/orchestrate/resume",
    "workflow/orchestrate/merge",
    "workflow/orchestrate/recover",
    "workflow/orchestrate/go-back",
    "workflow/orchestrate/answer",
)
GET_ROUTES = ("workflow/orchestrate/status", "workflow/orchestrate/list", "projects")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
project_ids = st.sampled_from(
    [RESTING_PROJECT, "fz001", "", ".", "..", "../..", "/etc", "fz000/../..", "nope", "fz000/specs", "\x00", "ä/ö"]
) | st.text(max_size=20)
config_values = (
    st.fixed_dictionaries(
        {},
        optional={
            "skipDesign": json_values | st.booleans(),
            "skipAnalyze": st.booleans(),
            "skipImplement": st.booleans() | json_values,
            "skipVerify": st.booleans(),
            "autoMerge": st.booleans(),
            "maxHealAttempts": st.integers(-3, 9) | json_values,
            "batchSizeFallback": st.integers(-1, 60),
            "budget": st.dictionaries(
                st.sampled_from(["maxPerBatch", "maxTotal", "healingBudget", "decisionBudget", "x"]),
                st.floats(allow_nan=True, allow_infinity=True) | json_values,
                max_size=4,
            ),
            "agentCommand": st.text(max_size=20),
            "staleAfterSeconds": st.floats() | json_values,
            "additionalContext": st.text(max_size=50),
        },
    )
    | json_values
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "projectId": project_ids | json_values,
            "id": st.text(max_size=20) | json_values,
            "config": config_values,
            "option": st.sampled_from(["retry", "skip", "abort", "RETRY", ""]) | json_values,
            "action": st.sampled_from(["retry", "skip", "abort"]) | json_values,
            "step": st.sampled_from(["design", "analyze", "implement", "verify", "merge", "complete", "x"])
            | json_values,
            "answers": st.dictionaries(st.text(max_size=8), st.text(max_size=8) | json_values, max_size=3)
            | json_values,
            "budget": st.dictionaries(st.text(max_size=10), json_values, max_size=3) | json_values,
        },
    ).map(lambda d: d)
    | json_values
)


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def check(server: LiveServer, client: httpx.Client, response: httpx.Response, before: dict[str, bytes]) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:500])
    assert "json" in response.headers.get("Content-Type", ""), response.headers
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
        assert snapshot(server.root) == before, f"a rejected request changed state: {response.text[:300]}"
    elif response.request.method == "POST":
        for project in ("fz000", "fz001"):
            settle(client, project)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(POST_ROUTES), body=bodies)
def test_random_json_bodies(server: LiveServer, client: httpx.Client, route: str, body: Any) -> None:
    before = snapshot(server.root)
    # json.dumps, not httpx's json=: it writes NaN and Infinity (not JSON, but what a sloppy client sends).
    raw = json.dumps(body).encode()
    check(server, client, client.post(route, content=raw, headers={"Content-Type": "application/json"}), before)


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(POST_ROUTES), raw=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_random_bytes_bodies(server: LiveServer, client: httpx.Client, route: str, raw: bytes) -> None:
    before = snapshot(server.root)
    response = client.post(route, content=raw, headers={"Content-Type": "application/json"})
    check(server, client, response, before)


query_values = st.text(max_size=20) | st.sampled_from(
    ["-1", "0", "1e9", "nan", "inf", "true", "", "99999999999999999999"]
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(GET_ROUTES),
    params=st.dictionaries(
        st.sampled_from(["projectId", "id", "preview", "since", "knownId", "timeout", "config", "x"]),
        query_values | project_ids,
        max_size=5,
    ),
    timeout=st.sampled_from(["0.01", "0", "nan", "-1", "x", "61", "1e400", ""]),
)
def test_random_query_strings(
    server: LiveServer, client: httpx.Client, route: str, params: dict[str, str], timeout: str
) -> None:
    if "since" in params:
        params["timeout"] = timeout  # a valid long-poll would otherwise wait up to its timeout (25 s default)
    before = snapshot(server.root)
    check(server, client, client.get(route, params=params), before)


# ---- hostile values (issue 12): deep nesting, huge and non-finite numbers, long and odd ids ----------------------


def _nested(n: int) -> bytes:
    return ('{"projectId": "fz000", "config": ' + '{"a": ' * n + "1" + "}" * n + "}").encode()


hostile_bodies = st.one_of(
    st.integers(65, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(65, 5000).map(lambda n: b"[" * n),
    st.integers(65, 300).map(_nested),
    st.sampled_from(
        ["Infinity", "-Infinity", "NaN", "1e308", "1e309", "-1e309", "10000.0001", "1" + "0" * 400]
    ).flatmap(
        lambda num: st.sampled_from(
            [
                f'{{"projectId": "fz000", "config": {{"budget": {{"maxTotal": {num}}}}}}}',
                f'{{"projectId": "fz000", "config": {{"budget": {{"maxPerBatch": {num}}}}}}}',
                f'{{"projectId": "fz000", "config": {{"staleAfterSeconds": {num}}}}}',
                f'{{"projectId": "fz000", "budget": {{"healingBudget": {num}}}}}',
                f'{{"projectId": "fz000", "config": {{"maxHealAttempts": {num}}}}}',
            ]
        ).map(str.encode)
    ),
    st.tuples(st.integers(200, 5000), st.sampled_from(["x", "ä", "../", "a/", "\\", "%", "\u202e"])).map(
        lambda t: json.dumps({"projectId": t[1] * t[0]}).encode()
    ),
    st.tuples(st.integers(100, 5000), st.sampled_from(["x", "../", ".", "-", "ä"])).map(
        lambda t: json.dumps({"projectId": "fz000", "id": t[1] * t[0]}).encode()
    ),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(POST_ROUTES), raw=hostile_bodies)
def test_hostile_bodies_are_4xx(server: LiveServer, client: httpx.Client, route: str, raw: bytes) -> None:
    before = snapshot(server.root)
    response = client.post(route, content=raw, headers={"Content-Type": "application/json"})
    check(server, client, response, before)
    assert 400 <= response.status_code < 500, response.text[:300]  # none of these is a valid request


hostile_queries = st.fixed_dictionaries(
    {"projectId": st.sampled_from(["fz000", "x" * 300, "fz000/" + "y" * 256, "fz000/specs/x/y"])},
    optional={
        "since": st.sampled_from(["1" + "0" * 309, "9" * 40, "-2", "1e5", "0x10"]),
        "timeout": st.sampled_from(["1e309", "nan", "-inf", "3601", "1" + "0" * 400]),
        "config": st.integers(65, 2000).map(lambda n: "[" * n)
        | st.sampled_from(['{"staleAfterSeconds": 1e309}', '{"budget": {"maxTotal": Infinity}}']),
        "id": st.integers(129, 2000).map(lambda n: "z" * n),
    },
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(GET_ROUTES), params=hostile_queries)
def test_hostile_queries_are_4xx(server: LiveServer, client: httpx.Client, route: str, params: dict[str, str]) -> None:
    before = snapshot(server.root)
    response = client.get(route, params={**params, "preview": "1"})
    check(server, client, response, before)
    if route.endswith("status") and (len(params) > 1 or params["projectId"] != "fz000"):
        assert 400 <= response.status_code < 500, (params, response.text[:300])
