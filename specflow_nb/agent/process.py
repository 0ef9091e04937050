"""The detached run: starting it (the blocking work is :mod:`specflow_nb.agent.launching`: run.lock, the session
leader that records its exit), attaching to it after a restart, following its output, stopping it at its time
limit or budget, and killing it.

The same for every agent family (:mod:`specflow_nb.agent.family` says what differs). The run folder's files are
listed in :mod:`specflow_nb.agent.claude`.

The process runs in its own session (process group) with its output going to files, so it outlives the server
that started it; a later server re-attaches with :func:`attach_run` and awaits it through a pidfd (Linux) or by
looking at the process again (elsewhere). Completion is the process's exit, or exit.json in place (its exit
recorder's last act, noticed a little before the recorder's own exit); new output is noticed through
:class:`specflow_nb.watching.FolderWatch` on the run folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from specflow_nb import procs
from specflow_nb.agent import launching
from specflow_nb.agent.codex_usage import USAGE_POLL_SECONDS
from specflow_nb.agent.family import UsageWatch, family_for
from specflow_nb.agent.launching import Launched
from specflow_nb.agent.options import AgentOptions
from specflow_nb.agent.outcome import AgentOutcome, FailureKind
from specflow_nb.agent.results import cache_outcome as write_outcome
from specflow_nb.agent.results import event_filter, read_outcome
from specflow_nb.agent.rundir import (
    ARGV_FILE,
    EXIT_FILE,
    KILL_FILE,
    LEADER_FILE,
    PID_FILE,
    STDERR_FILE,
    STREAM_FILE,
    pidfd_open,
    read_json,
    record_alive,
    run_lock_held,
    write_json,
)
from specflow_nb.agent.stream import StreamEvent, StreamParser
from specflow_nb.models import utcnow
from specflow_nb.watching import FolderWatch

KILL_GRACE_SECONDS = 5.0


class AgentRun:
    """A detached run. Obtain one from :func:`start_run` or :func:`attach_run`; ``await run.wait()`` for its end."""

    def __init__(
        self,
        run_dir: Path,
        pid: int,
        create_time: float | None,
        *,
        popen: subprocess.Popen[bytes] | None = None,
        started_at: datetime | None = None,
        timeout_seconds: float | None = None,
        pidfd: int | None = None,
        exit_signal: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.execution_id = run_dir.name
        self.pid = pid
        self.create_time = create_time
        self.started_at = started_at or utcnow()
        self.timeout_seconds = timeout_seconds
        self._popen = popen
        self._pidfd = pidfd
        self._exit_signal = exit_signal  # readable once the recorder has sent how the run ended (or has died)
        self._hold_exit = False  # keep the recorder's pipe (and exit.json) until release_exit()
        self._recorded: dict[str, Any] | None = None  # exit.json (as sent on the pipe, or read), once noticed
        self._exited = anyio.Event()
        self._waiting = False
        self._exit_code: int | None = None
        self._outcome: AgentOutcome | None = None

    def __repr__(self) -> str:
        return f"AgentRun({self.execution_id!r}, pid={self.pid})"

    # -- process state ----------------------------------------------------------------------------------------
    def is_alive(self) -> bool:
        if self._exited.is_set():
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        return procs.is_alive(self.pid, self.create_time)

    async def _wait_exit(self) -> None:
        """Returns when the process has exited: awaits the child, or a pidfd for an adopted run."""
        if self._waiting:  # one task waits on the process; the others wait for it to say so
            await self._exited.wait()
            return
        if self._exited.is_set():
            return
        self._waiting = True
        try:
            await self._wait_process()
        finally:
            self._waiting = False
        self._release_pidfd()
        self._exited.set()

    async def _wait_process(self) -> None:
        if self._popen is not None:
            popen = self._popen
            recorded = None
            if self._pidfd is not None and popen.poll() is None:
                recorded = await self._recorded_or_gone()
            if recorded is None and popen.poll() is None:  # no pidfd here: a worker thread blocks in waitpid
                await anyio.to_thread.run_sync(popen.wait, abandon_on_cancel=True)
            recorded = recorded or _exit_info(read_json(self.run_dir / EXIT_FILE))
            if recorded is not None:
                self._exit_code = recorded["exitCode"]  # the agent's own status, as the exit recorder saw it
            else:  # the recorder itself was killed (SIGKILL): its status is the run's
                self._exit_code = popen.returncode
                write_json(self.run_dir / EXIT_FILE, {"exitCode": self._exit_code, "endedAt": utcnow()})
        elif self._pidfd is not None:
            await self._recorded_or_gone()
        else:  # no pidfd (not Linux): the only way to see a stranger's exit is to look again
            while procs.is_alive(self.pid, self.create_time):
                await anyio.sleep(0.5)

    async def _recorded_or_gone(self) -> dict[str, Any] | None:
        """Wait until the exit recorder has said how the run ended (returned: exit.json's content) or its process is
        gone (its pidfd turns readable: None). The launching host hears it on the recorder's pipe, before exit.json
        is written and before the recorder exits (see :meth:`release_exit`); a host that adopted the run waits for
        exit.json in the run folder."""
        assert self._pidfd is not None
        exit_file = self.run_dir / EXIT_FILE

        def recorded() -> dict[str, Any] | None:
            return _exit_info(read_json(exit_file))

        result: dict[str, Any] | None = None
        if self._exit_signal is not None:  # our own run: its recorder sends exit.json's content (EOF if it died)
            await anyio.wait_readable(self._exit_signal)
            self._recorded = result = _exit_message(self._exit_signal) or recorded()
            if result is None:  # the recorder died without writing: its pidfd says when it is gone
                await anyio.wait_readable(self._pidfd)
            return result
        async with anyio.create_task_group() as tg:

            async def gone() -> None:
                assert self._pidfd is not None
                await anyio.wait_readable(self._pidfd)
                tg.cancel_scope.cancel()

            tg.start_soon(gone)
            with FolderWatch(self.run_dir) as watch:  # an adopted run: exit.json is noticed in its folder
                while (result := recorded()) is None:
                    await watch.wait(None)
                tg.cancel_scope.cancel()
        self._recorded = result
        return result

    def release_exit(self) -> None:
        """Let go of the exit recorder's pipe: the recorder, which told this host how the run ended, then writes
        exit.json and exits (see :data:`~specflow_nb.agent.recorder.EXIT_RECORDER`). :meth:`wait` does it when the
        run ends, unless asked to hold it (``hold_exit``) until the caller has acted on the end."""
        if self._exit_signal is not None:
            with contextlib.suppress(OSError):
                os.close(self._exit_signal)
            self._exit_signal = None

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None

    def _release_pidfd(self) -> None:
        """The run has ended. A child of ours whose recorder is still finishing its exit is reaped when its pidfd
        turns readable (a reader on the loop, no task), so no zombie and no \"still running\" warning is left."""
        if not self._hold_exit:
            self.release_exit()
        popen, fd = self._popen, self._pidfd
        if popen is None or fd is None or popen.poll() is not None:
            self._close_pidfd()
            return
        self._pidfd = None
        loop = asyncio.get_running_loop()

        def reap() -> None:
            loop.remove_reader(fd)
            popen.poll()
            with contextlib.suppress(OSError):
                os.close(fd)

        loop.add_reader(fd, reap)

    # -- public ---------------------------------------------------------------------------------------------
    async def wait(
        self,
        *,
        on_event: Callable[[StreamEvent], None] | None = None,
        stale_after: float | None = None,
        on_stall: Callable[[], Awaitable[None] | None] | None = None,
        cache_outcome: bool = True,
        hold_exit: bool = False,
    ) -> AgentOutcome:
        """Await the end of the run and return its outcome.

        ``on_event`` is called for every stream event as the output grows. When no new output (stdout or stderr)
        appears for ``stale_after`` seconds, ``on_stall`` is called (it may kill the run; the runner does not).
        A run past its ``timeout_seconds`` (counted from its start) is killed and reported as ``timeout``.
        ``cache_outcome=False``: the caller writes outcome.json (:meth:`cache_outcome`), off its critical path.
        ``hold_exit=True``: the run's exit recorder (of a run launched here) waits to write exit.json and exit
        until the caller calls :meth:`release_exit` (at most a second), so neither competes with what the caller
        does about the run's end.
        """
        if self._outcome is not None:
            return self._outcome
        self._hold_exit = hold_exit
        parser = StreamParser()
        argv_info = read_json(self.run_dir / ARGV_FILE)
        keep = event_filter(argv_info)  # the events the outcome is classified from: not parsed twice
        kept: list[StreamEvent] | None = [] if keep is not None else None

        def seen(event: StreamEvent) -> None:
            if kept is not None and keep is not None and keep(event):
                kept.append(event)
            if on_event is not None:
                on_event(event)

        try:
            self._stream_file = (self.run_dir / STREAM_FILE).open("rb")
        except FileNotFoundError:  # a damaged run folder: completion still comes from the process exit
            self._stream_file, kept = None, None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow_output, parser, seen, stale_after, on_stall)
                await self._wait_exit()
                tg.cancel_scope.cancel()
            # What the process wrote between the last wake-up and its exit.
            self._drain(parser, seen, final=True)
        finally:  # also when the caller is cancelled (server shutdown): the run itself goes on, detached
            if self._stream_file is not None:
                self._stream_file.close()
                self._stream_file = None
        known: dict[str, Any] | None = None
        if isinstance(argv_info, dict):
            known = {ARGV_FILE: argv_info, EXIT_FILE: self._recorded}
            if self._popen is not None:  # launched here: pid.json holds what this run was started with
                known[PID_FILE] = launching.pid_record(
                    self.pid, self.create_time, self.started_at, self.timeout_seconds
                )
        self._outcome = read_outcome(
            self.run_dir,
            extra_warnings=parser.warnings,
            events=kept,
            cache=cache_outcome,
            known=known,
            fresh=self._popen is not None,
        )
        return self._outcome

    def cache_outcome(self) -> None:
        """Write the outcome :meth:`wait` returned to outcome.json (blocking: call it in a worker thread)."""
        if self._outcome is not None:
            write_outcome(self.run_dir, self._outcome)

    async def kill(
        self,
        grace: float = KILL_GRACE_SECONDS,
        *,
        reason: FailureKind = FailureKind.CANCELLED,
        message: str | None = None,
    ) -> None:
        """SIGTERM the run's process group, SIGKILL it after ``grace`` seconds. Records why (and ``message``, the
        outcome's failure message when given), for the outcome."""
        if not self.is_alive():
            return
        if not (self.run_dir / KILL_FILE).exists():
            record: dict[str, Any] = {"reason": reason.value, "at": utcnow()}
            if message:
                record["message"] = message
            write_json(self.run_dir / KILL_FILE, record)
        self._signal_group(signal.SIGTERM)
        with anyio.move_on_after(grace):
            await self._wait_exit()
        if not self._exited.is_set():
            self._signal_group(signal.SIGKILL)
            await self._wait_exit()
        else:
            # The leader is gone; children it left in the group would keep files open: finish them too.
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is the run's pid (start_new_session). kill() checked the start time first, so this is our run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    # -- output following -------------------------------------------------------------------------------------
    def _usage_watch(self) -> tuple[UsageWatch | None, float | None]:
        """For a run its family stops at its budget (Codex): the watch over its spending, and the run's budget."""
        info = read_json(self.run_dir / ARGV_FILE) or {}
        return family_for(info.get("agent")).usage_watch(self.run_dir, info)

    def _drain(self, parser: StreamParser, on_event: Callable[[StreamEvent], None] | None, *, final: bool) -> bool:
        """Parse what the output file gained since the last call; True when it grew."""
        grew = False
        f = self._stream_file
        if f is None:
            return False
        while chunk := f.read(1 << 16):
            grew = True
            for event in parser.feed(chunk):
                if on_event is not None:
                    on_event(event)
        if final:
            for event in parser.flush():
                if on_event is not None:
                    on_event(event)
            f.close()
            self._stream_file = None
        return grew

    _stream_file: Any = None

    async def _follow_output(
        self,
        parser: StreamParser,
        on_event: Callable[[StreamEvent], None] | None,
        stale_after: float | None,
        on_stall: Callable[[], Awaitable[None] | None] | None,
    ) -> None:
        stderr_path = self.run_dir / STDERR_FILE
        stderr_size = stderr_path.stat().st_size if stderr_path.exists() else 0
        deadline = None
        if self.timeout_seconds is not None:
            elapsed = (utcnow() - self.started_at).total_seconds()
            deadline = time.monotonic() + max(0.0, self.timeout_seconds - elapsed)
        last_output = time.monotonic()
        usage, limit = self._usage_watch()
        next_poll = time.monotonic() if usage is not None else None
        with FolderWatch(self.run_dir) as watch:
            while True:
                grew = self._drain(parser, on_event, final=False)
                size = stderr_path.stat().st_size if stderr_path.exists() else 0
                if grew or size != stderr_size:
                    stderr_size = size
                    last_output = time.monotonic()
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    await self.kill(reason=FailureKind.TIMEOUT)
                    return
                if usage is not None and limit is not None and next_poll is not None and now >= next_poll:
                    next_poll = now + USAGE_POLL_SECONDS
                    spent = await anyio.to_thread.run_sync(usage.poll)
                    if spent >= limit:
                        message = (
                            f"Stopped at its budget: ${spent:.4f} spent of ${limit:.4f} left "
                            f"({usage.calls} model call(s) of {usage.model or 'the Codex model'}, priced from the "
                            "session's per-call usage). Raise the budget and retry."
                        )
                        await self.kill(reason=FailureKind.BUDGET_EXCEEDED, message=message)
                        return
                if stale_after is not None and now - last_output >= stale_after:
                    last_output = now  # once per silent period, not in a tight loop
                    if on_stall is not None:
                        result = on_stall()
                        if result is not None:
                            await result
                waits = [
                    w
                    for w in (deadline, last_output + stale_after if stale_after else None, next_poll)
                    if w is not None
                ]
                timeout = max(0.0, min(waits) - time.monotonic()) if waits else None
                await watch.wait(timeout)


