"""Team notifications: a JSON POST with a Slack-compatible ``text`` for each event a person should see, sent by the
engine that OWNS the orchestration (the machine's ``Notify`` actions, which only an owner performs), so each event
is sent once however many hosts observe the project.

The URL is a secret (a Slack incoming-webhook URL is a credential): it is registered with :mod:`specflow_nb.redact`
so it is masked wherever text is redacted, it is never served, and failures are logged without it (the exception's
type and the HTTP status only). Delivery runs in a worker thread with a few retries and never blocks the engine.

Wiring (server extension)::

    webhook = Webhook(self.notify_webhook_url)          # SpecflowExtension.notify_webhook_url (a secret traitlet)
    webhook.attach(self.orchestrator)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

#: The machine's Notify events sent by default (a pause the user asked for, or a stall, are not news for a team).
DEFAULT_EVENTS = ("needs_attention", "waiting_input", "waiting_merge", "completed", "failed")
RETRY_DELAYS = (1.0, 3.0, 9.0)


class Webhook:
    def __init__(
        self,
        url: str,
        *,
        events: Iterable[str] = DEFAULT_EVENTS,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = 10.0,
        post: Callable[[str, dict[str, Any], float], int] | None = None,
    ) -> None:
        self._url = url
        self.events = frozenset(events)
        self.retry_delays = retry_delays
        self.timeout = timeout
        self._post = post or _post
        self.sent = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        try:
            from specflow_nb import redact

            redact.register([url])
        except ImportError:  # the redaction module of the security work: the URL is still never logged here
            pass

    def __repr__(self) -> str:
        return "Webhook(url=***)"

    def attach(self, orchestrator: Any) -> Callable[[], None]:
        """Subscribe to the engine's notifications; returns the unsubscribe function."""
        unsubscribe: Callable[[], None] = orchestrator.subscribe_notifications(self.notify)
        return unsubscribe

    @staticmethod
    def payload(execution: Any, event: str, message: str) -> dict[str, Any]:
        from specflow_nb import summary

        project = execution.project_id or "."
        headline = summary.headline(execution)
        return {
            "text": f"specflow_nb · {project}: {message} ({headline})",
            "event": event,
            "projectId": execution.project_id,
            "orchestrationId": execution.id,
            "status": execution.status.value,
            "message": message,
        }

    def notify(self, execution: Any, action: Any) -> None:
        """The engine's callback (``Orchestrator.subscribe_notifications``): deliver in the background."""
        if action.event not in self.events:
            return
        self._queue.put(self.payload(execution, action.event, action.message))
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="specflow-webhook", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        """One delivery at a time, in order (a retried event is not overtaken by the next one)."""
        while True:
            try:
                body = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            self._deliver(body)

    def _deliver(self, body: dict[str, Any]) -> None:
        for attempt, delay in enumerate((0.0, *self.retry_delays), start=1):
            if delay:
                time.sleep(delay)
            try:
                status = self._post(self._url, body, self.timeout)
            except Exception as exc:  # the message may hold the URL: only its type is logged
                log.warning(
                    "specflow webhook: %s not delivered (attempt %d): %s", body["event"], attempt, type(exc).__name__
                )
                continue
            if 200 <= status < 300:
                self.sent += 1
                return
            log.warning("specflow webhook: %s not delivered (attempt %d): HTTP %d", body["event"], attempt, status)
            if 400 <= status < 500 and status != 429:
                break  # a refusal, not an outage: retrying will not help
        self.failed += 1
        log.error("specflow webhook: gave up delivering %s for %s", body["event"], body["orchestrationId"])


def _post(url: str, body: dict[str, Any], timeout: float) -> int:
    """POST JSON with the standard library (httpx would log the URL at INFO level)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
