"""What a grant may do (issue 12): specflow read/write never lets anyone choose what runs.

A real Jupyter server with an authorizer granting only ``specflow`` read and write (what SpecflowHubAuthorizer gives
a non-owner holding the write scope), and one granting ``execute`` on kernels too.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from traitlets.config import Config

from specflow_nb import policy
from specflow_nb.demo import prepare_sample
from specflow_nb.models import OrchestrationConfig
from specflow_nb.server.extension import SpecflowExtension

from .openapi_check import check_response
from .test_lifecycle import wait_until

DEMO_AGENT = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
START = "workflow/orchestrate"
SERVER_VERIFY = f"{shlex.quote(sys.executable)} -c \"print('server verify')\""
STATUS = "workflow/orchestrate/status"


class SpecflowOnlyAuthorizer(Authorizer):
    """May read and write specflow; nothing else (no kernels, terminals or contents)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource == "specflow" and action in ("read", "write")


class ExecuteAuthorizer(Authorizer):
    """specflow read/write plus execute on kernels (may run code on this server anyway)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return (resource == "specflow" and action in ("read", "write")) or (resource, action) == ("kernels", "execute")


def _config(jp_server_config: Config, authorizer: type[Authorizer], tmp_path: Path, **ext: Any) -> Config:
    jp_server_config["ServerApp"]["authorizer_class"] = authorizer
    jp_server_config["SpecflowExtension"] = Config(
        {
            "agent_env": {"SPECFLOW_DEMO_DELAY": "0.05"},
            "approved_commands_file": str(tmp_path / "approvals.json"),
            "verify_commands": {"tests": f"{shlex.quote(sys.executable)} -c \"print('preset ran')\""},
            "agent_commands": {"demo": DEMO_AGENT},
            **ext,
        }
    )
    return jp_server_config


@pytest.fixture
def project(jp_root_dir: Path) -> str:
    prepare_sample(jp_root_dir / "todo")
    return "todo"


@pytest.fixture
def running(specflow_ext: SpecflowExtension, jp_asyncio_loop: asyncio.AbstractEventLoop) -> SpecflowExtension:
    jp_asyncio_loop.run_until_complete(specflow_ext.start_loop())
    return specflow_ext


class TestWithoutExecute:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, tmp_path: Path) -> Config:
        return _config(jp_server_config, SpecflowOnlyAuthorizer, tmp_path)

    @pytest.mark.parametrize(
        ("config", "fields"),
        [
            ({"verifyCommand": "touch pwned"}, ["verifyCommand"]),
            ({"agentCommand": "/bin/sh -c 'touch pwned'"}, ["agentCommand"]),
            ({"model": "opus", "fallbackModel": "haiku"}, ["model", "fallbackModel"]),
            ({"agent": "codex", "agentCommand": "/bin/sh -c 'touch pwned'"}, ["agentCommand"]),
        ],
        ids=["verify", "agent", "models", "codex"],
    )
    async def test_choosing_what_runs_is_403_naming_the_permission(
        self, config: dict[str, Any], fields: list[str], api: Any, project: str, running: Any, jp_root_dir: Path
    ) -> None:
        code, reply = await api("POST", START, body={"projectId": project, "config": config})
        assert code == 403, reply
        assert "execute on kernels or terminals" in reply["error"]
        assert reply["details"]["fields"] == fields
        assert reply["code"] == "CommandNotAllowed"
        check_response("POST", START, 403, reply)
        assert not (jp_root_dir / project / ".specflow" / "workflows").exists()
        assert not list(jp_root_dir.rglob("pwned"))

    async def test_defaults_and_presets_are_no_choice(
        self, api: Any, project: str, running: Any, jp_root_dir: Path
    ) -> None:
        # what the panel sends: the defaults spelled out, a preset by name
        config = {"agentCommand": "demo", "model": "sonnet", "verifyCommand": "tests", "fallbackModel": None}
        code, reply = await api("POST", START, body={"projectId": project, "config": config})
        assert code == 201, reply
        cfg = reply["orchestration"]["config"]
        assert cfg["agentCommand"] == DEMO_AGENT
        assert "preset ran" in cfg["verifyCommand"]
        ex, _ = await wait_until(api, project, lambda ex: ex["status"] in ("waiting_merge", "needs_attention"))
        assert ex["status"] == "waiting_merge", ex.get("recoveryContext")
        # a token server makes up an anonymous user per request: the log names the OS user instead, every time
        code, paused = await api("POST", "workflow/orchestrate/cancel", body={"projectId": project})
        assert code == 200, paused
        actors = {(d.get("data") or {}).get("actor") for d in paused["orchestration"]["decisionLog"]} - {None}
        assert actors == {getpass.getuser()}, actors

    async def test_preview_tells_the_form_what_it_may_set(self, api: Any, project: str) -> None:
        code, reply = await api("GET", STATUS, params={"projectId": project, "preview": "1"})
        assert code == 200, reply
        check_response("GET", STATUS, 200, reply)
        perms = reply["permissions"]
        assert perms["mayExecute"] is False
        assert perms["editableCommandFields"] == []
        assert set(perms["commandFields"]) == {
            "agentCommand",
            "verifyCommand",
            "model",
            "fallbackModel",
            "decisionModel",
        }
        assert perms["verifyCommands"] == {"tests": f"{shlex.quote(sys.executable)} -c \"print('preset ran')\""}
        assert perms["missing"] == "execute on kernels or terminals"


class TestPanelDefaults:
    """A server that sets agent_command and verify_command, and a user without execute."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, tmp_path: Path) -> Config:
        return _config(
            jp_server_config, SpecflowOnlyAuthorizer, tmp_path, agent_command=DEMO_AGENT, verify_command=SERVER_VERIFY
        )

    async def test_the_panels_default_body_is_no_choice(self, api: Any, project: str, running: Any) -> None:
        """The Start form sends every field (its defaults included): no 403, and the server's verify command."""
        body = OrchestrationConfig().model_dump(mode="json")
        assert {"agentCommand", "model", "fallbackModel", "verifyCommand"} <= set(body)
        code, reply = await api("POST", START, body={"projectId": project, "config": body})
        assert code == 201, reply
        assert reply["orchestration"]["config"]["agentCommand"] == DEMO_AGENT  # the server's agent_command
        assert reply["orchestration"]["config"]["verifyCommand"] == SERVER_VERIFY
        await api("POST", "workflow/orchestrate/cancel", body={"projectId": project})


