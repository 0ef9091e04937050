"""A server with ``notify_webhook_url``: a team hears of each event once, from the owning engine, and the URL (a
secret: it may carry a token) is in no response and not in the log. Also: parked orchestrations do not count
against ``max_concurrent_orchestrations``."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.common import LiveServer, fast_config, make_projects

SECRET_PATH = "/hooks/T0-canary-4f9d2b"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append({"path": self.path, **json.loads(self.rfile.read(length))})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_webhook_gets_each_event_once_and_the_url_is_never_served(tmp_path: Path) -> None:
    receiver = Receiver()
    root = tmp_path / "root"
    projects = make_projects(root, 3)
    server = LiveServer(
        root,
        tmp_path / "srv",
        agent_env={"SPECFLOW_DEMO_DELAY": "0.02"},
        max_concurrent=1,
        settings={"notify_webhook_url": receiver.url},
    )
    server.start()
    try:
        with server.client() as c:
            # p000 parks at merge ready (autoMerge off): it does not hold a run, so it does not use the one slot
            r = c.post("workflow/orchestrate", json={"projectId": projects[0], "config": fast_config(autoMerge=False)})
            assert r.status_code == 201, r.text
            deadline = time.monotonic() + 60
            while (
                c.get("workflow/orchestrate/status", params={"projectId": projects[0]}).json()["orchestration"][
                    "status"
                ]
                != "waiting_merge"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            r = c.post("workflow/orchestrate", json={"projectId": projects[1], "config": fast_config()})
            assert r.status_code == 201, r.text  # the parked one does not count
            r = c.post("workflow/orchestrate", json={"projectId": projects[2], "config": fast_config()})
            assert r.status_code == 409 and "maximum" in r.json()["error"]  # p001 holds the slot while it runs
            deadline = time.monotonic() + 60
            while not any(b["event"] == "completed" for b in receiver.bodies):
                assert time.monotonic() < deadline, receiver.bodies
                time.sleep(0.1)
            responses = [
                c.get("workflow/orchestrate/status", params={"projectId": p, "preview": "true"}).text for p in projects
            ]
            responses += [c.get("workflow/orchestrate/list", params={"projectId": p}).text for p in projects]
            responses.append(c.get("projects").text)
    finally:
        server.stop()
        receiver.close()
    events = [(b["projectId"], b["event"]) for b in receiver.bodies]
    assert events.count((projects[0], "waiting_merge")) == 1 and events.count((projects[1], "completed")) == 1
    assert all(b["path"] == SECRET_PATH and b["text"].startswith("specflow_nb · ") for b in receiver.bodies)
    for text in responses:
        assert "T0-canary-4f9d2b" not in text
    assert "T0-canary-4f9d2b" not in server.log.read_text(errors="replace")
