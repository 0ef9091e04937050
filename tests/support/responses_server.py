"""A scripted OpenAI Responses API on 127.0.0.1 for driving the real Codex CLI (``codex exec``) in tests.

The real ``codex`` (pointed here by a model provider with ``base_url`` and ``wire_api = "responses"``) sends
``POST /v1/responses`` with ``stream: true``; each request is answered with the next scripted *turn* as a
server-sent-event stream of the shape the real API uses: ``response.created``, one ``response.output_item.added`` /
``response.output_item.done`` pair per output item (messages, ``function_call``, ``custom_tool_call``), then
``response.completed`` carrying the response's ``usage``. Codex records that usage per call in its session file.

Codex offers its tools in two shapes, and a scripted step must speak whichever the request offers:

* the default model gets ONE ``custom`` tool ``exec`` (JavaScript, nested ``tools.exec_command`` /
  ``tools.apply_patch``), inside an ``additional_tools`` input item;
* other models get ``function`` tools (``exec_command`` with ``{"cmd": …}``) and a ``custom`` ``apply_patch``.

:class:`Shell` and :class:`Patch` look at the recorded request and answer in the shape it offers.

Like the real API, a request whose ``text.format`` json_schema is not *strict-compatible* (every object needs
``additionalProperties: false`` and every property listed in ``required``) is refused with HTTP 400
``invalid_json_schema``. Errors can be scripted (:class:`HttpError`: 401, 429, 500 …) and a turn may be delayed
(:class:`Delay`) to test stalls and budgets.

Bounded: after ``max_requests`` responses requests it answers 400 (Codex gives up instead of looping), and it shuts
itself down after ``idle_timeout`` seconds without a request. Every request is recorded for assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Say:
    """An assistant message (for a run with ``--output-schema``, the JSON text of the structured answer)."""

    text: str


@dataclass(frozen=True)
class Shell:
    """Run a shell command through Codex's own tool (``exec_command``, directly or inside the ``exec`` tool)."""

    cmd: str


@dataclass(frozen=True)
class Patch:
    """Edit files through Codex's ``apply_patch`` tool (the patch text, ``*** Begin Patch`` … ``*** End Patch``)."""

    patch: str


@dataclass(frozen=True)
class HttpError:
    """Answer this request with an HTTP error (e.g. 401 bad key, 429 rate limit, 500)."""

    status: int
    message: str = "scripted error"
    code: str | None = None


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering (the stream stays silent meanwhile), then answer ``then``."""

    seconds: float
    then: list[Any] = field(default_factory=list)


def structured(**fields: Any) -> list[Say]:
    """A turn answering with a structured output (the final agent message is the JSON instance)."""
    return [Say(json.dumps(fields))]


Item = Say | Shell | Patch
Turn = list[Any] | HttpError | Delay | Callable[["ResponsesRequest"], Any]


@dataclass
class ResponsesRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def input(self) -> list[dict[str, Any]]:
        return list(self.body.get("input", [])) if isinstance(self.body, dict) else []

    @property
    def model(self) -> str:
        return str(self.body.get("model", "")) if isinstance(self.body, dict) else ""

    @property
    def output_format(self) -> dict[str, Any] | None:
        text = self.body.get("text") if isinstance(self.body, dict) else None
        fmt = text.get("format") if isinstance(text, dict) else None
        return fmt if isinstance(fmt, dict) else None

    def offered_tools(self) -> list[dict[str, Any]]:
        """Every tool the request offers (top-level ``tools`` and ``additional_tools`` items, namespaces flattened)."""
        found: list[dict[str, Any]] = []

        def walk(tools: Any) -> None:
            for tool in tools or []:
                if not isinstance(tool, dict):
                    continue
                if tool.get("type") == "namespace":
                    walk(tool.get("tools"))
                else:
                    found.append(tool)

        if isinstance(self.body, dict):
            walk(self.body.get("tools"))
        for item in self.input:
            if item.get("type") == "additional_tools":
                walk(item.get("tools"))
        return found

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name", "")) for t in self.offered_tools()]

    def tool_outputs(self) -> list[str]:
        """The outputs of the tool calls this request reports (``function_call_output``/``custom_tool_call_output``)."""
        outs: list[str] = []
        for item in self.input:
            if item.get("type") in ("function_call_output", "custom_tool_call_output"):
                outs.append(
                    json.dumps(item.get("output")) if not isinstance(item.get("output"), str) else item["output"]
                )
        return outs

    def user_texts(self) -> list[str]:
        texts: list[str] = []
        for item in self.input:
            if item.get("type") == "message" and item.get("role") == "user":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
        return texts

    def assistant_texts(self) -> list[str]:
        texts: list[str] = []
        for item in self.input:
            if item.get("type") == "message" and item.get("role") == "assistant":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
        return texts


def strict_schema_problems(schema: Any, where: str = "") -> list[str]:
    """Why a JSON schema is not valid for OpenAI's strict structured outputs (empty: it is)."""
    problems: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False:
                problems.append(
                    f"In context=({where}), 'additionalProperties' is required to be supplied and to be false."
                )
            missing = [k for k in props if k not in (schema.get("required") or [])]
            if missing:
                problems.append(
                    f"In context=({where}), 'required' is required to be supplied and to be an array including every "
                    f"key in properties. Missing '{missing[0]}'."
                )
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    problems += strict_schema_problems(sub, f"{where}, 'properties', '{name}'".lstrip(", "))
            elif key in ("items", "anyOf", "oneOf", "allOf", "$defs", "definitions"):
                problems += strict_schema_problems(value, f"{where}, '{key}'".lstrip(", "))
    elif isinstance(schema, list):
        for sub in schema:
            problems += strict_schema_problems(sub, where)
    return problems