class TestWithExecute:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, tmp_path: Path) -> Config:
        return _config(jp_server_config, ExecuteAuthorizer, tmp_path)

    async def test_a_user_who_may_run_code_chooses_and_it_is_approved(
        self, api: Any, project: str, running: Any, jp_root_dir: Path, tmp_path: Path
    ) -> None:
        marker = jp_root_dir / project / "verified.txt"
        verify = shlex.join([sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ok')"])
        config = {"agentCommand": DEMO_AGENT + " ", "verifyCommand": verify}
        code, reply = await api("GET", STATUS, params={"projectId": project, "preview": "1"})
        assert reply["permissions"]["mayExecute"] is True
        assert reply["permissions"]["editableCommandFields"]
        code, reply = await api("POST", START, body={"projectId": project, "config": config})
        assert code == 201, reply
        approvals = json.loads((tmp_path / "approvals.json").read_text())["approved"]
        assert len(approvals) == 4 and all(len(d) == 64 for d in approvals)  # digests, not the commands
        path, oid = tmp_path / "approvals.json", reply["orchestration"]["id"]
        assert policy.is_approved(path, "agent", DEMO_AGENT) and policy.is_approved(path, "verify", verify)
        assert policy.is_approved(path, "model", reply["orchestration"]["config"]["model"])
        assert policy.is_approved(path, "shell", oid)  # its runs get a shell
        assert verify not in (tmp_path / "approvals.json").read_text()
        ex, _ = await wait_until(api, project, lambda ex: ex["status"] in ("waiting_merge", "needs_attention"))
        assert ex["status"] == "waiting_merge", ex.get("recoveryContext")
        assert marker.read_text() == "ok"


class HeaderAuthorizer(Authorizer):
    """specflow read/write for everyone; execute on kernels unless the request says ``X-No-Execute`` (two users)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "specflow":
            return action in ("read", "write")
        return (resource, action) == ("kernels", "execute") and "X-No-Execute" not in handler.request.headers


def _tools(root: Path, project: str, run_id: str) -> tuple[list[str], list[str]]:
    argv = json.loads((root / project / ".specflow" / "workflows" / run_id / "argv.json").read_text())["argv"]

    def flag(name: str) -> list[str]:
        return argv[argv.index(name) + 1].split(",") if name in argv else []

    return flag("--allowedTools"), flag("--disallowedTools")


class TestTheAgentsShell:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config, tmp_path: Path) -> Config:
        return _config(jp_server_config, HeaderAuthorizer, tmp_path, agent_command=DEMO_AGENT)

    async def test_bash_only_while_no_user_without_execute_drove_it(
        self, api: Any, project: str, running: Any, jp_root_dir: Path
    ) -> None:
        no_exec = {"X-No-Execute": "1"}
        config = {"skipDesign": True, "skipAnalyze": True, "pauseBetweenBatches": True}
        code, reply = await api("POST", START, body={"projectId": project, "config": config})
        assert code == 201, reply
        ex, _ = await wait_until(api, project, lambda ex: ex["status"] == "paused" and ex["currentRun"] is None)
        first = ex["executions"]["implement"][0]
        allowed, denied = _tools(jp_root_dir, project, first)
        assert "Bash" in allowed and "Bash" not in denied  # started by a user with execute
        # a user without execute continues it: the next batch runs without a shell
        code, reply = await api("POST", "workflow/orchestrate/resume", body={"projectId": project}, headers=no_exec)
        assert code == 200, reply
        ex, _ = await wait_until(
            api, project, lambda ex: len(ex["executions"]["implement"]) > 1 and ex["currentRun"] is None
        )
        second = ex["executions"]["implement"][1]
        allowed, denied = _tools(jp_root_dir, project, second)
        assert "Bash" not in allowed and "Bash" in denied
        assert set(allowed) == {"Read", "Edit", "Write", "Glob", "Grep"}
        await api("POST", "workflow/orchestrate/cancel", body={"projectId": project})
        await wait_until(api, project, lambda ex: ex["status"] == "cancelled")
        # a start by a user without execute: no shell from its first run on
        code, reply = await api("POST", START, body={"projectId": project, "config": config}, headers=no_exec)
        assert code == 201, reply
        oid = reply["orchestration"]["id"]
        ex, _ = await wait_until(
            api, project, lambda ex: ex["id"] == oid and ex["executions"]["implement"] and ex["currentRun"] is None
        )
        allowed, denied = _tools(jp_root_dir, project, ex["executions"]["implement"][0])
        assert "Bash" not in allowed and "Bash" in denied
