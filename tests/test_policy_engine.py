"""The command policy before every run (issue 12): a server engine runs only what the server's settings name or
someone who may run code approved — also for a record edited on disk and retried after a restart.

Real demo-agent subprocesses, real files; ``trust_requests=False`` is what the Jupyter server sets."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from specflow_nb import policy
from specflow_nb.machine import RecoverCommand
from specflow_nb.models import RecoveryOption
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from tests.support.orch_helpers import DEMO_AGENT, base_config, big_project, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    big_project(folder / "big", sections=1, total=2)
    return folder


def server_settings(tmp_path: Path, **kw: object) -> EngineSettings:
    return EngineSettings(
        trust_requests=False,
        approved_commands_file=tmp_path / "approvals.json",
        **kw,  # type: ignore[arg-type]
    )


def pwn(marker: Path) -> str:
    return shlex.join([sys.executable, "-c", f"open({str(marker)!r}, 'w').write('pwned')"])


async def test_an_unapproved_agent_command_never_runs(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-agent"
    async with Orchestrator(root, server_settings(tmp_path)) as orch:
        await orch.start("big", base_config(agentCommand=pwn(marker)))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None
    assert "not chosen by someone who may run code" in (ex.recovery_context.issue + (ex.error_message or ""))
    assert not marker.exists()


async def test_the_servers_agent_command_replaces_the_records(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-agent"
    settings = server_settings(tmp_path, agent_command=DEMO_AGENT, agent_env={"SPECFLOW_DEMO_DELAY": "0.01"})
    async with Orchestrator(root, settings) as orch:
        await orch.start("big", base_config(agentCommand=pwn(marker)))
        ex = await settle(orch, "big")
    assert ex.status.value == "waiting_merge", ex.recovery_context
    assert not marker.exists()


async def test_a_verify_command_edited_on_disk_is_refused_after_a_restart(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned-verify"
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])
    policy.approve(tmp_path / "approvals.json", "verify", failing)  # chosen by someone with execute
    settings = server_settings(tmp_path, agent_command=DEMO_AGENT)
    async with Orchestrator(root, settings) as orch:
        ex = await orch.start("big", base_config(verifyCommand=failing))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention" and ex.current_phase.value == "verify"
    assert ex.recovery_context is not None and "3" in ex.recovery_context.issue
    # someone (an agent with a Write tool, a user with contents write) edits the record while no engine runs
    path = root / "big" / ".specflow" / "workflows" / f"orchestration-{ex.id}.json"
    data = json.loads(path.read_text())
    data["config"]["verifyCommand"] = pwn(marker)
    path.write_text(json.dumps(data))
    async with Orchestrator(root, settings) as orch:
        await orch.command("big", RecoverCommand(option=RecoveryOption.RETRY))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    assert ex.recovery_context is not None
    assert "was not run" in ex.recovery_context.issue, ex.recovery_context.issue
    assert not marker.exists()


async def test_a_trusting_host_approves_what_it_is_given(root: Path, tmp_path: Path) -> None:
    """The CLI and the kernel engine (their users run code anyway) approve their commands for the server."""
    ok = shlex.join([sys.executable, "-c", "print('fine')"])
    settings = EngineSettings(approved_commands_file=tmp_path / "approvals.json")
    async with Orchestrator(root, settings) as orch:
        await orch.start("big", base_config(verifyCommand=ok))
        ex = await settle(orch, "big")
    assert ex.status.value == "waiting_merge"
    assert policy.is_approved(tmp_path / "approvals.json", "verify", ok)
    assert policy.is_approved(tmp_path / "approvals.json", "agent", DEMO_AGENT)
    assert not policy.is_approved(tmp_path / "approvals.json", "verify", ok + " --other")


async def test_a_model_edited_on_disk_is_refused_before_the_next_run(root: Path, tmp_path: Path) -> None:
    settings = server_settings(tmp_path, agent_command=DEMO_AGENT, agent_env={"SPECFLOW_DEMO_DELAY": "0.01"})
    failing = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])
    policy.approve(tmp_path / "approvals.json", "verify", failing)
    async with Orchestrator(root, settings) as orch:
        ex = await orch.start("big", base_config(verifyCommand=failing))
        ex = await settle(orch, "big")
    assert ex.status.value == "needs_attention"
    path = root / "big" / ".specflow" / "workflows" / f"orchestration-{ex.id}.json"
    for field in ("model", "fallbackModel"):
        data = json.loads(path.read_text())
        data["config"][field] = "someones-own-endpoint-model"
        path.write_text(json.dumps(data))
        async with Orchestrator(root, settings) as orch:
            await orch.command("big", RecoverCommand(option=RecoveryOption.RETRY))
            ex = await settle(orch, "big")
        assert ex.status.value == "needs_attention"
        assert ex.recovery_context is not None
        issue = ex.recovery_context.issue + (ex.error_message or "")
        assert f"The {field} 'someones-own-endpoint-model' was not chosen" in issue, issue
        data = json.loads(path.read_text())
        data["config"][field] = None if field == "fallbackModel" else "sonnet"
        path.write_text(json.dumps(data))
    # once someone with execute chose it, the same record runs
    policy.approve(tmp_path / "approvals.json", "model", "someones-own-endpoint-model")
    data = json.loads(path.read_text())
    data["config"]["model"] = "someones-own-endpoint-model"
    path.write_text(json.dumps(data))
    async with Orchestrator(root, settings) as orch:
        await orch.command("big", RecoverCommand(option=RecoveryOption.RETRY))
        ex = await settle(orch, "big")
    assert ex.recovery_context is not None and "was not chosen" not in ex.recovery_context.issue


async def test_a_preview_approves_nothing_and_a_start_approves_the_models(root: Path, tmp_path: Path) -> None:
    approvals = tmp_path / "approvals.json"
    settings = EngineSettings(approved_commands_file=approvals, agent_env={"SPECFLOW_DEMO_DELAY": "0.01"})
    async with Orchestrator(root, settings) as orch:
        orch.preview("big", base_config(model="preview-only-model"))
        assert not approvals.exists() or not policy.is_approved(approvals, "model", "preview-only-model")
        await orch.start("big", base_config(model="chosen-model", fallbackModel="chosen-fallback"))
        await settle(orch, "big")
    assert policy.is_approved(approvals, "model", "chosen-model")
    assert policy.is_approved(approvals, "model", "chosen-fallback")
    assert not policy.is_approved(approvals, "model", "preview-only-model")
