"""Driving a real ProjectPanel the way a person does: its own buttons, on a real event loop, with the demo agent."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specflow_nb.models import OrchestrationExecution
from specflow_nb.widgets.panel import ProjectPanel
from specflow_nb.widgets.sync import descendants

#: The bundled demo agent next to this Python (the console script installed with the package).
DEMO_AGENT = str(Path(sys.executable).parent / "specflow-nb-demo-agent")


def write_script(path: Path, rules: list[dict[str, Any]], default: str = "success") -> Path:
    """A SPECFLOW_DEMO_SCRIPT file: per-run scenarios of the demo agent (first matching rule wins)."""
    path.write_text(json.dumps({"default": default, "rules": rules}), encoding="utf-8")
    return path


def shown(widget: Any) -> bool:
    return widget.layout.display != "none"


def texts(panel: ProjectPanel) -> str:
    """Every HTML text currently in the panel's widget tree (what a person could read)."""
    return " ".join(c.value for c in descendants(panel) if isinstance(getattr(c, "value", None), str))


async def until(
    panel: ProjectPanel,
    predicate: Callable[[OrchestrationExecution], bool],
    what: str,
    timeout: float = 60.0,
) -> OrchestrationExecution:
    """Wait until the panel shows an execution matching ``predicate`` (updated by its live task, not by us)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        ex = panel.execution
        if ex is not None and predicate(ex):
            return ex
        if loop.time() > deadline:
            state = None if ex is None else (ex.status.value, ex.current_phase.value, ex.error_message)
            raise AssertionError(
                f"timed out waiting for {what}; panel shows {state}; status line {panel.status_line.value!r}"
            )
        await asyncio.sleep(0.05)


def status_is(*statuses: str) -> Callable[[OrchestrationExecution], bool]:
    return lambda ex: ex.status.value in statuses


async def start_from_form(panel: ProjectPanel, **options: Any) -> OrchestrationExecution:
    """Complete Phase → set the options in the form (agent command: the demo agent) → Start."""
    panel.complete.click()
    assert panel.mode == "form"
    controls = panel.form.form.controls
    controls[("agent_command",)].input.value = DEMO_AGENT
    for name, value in options.items():
        controls[tuple(name.split("."))].input.value = value
    await panel.wait_preview()
    assert panel.form.blocked_reason is None, (panel.form.blocked_reason, panel.form.notes.value)
    panel.form.start.click()
    return await until(panel, lambda ex: True, "the started orchestration")
