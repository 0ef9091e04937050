"""The demo agent's output in Claude Code's stream-json shapes: system init, assistant text and tool use, tool
results, and the final result message.

Apart from the demo agent's behaviour (:mod:`specflow_nb.demo.demo_agent`) because it is the protocol, not the
scenarios: a test reads these shapes exactly as it reads the real CLI's.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

DEMO_VERSION = "demo-agent"


class Emitter:
    def __init__(self, fmt: str, session_id: str, delay: float = 0.0) -> None:
        self.fmt = fmt
        self.session_id = session_id
        self.delay = delay
        self._msg = 0

    def line(self, obj: dict[str, Any]) -> None:
        if self.fmt == "stream-json" or obj.get("type") == "result":
            if self.fmt == "text" and obj.get("type") == "result":
                sys.stdout.write(str(obj.get("result") or "") + "\n")
            else:
                sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            if self.delay:
                time.sleep(self.delay)

    def raw(self, data: bytes) -> None:
        if self.fmt == "stream-json":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def init(self, cwd: str, model: str, tools: list[str]) -> None:
        self.line(
            {
                "type": "system",
                "subtype": "init",
                "cwd": cwd,
                "session_id": self.session_id,
                "tools": tools,
                "mcp_servers": [],
                "model": model,
                "permissionMode": "acceptEdits",
                "slash_commands": [],
                "apiKeySource": "none",
                "claude_code_version": DEMO_VERSION,
                "output_style": "default",
                "agents": [],
                "skills": [],
                "plugins": [],
                "uuid": str(uuid.uuid4()),
            }
        )

    def assistant(self, model: str, content: list[dict[str, Any]], error: str | None = None) -> None:
        self._msg += 1
        obj: dict[str, Any] = {
            "type": "assistant",
            "message": {
                "id": f"msg_demo_{self._msg}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 5},
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": str(uuid.uuid4()),
        }
        if error:
            obj["error"] = error
        self.line(obj)

    def tool(self, model: str, name: str, tool_input: dict[str, Any], result: str) -> None:
        tool_id = f"toolu_demo_{uuid.uuid4().hex[:12]}"
        self.assistant(model, [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}])
        self.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": result}],
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": str(uuid.uuid4()),
            }
        )

    def result(
        self,
        *,
        subtype: str = "success",
        is_error: bool = False,
        result: str | None,
        cost: float,
        turns: int,
        started: float,
        structured: Any = None,
        errors: list[str] | None = None,
    ) -> None:
        obj: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "duration_api_ms": 0,
            "num_turns": turns,
            "session_id": self.session_id,
            "total_cost_usd": cost,
            "usage": {"input_tokens": 12 * turns, "output_tokens": 5 * turns},
            "modelUsage": {},
            "permission_denials": [],
            "uuid": str(uuid.uuid4()),
        }
        if result is not None:
            obj["result"] = result
        if structured is not None:
            obj["structured_output"] = structured
        if errors:
            obj["errors"] = errors
        self.line(obj)
