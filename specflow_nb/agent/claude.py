"""Runs of the agent CLIs: typed options, detached processes, typed outcomes — the runner's public names.

The Claude Code CLI (``claude -p``) is the default; ``AgentOptions(agent="codex")`` runs the Codex CLI
(``codex exec --json``) through the same runner. The runner is split by concern, and this module re-exports it:

=============================== ===================================================================================
:mod:`~specflow_nb.agent.options`  :class:`AgentOptions`, :class:`SessionMode`
:mod:`~specflow_nb.agent.outcome`  :class:`AgentOutcome`, :class:`FailureKind`, :class:`AgentRunError`
:mod:`~specflow_nb.agent.family`   the :class:`~specflow_nb.agent.family.AgentFamily` interface, :func:`build_argv`
:mod:`~specflow_nb.agent.claude_family` / :mod:`~specflow_nb.agent.codex_family`  each CLI's argv and outcome
:mod:`~specflow_nb.agent.process`  :class:`AgentRun`, :func:`start_run`, :func:`attach_run` (the detached process)
:mod:`~specflow_nb.agent.recorder` the session leader scripts (exit recorder)
:mod:`~specflow_nb.agent.rundir`   the run folder's files, run.lock, process identity
:mod:`~specflow_nb.agent.results`  :func:`read_outcome`, :func:`transcript_tail` of a finished run
=============================== ===================================================================================

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
exit.json      ``{exitCode, endedAt}`` written by the run's exit recorder (see ``EXIT_RECORDER``), so even a
               server that adopted the run after a restart learns its exit status
kill.json      ``{reason, at}`` written before the runner signals the process group
outcome.json   the :class:`AgentOutcome`, once the run has ended
============== ====================================================================================
"""

from __future__ import annotations

from specflow_nb.agent.claude_family import INSTALL_HINT, build_claude_argv
from specflow_nb.agent.family import AgentFamily, build_argv, family_for
from specflow_nb.agent.options import DEFAULT_ALLOWED_TOOLS, AgentOptions, SessionMode
from specflow_nb.agent.outcome import AgentOutcome, AgentRunError, FailureKind, name_run_folder
from specflow_nb.agent.process import KILL_GRACE_SECONDS, LEADER_WAIT_SECONDS, AgentRun, attach_run, start_run
from specflow_nb.agent.recorder import EXIT_RECORDER
from specflow_nb.agent.results import new_execution_id, read_outcome, transcript_tail
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
    STDERR_TAIL_CHARS,
    STREAM_FILE,
    run_lock_held,
)

__all__ = [
    "ARGV_FILE",
    "DEFAULT_ALLOWED_TOOLS",
    "EXIT_FILE",
    "EXIT_RECORDER",
    "INSTALL_HINT",
    "KILL_FILE",
    "KILL_GRACE_SECONDS",
    "LEADER_FILE",
    "LEADER_WAIT_SECONDS",
    "OUTCOME_FILE",
    "PID_FILE",
    "PROMPT_FILE",
    "RUN_LOCK_FILE",
    "STDERR_FILE",
    "STDERR_TAIL_CHARS",
    "STREAM_FILE",
    "AgentFamily",
    "AgentOptions",
    "AgentOutcome",
    "AgentRun",
    "AgentRunError",
    "FailureKind",
    "SessionMode",
    "attach_run",
    "build_argv",
    "build_claude_argv",
    "family_for",
    "name_run_folder",
    "new_execution_id",
    "read_outcome",
    "run_lock_held",
    "start_run",
    "transcript_tail",
]
