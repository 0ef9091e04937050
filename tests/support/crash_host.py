"""A host process for the crash tests: runs an Orchestrator on a root until one project's phase rests.

    python -m tests.support.crash_host ROOT PROJECT_ID [--start CONFIG_JSON] [--timeout SECONDS]

On entry the Orchestrator reconciles whatever an earlier (killed) host left behind. With ``--start`` and no
orchestration yet, it starts one with the given config. It then waits, event by event, until the orchestration
rests (completed, waiting_merge, needs_attention, paused, failed or cancelled with no run in flight), prints one
JSON line ``{"status", "id", "version"}`` and exits 0. The tests SIGKILL it at arbitrary moments before that.
Agent runs inherit this process's environment (SPECFLOW_DEMO_* variables).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from specflow_nb.orchestrator import Orchestrator

RESTING = ("paused", "waiting_merge", "needs_attention", "completed", "failed", "cancelled")


async def main(root: Path, project_id: str, config: dict[str, object] | None, timeout: float) -> int:
    async with Orchestrator(root) as orch:
        print(json.dumps({"event": "reconciled"}), flush=True)
        if config is not None and orch.status(project_id) is None:
            await orch.start(project_id, config)
            print(json.dumps({"event": "started"}), flush=True)
        with anyio.fail_after(timeout):
            while True:
                ex = orch.status(project_id)
                if ex is None:
                    print(json.dumps({"status": None}), flush=True)
                    return 2
                if ex.status.value in RESTING and ex.current_run is None:
                    print(json.dumps({"status": ex.status.value, "id": ex.id, "version": ex.version}), flush=True)
                    return 0
                await orch.wait_for_change(project_id, ex.version, 5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("project_id")
    parser.add_argument("--start", help="config JSON for a new orchestration when none exists")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    config = json.loads(args.start) if args.start else None
    sys.exit(anyio.run(main, args.root, args.project_id, config, args.timeout))