async def start_run(run_dir: Path, opts: AgentOptions) -> AgentRun:
    """Launch a detached run whose files live in ``run_dir`` (created). Raises AgentRunError(NOT_INSTALLED)."""
    # Writing the run folder and fork/exec happen in a worker thread: a host runs many orchestrations on one event
    # loop, and none of them should wait for another's disk or spawn.
    return started_run(Path(run_dir), await anyio.to_thread.run_sync(launching.start, Path(run_dir), opts), opts)


def started_run(run_dir: Path, launched: Launched, opts: AgentOptions) -> AgentRun:
    """The :class:`AgentRun` of a run :func:`specflow_nb.agent.launching.start` started (on this event loop)."""
    popen = launched.popen
    return AgentRun(
        run_dir,
        popen.pid,
        launched.create_time,
        popen=popen,
        started_at=launched.started_at,
        timeout_seconds=opts.timeout_seconds,
        pidfd=pidfd_open(popen.pid),
        exit_signal=launched.exit_signal,
    )


def _exit_message(fd: int) -> dict[str, Any] | None:
    """exit.json's content as the exit recorder sent it on its pipe when the agent ended (one write of less than
    PIPE_BUF bytes, so whole); None when the recorder closed the pipe without it (it died) or sent no JSON."""
    try:
        data = os.read(fd, 4096)
        return _exit_info(json.loads(data)) if data else None
    except (OSError, ValueError):
        return None


