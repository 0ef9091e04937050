"""Runs of the agent CLIs: typed options, detached processes, typed outcomes.

The Claude Code CLI (``claude -p``) is the default; ``AgentOptions(agent="codex")`` runs the Codex CLI
(``codex exec --json``) through the same runner (what differs lives in :mod:`specflow_nb.agent.codex`).

A run lives in its folder ``{project}/.specflow/workflows/{execution_id}/``:

============== ====================================================================================
prompt.md      the prompt, fed to the process on stdin
argv.json      the exact argv, cwd, names (never values) of extra env vars, schema, timeout
pid.json       ``{pid, createTime, startedAt, timeoutSeconds}`` of the run's session leader (the exit recorder,
               whose child is the agent); createTime is psutil's process creation time, so a reused pid is never
               mistaken for the run
run.lock       held (flock) by the run's processes for as long as any of them lives; taken by the launcher
               before the fork, so a run is never invisible to the next host
leader.json    ``{pid}`` written by the exit recorder itself before it starts the agent
stream.jsonl   the process's stdout (stream-json lines)
stderr.log     the process's stderr
exit.json      ``{exitCode, endedAt}`` written by the run's exit recorder (see ``_EXIT_RECORDER``), so even a
               server that adopted the run after a restart learns its exit status
kill.json      ``{reason, at}`` written before the runner signals the process group
outcome.json   the :class:`AgentOutcome`, once the run has ended
============== ====================================================================================

The process runs in its own session (process group) with its output going to files, so it outlives the server
that started it; a later server re-attaches with :func:`attach_run` and awaits it through a pidfd (Linux) or by
looking at the process again (elsewhere). Completion is the process's exit; new output is noticed through
:class:`specflow_nb.watching.FolderWatch` on the run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from specflow_nb import procs
from specflow_nb.agent import codex as _codex
from specflow_nb.agent.stream import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    StreamParser,
    SystemInit,
    iter_events,
)
from specflow_nb.errors import AgentError
from specflow_nb.models import AgentKind, ModelPrice, utcnow
from specflow_nb.redact import agent_environment
from specflow_nb.watching import FolderWatch

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

INSTALL_HINT = (
    "Install Claude Code with `npm install -g @anthropic-ai/claude-code`, or set the agent command to its path."
)
DEFAULT_ALLOWED_TOOLS = ["Bash", "Edit", "Write", "Read", "Glob", "Grep"]
KILL_GRACE_SECONDS = 5.0
STDERR_TAIL_CHARS = 4000

PROMPT_FILE = "prompt.md"
ARGV_FILE = "argv.json"
PID_FILE = "pid.json"
STREAM_FILE = "stream.jsonl"
STDERR_FILE = "stderr.log"
EXIT_FILE = "exit.json"
KILL_FILE = "kill.json"
OUTCOME_FILE = "outcome.json"
RUN_LOCK_FILE = "run.lock"
LEADER_FILE = "leader.json"


# --------------------------------------------------------------------------------------------------------------
# Options -> argv


class SessionMode(str, Enum):
    NEW = "new"
    RESUME = "resume"
    FORK = "fork"  # --resume ID --fork-session: continue a conversation under a new session id


class AgentOptions(BaseModel):
    """Everything that decides how one agent run is launched. ``env`` may hold secrets: it is never persisted."""

    model_config = ConfigDict(extra="forbid")

    command: str = "claude"
    cwd: Path
    prompt: str
    output_format: Literal["stream-json", "json"] = "stream-json"
    output_schema: dict[str, Any] | None = None
    session_mode: SessionMode = SessionMode.NEW
    session_id: str | None = None
    no_session_persistence: bool = False
    model: str | None = None
    fallback_model: str | None = None
    allowed_tools: list[str] | None = Field(default_factory=lambda: list(DEFAULT_ALLOWED_TOOLS))
    disallowed_tools: list[str] = Field(default_factory=lambda: ["AskUserQuestion"])
    tools: list[str] | None = None
    permission_mode: str = "acceptEdits"
    max_budget_usd: float | None = Field(default=None, ge=0)
    max_turns: int | None = Field(default=None, ge=1)
    append_system_prompt: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    #: Extra environment for the process (API keys allowed): excluded from repr and from every dump.
    env: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    timeout_seconds: float | None = Field(default=None, gt=0)
    # ---- Codex only (agent="codex"); the Claude fields above that Codex has no flag for are ignored
    #: Which CLI speaks: Claude Code (stream-json) or Codex (``codex exec --json``).
    agent: AgentKind = "claude"
    #: Codex's sandbox for unattended runs (``workspace-write``: edits in the project, ``.git`` read-only).
    sandbox: str | None = "workspace-write"
    #: The per-model price table for Codex's tokens (None: :data:`specflow_nb.agent.codex.DEFAULT_PRICES`).
    prices: dict[str, ModelPrice] | None = None
    #: Resumes of a rate-limited Codex run inside the run (backoff doubling from the base), then ``rate_limited``.
    rate_limit_retries: int = Field(default=3, ge=0, le=10)
    rate_limit_backoff_seconds: float = Field(default=10.0, ge=0)


def build_argv(opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
    """The argument list for one run (the prompt is not in it: it goes on stdin). Never a shell string.

    For Codex the output schema travels as a file (``schema_path``, written into the run folder by the launcher).
    """
    if opts.agent == "codex":
        if not shlex.split(opts.command):
            raise AgentRunError(
                FailureKind.NOT_INSTALLED, "The agent command is empty.", hint=_codex.CODEX_INSTALL_HINT
            )
        return _codex.build_codex_argv(opts, schema_path)
    argv = shlex.split(opts.command)
    if not argv:
        raise AgentRunError(FailureKind.NOT_INSTALLED, "The agent command is empty.", hint=INSTALL_HINT)
    argv += ["-p", "--output-format", opts.output_format]
    if opts.output_format == "stream-json":
        argv.append("--verbose")  # the CLI refuses stream-json in print mode without it
    if opts.output_schema is not None:
        argv += ["--json-schema", json.dumps(opts.output_schema, separators=(",", ":"))]
    if opts.session_mode is SessionMode.NEW:
        if opts.session_id:
            argv += ["--session-id", opts.session_id]
    else:
        if not opts.session_id:
            raise AgentRunError(
                FailureKind.INVALID_SESSION,
                f"Session mode {opts.session_mode.value!r} needs a session id.",
                hint="Pass the session id of the run to continue, or use a new session.",
            )
        argv += ["--resume", opts.session_id]
        if opts.session_mode is SessionMode.FORK:
            argv.append("--fork-session")
    if opts.no_session_persistence:
        argv.append("--no-session-persistence")
    if opts.model:
        argv += ["--model", opts.model]
    if opts.fallback_model:
        argv += ["--fallback-model", opts.fallback_model]
    if opts.tools is not None:
        argv += ["--tools", ",".join(opts.tools)]
    if opts.allowed_tools:
        argv += ["--allowedTools", ",".join(opts.allowed_tools)]
    if opts.disallowed_tools:
        argv += ["--disallowedTools", ",".join(opts.disallowed_tools)]
    if opts.permission_mode:
        argv += ["--permission-mode", opts.permission_mode]
    if opts.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{opts.max_budget_usd:.6f}".rstrip("0").rstrip(".") or "0"]
    if opts.max_turns is not None:
        argv += ["--max-turns", str(opts.max_turns)]
    if opts.append_system_prompt:
        argv += ["--append-system-prompt", opts.append_system_prompt]
    argv += opts.extra_args
    return argv


# --------------------------------------------------------------------------------------------------------------
# Outcomes


class FailureKind(str, Enum):
    NOT_INSTALLED = "not_installed"
    AUTH_FAILED = "auth_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    MAX_TURNS = "max_turns"
    SCHEMA_VALIDATION_FAILED = "schema_validation_failed"
    INVALID_SESSION = "invalid_session"
    TIMEOUT = "timeout"
    PERMISSION_REFUSED = "permission_refused"
    PROCESS_FAILED = "process_failed"
    #: The caller killed the run (user cancel) — ``AgentRun.kill(reason=...)``.
    CANCELLED = "cancelled"
    #: The caller killed the run because it stalled (no output for stale_after).
    STALLED = "stalled"
    #: Codex: the API kept answering 429 / rate limit, also after the run's own retries with backoff.
    RATE_LIMITED = "rate_limited"
    #: Codex: the turn failed (``turn.failed``) for a reason other than auth, rate limit or schema — healable.
    TURN_FAILED = "turn_failed"
    #: Codex: a budgeted run with a model the price table does not price (refused before it starts).
    PRICE_UNKNOWN = "price_unknown"


class AgentRunError(AgentError):
    """A run could not start (or its options are unusable); ``kind`` says which :class:`FailureKind`."""

    def __init__(self, kind: FailureKind, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"kind": kind.value})
        self.kind = kind


class AgentOutcome(BaseModel):
    """How a finished run ended, in the runner's detail (``outcome.json``). ``failure`` is None exactly when the run
    succeeded. The machine decides on its reduction, :class:`specflow_nb.models.RunOutcome`."""

    execution_id: str
    exit_code: int | None = None
    session_id: str | None = None
    model: str | None = None
    cost_usd: float = 0.0
    num_turns: int = 0
    is_error: bool = False
    subtype: str | None = None
    result_text: str | None = None
    structured_output: dict[str, Any] | None = None
    failure: FailureKind | None = None
    failure_message: str | None = None
    stderr_tail: str = ""
    duration_s: float | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


# --------------------------------------------------------------------------------------------------------------
# Run folder helpers


def _write_json(path: Path, data: Any) -> None:
    """Atomic: a reader never sees half a file, even if this process dies mid-write.

    Not fsynced: a run folder need not outlive the operating system, because the run's processes do not either
    (after a power loss every run is lost and reconciled from the record). What must survive is in the record, which
    the store fsyncs before each spawn (write-ahead); an fsync here would cost a transition ~5 ms per file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _resolve_command(argv0: str, env: dict[str, str]) -> str | None:
    if os.sep in argv0:
        return argv0 if os.access(argv0, os.X_OK) and not os.path.isdir(argv0) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


