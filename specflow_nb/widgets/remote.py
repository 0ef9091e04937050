"""RemoteBackend: a Jupyter server with the specflow_nb extension, through :class:`specflow_nb.client.SpecflowClient`.

The client's route methods are blocking (httpx): they run in a worker thread so the kernel's loop never waits on
the network. Its ``watch`` is already async (long-poll ``status?since=``).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from specflow_nb.activity import Activity
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution
from specflow_nb.server.api import DiffResponse
from specflow_nb.transcript import Transcript
from specflow_nb.widgets.backend import Command, ProjectCard
from specflow_nb.widgets.plan import PlanPreview

if TYPE_CHECKING:
    from specflow_nb.client import SpecflowClient


class RemoteBackend:
    """Commands as REST calls; live updates from the server's long-poll channel."""

    def __init__(self, client: SpecflowClient) -> None:
        self.client = client
        self.root_dir = client.server.root_dir
        self.description = f"server {client.server.url}"

    async def preview(self, project_id: str, config: OrchestrationConfig) -> PlanPreview:
        response = await asyncio.to_thread(self.client.preview, project_id, config)
        return PlanPreview.of_response(response)

    async def start(self, project_id: str, config: OrchestrationConfig) -> OrchestrationExecution:
        response = await asyncio.to_thread(self.client.start, project_id, config)
        return response.orchestration

    async def status(self, project_id: str) -> OrchestrationExecution | None:
        return await asyncio.to_thread(self.client.status, project_id)

    async def list(self, project_id: str) -> builtins.list[OrchestrationExecution]:
        return await asyncio.to_thread(self.client.list, project_id)

    async def command(
        self, project_id: str, command: Command, orchestration_id: str | None = None
    ) -> OrchestrationExecution:
        # the widget's typed command, as it is, through the client to the owning engine
        result: OrchestrationExecution = await asyncio.to_thread(
            self.client.command, project_id, command, orchestration_id
        )
        return result

    async def watch(self, project_id: str, since: int) -> AsyncIterator[OrchestrationExecution]:
        # until_finished=False: after a run ends the panel keeps listening (someone may start the next one)
        async for execution in self.client.watch(project_id, max(since, 0), until_finished=False):
            yield execution

    async def projects(self) -> builtins.list[ProjectCard]:
        summaries = await asyncio.to_thread(self.client.projects)
        return [ProjectCard.from_summary(p) for p in summaries]

    def project_path(self, project_id: str) -> Path | None:
        """Under JupyterHub or a local server the kernel shares the server's disk; a remote URL has no root."""
        if self.root_dir is None:
            return None
        path = (self.root_dir / project_id).resolve()
        return path if path.is_dir() else None

    async def diff(self, project_id: str, orchestration_id: str | None = None) -> DiffResponse:
        return await asyncio.to_thread(self.client.diff, project_id, orchestration_id)

    async def watch_activity(self, project_id: str) -> AsyncIterator[Activity | None]:
        async for response in self.client.watch_activity(project_id):
            yield response.activity

    async def transcript(self, project_id: str, run_id: str) -> Transcript:
        return await asyncio.to_thread(self.client.transcript, project_id, run_id)

    async def aclose(self) -> None:
        self.client.close()
