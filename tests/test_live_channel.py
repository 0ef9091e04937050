"""The live channel under the long-poll: a new orchestration wakes a waiter even when its version is lower."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from specflow_nb.demo import prepare_sample
from specflow_nb.orchestrator import Orchestrator

AGENT = str(Path(sys.executable).parent / "specflow-nb-demo-agent")


def test_new_orchestration_wakes_a_waiter_that_knows_the_old_one(tmp_path: Path) -> None:
    prepare_sample(tmp_path / "todo")

    async def main() -> None:
        async with Orchestrator(tmp_path) as orch:
            first = await orch.start("todo", {"agentCommand": AGENT})
            first = await orch.command("todo", {"action": "cancel"})
            assert first.status.value == "cancelled"
            with anyio.fail_after(15):  # the killed run's end is one more change: let it land first
                while first.killed_run_ids:
                    first = await orch.wait_for_change("todo", first.version, 5) or first
            woken: list = []

            async def waiter() -> None:
                woken.append(await orch.wait_for_change("todo", first.version, 20, known_id=first.id))

            with anyio.fail_after(15):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiter)
                    await anyio.sleep(0.2)
                    assert not woken  # nothing new yet: still waiting
                    second = await orch.start("todo", {"agentCommand": AGENT})
            assert woken and woken[0].id == second.id and woken[0].id != first.id
            await orch.command("todo", {"action": "cancel"})

    anyio.run(main)


def test_cancel_interrupts_a_running_verify_command(tmp_path: Path) -> None:
    prepare_sample(tmp_path / "todo")
    marker = tmp_path / "verify-started"
    command = f"{sys.executable} -c \"open({str(marker)!r}, 'w').close(); import time; time.sleep(120)\""

    async def main() -> None:
        async with Orchestrator(tmp_path) as orch:
            ex = await orch.start("todo", {"agentCommand": AGENT, "verifyCommand": command})
            with anyio.fail_after(60):
                while not marker.exists():  # the verify agent run ended; the orchestrator runs the command now
                    await anyio.sleep(0.05)
            with anyio.fail_after(10):  # not the command's 120 s: the cancel interrupts it
                ex = await orch.command("todo", {"action": "cancel"})
            assert ex.status.value == "cancelled" and ex.current_phase.value == "verify"

    anyio.run(main)