def _stderr_tail(run_dir: Path, chars: int = STDERR_TAIL_CHARS) -> str:
    path = run_dir / STDERR_FILE
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars * 4))
            return f.read().decode("utf-8", errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------------------------------------------
# Process identity (pid + creation time, psutil everywhere; /proc ticks only for pid.json files of older versions)


def _legacy_proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat: how pid.json named a process before createTime."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _record_alive(record: dict[str, Any]) -> bool:
    """The process a pid.json names still runs: same pid, same creation time, not a zombie."""
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    if isinstance(record.get("createTime"), (int, float)):
        return procs.is_alive(pid, record["createTime"])
    ticks = record.get("startTime")  # a record written by an older specflow_nb
    stat = _legacy_proc_stat(pid) if isinstance(ticks, int) else None
    return stat is not None and stat[1] == ticks and stat[0] not in ("Z", "X")


def _pidfd_open(pid: int) -> int | None:
    """A pidfd pins one process (immune to pid reuse) and becomes readable when it exits (Linux fast path)."""
    if not hasattr(os, "pidfd_open") or procs.portable():
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def run_lock_held(run_dir: Path) -> bool:
    """Some process of the run (its exit recorder, the agent, or the host launching it) still holds ``run.lock``.

    The launcher takes the lock before it forks and hands it to the run's processes, which keep it until the last
    of them exits; so a held lock means the run lives even when its pid.json was never written (the launching
    host died between the fork and that write). Where there is no ``fcntl`` (Windows) this says False.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(run_dir / RUN_LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------------
# Starting, attaching, waiting


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
    ) -> None:
        self.run_dir = run_dir
        self.execution_id = run_dir.name
        self.pid = pid
        self.create_time = create_time
        self.started_at = started_at or utcnow()
        self.timeout_seconds = timeout_seconds
        self._popen = popen
        self._pidfd = pidfd
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
        self._close_pidfd()
        self._exited.set()

    async def _wait_process(self) -> None:
        if self._popen is not None:
            popen = self._popen
            if self._pidfd is not None and popen.poll() is None:
                await anyio.wait_readable(self._pidfd)
            if popen.poll() is None:  # no pidfd on this platform: a worker thread blocks in waitpid instead
                await anyio.to_thread.run_sync(popen.wait, abandon_on_cancel=True)
            recorded = _read_json(self.run_dir / EXIT_FILE)
            if isinstance(recorded, dict) and isinstance(recorded.get("exitCode"), int):
                self._exit_code = recorded["exitCode"]  # the agent's own status, as the exit recorder saw it
            else:  # the recorder itself was killed (SIGKILL): its status is the run's
                self._exit_code = popen.returncode
                _write_json(self.run_dir / EXIT_FILE, {"exitCode": self._exit_code, "endedAt": utcnow()})
        elif self._pidfd is not None:
            await anyio.wait_readable(self._pidfd)
        else:  # no pidfd (not Linux): the only way to see a stranger's exit is to look again
            while procs.is_alive(self.pid, self.create_time):
                await anyio.sleep(0.5)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)
            self._pidfd = None

    # -- public ---------------------------------------------------------------------------------------------
    async def wait(
        self,
        *,
        on_event: Callable[[StreamEvent], None] | None = None,
        stale_after: float | None = None,
        on_stall: Callable[[], Awaitable[None] | None] | None = None,
    ) -> AgentOutcome:
        """Await the end of the run and return its outcome.

        ``on_event`` is called for every stream event as the output grows. When no new output (stdout or stderr)
        appears for ``stale_after`` seconds, ``on_stall`` is called (it may kill the run; the runner does not).
        A run past its ``timeout_seconds`` (counted from its start) is killed and reported as ``timeout``.
        """
        if self._outcome is not None:
            return self._outcome
        parser = StreamParser()
        try:
            self._stream_file = (self.run_dir / STREAM_FILE).open("rb")
        except FileNotFoundError:  # a damaged run folder: completion still comes from the process exit
            self._stream_file = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._follow_output, parser, on_event, stale_after, on_stall)
                await self._wait_exit()
                tg.cancel_scope.cancel()
            # What the process wrote between the last wake-up and its exit.
            self._drain(parser, on_event, final=True)
        finally:  # also when the caller is cancelled (server shutdown): the run itself goes on, detached
            if self._stream_file is not None:
                self._stream_file.close()
                self._stream_file = None
        self._outcome = read_outcome(self.run_dir, extra_warnings=parser.warnings)
        return self._outcome

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
            _write_json(self.run_dir / KILL_FILE, record)
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
    def _usage_watch(self) -> tuple[_codex.UsageWatch | None, float | None]:
        """For a budgeted Codex run: the watch over its session file's per-call usage, and the run's budget."""
        info = _read_json(self.run_dir / ARGV_FILE) or {}
        if info.get("agent") != "codex" or not isinstance(info.get("maxBudgetUsd"), (int, float)):
            return None, None
        return _codex.UsageWatch(self.run_dir, info), float(info["maxBudgetUsd"])

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
                    next_poll = now + _codex.USAGE_POLL_SECONDS
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


#: The run's session leader: a tiny Python process (no site, no specflow_nb import) that runs the agent as its child
#: and records the agent's exit status in exit.json. Without it a server that adopted a run after a restart could
#: never learn how the run ended (only a parent can read a process's exit status). SIGTERM to the group reaches
#: the agent; the recorder survives it (a handler, not SIG_IGN, so the agent does not inherit the immunity) to
#: write the status; SIGKILL ends both.
_EXIT_RECORDER = """
import json, os, signal, sys, time
path, argv = sys.argv[1], sys.argv[2:]
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: None)
leader = os.path.join(os.path.dirname(path), "leader.json")
with open(leader + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.replace(leader + ".tmp", leader)
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"{argv[0]}: {exc}\\n")
        os._exit(127)
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
now = time.time()
ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06d+00:00" % (now % 1 * 1e6)
with open(path + ".tmp", "w") as f:
    json.dump({"exitCode": code, "endedAt": ended}, f)
