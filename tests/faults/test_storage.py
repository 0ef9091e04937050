"""The state folder read-only, and the disk full: a clear error (503 StorageError naming the cause), the last saved
state intact and parseable, and the phase completes once the storage is fixed.

Real faults: a read-only bind mount and a small tmpfs over ``.specflow/workflows`` (see conftest.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.common import WORKFLOWS, LiveServer, corrupt_files, fast_config, make_projects, state_files
from specflow_nb import spares
from specflow_nb.store import atomic_write_text

from .conftest import assert_no_server_error, drive_to_end, fill, read_only, settle, small_disk

pytestmark = pytest.mark.usefixtures("mountable")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    make_projects(tmp_path / "root", 0)
    live = LiveServer(tmp_path / "root", tmp_path / "srv")
    live.start()
    yield live
    live.stop()


def paused_after_first_batch(server: LiveServer, name: str) -> tuple[Path, dict[str, bytes]]:
    """A project whose orchestration paused after its first batch; its state files' bytes."""
    [pid] = make_projects(server.root, 1, prefix=name)
    project = server.root / pid
    with server.client() as client:
        r = client.post(
            "workflow/orchestrate", json={"projectId": pid, "config": fast_config(pauseBetweenBatches=True)}
        )
        assert r.status_code == 201, r.text
        ex = settle(client, pid)
    assert ex["status"] == "paused", ex
    return project, {str(p): p.read_bytes() for p in state_files(project)}


def assert_storage_error(response, errno_name: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == "StorageError" and body["details"]["errno"] == errno_name, body
    assert body["error"] and ".specflow" in body["hint"], body


def assert_intact(project: Path, before: dict[str, bytes]) -> None:
    assert {str(p): p.read_bytes() for p in state_files(project)} == before
    for path in state_files(project):
        json.loads(path.read_text(encoding="utf-8"))
    assert corrupt_files(project) == []


def test_read_only_state_folder(server: LiveServer) -> None:
    project, before = paused_after_first_batch(server, "ro")
    with server.client() as client:
        with read_only(project / WORKFLOWS):
            r = client.post("workflow/orchestrate/resume", json={"projectId": project.name})
            assert_storage_error(r, "EROFS")
            r = client.post("workflow/orchestrate/cancel", json={"projectId": project.name})
            assert r.status_code in (409, 503), r.text
            assert_intact(project, before)
        # Storage fixed: a restarted server picks the orchestration up from its last saved state and finishes.
        server.kill()
        server.start()
        ex = drive_to_end(client=server.client(), project=project.name)
    assert ex["status"] == "completed", ex
    assert_no_server_error(server.log)


def test_disk_full_between_batches(server: LiveServer) -> None:
    project, before = paused_after_first_batch(server, "full")
    with server.client() as client, small_disk(project / WORKFLOWS) as filler:
        fill(filler)
        r = client.post("workflow/orchestrate/resume", json={"projectId": project.name})
        assert_storage_error(r, "ENOSPC")
        assert_intact(project, before)
        filler.unlink()
        server.kill()
        server.start()
        ex = drive_to_end(server.client(), project.name)
        assert ex["status"] == "completed", ex
    assert_no_server_error(server.log)


def test_disk_full_during_a_run_keeps_state_and_recovers_after_restart(tmp_path: Path) -> None:
    """The disk fills while a batch runs (its output and exit record cannot be written). Whatever the engine does
    meanwhile, every state file stays parseable and a restarted server finishes the phase with no batch run twice."""
    root = tmp_path / "root"
    [pid] = make_projects(root, 1)
    project = root / pid
    log = tmp_path / "runs.jsonl"
    server = LiveServer(
        root,
        tmp_path / "srv",
        agent_env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.1", "SPECFLOW_DEMO_LOG": str(log)},
    )
    with small_disk(project / WORKFLOWS) as filler:
        server.start()
        try:
            with server.client() as client:
                r = client.post("workflow/orchestrate", json={"projectId": pid, "config": fast_config()})
                assert r.status_code == 201, r.text
                time.sleep(1.0)
                fill(filler)
                time.sleep(3.0)
                for path in state_files(project):
                    json.loads(path.read_text(encoding="utf-8"))
                filler.unlink()
            server.kill()
            server.start()
            ex = settle(server.client(), pid)
        finally:
            server.stop()
        assert corrupt_files(project) == []
        records = [json.loads(p.read_text(encoding="utf-8")) for p in state_files(project)]
    assert len(records) == 1
    assert ex["status"] in ("completed", "needs_attention"), ex
    if ex["status"] == "needs_attention":
        assert ex["recoveryContext"]["issue"], ex
    runs = [tuple(json.loads(line)["taskIds"]) for line in log.read_text().splitlines() if line.strip()]
    for batch in ex["batches"]["items"]:
        if batch["status"] == "completed":
            assert runs.count(tuple(batch["taskIds"])) == 1, (batch, runs)


def test_disk_full_during_a_run_leaves_the_loop_running(tmp_path: Path) -> None:
    root = tmp_path / "root"
    [pid, other] = make_projects(root, 2)
    project = root / pid
    server = LiveServer(
        root, tmp_path / "srv", agent_env={"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.1"}
    )
    with small_disk(project / WORKFLOWS) as filler:
        server.start()
        try:
            with server.client() as client:
                r = client.post("workflow/orchestrate", json={"projectId": pid, "config": fast_config()})
                assert r.status_code == 201, r.text
                time.sleep(1.0)
                fill(filler)
                time.sleep(4.0)
                filler.unlink()
                # Another project on the same server must still be served by the loop.
                r = client.post("workflow/orchestrate", json={"projectId": other, "config": fast_config()})
                assert r.status_code == 201, r.text
                assert settle(client, other)["status"] == "completed"
                ex = settle(client, pid, timeout=30)
                assert ex["status"] in ("completed", "needs_attention"), ex
        finally:
            server.stop()


def test_a_failed_save_does_not_change_what_the_server_reports(server: LiveServer) -> None:
    project, before = paused_after_first_batch(server, "memory")
    with server.client() as client:
        with read_only(project / WORKFLOWS):
            r = client.post("workflow/orchestrate/resume", json={"projectId": project.name})
            assert_storage_error(r, "EROFS")
            shown = client.get("workflow/orchestrate/status", params={"projectId": project.name}).json()
        on_disk = json.loads(next(iter(before.values())))
        assert (shown["orchestration"]["status"], shown["orchestration"]["version"]) == (
            on_disk["status"],
            on_disk["version"],
        )


def test_a_record_folder_on_another_file_system_than_the_spares_is_written_all_the_same(tmp_path: Path) -> None:
    """A folder mounted over .specflow/workflows: the spare temp file made ahead in .specflow/spares cannot be
    renamed there (EXDEV). The save writes a temp file beside the record instead, at once (it used to fail and be
    retried a second later)."""
    project = tmp_path / "p"
    (project / WORKFLOWS).mkdir(parents=True)
    with small_disk(project / WORKFLOWS):
        spare = spares.make_record_spare(project)
        assert spare is not None and os.stat(spare).st_dev != os.stat(project / WORKFLOWS).st_dev
        record = project / WORKFLOWS / "orchestration-x.json"
        atomic_write_text(record, '{"version": 1}\n', spare=spare)
        assert json.loads(record.read_text(encoding="utf-8")) == {"version": 1}
        assert not spare.exists() and [p.name for p in (project / WORKFLOWS).iterdir()] == [record.name]
