"""Big previews run in a worker process (issue 12: a free event loop at any size) and answer what a thread would."""

from __future__ import annotations

from pathlib import Path

import pytest

from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample
from specflow_nb.models import OrchestrationConfig, Preview
from specflow_nb.orchestrator import EngineSettings, Orchestrator
from specflow_nb.server import offload
from specflow_nb.taskids import expand

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_process_and_thread_previews_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = prepare_sample(tmp_path / "p")
    lines = ["# Tasks", "", "## Phase 1: All", ""] + [f"- [ ] T{n:05d} Task {n}" for n in range(1, 3001)]
    (project / "specs" / SAMPLE_FEATURE / "tasks.md").write_text("\n".join(lines) + "\n")
    engine = Orchestrator(tmp_path, EngineSettings(trust_requests=False))
    config = OrchestrationConfig.model_validate({"batchSizeFallback": 7})
    calls: list[str] = []
    real = offload._preview_json

    monkeypatch.setattr(offload, "PROCESS_THRESHOLD_BYTES", 10**12)
    in_thread = await offload.preview(engine, "specflow_nb.orchestrator.Orchestrator", project, "p", config)
    monkeypatch.setattr(offload, "PROCESS_THRESHOLD_BYTES", 0)
    executor = offload._executor()
    submit = executor.submit

    def counting_submit(fn, *args, **kw):  # type: ignore[no-untyped-def]
        calls.append(fn.__name__)
        return submit(fn, *args, **kw)

    monkeypatch.setattr(executor, "submit", counting_submit)
    try:
        in_process = await offload.preview(engine, "specflow_nb.orchestrator.Orchestrator", project, "p", config)
    finally:
        offload.shutdown()
    assert calls == [real.__name__]
    assert isinstance(in_process, Preview) and in_process == in_thread
    data = in_process.model_dump(mode="json")  # as the server sends it
    assert data["batchPlan"]["taskCount"] == 3000
    ids = data["batchPlan"]["batches"][0]["taskIds"]
    assert ids == ["T00001..T03000"]  # one ## section: one batch, its run of ids written first..last
    assert len(expand(ids)) == 3000
