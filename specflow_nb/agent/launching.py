"""Launching a run, in two halves: its folder (prompt.md, argv.json, run.lock taken) and then its detached process.

Apart from the run's life (:mod:`specflow_nb.agent.process`: waiting, following, killing, attaching) and split in
two because the engine prepares a run's folder while the record that announces the run is being written: the
process itself starts only once that record is on disk (write-ahead), and only the second half, the fork/exec,
waits for the write. Both halves block (files, fork): callers run them in a worker thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from specflow_nb import procs, spares
from specflow_nb.agent.family import AgentFamily, family_for
from specflow_nb.agent.options import AgentOptions
from specflow_nb.agent.outcome import AgentRunError, FailureKind
from specflow_nb.agent.rundir import (
    ARGV_FILE,
    EXIT_FILE,
    KILL_FILE,
    LEADER_FILE,
    OUTCOME_FILE,
    PID_FILE,
    PROMPT_FILE,
    RUN_LOCK_FILE,
    STDERR_FILE,
    STREAM_FILE,
    resolve_command,
    take_run_lock,
    tmp_name,
    write_json,
)
from specflow_nb.models import utcnow
from specflow_nb.redact import agent_environment

#: Names the descriptor on which a run's exit recorder tells the host that launched it how the run ended (the write
#: end of a pipe; the recorder takes the variable out of the agent's environment), then waits for the host to close
#: the read end before it writes exit.json (:data:`specflow_nb.agent.recorder.EXIT_RECORDER`).
EXIT_FD_ENV = "SPECFLOW_EXIT_FD"


class Launched(NamedTuple):
    """A started run: its process (the exit recorder), that process's creation time, when it was started, and the
    read end of the pipe its recorder tells how the run ended on (None where there is none)."""

    popen: subprocess.Popen[bytes]
    create_time: float | None
    started_at: datetime
    exit_signal: int | None = None


@dataclass
class PreparedRun:
    """A run whose folder is written and whose run.lock this process holds; no process yet."""

    run_dir: Path
    opts: AgentOptions
    family: AgentFamily
    argv: list[str]
    env: dict[str, str]
    resolved: str
    recorder: list[str]
    lock_fd: int | None

    def abandon(self) -> None:
        """Never launched (the record announcing it could not be written): let go of run.lock. The folder stays;
        a later spawn of the same run id writes it again."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def pid_record(pid: int, create_time: float | None, started_at: datetime, timeout: float | None) -> dict[str, Any]:
    """What pid.json holds: the run's process (pid and creation time), when it was started, its timeout."""
    return {"pid": pid, "createTime": create_time, "startedAt": started_at, "timeoutSeconds": timeout}


def make_spare(project: Path) -> Path | None:
    """A spare run folder for the next run in ``project``, made ahead (:mod:`specflow_nb.spares`)."""
    return spares.make_run_spare(project, (RUN_LOCK_FILE, PROMPT_FILE, tmp_name(ARGV_FILE)))


def prepare(run_dir: Path, opts: AgentOptions, spare: Path | None = None) -> PreparedRun:
    """The run's folder: the prompt, argv.json and the run's lock (taken here, held until the launch hands it to
    the run's processes). Raises AgentRunError for an agent that is not installed or options it refuses.

    ``spare``: a run folder made ahead (its files there, empty), moved into place instead of creating each file;
    unless used, it is removed."""
    fresh = spares.take_run_spare(spare, run_dir)
    if not fresh:
        spares.discard(spare)
        run_dir.mkdir(parents=True, exist_ok=True)
    # The allow-listed part of the server's environment, the agent's own family, and the run's extra variables
    # (specflow_nb.redact.agent_environment): never the server's other secrets.
    env = agent_environment(opts.agent, opts.env)
    family = family_for(opts.agent)
    family.check(opts, env)
    argv = family.build_argv(opts, family.schema_path(run_dir, opts, env))
    resolved = resolve_command(argv[0], env)
    if resolved is None:
        hint = family.install_hint
        raise AgentRunError(FailureKind.NOT_INSTALLED, f"The agent command {argv[0]!r} was not found.", hint=hint)
    if not Path(opts.cwd).is_dir():
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"The run's working folder {opts.cwd} does not exist.",
            hint="Check the project path.",
        )
    lock_fd = take_run_lock(run_dir)
    prepared = PreparedRun(run_dir, opts, family, argv, env, resolved, [], lock_fd)
    try:
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
        extra, prepared.recorder = family.prepare(run_dir, opts, env, resolved)
        info.update(extra)
        write_json(run_dir / ARGV_FILE, info)
        for stale in () if fresh else (EXIT_FILE, KILL_FILE, OUTCOME_FILE, PID_FILE, LEADER_FILE):
            (run_dir / stale).unlink(missing_ok=True)
    except BaseException:
        prepared.abandon()
        raise
    return prepared


def launch(prepared: PreparedRun) -> Launched:
    """Start the prepared run's detached process (its exit recorder, whose child is the agent) and write pid.json.

    No invisible runs: the run's lock was taken before the fork and is inherited by the run's processes (this
    process closes its copy once pid.json is written), and the exit recorder writes its own pid to leader.json
    first thing. A host that dies anywhere in between leaves either no process, or a process holding the lock that
    :func:`specflow_nb.agent.process.attach_run` finds."""
    run_dir, opts, lock_fd = prepared.run_dir, prepared.opts, prepared.lock_fd
    # The recorder sends exit.json's content here as soon as the agent has ended (and writes the file once this host
    # lets go of the pipe): the host's event loop wakes on it directly, without waiting for exit.json, the
    # recorder's own exit (its pidfd) or a file watch, and reads no file.
    signal_r, signal_w = os.pipe() if os.name == "posix" else (None, None)
    env = prepared.env if signal_w is None else {**prepared.env, EXIT_FD_ENV: str(signal_w)}
    try:
        started_at = utcnow()
        with (
            (run_dir / PROMPT_FILE).open("rb") as stdin,
            (run_dir / STREAM_FILE).open("wb") as stdout,
            (run_dir / STDERR_FILE).open("wb") as stderr,
        ):
            try:
                popen = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", *prepared.recorder, prepared.resolved, *prepared.argv[1:]],
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=opts.cwd,
                    env=env,
                    start_new_session=True,  # own process group: survives the server, killable as a whole
                    close_fds=True,
                    pass_fds=tuple(fd for fd in (lock_fd, signal_w) if fd is not None),
                )
            except (FileNotFoundError, PermissionError) as exc:
                raise AgentRunError(
                    FailureKind.NOT_INSTALLED,
                    f"The agent command {prepared.argv[0]!r} could not be run: {exc}.",
                    hint=prepared.family.install_hint,
                ) from exc
        # Not yet reaped (nobody waited), so the process exists even if it already exited.
        created = procs.create_time(popen.pid)
        write_json(run_dir / PID_FILE, pid_record(popen.pid, created, started_at, opts.timeout_seconds))
        launched, signal_r = Launched(popen, created, started_at, signal_r), None
        return launched
    finally:
        prepared.abandon()  # the run's processes keep their inherited copy of the lock, and with it the lock
        for fd in (signal_w, signal_r):  # the recorder holds the write end; the read end goes to the caller
            if fd is not None:
                os.close(fd)


def start(run_dir: Path, opts: AgentOptions, spare: Path | None = None) -> Launched:
    """Both halves at once: the run's folder (from ``spare`` when given), then its process."""
    return launch(prepare(run_dir, opts, spare))