os.replace(path + ".tmp", path)
os._exit(code if code >= 0 else 128 - code)
"""


async def start_run(run_dir: Path, opts: AgentOptions) -> AgentRun:
    """Launch a detached run whose files live in ``run_dir`` (created). Raises AgentRunError(NOT_INSTALLED)."""
    run_dir = Path(run_dir)
    # Writing the run folder (with fsync) and fork/exec happen in a worker thread: a host runs many
    # orchestrations on one event loop, and none of them should wait for another's disk or spawn.
    popen, create_time, started_at = await anyio.to_thread.run_sync(_launch, run_dir, opts)
    return AgentRun(
        run_dir,
        popen.pid,
        create_time,
        popen=popen,
        started_at=started_at,
        timeout_seconds=opts.timeout_seconds,
        pidfd=_pidfd_open(popen.pid),
    )


def _launch(run_dir: Path, opts: AgentOptions) -> tuple[subprocess.Popen[bytes], float | None, datetime]:
    """The blocking half of :func:`start_run`: the run folder's files, then the detached process.

    No invisible runs: the run's lock is taken before the fork and inherited by the run's processes (the launcher
    closes its copy once pid.json is written), and the exit recorder writes its own pid to leader.json first
    thing. A host that dies anywhere in between leaves either no process, or a process holding the lock that
    :func:`attach_run` finds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # The allow-listed part of the server's environment, the agent's own family, and the run's extra variables
    # (specflow_nb.redact.agent_environment): never the server's other secrets.
    env = agent_environment(opts.agent, opts.env)
    schema_path = None
    if opts.agent == "codex":
        model = _codex.effective_model(opts.model, env)
        if opts.max_budget_usd is not None and _codex.price_for(model, opts.prices) is None:
            raise AgentRunError(FailureKind.PRICE_UNKNOWN, _codex.unpriced_message(model, opts.prices))
        if opts.output_schema is not None:
            schema_path = run_dir / _codex.SCHEMA_FILE
    argv = build_argv(opts, schema_path)
    resolved = _resolve_command(argv[0], env)
    if resolved is None:
        hint = _codex.CODEX_INSTALL_HINT if opts.agent == "codex" else INSTALL_HINT
        raise AgentRunError(FailureKind.NOT_INSTALLED, f"The agent command {argv[0]!r} was not found.", hint=hint)
    if not Path(opts.cwd).is_dir():
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"The run's working folder {opts.cwd} does not exist.",
            hint="Check the project path.",
        )
    lock_fd = _take_run_lock(run_dir)
    try:
        return _launch_locked(run_dir, opts, argv, env, resolved, lock_fd)
    finally:
        if lock_fd is not None:
            os.close(lock_fd)  # the run's processes keep their inherited copy, and with it the lock