def _exit_info(found: Any) -> dict[str, Any] | None:
    """exit.json's content when it is one (an object with an integer ``exitCode``), else None."""
    return found if isinstance(found, dict) and isinstance(found.get("exitCode"), int) else None


#: How long :func:`attach_run` waits for a live run's leader.json (the recorder writes it within milliseconds).
LEADER_WAIT_SECONDS = 3.0


def attach_run(run_dir: Path) -> AgentRun | None:
    """Re-attach to a run started by another process; None unless that very process (pid + creation time) lives.

    A run whose launcher died before writing pid.json is found through its lock and its leader.json."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / PID_FILE)
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        record = _leader_record(run_dir)
        if record is None:
            return None
    pid = record["pid"]
    if not record_alive(record):
        return None
    pidfd = pidfd_open(pid)
    # Checked again after pinning the process with a pidfd: the pid cannot be recycled under us from here on.
    if not record_alive(record):
        if pidfd is not None:
            os.close(pidfd)
        return None
    started_at = None
    with contextlib.suppress(TypeError, ValueError):
        started_at = datetime.fromisoformat(str(record.get("startedAt")))
    return AgentRun(
        run_dir,
        pid,
        record.get("createTime"),
        started_at=started_at,
        timeout_seconds=record.get("timeoutSeconds"),
        pidfd=pidfd,
    )


def _leader_record(run_dir: Path) -> dict[str, Any] | None:
    """A pid.json stand-in for a live run whose launcher died before writing it (see :func:`_launch`)."""
    if not run_lock_held(run_dir):
        return None
    deadline = time.monotonic() + LEADER_WAIT_SECONDS
    while True:
        leader = read_json(run_dir / LEADER_FILE)
        if isinstance(leader, dict) and isinstance(leader.get("pid"), int):
            created = procs.create_time(leader["pid"])
            if created is None:
                return None
            timeout = (read_json(run_dir / ARGV_FILE) or {}).get("timeoutSeconds")
            record = {"pid": leader["pid"], "createTime": created, "timeoutSeconds": timeout}
            with contextlib.suppress(OSError):
                write_json(run_dir / PID_FILE, record)
            return record
        if time.monotonic() > deadline or not run_lock_held(run_dir):
            return None
        time.sleep(0.02)
