"""Agent faults through a live server: the agent binary removed mid-phase, megabytes of output, invalid UTF-8.

Each must end in a clear error or needs_attention (never a 500), the state file intact, and — once the cause is
gone — the phase must continue from where it stopped.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from benchmarks.common import (
    WORKFLOWS,
    LiveServer,
    corrupt_files,
    fast_config,
    make_projects,
    run_log,
    state_files,
    tasks_file,
)
from specflow_nb.tasks import parse_tasks

from .conftest import assert_no_server_error, drive_to_end, settle


def agent_copy(folder: Path) -> Path:
    """An executable stand-in for a ``claude`` binary installed in its own folder: the DEMO agent."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "claude"
    path.write_text(
        f"#!{sys.executable}\nimport sys\nfrom specflow_nb.demo.demo_agent import main\nsys.exit(main())\n",
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def records(project: Path) -> list[dict]:
    assert corrupt_files(project) == []
    return [json.loads(p.read_text(encoding="utf-8")) for p in state_files(project)]


def test_agent_binary_removed_between_batches(tmp_path: Path) -> None:
    root = tmp_path / "root"
    [pid] = make_projects(root, 1)
    project = root / pid
    agent = agent_copy(tmp_path / "bin")
    log = tmp_path / "runs.jsonl"
    # No server-wide agent command: the orchestration's own agentCommand (the copy) is used.
    server = LiveServer(root, tmp_path / "srv", agent_command=[], agent_env={"SPECFLOW_DEMO_LOG": str(log)})
    server.start()
    try:
        with server.client() as client:
            config = fast_config(pauseBetweenBatches=True, agentCommand=str(agent))
            r = client.post("workflow/orchestrate", json={"projectId": pid, "config": config})
            assert r.status_code == 201, r.text
            ex = settle(client, pid)
            assert ex["status"] == "paused" and ex["batches"]["items"][0]["status"] == "completed", ex
            saved = agent.read_bytes()
            agent.unlink()

            r = client.post("workflow/orchestrate/resume", json={"projectId": pid})
            assert r.status_code == 200, r.text
            ex = settle(client, pid)
            assert ex["status"] == "needs_attention", ex
            issue = ex["recoveryContext"]["issue"]
            assert "not_installed" in issue and f"'{agent}' was not found" in issue, issue
            [on_disk] = records(project)
            assert on_disk["status"] == "needs_attention" and on_disk["version"] == ex["version"]
            assert on_disk["batches"]["items"][0]["status"] == "completed"

            # Restored: retry continues with the next batch; the completed one is not run again.
            agent.write_bytes(saved)
            agent.chmod(0o755)
            r = client.post("workflow/orchestrate/recover", json={"projectId": pid, "option": "retry"})
            assert r.status_code == 200, r.text
            ex = drive_to_end(client, pid)
        assert ex["status"] == "completed", ex
        runs = [tuple(r["taskIds"]) for r in run_log(log) if r["taskIds"]]
        for batch in ex["batches"]["items"]:
            assert runs.count(tuple(batch["taskIds"])) == 1, (batch["taskIds"], runs)
    finally:
        server.stop()
    assert_no_server_error(server.log)


def test_megabytes_of_output_and_invalid_utf8(tmp_path: Path) -> None:
    """Batch 2's agent prints a 5 MiB line, batch 3's a line of invalid UTF-8 bytes; both still do their work."""
    root = tmp_path / "root"
    [pid] = make_projects(root, 1)
    project = root / pid
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "default": "success",
                "rules": [
                    {"match": '"Phase 2', "scenario": "huge_output"},
                    {"match": '"Phase 3', "scenario": "invalid_json_line"},
                ],
            }
        )
    )
    server = LiveServer(
        root,
        tmp_path / "srv",
        agent_env={"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_HUGE_BYTES": str(5 * 1024 * 1024)},
    )
    server.start()
    try:
        with server.client() as client:
            r = client.post("workflow/orchestrate", json={"projectId": pid, "config": fast_config()})
            assert r.status_code == 201, r.text
            ex = settle(client, pid, timeout=120)
            rss_mib = (
                int(
                    next(
                        x for x in Path(f"/proc/{server.pid}/status").read_text().splitlines() if x.startswith("VmHWM")
                    ).split()[1]
                )
                / 1024
            )
    finally:
        server.stop()
    [on_disk] = records(project)
    assert on_disk["version"] == ex["version"]
    if ex["status"] == "completed":
        assert all(t.done for t in parse_tasks(tasks_file(project).read_text(encoding="utf-8")).tasks)
    else:
        assert ex["status"] == "needs_attention" and ex["recoveryContext"]["issue"], ex
    # The flood went to the run's files, not into the state or the server's memory.
    assert os.path.getsize(state_files(project)[0]) < 200_000
    streams = sorted((project / WORKFLOWS).glob("*/stream.jsonl"), key=os.path.getsize)
    assert os.path.getsize(streams[-1]) > 5 * 1024 * 1024
    assert rss_mib < 400, rss_mib
    assert_no_server_error(server.log)
