"""Team notifications: a local webhook receiver on 127.0.0.1 gets each event once, from the owning engine only (an
observing engine on the same folder with the same webhook sends nothing), and the URL appears in no log line."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from specflow_nb.cli_orchestrate import demo_agent_command
from specflow_nb.demo import prepare_sample
from specflow_nb.machine import MergeCommand
from specflow_nb.models import OrchestrationConfig
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.webhook import Webhook

pytestmark = pytest.mark.timeout(120)


class Receiver(HTTPServer):
    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.calls = 0
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.calls += 1
                data = self.rfile.read(int(self.headers["Content-Length"]))
                if received.calls <= received.fail_first:
                    self.send_response(503)
                else:
                    received.bodies.append(json.loads(data))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/T000/SECRET-PATH-abcdef"


def test_each_event_once_from_the_owner_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    project = prepare_sample(tmp_path / "todo")
    receiver = Receiver(fail_first=1)  # the first delivery fails once: retried
    caplog.set_level(logging.INFO)

    async def main() -> None:
        owner_settings = EngineSettings(agent_command=demo_agent_command(), host_kind="server")
        observer_settings = EngineSettings(host_kind="cli", may_take_over=False)
        async with Orchestrator(project, owner_settings) as owner, Orchestrator(project, observer_settings) as other:
            Webhook(receiver.url, retry_delays=(0.2, 0.5)).attach(owner)
            Webhook(receiver.url, retry_delays=(0.2, 0.5)).attach(other)
            config = OrchestrationConfig(skip_design=True, skip_analyze=True)
            ex = await owner.start("", config)
            while ex.status.value != "waiting_merge":
                ex = await owner.wait_for_change("", ex.version, 30, known_id=ex.id) or ex
            ex = await owner.command("", MergeCommand())
            while ex.status.value != "completed":
                ex = await owner.wait_for_change("", ex.version, 30, known_id=ex.id) or ex
            with anyio.move_on_after(10):
                while len(receiver.bodies) < 2:
                    await anyio.sleep(0.05)
            await anyio.sleep(1.0)  # nothing more arrives (the observer's webhook stays silent)

    anyio.run(main)
    receiver.shutdown()
    events = [b["event"] for b in receiver.bodies]
    assert events == ["waiting_merge", "completed"], receiver.bodies
    assert receiver.calls == 3  # one 503, retried
    assert all(b["text"].startswith("specflow_nb · .: ") for b in receiver.bodies)
    assert "Phase ready to merge" in receiver.bodies[0]["text"]
    assert "SECRET-PATH" not in caplog.text and "not delivered (attempt 1): HTTP 503" in caplog.text