def _take_run_lock(run_dir: Path) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(run_dir / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"Run {run_dir.name} still has a live process: it is not started twice.",
            hint="Wait for it to end (or cancel the orchestration), then retry.",
        ) from None
    return fd


def _launch_locked(
    run_dir: Path, opts: AgentOptions, argv: list[str], env: dict[str, str], resolved: str, lock_fd: int | None
) -> tuple[subprocess.Popen[bytes], float | None, datetime]:
    (run_dir / PROMPT_FILE).write_text(opts.prompt, encoding="utf-8")
    info: dict[str, Any] = {
        "argv": argv,
        "resolvedCommand": resolved,
        "cwd": str(opts.cwd),
        "envKeys": sorted(opts.env),  # names only: values may be secrets
        "outputFormat": opts.output_format,
        "outputSchema": opts.output_schema,
        "sessionMode": opts.session_mode.value,
        "sessionId": opts.session_id,
        "timeoutSeconds": opts.timeout_seconds,
    }
    recorder = [_EXIT_RECORDER, str(run_dir / EXIT_FILE)]
    if opts.agent == "codex":
        schema = _codex.strict_schema(opts.output_schema) if opts.output_schema is not None else None
        if schema is not None:
            _write_json(run_dir / _codex.SCHEMA_FILE, schema)
        info.update(_codex.launch_info(opts, env))
        # The exec options without the subcommand and the prompt: what a rate-limit retry resumes the thread with.
        base = [resolved, *_codex.base_argv(opts, run_dir / _codex.SCHEMA_FILE if schema is not None else None)[1:]]
        spec = {"retries": opts.rate_limit_retries, "backoff": opts.rate_limit_backoff_seconds, "baseArgv": base}
        recorder = [_codex.CODEX_RECORDER, str(run_dir / EXIT_FILE), json.dumps(spec)]
    _write_json(run_dir / ARGV_FILE, info)
    for stale in (EXIT_FILE, KILL_FILE, OUTCOME_FILE, PID_FILE, LEADER_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    started_at = utcnow()
    with (
        (run_dir / PROMPT_FILE).open("rb") as stdin,
        (run_dir / STREAM_FILE).open("wb") as stdout,
        (run_dir / STDERR_FILE).open("wb") as stderr,
    ):
        try:
            popen = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", *recorder, resolved, *argv[1:]],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=opts.cwd,
                env=env,
                start_new_session=True,  # own process group: survives the server, killable as a whole
                close_fds=True,
                pass_fds=(lock_fd,) if lock_fd is not None else (),
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise AgentRunError(
                FailureKind.NOT_INSTALLED, f"The agent command {argv[0]!r} could not be run: {exc}.", hint=INSTALL_HINT
            ) from exc
    # Not yet reaped (nobody waited), so the process exists even if it already exited.
    created = procs.create_time(popen.pid)
    _write_json(
        run_dir / PID_FILE,
        {"pid": popen.pid, "createTime": created, "startedAt": started_at, "timeoutSeconds": opts.timeout_seconds},
    )
    return popen, created, started_at


#: How long :func:`attach_run` waits for a live run's leader.json (the recorder writes it within milliseconds).
LEADER_WAIT_SECONDS = 3.0


def attach_run(run_dir: Path) -> AgentRun | None:
    """Re-attach to a run started by another process; None unless that very process (pid + creation time) lives.

    A run whose launcher died before writing pid.json is found through its lock and its leader.json."""
    run_dir = Path(run_dir)
    record = _read_json(run_dir / PID_FILE)
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        record = _leader_record(run_dir)
        if record is None:
            return None
    pid = record["pid"]
    if not _record_alive(record):
        return None
    pidfd = _pidfd_open(pid)
    # Checked again after pinning the process with a pidfd: the pid cannot be recycled under us from here on.
    if not _record_alive(record):
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
        leader = _read_json(run_dir / LEADER_FILE)
        if isinstance(leader, dict) and isinstance(leader.get("pid"), int):
            created = procs.create_time(leader["pid"])
            if created is None:
                return None
            timeout = (_read_json(run_dir / ARGV_FILE) or {}).get("timeoutSeconds")
            record = {"pid": leader["pid"], "createTime": created, "timeoutSeconds": timeout}
            with contextlib.suppress(OSError):
                _write_json(run_dir / PID_FILE, record)
            return record
        if time.monotonic() > deadline or not run_lock_held(run_dir):
            return None
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------------------------
# Reading a finished run


def read_outcome(run_dir: Path, *, extra_warnings: list[str] | None = None) -> AgentOutcome:
    """The outcome of a finished run from its files (cached in outcome.json). Raises if the run is still live."""
    run_dir = Path(run_dir)
    cached = _read_json(run_dir / OUTCOME_FILE)
    if isinstance(cached, dict):
        return AgentOutcome.model_validate(cached)
    record = _read_json(run_dir / PID_FILE) or {}
    if (isinstance(record.get("pid"), int) and _record_alive(record)) or (not record and run_lock_held(run_dir)):
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"Run {run_dir.name} is still running.",
            hint="Attach to it with attach_run() and await wait().",
        )
    outcome = _classify(run_dir, record, extra_warnings or [])
    _write_json(run_dir / OUTCOME_FILE, outcome.model_dump(mode="json"))
    return outcome


