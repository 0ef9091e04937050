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
from typing import Any

from specflow_nb import procs
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
    STDERR_FILE,
    STREAM_FILE,
    resolve_command,
    take_run_lock,
    write_json,
)
from specflow_nb.models import utcnow
from specflow_nb.redact import agent_environment

#: A started run: its process (the exit recorder), that process's creation time, when it was started.
Launched = tuple[subprocess.Popen[bytes], float | None, datetime]


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


def prepare(run_dir: Path, opts: AgentOptions) -> PreparedRun:
    """The run's folder: the prompt, argv.json and the run's lock (taken here, held until the launch hands it to
    the run's processes). Raises AgentRunError for an agent that is not installed or options it refuses."""
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
        for stale in (EXIT_FILE, KILL_FILE, OUTCOME_FILE, PID_FILE, LEADER_FILE):
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
                    env=prepared.env,
                    start_new_session=True,  # own process group: survives the server, killable as a whole
                    close_fds=True,
                    pass_fds=(lock_fd,) if lock_fd is not None else (),
                )
            except (FileNotFoundError, PermissionError) as exc:
                raise AgentRunError(
                    FailureKind.NOT_INSTALLED,
                    f"The agent command {prepared.argv[0]!r} could not be run: {exc}.",
                    hint=prepared.family.install_hint,
                ) from exc
        # Not yet reaped (nobody waited), so the process exists even if it already exited.
        created = procs.create_time(popen.pid)
        write_json(
            run_dir / PID_FILE,
            {"pid": popen.pid, "createTime": created, "startedAt": started_at, "timeoutSeconds": opts.timeout_seconds},
        )
        return popen, created, started_at
    finally:
        prepared.abandon()  # the run's processes keep their inherited copy of the lock, and with it the lock


def start(run_dir: Path, opts: AgentOptions) -> Launched:
    """Both halves at once: the run's folder, then its process."""
    return launch(prepare(run_dir, opts))
