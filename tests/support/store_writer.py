"""A separate process for the multi-process store test: N locked read-modify-writes on one orchestration record.

Usage: python -m tests.support.store_writer PROJECT ORCHESTRATION_ID WORKER_NAME COUNT
Each write appends one decision-log entry ``{decision: WORKER_NAME, data: {n: i}}`` and bumps ``version``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from specflow_nb.models import DecisionLogEntry, utcnow
from specflow_nb.store import OrchestrationStore


def main(argv: list[str]) -> int:
    project, orchestration_id, worker, count = Path(argv[0]), argv[1], argv[2], int(argv[3])
    store = OrchestrationStore(project, lock_timeout=60)
    for i in range(count):
        with store.lock():
            execution = store.load(orchestration_id)
            execution.decision_log.append(
                DecisionLogEntry(timestamp=utcnow(), decision=worker, reason="concurrency test", data={"n": i})
            )
            execution.version += 1
            execution.updated_at = utcnow()
            store.save(execution)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