def _classify(run_dir: Path, record: dict[str, Any], warnings: list[str]) -> AgentOutcome:
    argv_info = _read_json(run_dir / ARGV_FILE) or {}
    exit_info = _read_json(run_dir / EXIT_FILE) or {}
    kill_info = _read_json(run_dir / KILL_FILE) or {}
    if argv_info.get("agent") == "codex":
        return _codex.classify(run_dir, record, argv_info, exit_info, kill_info, _stderr_tail(run_dir), warnings)
    exit_code = exit_info.get("exitCode")

    parse_warnings: list[str] = []
    init: SystemInit | None = None
    result: ResultMessage | None = None
    auth_error = False
    for event in iter_events(run_dir / STREAM_FILE, warnings=parse_warnings):
        if isinstance(event, SystemInit) and init is None:
            init = event
        elif isinstance(event, AssistantMessage) and event.error == "authentication_failed":
            auth_error = True
        elif isinstance(event, ResultMessage):
            result = event
    all_warnings = list(dict.fromkeys([*warnings, *parse_warnings]))
    stderr = _stderr_tail(run_dir)

    duration = None
    with contextlib.suppress(TypeError, ValueError):
        started = datetime.fromisoformat(str(record.get("startedAt")))
        ended = datetime.fromisoformat(str(exit_info["endedAt"])) if exit_info.get("endedAt") else utcnow()
        duration = max(0.0, (ended - started).total_seconds())
    if result is not None and result.duration_ms is not None and duration is None:
        duration = result.duration_ms / 1000

    structured = result.structured_output if result is not None else None
    outcome = AgentOutcome(
        execution_id=run_dir.name,
        exit_code=exit_code,
        session_id=(result.session_id if result else None) or (init.session_id if init else None),
        model=init.model if init else None,
        cost_usd=result.total_cost_usd if result else 0.0,
        num_turns=result.num_turns if result else 0,
        is_error=result.is_error if result else True,
        subtype=result.subtype if result else None,
        result_text=result.result if result else None,
        structured_output=structured if isinstance(structured, dict) else None,
        stderr_tail=stderr,
        duration_s=duration,
        warnings=all_warnings,
    )
    if result is None:
        outcome.warnings.append("the run ended without a result message; its cost is unknown and recorded as 0")
    kind, message = _failure(outcome, result, auth_error, kill_info, argv_info, stderr)
    outcome.failure, outcome.failure_message = kind, name_run_folder(message, run_dir)
    return outcome


