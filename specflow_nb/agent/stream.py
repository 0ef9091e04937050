"""Claude Code's ``stream-json`` output as typed events, read incrementally and defensively.

Each stdout line of ``claude -p --output-format stream-json --verbose`` is one JSON object with a ``type``:
``system`` (subtype ``init`` first: session id, model, tools, cwd), ``assistant`` (text and tool_use blocks; an
``error`` such as ``authentication_failed`` when the CLI answers for the model), ``user`` (tool results) and the
final ``result`` (cost, turns, session id, ``is_error``, ``subtype``, ``structured_output``). With
``--output-format json`` the whole output is the single ``result`` object. The Codex CLI's ``codex exec --json``
lines (dotted types: ``thread.started``, ``turn.completed``, ``item.completed`` …) parse into :class:`CodexEvent`
subclasses through the same parser.

The models accept unknown fields (the CLI adds fields between versions). A line that is not JSON becomes a warning,
never an exception; invalid UTF-8 is replaced; a line longer than ``max_line_bytes`` is skipped with a warning
without ever being held in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: Lines longer than this are skipped (a runaway tool output must not exhaust the server's memory).
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


class StreamEvent(BaseModel):
    """Any stream-json line; subclasses add the fields specflow_nb reads. Unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    type: str = "unknown"
    session_id: str | None = None


class SystemInit(StreamEvent):
    """The first line: which session, model and tools the run got."""

    subtype: str = "init"
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    cwd: str | None = None
    permission_mode: str | None = Field(default=None, alias="permissionMode")
    claude_code_version: str | None = None


class _MessageEvent(StreamEvent):
    message: dict[str, Any] = Field(default_factory=dict)
    parent_tool_use_id: str | None = None

    @property
    def content(self) -> list[dict[str, Any]]:
        content = self.message.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        return [b for b in content or [] if isinstance(b, dict)]


class AssistantMessage(_MessageEvent):
    """A model turn: text and tool_use blocks. ``error`` is set when the CLI answered itself (e.g. not logged in)."""

    error: str | None = None

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")


class UserMessage(_MessageEvent):
    """Tool results the CLI fed back to the model."""

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_result"]


class ResultMessage(StreamEvent):
    """The last line of a run. ``total_cost_usd`` is THE cost field (the original read a wrong one)."""

    subtype: str = "success"
    is_error: bool = False
    result: str | None = None
    total_cost_usd: float = 0.0
    num_turns: int = 0
    duration_ms: int | None = None
    structured_output: Any = None
    errors: list[str] = Field(default_factory=list)
    api_error_status: int | None = None


class OtherEvent(StreamEvent):
    """A line of a type specflow_nb does not interpret (``stream_event``, other ``system`` subtypes, …)."""


# --------------------------------------------------------------------------------------------------------------
# Codex CLI (``codex exec --json``) events: dotted types, one JSON object per line.


class CodexEvent(StreamEvent):
    """Any ``codex exec --json`` line (``thread.started``, ``turn.*``, ``item.*``, ``error``)."""


class ThreadStarted(CodexEvent):
    """The first line: the thread (session) id the run works in; ``codex exec resume/fork`` take it."""

    thread_id: str | None = None


class TurnCompleted(CodexEvent):
    """A turn ended well. ``usage`` is the THREAD's running total (a resumed run reports earlier turns too)."""

    usage: dict[str, Any] = Field(default_factory=dict)


class TurnFailed(CodexEvent):
    """A turn ended with an error (``error.message``); the process then exits 1."""

    error: dict[str, Any] = Field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.error.get("message") or "")


class CodexError(CodexEvent):
    """An ``error`` line (``Reconnecting… n/5`` while Codex retries, or the error that failed the turn)."""

    message: str = ""


class ItemEvent(CodexEvent):
    """``item.started`` / ``item.updated`` / ``item.completed``: an ``agent_message``, ``reasoning``,
    ``command_execution``, ``file_change``, ``mcp_tool_call``, ``web_search``, ``todo_list`` or ``error`` item."""

    item: dict[str, Any] = Field(default_factory=dict)

    @property
    def item_type(self) -> str:
        return str(self.item.get("type") or "")

    @property
    def text(self) -> str:
        return str(self.item.get("text") or "")


