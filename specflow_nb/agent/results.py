"""Reading a finished run: its outcome (classified once by its family, then cached in outcome.json) and the tail
of its transcript.

Apart from the process code because a finished run is read by hosts that never launched it (an observer, healing,
a restarted server), and from the families because it only dispatches to them.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specflow_nb.agent.family import family_for
from specflow_nb.agent.outcome import AgentOutcome, AgentRunError, FailureKind
from specflow_nb.agent.rundir import (
    ARGV_FILE,
    EXIT_FILE,
    KILL_FILE,
    OUTCOME_FILE,
    PID_FILE,
    read_json,
    record_alive,
    run_lock_held,
    stderr_tail,
    write_json,
)
from specflow_nb.agent.stream import StreamEvent


def read_outcome(
    run_dir: Path,
    *,
    extra_warnings: list[str] | None = None,
    events: list[StreamEvent] | None = None,
    cache: bool = True,
    known: dict[str, Any] | None = None,
    fresh: bool = False,
) -> AgentOutcome:
    """The outcome of a finished run from its files (cached in outcome.json). Raises if the run is still live.

    ``events``: the stream's events as the run's live follower parsed them (what its family's ``reads`` kept), for
    a family that classifies from them (``reads``) instead of parsing the stream again. ``cache=False`` leaves
    outcome.json to the caller (:func:`cache_outcome`, off the transition's path): until it is written, a reader
    classifies the same files the same way. ``known``: files of the run folder its reader already holds (by name;
    a None value is read again). ``fresh``: the run's launcher, which just saw it end: no outcome.json can be there
    yet (a launch removes a stale one), so none is looked for."""
    run_dir = Path(run_dir)

    def read(name: str) -> Any:
        held = (known or {}).get(name)
        return held if held is not None else read_json(run_dir / name)

    cached = None if fresh else read_json(run_dir / OUTCOME_FILE)
    if isinstance(cached, dict):
        return AgentOutcome.model_validate(cached)
    record = read(PID_FILE) or {}
    exit_info = read(EXIT_FILE)
    # exit.json is the exit recorder's last act (or the launcher's, for a recorder that was killed): with it in
    # place the run has ended, even while the recorder's own process finishes exiting.
    if not isinstance(exit_info, dict) and (
        (isinstance(record.get("pid"), int) and record_alive(record)) or (not record and run_lock_held(run_dir))
    ):
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"Run {run_dir.name} is still running.",
            hint="Attach to it with attach_run() and await wait().",
        )
    argv_info = read(ARGV_FILE) or {}
    family = family_for(argv_info.get("agent"))
    parts = (
        run_dir,
        record,
        argv_info,
        exit_info if isinstance(exit_info, dict) else {},
        read_json(run_dir / KILL_FILE) or {},
        stderr_tail(run_dir),
        extra_warnings or [],
    )
    if events is not None and getattr(family, "reads", None) is not None:
        outcome: AgentOutcome = family.classify(*parts, events=events)  # type: ignore[call-arg]
    else:
        outcome = family.classify(*parts)
    if cache:
        cache_outcome(run_dir, outcome)
    return outcome


def cache_outcome(run_dir: Path, outcome: AgentOutcome) -> None:
    """Keep a finished run's outcome in its folder (outcome.json), as :func:`read_outcome` found it."""
    write_json(Path(run_dir) / OUTCOME_FILE, outcome.model_dump(mode="json"))


def event_filter(argv_info: Any) -> Callable[[StreamEvent], bool] | None:
    """Which stream events the run's family (by its argv.json, ``argv_info``) classifies from (``reads``), for its
    live follower to keep; None when the family reads its stream itself."""
    agent = argv_info.get("agent") if isinstance(argv_info, dict) else None
    reads: Callable[[StreamEvent], bool] | None = getattr(family_for(agent), "reads", None)
    return reads


def transcript_tail(run_dir: Path, n: int = 10) -> list[dict[str, Any]]:
    """The last ``n`` assistant/user messages of a run's stream (what a healer needs to see), as raw dicts."""
    agent = (read_json(Path(run_dir) / ARGV_FILE) or {}).get("agent")
    return list(deque(family_for(agent).transcript_events(Path(run_dir)), maxlen=n))


def new_execution_id(prefix: str = "run") -> str:
    """A fresh, sortable-enough execution id for a run folder."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
