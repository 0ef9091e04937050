"""A scripted Anthropic Messages API on 127.0.0.1 for driving the real Claude Code CLI in tests.

The real ``claude`` (pointed here with ``ANTHROPIC_BASE_URL``) sends ``POST /v1/messages?beta=true`` with
``stream: true``; each request is answered with the next scripted *turn* as a server-sent-event stream of exactly the
shape the real API uses (message_start, content_block_start/delta/stop for text and tool_use — tool input arrives as
``input_json_delta`` — message_delta with stop_reason and usage, message_stop). Anything else the CLI asks
(``HEAD /``, ``count_tokens``, unknown paths) gets a harmless answer.

Bounded: after ``max_requests`` messages requests it answers 400 (the CLI gives up instead of looping), and it shuts
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
class Text:
    """A text content block."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """A tool_use content block (e.g. ``Read``, ``Edit``, ``Write``, ``Bash``, ``StructuredOutput``)."""

    name: str
    input: dict[str, Any]
    id: str | None = None


Block = Text | ToolUse
#: A turn is a list of blocks, or a function of the recorded request returning them (to react to tool results).
Turn = list[Block] | Callable[["RecordedRequest"], list[Block]]


def text(s: str) -> list[Block]:
    """A turn that answers with one text block (stop_reason ``end_turn``)."""
    return [Text(s)]


def tool_use(tool_name: str, /, **tool_input: Any) -> list[Block]:
    """A turn that calls one tool (stop_reason ``tool_use``); the keyword arguments are the tool's input."""
    return [ToolUse(tool_name, tool_input)]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def tool_names(self) -> list[str]:
        return [t.get("name", "") for t in self.body.get("tools", [])] if isinstance(self.body, dict) else []

    def tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user message (what the CLI's tools answered)."""
        if not self.messages:
            return []
        content = self.messages[-1].get("content")
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


@dataclass
class ModelServer:
    """Answers the Messages API from ``turns`` in order; past the script it answers ``exhausted_text``."""

    turns: list[Turn] = field(default_factory=list)
    max_requests: int = 50
    idle_timeout: float = 60.0
    input_tokens: int = 12
    output_tokens: int = 5
    exhausted_text: str = "Done."
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._next_turn = 0
        self._message_requests = 0
        self._last_activity = time.monotonic()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ModelServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        watchdog = threading.Thread(target=self._watchdog, daemon=True)
        self._threads = [serve, watchdog]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watchdog(self) -> None:
        # Stops the server by itself when nothing has called it for idle_timeout: a forgotten server never lingers.
        while not self._stopped.wait(0.2):
            if time.monotonic() - self._last_activity > self.idle_timeout:
                threading.Thread(target=self.stop, daemon=True).start()
                return

    # -- script ---------------------------------------------------------------------------------------------
    def add_turns(self, *turns: Turn) -> None:
        with self._lock:
            self.turns.extend(turns)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and _is_messages_path(r.path)]

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)
            self._last_activity = time.monotonic()

    def _take_turn(self, req: RecordedRequest) -> list[Block] | None:
        with self._lock:
            self._message_requests += 1
            if self._message_requests > self.max_requests:
                return None
            if self._next_turn < len(self.turns):
                turn = self.turns[self._next_turn]
                self._next_turn += 1
            else:
                turn = [Text(self.exhausted_text)]
        return turn(req) if callable(turn) else turn

    def sse_events(self, blocks: list[Block], model: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The event stream of one assistant message, as the real API sends it."""
        msg_id = f"msg_scripted_{next(self._ids)}"
        yield (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                },
            },
        )
        for index, block in enumerate(blocks):
            if isinstance(block, Text):
                yield (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": block.text},
                    },
                )
            else:
                tool_id = block.id or f"toolu_scripted_{next(self._ids)}"
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": tool_id, "name": block.name, "input": {}},
                    },
                )
                payload = json.dumps(block.input)
                # Real streams split the JSON into several partial deltas; do the same so the CLI reassembles it.
                half = len(payload) // 2
                for part in (payload[:half], payload[half:]):
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
            yield ("content_block_stop", {"type": "content_block_stop", "index": index})
        stop_reason = "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn"
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": self.output_tokens},
            },
        )
        yield ("message_stop", {"type": "message_stop"})


def _is_messages_path(path: str) -> bool:
    return path.split("?", 1)[0] == "/v1/messages"


def _make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the test output stays readable
            pass

        def _read_body(self) -> Any:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any) -> RecordedRequest:
            req = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
            server._record(req)
            return req

        def do_HEAD(self) -> None:
            self._record(None)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._record(None)
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not scripted"}})

        def do_POST(self) -> None:
            req = self._record(self._read_body())
            path = self.path.split("?", 1)[0]
            if path.endswith("/count_tokens"):
                self._json(200, {"input_tokens": server.input_tokens})
                return
            if not _is_messages_path(self.path):
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not scripted"}})
                return
            blocks = server._take_turn(req)
            if blocks is None:
                self._json(
                    400,
                    {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "scripted model: request limit reached"},
                    },
                )
                return
            model = req.body.get("model", "claude-scripted") if isinstance(req.body, dict) else "claude-scripted"
            if isinstance(req.body, dict) and not req.body.get("stream"):
                self._json(200, _non_streamed(blocks, model, server))
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            for event, data in server.sse_events(blocks, model):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


def _non_streamed(blocks: list[Block], model: str, server: ModelServer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for i, b in enumerate(blocks):
        if isinstance(b, Text):
            content.append({"type": "text", "text": b.text})
        else:
            content.append({"type": "tool_use", "id": b.id or f"toolu_plain_{i}", "name": b.name, "input": b.input})
    return {
        "id": "msg_scripted_plain",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": server.input_tokens, "output_tokens": server.output_tokens},
    }


@pytest.fixture(name="model_server")
def model_server_fixture() -> Iterator[ModelServer]:
    """A started scripted model server with an empty script (add turns with ``add_turns``); stopped after the test."""
    server = ModelServer(max_requests=20, idle_timeout=120.0).start()
    try:
        yield server
    finally:
        server.stop()
