"""stream-json parsing: typed events from the CLI's real lines, tolerant of junk, bounded in memory."""

from __future__ import annotations

import json

from specflow_nb.agent.stream import (
    AssistantMessage,
    OtherEvent,
    ResultMessage,
    StreamParser,
    SystemInit,
    UserMessage,
    parse_event,
)

# Abridged lines captured from Claude Code 2.1.197 (see /work/shared/reference/claude-code-2.1.197/).
INIT = {
    "type": "system",
    "subtype": "init",
    "cwd": "/home/user/project",
    "session_id": "e766bb49-7715-486b-9fee-a8c83ac85fd9",
    "tools": ["Bash", "Edit", "Read"],
    "model": "claude-opus-4-8[1m]",
    "permissionMode": "default",
    "claude_code_version": "2.1.197",
    "fast_mode_state": "off",
}
NOT_LOGGED_IN = {
    "type": "assistant",
    "message": {"model": "<synthetic>", "content": [{"type": "text", "text": "Not logged in · Please run /login"}]},
    "session_id": "113897b1-88d2-4dfd-9aeb-4d32699c25c0",
    "error": "authentication_failed",
}
RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "duration_ms": 326,
    "num_turns": 2,
    "result": '{"name":"spec-ok"}',
    "session_id": "e715c0f9-2f51-4a72-bf27-c78f474dc2ab",
    "total_cost_usd": 0.000185,
    "structured_output": {"name": "spec-ok"},
    "terminal_reason": "completed",
}
TOOL_RESULT = {
    "type": "user",
    "message": {"role": "user", "content": [{"tool_use_id": "t1", "type": "tool_result", "content": "ok"}]},
    "session_id": "s",
}


def lines(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def test_reference_lines_become_typed_events() -> None:
    events = StreamParser().feed(lines(INIT, NOT_LOGGED_IN, TOOL_RESULT, RESULT))
    init, assistant, user, result = events
    assert (
        isinstance(init, SystemInit) and init.model == "claude-opus-4-8[1m]" and init.tools == ["Bash", "Edit", "Read"]
    )
    assert init.permission_mode == "default" and init.model_extra == {"fast_mode_state": "off"}
    assert isinstance(assistant, AssistantMessage) and assistant.error == "authentication_failed"
    assert assistant.text.startswith("Not logged in")
    assert isinstance(user, UserMessage) and user.tool_results[0]["content"] == "ok"
    assert isinstance(result, ResultMessage)
    assert (result.total_cost_usd, result.num_turns, result.structured_output) == (0.000185, 2, {"name": "spec-ok"})


def test_lines_split_across_chunks_at_any_byte() -> None:
    data = lines(INIT, RESULT)
    for cut in range(1, len(data)):
        p = StreamParser()
        events = p.feed(data[:cut]) + p.feed(data[cut:]) + p.flush()
        assert [e.type for e in events] == ["system", "result"], cut


def test_missing_final_newline_is_flushed() -> None:
    p = StreamParser()
    assert p.feed(json.dumps(RESULT).encode()) == []
    assert isinstance(p.flush()[0], ResultMessage)


def test_junk_lines_are_warnings_not_errors() -> None:
    p = StreamParser()
    data = lines(INIT) + b"garbage \xff\xfe not json\n" + b"\n" + lines([1, 2], {"type": "stream_event"}, RESULT)
    events = p.feed(data)
    assert [type(e) for e in events] == [SystemInit, OtherEvent, OtherEvent, ResultMessage]
    assert len(p.warnings) == 1 and "line 2" in p.warnings[0] and "not JSON" in p.warnings[0]


def test_invalid_utf8_inside_json_strings_is_replaced() -> None:
    raw = json.dumps({**RESULT, "result": "RESULT"}).encode().replace(b"RESULT", b"ok \xff")
    (event,) = StreamParser().feed(raw + b"\n")
    assert isinstance(event, ResultMessage) and event.result == "ok \ufffd"


def test_overlong_line_is_skipped_without_buffering_it() -> None:
    p = StreamParser(max_line_bytes=1000)
    huge = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "x" * 5000}]}})
    events = []
    for i in range(0, len(huge), 300):  # arrives in pieces, as from a growing file
        events += p.feed(huge[i : i + 300].encode())
    events += p.feed(b"\n" + lines(RESULT))
    assert [e.type for e in events] == ["result"]
    assert any("longer than 1000 bytes" in w for w in p.warnings)
    assert len(p._lines._buf) == 0


def test_known_type_with_odd_fields_is_kept_untyped() -> None:
    event = parse_event({"type": "result", "num_turns": "many", "session_id": 5})
    assert isinstance(event, OtherEvent) and event.type == "result" and event.session_id is None