def _js_string(s: str) -> str:
    return json.dumps(s)


@dataclass
class ResponsesServer:
    """Answers the Responses API from ``turns`` in order; past the script it answers ``exhausted_text``."""

    turns: list[Turn] = field(default_factory=list)
    max_requests: int = 40
    idle_timeout: float = 120.0
    input_tokens: int = 1000
    cached_input_tokens: int = 200
    output_tokens: int = 100
    reasoning_tokens: int = 20
    exhausted_text: str = "Done."
    #: The turn for every request past the script (e.g. a callable model that reads the prompt); None: exhausted_text.
    fallback: Turn | None = None
    #: Seconds every answer waits before streaming (so a watcher sees a run's calls one by one).
    delay_seconds: float = 0.0
    requests: list[ResponsesRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next_turn = 0
        self._responses = 0
        self._last_activity = time.monotonic()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ResponsesServer:
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        threading.Thread(target=self._watchdog, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> ResponsesServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watchdog(self) -> None:
        while not self._stopped.wait(0.2):
            if time.monotonic() - self._last_activity > self.idle_timeout:
                threading.Thread(target=self.stop, daemon=True).start()
                return

    # -- script ---------------------------------------------------------------------------------------------
    def add_turns(self, *turns: Turn) -> None:
        with self._lock:
            self.turns.extend(turns)

    @property
    def responses_requests(self) -> list[ResponsesRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.split("?", 1)[0].endswith("/responses")]

    def _record(self, req: ResponsesRequest) -> None:
        with self._lock:
            self.requests.append(req)
            self._last_activity = time.monotonic()

    def _take_turn(self, req: ResponsesRequest) -> Any:
        with self._lock:
            self._responses += 1
            if self._responses > self.max_requests:
                return HttpError(400, "scripted model: request limit reached", "invalid_request_error")
            if self._next_turn < len(self.turns):
                turn = self.turns[self._next_turn]
                self._next_turn += 1
            else:
                turn = self.fallback if self.fallback is not None else [Say(self.exhausted_text)]
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        return turn(req) if callable(turn) else turn

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def output_items(self, items: list[Any], req: ResponsesRequest) -> list[dict[str, Any]]:
        """The scripted items as Responses API output items, in the tool shape the request offers."""
        tools = {t.get("name"): t for t in req.offered_tools()}
        out: list[dict[str, Any]] = []
        for item in items:
            n = next(self._ids)
            if isinstance(item, Say):
                out.append(
                    {
                        "type": "message",
                        "id": f"msg_scripted_{n}",
                        "role": "assistant",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": item.text, "annotations": []}],
                    }
                )
                continue
            call_id = f"call_scripted_{n}"
            if isinstance(item, Shell):
                if tools.get("exec_command", {}).get("type") == "function":
                    out.append(
                        {
                            "type": "function_call",
                            "id": f"fc_scripted_{n}",
                            "call_id": call_id,
                            "name": "exec_command",
                            "arguments": json.dumps({"cmd": item.cmd}),
                            "status": "completed",
                        }
                    )
                    continue
                code = f"const r = await tools.exec_command({{cmd: {_js_string(item.cmd)}}});\ntext(r);"
            elif isinstance(item, Patch):
                if tools.get("apply_patch", {}).get("type") == "custom":
                    out.append(
                        {
                            "type": "custom_tool_call",
                            "id": f"ctc_scripted_{n}",
                            "call_id": call_id,
                            "name": "apply_patch",
                            "input": item.patch,
                            "status": "completed",
                        }
                    )
                    continue
                if tools.get("exec_command", {}).get("type") == "function":
                    # No apply_patch tool offered: Codex intercepts an ``apply_patch`` heredoc run through its shell.
                    cmd = f"apply_patch <<'PATCH'\n{item.patch.rstrip()}\nPATCH"
                    out.append(
                        {
                            "type": "function_call",
                            "id": f"fc_scripted_{n}",
                            "call_id": call_id,
                            "name": "exec_command",
                            "arguments": json.dumps({"cmd": cmd}),
                            "status": "completed",
                        }
                    )
                    continue
                code = f"const r = await tools.apply_patch({_js_string(item.patch)});\ntext(r);"
            else:
                raise TypeError(f"not a scripted item: {item!r}")
            out.append(
                {
                    "type": "custom_tool_call",
                    "id": f"ctc_scripted_{n}",
                    "call_id": call_id,
                    "name": "exec",
                    "input": code,
                    "status": "completed",
                }
            )
        return out

    def sse_events(self, items: list[dict[str, Any]], model: str) -> Iterator[dict[str, Any]]:
        rid = f"resp_scripted_{next(self._ids)}"
        base = {"id": rid, "object": "response", "model": model, "status": "in_progress", "output": []}
        yield {"type": "response.created", "response": base}
        for index, item in enumerate(items):
            yield {
                "type": "response.output_item.added",
                "output_index": index,
                "item": {**item, "status": "in_progress"},
            }
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": text,
                }
            yield {"type": "response.output_item.done", "output_index": index, "item": item}
        yield {
            "type": "response.completed",
            "response": {**base, "status": "completed", "output": items, "usage": self.usage()},
        }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a run killed at its budget) is expected, not an error to print."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _make_handler(server: ResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, err: HttpError) -> None:
            kind = {401: "invalid_request_error", 429: "rate_limit_exceeded", 500: "server_error"}.get(
                err.status, "invalid_request_error"
            )
            self._json(err.status, {"error": {"message": err.message, "type": kind, "param": None, "code": err.code}})

        def do_GET(self) -> None:
            server._record(ResponsesRequest("GET", self.path, dict(self.headers.items()), None))
            if self.path.split("?", 1)[0].endswith("/models"):
                self._json(200, {"object": "list", "data": [], "models": []})
            else:
                self._json(404, {"error": {"message": "not scripted", "type": "invalid_request_error"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            req = ResponsesRequest("POST", self.path, dict(self.headers.items()), body)
            server._record(req)
            if not self.path.split("?", 1)[0].endswith("/responses"):
                self._json(404, {"error": {"message": "not scripted", "type": "invalid_request_error"}})
                return
            fmt = req.output_format
            if fmt is not None and fmt.get("type") == "json_schema":
                problems = strict_schema_problems(fmt.get("schema"))
                if fmt.get("strict") and problems:
                    self._error(
                        HttpError(
                            400,
                            f"Invalid schema for response_format '{fmt.get('name', 'output')}': {problems[0]}",
                            "invalid_json_schema",
                        )
                    )
                    return
            turn = server._take_turn(req)
            while isinstance(turn, Delay):
                time.sleep(turn.seconds)
                turn = turn.then
            if isinstance(turn, HttpError):
                self._error(turn)
                return
            items = server.output_items(list(turn), req)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for event in server.sse_events(items, req.model or "scripted"):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture(name="responses_server")
def responses_server_fixture() -> Iterator[ResponsesServer]:
    """A started scripted Responses API server with an empty script; stopped after the test."""
    server = ResponsesServer(max_requests=30, idle_timeout=180.0).start()
    try:
        yield server
    finally:
        server.stop()
