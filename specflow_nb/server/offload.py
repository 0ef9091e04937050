"""Big previews off the server's process: a free event loop at any size (issue 12).

Reading and planning a tasks.md of 200,000 tasks is seconds of pure-Python work. In a worker thread it still starves
the event loop through the GIL (every request the loop serves waits for the GIL after each system call: stalls of
hundreds of milliseconds), so a project whose tasks.md is larger than :data:`PROCESS_THRESHOLD_BYTES` is previewed
in a worker *process* (one, kept for later previews, started with ``spawn``: no fork of a threaded server). Smaller
ones are previewed in a thread, which costs no process start.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from specflow_nb.models import OrchestrationConfig, Preview

if TYPE_CHECKING:
    from specflow_nb.engine import Engine

#: tasks.md files larger than this are previewed in the worker process.
PROCESS_THRESHOLD_BYTES = 512 * 1024

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def shutdown() -> None:
    """Stop the worker process (the server's extension stops)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _preview_json(engine_class: str, root: str, settings_json: str, project_id: str, config_json: str) -> str:
    """In the worker process: the engine's preview as JSON (a fresh engine: preview only reads files)."""
    from traitlets.utils.importstring import import_item

    from specflow_nb.models import OrchestrationConfig
    from specflow_nb.orchestrator import EngineSettings

    settings = EngineSettings.model_validate_json(settings_json)
    engine = import_item(engine_class)(root=Path(root), settings=settings)
    config = OrchestrationConfig.model_validate_json(config_json)
    return str(engine.preview(project_id, config).model_dump_json(by_alias=True))


def tasks_size(project: Path) -> int:
    """Size in bytes of the project's active tasks.md (0 when there is none)."""
    from specflow_nb.project import find_feature_dir

    with contextlib.suppress(Exception):
        feature = find_feature_dir(project)
        if feature is not None:
            return (feature / "tasks.md").stat().st_size
    return 0


async def preview(
    engine: Engine, engine_class: str, project: Path, project_id: str, config: OrchestrationConfig
) -> Preview:
    """The engine's preview, computed off the event loop (a process for big tasks.md)."""
    if await asyncio.to_thread(tasks_size, project) > PROCESS_THRESHOLD_BYTES:
        args = (
            engine_class,
            str(engine.root),
            engine.settings.model_dump_json(),
            project_id,
            config.model_dump_json(exclude_unset=True),
        )
        try:
            text = await asyncio.get_running_loop().run_in_executor(_executor(), _preview_json, *args)
        except BrokenProcessPool:
            shutdown()
        else:
            return await asyncio.to_thread(Preview.model_validate_json, text)
    result = await asyncio.to_thread(engine.preview, project_id, config)
    return Preview.model_validate(result)
