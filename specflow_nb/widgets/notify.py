"""Notifications that reach a person who is not looking at the panel: JupyterLab 4's own (``apputils:notify``,
executed through ipylab) when an orchestration needs attention, waits for answers, is ready to merge, completed or
failed. Every panel and overview card of a kernel shares one :class:`Notifier`, and the kernels of one Jupyter
installation claim each event in a shared folder (the runtime dir), so each event shows once however many panels
and notebooks follow the project.

An event is keyed by (orchestration id, what happened, how many decisions the log had then): a panel that reconnects
or a second panel that sees the same state later does not notify again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from specflow_nb.models import OrchestrationExecution
from specflow_nb.summary import Notification, event_of, notifications_since

__all__ = ["NOTIFY_COMMAND", "Notification", "Notifier", "event_of", "send_to_jupyterlab", "shared"]

log = logging.getLogger(__name__)

#: JupyterLab's command (JupyterLab ≥ 4.0) that shows a toast in the notification center.
NOTIFY_COMMAND = "apputils:notify"


class Notifier:
    """Sends each notification once per kernel. ``send`` is JupyterLab's notify through ipylab by default."""

    def __init__(
        self, send: Callable[[Notification], None] | None = None, *, claims: Path | bool | None = True
    ) -> None:
        self.shown: dict[str, Notification] = {}
        #: A folder shared by the kernels of this Jupyter installation (its runtime dir): the first kernel to claim
        #: an event shows it, so two notebooks open in one browser do not both announce it. False: this kernel only.
        self.claims: Path | None = _claims_dir() if claims is True else (claims or None)
        #: orchestration id -> the first state this kernel saw it in (an old stop seen on opening is not news)
        self._baseline: dict[str, str] = {}
        #: orchestration id -> the newest recorded notification this kernel has looked at
        self._seq: dict[str, int] = {}
        self._send = send or send_to_jupyterlab

    def observe(self, execution: OrchestrationExecution, project: str = "") -> Notification | None:
        """Called with every state a panel receives; announces what the machine recorded since the last state this
        kernel saw (each notification once, even when the live channel skipped versions). Returns the last one sent.

        Notifications older than a minute when the panel first sees the orchestration are not news (the panel shows
        the state). Records written before notifications were recorded fall back to the state's own event.
        """
        if execution.notifications or execution.notification_seq:
            return self._observe_records(execution, project)
        event = event_of(execution, project)
        first = execution.id not in self._baseline
        if first:
            self._baseline[execution.id] = event.key if event else ""
            if event is not None and not _fresh(execution):
                self.shown[event.key] = event
                return None
        if event is None or event.key in self.shown:
            return None
        self.shown[event.key] = event
        if not self._claim(event.key):
            return None  # another kernel showed it
        try:
            self._send(event)
        except Exception:  # no JupyterLab (another frontend, a headless kernel): the panel still shows it
            log.debug("notification not sent", exc_info=True)
        return event

    def _observe_records(self, execution: OrchestrationExecution, project: str) -> Notification | None:
        from datetime import datetime, timedelta, timezone

        seen = self._seq.get(execution.id)
        not_before = None
        if seen is None:
            seen, not_before = 0, datetime.now(timezone.utc) - timedelta(seconds=60)
        self._seq[execution.id] = max(seen, execution.notification_seq)
        sent = None
        for event in notifications_since(execution, seen, project, not_before=not_before):
            if event.key in self.shown:
                continue
            self.shown[event.key] = event
            if not self._claim(event.key):
                continue  # another kernel showed it
            try:
                self._send(event)
            except Exception:
                log.debug("notification not sent", exc_info=True)
            sent = event
        return sent

    def _claim(self, key: str) -> bool:
        if self.claims is None:
            return True
        import hashlib
        import os

        try:
            self.claims.mkdir(parents=True, exist_ok=True)
            path = self.claims / hashlib.sha256(key.encode()).hexdigest()[:32]
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError:  # no shared folder: this kernel decides alone
            return True
        os.close(fd)
        _prune(self.claims)
        return True


def _claims_dir() -> Path | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return Path(jupyter_runtime_dir()) / "specflow_nb-notified"


def _prune(folder: Path, max_age: float = 7 * 86400) -> None:
    """Claims older than a week are forgotten (an event is news for minutes, not forever)."""
    import time

    cutoff = time.time() - max_age
    try:
        for entry in folder.iterdir():
            if entry.stat().st_mtime < cutoff:
                entry.unlink(missing_ok=True)
    except OSError:
        pass


def _fresh(execution: OrchestrationExecution, seconds: float = 60.0) -> bool:
    from datetime import datetime, timezone

    return (datetime.now(timezone.utc) - execution.updated_at).total_seconds() < seconds


def send_to_jupyterlab(event: Notification) -> None:
    from ipylab import JupyterFrontEnd

    options = {"autoClose": False if event.kind in ("error", "warning") else 8000}
    JupyterFrontEnd().commands.execute(
        NOTIFY_COMMAND, {"message": f"Specflow — {event.message}"[:400], "type": event.kind, "options": options}
    )


_shared: Notifier | None = None


def shared() -> Notifier:
    """The kernel's one notifier (every panel and the overview use it)."""
    global _shared
    if _shared is None:
        _shared = Notifier()
    return _shared
