"""Fixtures for the headless widget tests: real ipywidgets objects built from real model values."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from specflow_nb.models import (
    BatchItem,
    BatchStatus,
    BatchTracking,
    DecisionLogEntry,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def make_execution(
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    phase: OrchestrationPhase = OrchestrationPhase.IMPLEMENT,
    *,
    batch_statuses: tuple[BatchStatus, ...] = (
        BatchStatus.COMPLETED,
        BatchStatus.RUNNING,
        BatchStatus.PENDING,
        BatchStatus.PENDING,
    ),
    current: int = 1,
    **extra: Any,
) -> OrchestrationExecution:
    """An orchestration of 4 batches (3+9+12+11 = 35 tasks) named like the original's example."""
    sizes = (3, 9, 12, 11)
    names = ("Setup", "Core Components", "Integration", "Polish")
    items = []
    start = 1
    for i, st in enumerate(batch_statuses):
        ids = [f"T{n:03d}" for n in range(start, start + sizes[i % 4])]
        start += len(ids)
        started = T0 + timedelta(minutes=10 * i) if st is not BatchStatus.PENDING else None
        completed = T0 + timedelta(minutes=10 * i + 10) if st.is_done else None
        items.append(
            BatchItem(
                index=i,
                section=names[i % 4],
                task_ids=ids,
                status=st,
                started_at=started,
                completed_at=completed,
            )
        )
    data: dict[str, Any] = dict(
        id="orch-1",
        project_id="todo",
        status=status,
        current_phase=phase,
        batches=BatchTracking(total=len(items), current=current, items=items),
        started_at=T0,
        updated_at=T0 + timedelta(minutes=15),
        version=3,
    )
    data.update(extra)
    return OrchestrationExecution(**data)


def log_entry(decision: str, reason: str, minute: int = 0) -> DecisionLogEntry:
    return DecisionLogEntry(timestamp=T0 + timedelta(minutes=minute), decision=decision, reason=reason)


@pytest.fixture(autouse=True)
def own_jupyter_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered settings go to a fresh Jupyter data folder per test, never the developer's own."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path_factory.mktemp("jupyter-data")))


@pytest.fixture
def execution() -> OrchestrationExecution:
    return make_execution()
