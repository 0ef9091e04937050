"""A crash host (tests/support/crash_host.py) that SIGKILLs itself inside a transition, at a chosen moment.

    SPECFLOW_TEST_KILL_AT_READ=N python -m tests.support.crash_in_transition ROOT PROJECT_ID [crash_host options]
    SPECFLOW_TEST_KILL_BEHIND=N python -m tests.support.crash_in_transition ROOT PROJECT_ID [crash_host options]

``KILL_AT_READ``: it dies at the start of its Nth project read: for a run's end, that read comes after the machine
applied the ``RunFinished`` in memory and before the Persist that saves it (the RunFinished's Persist joins the next
one, ``Persist.may_join_next``). ``KILL_BEHIND``: it dies at its Nth write of a record behind its journal, after the
spawn the journal's entry allowed and before the record file holds it (:mod:`specflow_nb.fenced`). The crash tests
check that the next host loses nothing of that run (its cost, its result, the run itself) and runs no batch twice.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio

from specflow_nb import performing
from specflow_nb.performing import Performer
from tests.support import crash_host

KILL_AT = int(os.environ.get("SPECFLOW_TEST_KILL_AT_READ", "0"))
KILL_BEHIND = int(os.environ.get("SPECFLOW_TEST_KILL_BEHIND", "0"))
_original = Performer.snapshot
_original_behind = performing.write_behind
_reads = 0
_behind = 0


async def _snapshot(self: Performer, *args: Any, **kwargs: Any) -> Any:
    global _reads
    _reads += 1
    if _reads == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return await _original(self, *args, **kwargs)


def _write_behind(*args: Any, ahead: bool = True, **kwargs: Any) -> None:
    global _behind
    if ahead:
        _behind += 1
        if _behind == KILL_BEHIND:
            os.kill(os.getpid(), signal.SIGKILL)
    _original_behind(*args, ahead=ahead, **kwargs)


Performer.snapshot = _snapshot  # type: ignore[method-assign]
performing.write_behind = _write_behind  # type: ignore[assignment]

if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("project_id")
    parser.add_argument("--start")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    config = json.loads(args.start) if args.start else None
    sys.exit(anyio.run(crash_host.main, args.root, args.project_id, config, args.timeout))
