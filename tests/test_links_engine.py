"""Links out of the project (issue 12): an engine's own loop (reconcile on start, rescans) neither reads nor writes
through a project's ``.specflow`` that is a symlink leading elsewhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from specflow_nb.demo import prepare_sample
from specflow_nb.errors import ProjectOutsideRoot
from specflow_nb.orchestrator import EngineSettings, Orchestrator

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_the_loop_never_touches_a_linked_state_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "p")
    outside = tmp_path / "outside" / ".specflow"
    (outside / "workflows").mkdir(parents=True)
    record = {
        "id": "20260101T000000-abcdef",
        "projectId": "p",
        "status": "running",
        "startedAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    (outside / "workflows" / "orchestration-20260101T000000-abcdef.json").write_text(json.dumps(record))
    if (project / ".specflow").exists():
        shutil.rmtree(project / ".specflow")
    (project / ".specflow").symlink_to(outside, target_is_directory=True)
    before = _tree(outside)
    async with Orchestrator(root, EngineSettings(rescan_seconds=0.2)) as orch:
        await anyio.sleep(1.0)  # reconcile, a few rescans
        with pytest.raises(ProjectOutsideRoot, match=r"'\.specflow'"):
            orch.status("p")
    assert _tree(outside) == before  # no owner record, no lock, no rewrite outside the project