_CODEX_TYPES: dict[str, type[CodexEvent]] = {
    "thread.started": ThreadStarted,
    "turn.completed": TurnCompleted,
    "turn.failed": TurnFailed,
    "error": CodexError,
    "item.started": ItemEvent,
    "item.updated": ItemEvent,
    "item.completed": ItemEvent,
}


def is_codex_type(kind: Any) -> bool:
    return isinstance(kind, str) and (kind in _CODEX_TYPES or kind.startswith(("thread.", "turn.", "item.")))


def parse_event(obj: Any) -> StreamEvent:
    """Turn one decoded JSON value into its event model; anything unexpected becomes an :class:`OtherEvent`."""
    if not isinstance(obj, dict):
        return OtherEvent(type="non_object", value=obj)
    kind = obj.get("type")
    try:
        if kind == "system" and obj.get("subtype") == "init":
            return SystemInit.model_validate(obj)
        if kind == "assistant":
            return AssistantMessage.model_validate(obj)
        if kind == "user":
            return UserMessage.model_validate(obj)
        if kind == "result":
            return ResultMessage.model_validate(obj)
        if isinstance(kind, str) and is_codex_type(kind):
            return _CODEX_TYPES.get(kind, CodexEvent).model_validate(obj)
    except ValidationError:
        pass  # a known type with surprising field types: keep it, untyped, rather than lose the line
    fields = {k: v for k, v in obj.items() if isinstance(k, str)}
    fields["type"] = str(kind) if kind is not None else "unknown"
    if not isinstance(fields.get("session_id"), (str, type(None))):
        fields.pop("session_id")
    return OtherEvent.model_validate(fields)


class LineSplitter:
    """Feeds bytes in, yields complete lines out; bounded memory whatever the input."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._skipping = False
        self.line_no = 0
        self.warnings: list[str] = []

    def feed(self, data: bytes) -> Iterator[bytes]:
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                self._append(data[start:])
                return
            self._append(data[start:nl])
            self.line_no += 1
            if self._skipping:
                self._skipping = False
            else:
                line = bytes(self._buf)
                if line.strip():
                    yield line
            self._buf.clear()
            start = nl + 1

    def flush(self) -> Iterator[bytes]:
        """The last line when the output did not end with a newline."""
        if self._buf.strip() and not self._skipping:
            self.line_no += 1
            yield bytes(self._buf)
        self._buf.clear()
        self._skipping = False

    def _append(self, chunk: bytes) -> None:
        if self._skipping or not chunk:
            return
        if len(self._buf) + len(chunk) > self.max_line_bytes:
            self._buf.clear()
            self._skipping = True
            self.warnings.append(
                f"line {self.line_no + 1} of the agent output is longer than {self.max_line_bytes} bytes; skipped"
            )
            return
        self._buf.extend(chunk)


class StreamParser:
    """Incremental stream-json parser: ``feed(bytes)`` returns the events completed by that chunk."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._lines = LineSplitter(max_line_bytes)
        self._warnings: list[str] = []

    @property
    def warnings(self) -> list[str]:
        return self._lines.warnings + self._warnings

    def feed(self, data: bytes) -> list[StreamEvent]:
        return [e for line in self._lines.feed(data) if (e := self._parse(line)) is not None]

    def flush(self) -> list[StreamEvent]:
        return [e for line in self._lines.flush() if (e := self._parse(line)) is not None]

    def _parse(self, line: bytes) -> StreamEvent | None:
        text = line.decode("utf-8", errors="replace")
        try:
            obj = json.loads(text)
        except ValueError:
            preview = text.strip()[:80]
            self._warnings.append(f"line {self._lines.line_no} of the agent output is not JSON: {preview!r}")
            return None
        return parse_event(obj)


def iter_events(
    path: Path, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, warnings: list[str] | None = None
) -> Iterator[StreamEvent]:
    """All events of a finished output file, streamed (constant memory apart from one line)."""
    parser = StreamParser(max_line_bytes)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        while chunk := f.read(1 << 16):
            yield from parser.feed(chunk)
    yield from parser.flush()
    if warnings is not None:
        warnings.extend(parser.warnings)
