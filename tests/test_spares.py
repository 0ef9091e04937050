"""Spares (specflow_nb/spares.py): the files a transition would create, made ahead while the agent runs.

The record's save and a run's folder take them instead of creating files (the slow part of a write here); nothing
else changes: the record is still written whole to a temp file, fsynced and renamed, a run folder still appears
whole (by a rename) before its process starts, no spare is ever made or used through a link leading out of the
project, and no spare is left when the orchestration has ended.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from specflow_nb import spares
from specflow_nb.agent import launching
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.store import OrchestrationStore
from tests.support.orch_helpers import base_config, big_project, run_log, settle

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / ".specflow" / "workflows").mkdir(parents=True)
    return folder


def test_a_record_saved_through_a_spare_is_whole_and_uses_it_up(tmp_path: Path) -> None:
    proj = project(tmp_path)
    store = OrchestrationStore(proj)
    ex = OrchestrationExecution(id="o1", project_id="p", config=OrchestrationConfig(), started_at=T0, updated_at=T0)
    spare = spares.make_record_spare(proj)
    assert spare is not None and spare.exists() and spare.stat().st_size == 0
    path = store.save(ex, spare=spare)
    assert not spare.exists()  # renamed over the record
    assert OrchestrationExecution.model_validate_json(path.read_text()) == ex
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file beside it
    gone = spares.make_record_spare(proj)
    assert gone is not None
    gone.unlink()
    store.save(ex.model_copy(update={"version": 1}), spare=gone)  # a spare that vanished: a temp file as always
    assert store.load("o1").version == 1


def test_a_spare_run_folder_becomes_the_run_folder_with_its_files_named(tmp_path: Path) -> None:
    proj = project(tmp_path)
    spare = launching.make_spare(proj)
    assert spare is not None and spare.parent == proj / spares.SPARES_DIR
    assert all(p.name.endswith(spares.SPARE_SUFFIX) for p in spare.iterdir())  # nobody mistakes them for a run's
    run = proj / ".specflow" / "workflows" / "o1-001-batch1"
    assert spares.take_run_spare(spare, run)
    assert not spare.exists()
    assert {"run.lock", "prompt.md"} <= {p.name for p in run.iterdir()}
    assert not [p for p in run.iterdir() if p.name.endswith(spares.SPARE_SUFFIX)]
    other = launching.make_spare(proj)
    (run / "prompt.md").write_text("taken")
    assert not spares.take_run_spare(other, run)  # an existing run folder is never replaced
    assert (run / "prompt.md").read_text() == "taken"


def test_no_spare_is_made_or_used_through_a_link_out_of_the_project(tmp_path: Path) -> None:
    proj = project(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (proj / spares.SPARES_DIR).symlink_to(outside)
    assert spares.make_record_spare(proj) is None
    assert launching.make_spare(proj) is None
    assert list(outside.iterdir()) == []
    planted = outside / "1-x.record.tmp"
    planted.write_text("")
    store = OrchestrationStore(proj)
    ex = OrchestrationExecution(id="o1", project_id="p", config=OrchestrationConfig(), started_at=T0, updated_at=T0)
    store.save(ex, spare=proj / spares.SPARES_DIR / planted.name)  # named through the link: not written
    assert planted.read_text() == "" and store.load("o1") == ex


def test_spares_of_processes_that_ended_are_swept(tmp_path: Path) -> None:
    proj = project(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = proj / spares.SPARES_DIR
    folder.mkdir()
    (folder / f"{dead.stdout.strip()}-ab.record.tmp").write_text("")
    (folder / f"{dead.stdout.strip()}-cd.run").mkdir()
    mine = spares.make_record_spare(proj)
    assert mine is not None
    assert sorted(p.name for p in folder.iterdir()) == [mine.name]


@pytest.mark.anyio
async def test_an_orchestration_takes_its_spares_and_leaves_none(tmp_path: Path) -> None:
    """Every run after the first starts from a spare made while the previous one ran; when the phase has ended,
    none is left. The runs' folders hold what they always held."""
    root = tmp_path / "root"
    big_project(root / "big", sections=3, total=6)
    log = tmp_path / "runs.jsonl"
    async with Orchestrator(root, EngineSettings(agent_env={"SPECFLOW_DEMO_LOG": str(log)})) as orch:
        await orch.start("big", base_config(autoMerge=True))
        with anyio.fail_after(60):
            ex = await settle(orch, "big")
    assert ex.status.value == "completed"
    assert len(run_log(log)) == 4  # 3 batches + verify
    folder = root / "big" / spares.SPARES_DIR
    assert folder.is_dir() and not [p for p in folder.iterdir() if p.name.startswith(f"{os.getpid()}-")]
    runs = sorted(p for p in (root / "big" / ".specflow" / "workflows").iterdir() if p.is_dir())
    assert len(runs) == 4
    for run in runs:
        with anyio.fail_after(5):  # a run's recorder writes exit.json once the transition after it let go of it
            while not (run / "exit.json").exists():
                await anyio.sleep(0.01)
        names = {p.name for p in run.iterdir()}
        assert {"prompt.md", "argv.json", "pid.json", "exit.json", "stream.jsonl", "run.lock"} <= names
        assert not [n for n in names if n.endswith(spares.SPARE_SUFFIX) or n.endswith(".tmp")]
        assert (run / "prompt.md").read_text().strip()
        assert json.loads((run / "argv.json").read_text())["argv"]
