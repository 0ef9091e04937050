"""A recover keeps one shape on its way in (issue 17), through a real Jupyter server: the recovery panel's
RecoverCommand goes through RemoteBackend, the client and the server's command route, and the server's engine receives
an equal RecoverCommand (the in-kernel half is tests/widgets/test_typed_recover.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from specflow_nb.client import SpecflowClient
from specflow_nb.demo import prepare_sample
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import RecoverCommand
from specflow_nb.models import BudgetChange, BudgetConfig
from specflow_nb.server.api import COMMAND_ROUTES, RecoverRequest
from specflow_nb.server.extension import SpecflowExtension
from specflow_nb.widgets.remote import RemoteBackend
from tests.widgets.test_typed_recover import retry_with_budget


async def test_a_recover_from_the_panel_reaches_the_servers_engine_as_the_same_model(
    jp_serverapp: Any,
    specflow_ext: SpecflowExtension,
    jp_root_dir: Any,
    jp_fetch: Any,  # the test server listens on its socket
    jp_http_port: int,
    jp_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepare_sample(jp_root_dir / "todo")
    command = retry_with_budget()
    engine = specflow_ext.orchestrator
    real = engine.command
    received: list[Any] = []

    async def spy(project_id: str, cmd: Any, orchestration_id: str | None = None, **kw: Any) -> Any:
        received.append(cmd)  # the real engine still applies it
        return await real(project_id, cmd, orchestration_id, **kw)

    monkeypatch.setattr(engine, "command", spy)
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"  # the test server's socket
    client = SpecflowClient(url=url, token=jp_serverapp.identity_provider.token)
    try:
        with pytest.raises(SpecflowError):  # no orchestration to recover yet: the engine's answer, as its class
            await RemoteBackend(client).command("todo", command)
    finally:
        await asyncio.to_thread(client.close)
    (got,) = received
    assert isinstance(got, RecoverCommand) and got == command  # the same model, budget included
    assert got.budget is not None and got.budget.max_total == 9.0


def test_a_partial_budget_sent_over_rest_stays_partial_to_the_machine() -> None:
    """``POST …/recover`` with ``{"budget": {"maxTotal": 20}}``: the command carries only that limit and the machine
    keeps the others (before, the request's model filled them with defaults and a custom cap was lost)."""
    route = next(r for r in COMMAND_ROUTES if r.action == "recover")
    body = {"projectId": "p", "option": "retry", "budget": {"maxTotal": 20}}
    cmd = route.command(RecoverRequest.model_validate(body))
    assert isinstance(cmd, RecoverCommand) and cmd.budget == BudgetChange(max_total=20)
    assert cmd.budget.over(BudgetConfig(max_per_batch=3.0)) == BudgetConfig(max_per_batch=3.0, max_total=20.0)
