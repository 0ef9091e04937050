"""A recover keeps one shape on its way in (issue 17): the recovery panel builds the machine's RecoverCommand and the
in-kernel backend hands that very object to the engine (the remote half is tests/server/test_typed_commands.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import Command, RecoverCommand
from specflow_nb.models import BudgetChange, RecoveryOption
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.widgets.local import LocalBackend
from specflow_nb.widgets.panel import ProjectPanel
from specflow_nb.widgets.recovery import RecoveryPanel
from tests.widgets.test_budget_raise import budget_stop


def retry_with_budget() -> RecoverCommand:
    """What a click on Retry after a budget stop, with Max total raised to 9, sends."""
    built: list[Command] = []
    recovery = RecoveryPanel(built.append)
    recovery.render(budget_stop())
    recovery.budget.controls["max_total"].input.value = 9.0
    recovery.buttons[RecoveryOption.RETRY].click()
    (command,) = built
    assert isinstance(command, RecoverCommand)
    assert command.option is RecoveryOption.RETRY and isinstance(command.budget, BudgetChange)
    assert command.budget.max_total == 9.0
    return command


def test_a_recover_from_the_panel_reaches_the_kernels_engine_as_the_same_model(tmp_path: Path) -> None:
    prepare_sample(tmp_path / "todo")
    command = retry_with_budget()
    received: list[Any] = []

    async def main() -> None:
        backend = LocalBackend(tmp_path, settings=EngineSettings(host_kind="kernel"))
        engine = backend.orchestrator
        real = engine.command

        async def spy(project_id: str, cmd: Any, orchestration_id: str | None = None, **kw: Any) -> Any:
            received.append(cmd)  # the real engine still applies it
            return await real(project_id, cmd, orchestration_id, **kw)

        engine.command = spy  # type: ignore[method-assign]
        panel = ProjectPanel(backend, "todo", title="todo")
        try:
            with pytest.raises(SpecflowError):  # no orchestration to recover yet: the engine's own answer
                await panel.command(command)
        finally:
            await panel.aclose()
            await backend.aclose()

    anyio.run(main)
    assert received == [command] and received[0] is command  # not a dict, not re-packed: the widget's object
