"""Notifications are kept in the record, numbered: a client that skipped versions on the live channel (it saw the
start and then only the end) still announces each event once: here merge ready AND completed."""

from __future__ import annotations

from pathlib import Path

import anyio

from specflow_nb.machine import MergeCommand
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.widgets import notify
from tests.support.orch_helpers import base_config, big_project, settle


def test_a_client_that_skipped_versions_still_hears_each_event_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    big_project(root / "p", sections=2, total=4)

    async def phase() -> tuple:
        async with Orchestrator(root, EngineSettings()) as orch:
            first = await orch.start("p", base_config(autoMerge=False))
            await settle(orch, "p")
            await orch.command("p", MergeCommand())
            last = await settle(orch, "p")
            return first, last

    first, last = anyio.run(phase)
    assert last.status.value == "completed"
    assert [n.event for n in last.notifications][-2:] == ["waiting_merge", "completed"]
    assert [n.seq for n in last.notifications] == list(range(1, last.notification_seq + 1))

    sent: list[notify.Notification] = []
    notifier = notify.Notifier(send=sent.append, claims=tmp_path / "claims")
    assert notifier.observe(first, "p") is None  # nothing yet
    notifier.observe(last, "p")  # versions in between were never seen
    assert [n.message.split(":")[1].strip() for n in sent] == ["merge ready", "completed. Phase complete"]
    notifier.observe(last, "p")
    assert len(sent) == 2  # once each
