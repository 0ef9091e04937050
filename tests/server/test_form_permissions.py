"""The Start form as a user without execute sees it: the fields that choose what runs are read-only, saying why;
with execute they are editable. The preview comes from a real server with a real authorizer."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from traitlets.config import Config

from specflow_nb.demo import prepare_sample
from specflow_nb.widgets.plan import PlanPreview
from specflow_nb.widgets.start_modal import StartOrchestrationModal

COMMAND_FIELDS = ("agent_command", "verify_command", "model", "fallback_model", "decision_model")


class SpecflowWriter(Authorizer):
    """May read and write specflow; no kernels, terminals or contents: may not run code."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "specflow"


class Developer(Authorizer):
    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return True


async def _form(api: Any, jp_root_dir: Any) -> StartOrchestrationModal:
    prepare_sample(jp_root_dir / "todo")
    code, body = await api("GET", "workflow/orchestrate/status", params={"projectId": "todo", "preview": "true"})
    assert code == 200, body
    modal = StartOrchestrationModal(on_start=lambda _c: None, on_cancel=lambda: None)
    modal.reset()
    modal.render_preview(PlanPreview.from_json(body))
    return modal


class TestWithoutExecute:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["ServerApp"]["authorizer_class"] = SpecflowWriter
        return jp_server_config

    async def test_command_fields_are_read_only_and_say_why(self, api: Any, jp_root_dir: Any) -> None:
        modal = await _form(api, jp_root_dir)
        for name in COMMAND_FIELDS:
            control = modal.form.controls[(name,)]
            assert control.input.disabled, name
            said = control.check.children[0].value  # type: ignore[attr-defined]
            assert "Set by the server" in said or "ask its administrator" in said, (name, said)
        assert not modal.form.controls[("auto_merge",)].input.disabled  # the rest stays the user's choice
        assert modal.use_demo not in modal.form.controls[("agent_command",)].check.children


class TestWithExecute:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config["ServerApp"]["authorizer_class"] = Developer
        return jp_server_config

    async def test_command_fields_are_editable(self, api: Any, jp_root_dir: Any) -> None:
        modal = await _form(api, jp_root_dir)
        for name in COMMAND_FIELDS:
            assert not modal.form.controls[(name,)].input.disabled, name
