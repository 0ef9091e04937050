"""Widget tests record the commands a widget sends as the JSON they carry on the wire (the command's own model_dump),
after checking that the widget built the machine's typed command, not a dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from specflow_nb.machine import COMMAND_ADAPTER, Command


def wire(sink: list[dict[str, Any]]) -> Callable[[Command], None]:
    """``on_command`` for a widget under test: appends each command as the JSON the client sends."""

    def send(command: Command) -> None:
        assert isinstance(command, BaseModel), f"the widget sent {command!r}, not a typed command"
        assert COMMAND_ADAPTER.validate_python(command) == command  # one of the machine's commands
        sink.append(command.model_dump(mode="json", exclude_none=True))

    return send