def name_run_folder(message: str | None, run_dir: Path) -> str | None:
    """ "… See stderr.log in the run folder." names the folder (``.specflow/`` is hidden in JupyterLab's browser)."""
    if not message or "in the run folder" not in message:
        return message
    parts = Path(run_dir).parts
    where = "/".join(parts[parts.index(".specflow") :]) if ".specflow" in parts else str(run_dir)
    return re.sub(r"See (\S+) in the run folder", lambda m: f"See {where}/{m.group(1)}", message)


def _failure(
    outcome: AgentOutcome,
    result: ResultMessage | None,
    auth_error: bool,
    kill_info: dict[str, Any],
    argv_info: dict[str, Any],
    stderr: str,
) -> tuple[FailureKind | None, str | None]:
    """The typed failure of a finished run, checked from the most specific cause to the most general."""
    code = outcome.exit_code
    errors = " ".join(result.errors) if result else ""
    if kill_info.get("reason"):
        kind = FailureKind(kill_info["reason"])
        texts = {
            FailureKind.TIMEOUT: "The run exceeded its time limit and was stopped (SIGTERM, then SIGKILL).",
            FailureKind.STALLED: "The run produced no output for too long and was stopped.",
        }
        return kind, texts.get(
            kind, "The run was cancelled."
        ) + " Retry it, or raise the time limit if it needs longer."
    if "cannot be used with root/sudo privileges" in stderr:
        return FailureKind.PERMISSION_REFUSED, (
            "Claude Code refused to bypass permissions as root. Use the default permission mode "
            "(acceptEdits with an allowed-tools list), run as a non-root user, or set IS_SANDBOX=1 in a sandbox."
        )
    if "No conversation found with session ID" in stderr + errors or "is already in use" in stderr:
        return FailureKind.INVALID_SESSION, (
            f"The session could not be used: {(stderr.strip() or errors).splitlines()[-1]}. "
            "Start a new session instead."
        )
    if result is not None and result.subtype == "error_max_budget_usd":
        return FailureKind.BUDGET_EXCEEDED, (
            f"The run reached its budget cap ({errors or 'max budget'}) after ${result.total_cost_usd:.4f}. "
            "Raise the budget and resume."
        )
    if result is not None and result.subtype == "error_max_turns":
        return FailureKind.MAX_TURNS, f"The run reached its turn limit ({errors or 'max turns'}). Raise max turns."
    result_text = (result.result or "") if result else ""
    if auth_error or (
        result is not None
        and result.is_error
        and (
            result_text.startswith("Not logged in")
            or "Invalid API key" in result_text
            or result.api_error_status == 401
        )
    ):
        return FailureKind.AUTH_FAILED, (
            f"Claude Code is not authenticated ({result_text or 'authentication_failed'}). "
            "Run `claude /login` or set ANTHROPIC_API_KEY for the server."
        )
    if result is None:
        if code == 127:
            return FailureKind.NOT_INSTALLED, f"The agent command was not found (exit 127). {INSTALL_HINT}"
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no stderr"
        code_text = f"exit code {code}" if code is not None else "an unknown exit code (adopted run)"
        return FailureKind.PROCESS_FAILED, (
            f"The agent process ended with {code_text} and no result: {tail}. See stderr.log in the run folder."
        )
    if result.is_error:
        return FailureKind.PROCESS_FAILED, (
            f"The run ended with an error ({result.subtype}): {result_text or errors or 'no message'}. "
            "See stream.jsonl in the run folder."
        )
    if code not in (0, None):
        return FailureKind.PROCESS_FAILED, f"The agent process exited with code {code}: {stderr.strip()[-300:]}"
    schema = argv_info.get("outputSchema")
    if schema is not None:
        if outcome.structured_output is None:
            return FailureKind.SCHEMA_VALIDATION_FAILED, (
                "The run was asked for structured output (--json-schema) but returned none. Retry the run."
            )
        missing = [k for k in schema.get("required", []) if k not in outcome.structured_output]
        if missing:
            return FailureKind.SCHEMA_VALIDATION_FAILED, (
                f"The structured output lacks required field(s) {', '.join(missing)}. Retry the run."
            )
    return None, None


def transcript_tail(run_dir: Path, n: int = 10) -> list[dict[str, Any]]:
    """The last ``n`` assistant/user messages of a run's stream (what a healer needs to see), as raw dicts."""
    tail: deque[dict[str, Any]] = deque(maxlen=n)
    if (_read_json(Path(run_dir) / ARGV_FILE) or {}).get("agent") == "codex":
        tail.extend(_codex.transcript_events(Path(run_dir)))
        return list(tail)
    for event in iter_events(Path(run_dir) / STREAM_FILE):
        if event.type in ("assistant", "user"):
            tail.append(event.model_dump(mode="json", by_alias=True))
    return list(tail)


def new_execution_id(prefix: str = "run") -> str:
    """A fresh, sortable-enough execution id for a run folder."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
