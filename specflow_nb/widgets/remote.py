"""RemoteBackend: a Jupyter server with the specflow_nb extension, through :class:`specflow_nb.client.SpecflowClient`."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from specflow_nb.models import OrchestrationConfig, OrchestrationExecution
from specflow_nb.widgets.backend import Command, ProjectCard
from specflow_nb.widgets.plan import PlanPreview


def _execution(result: Any) -> OrchestrationExecution | None:
    """The orchestration in a client result (the model itself, a response with ``orchestration``, or JSON)."""
    if result is None or isinstance(result, OrchestrationExecution):
        return result
    inner = getattr(result, "orchestration", None)
    if inner is not None or hasattr(result, "orchestration"):
        return _execution(inner)
    if isinstance(result, dict):
        return (
            _execution(result["orchestration"])
            if "orchestration" in result
            else OrchestrationExecution.model_validate(result)
        )
    raise TypeError(f"unexpected client result {type(result).__name__}")


def _json(value: Any) -> dict[str, Any]:
    return value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else dict(value)


class RemoteBackend:
    """Commands as REST calls; live updates from the server's long-poll channel."""

    def __init__(self, client: Any, *, root_dir: Path | None = None) -> None:
        self.client = client
        self.root_dir = root_dir
        base = getattr(client, "base_url", None) or getattr(client, "url", None) or "a Jupyter server"
        self.description = f"server {base}"

    async def preview(self, project_id: str, config: OrchestrationConfig) -> PlanPreview:
        return PlanPreview.from_json(_json(await self.client.preview(project_id, config)))

    async def start(self, project_id: str, config: OrchestrationConfig) -> OrchestrationExecution:
        ex = _execution(await self.client.start(project_id, config))
        assert ex is not None
        return ex

    async def status(self, project_id: str) -> OrchestrationExecution | None:
        return _execution(await self.client.status(project_id))

    async def list(self, project_id: str) -> builtins.list[OrchestrationExecution]:
        result = await self.client.list(project_id)
        items = getattr(result, "orchestrations", result)
        return [ex for ex in (_execution(i) for i in items) if ex is not None]

    async def command(
        self, project_id: str, command: Command, orchestration_id: str | None = None
    ) -> OrchestrationExecution:
        action = command["action"]
        kw: dict[str, Any] = {"id": orchestration_id}
        c = self.client
        if action in ("pause", "resume", "cancel", "merge"):
            result = await getattr(c, action)(project_id, **kw)
        elif action == "recover":
            result = await c.recover(project_id, command["option"], **kw)
        elif action == "go_back":
            result = await c.go_back(project_id, command["step"], **kw)
        elif action == "answer":
            result = await c.answer(project_id, command["answers"], **kw)
        else:
            raise ValueError(f"unknown command {action!r}")
        ex = _execution(result)
        assert ex is not None
        return ex

    async def watch(self, project_id: str, since: int) -> AsyncIterator[OrchestrationExecution]:
        async for item in self.client.watch(project_id, since):
            ex = _execution(item)
            if ex is not None:
                yield ex

    async def projects(self) -> builtins.list[ProjectCard]:
        result = await self.client.projects()
        return [ProjectCard.from_summary(p) for p in getattr(result, "projects", result)]

    def project_path(self, project_id: str) -> Path | None:
        if self.root_dir is None:
            return None
        path = (self.root_dir / project_id).resolve()
        return path if path.is_dir() else None

    async def aclose(self) -> None:
        close = getattr(self.client, "aclose", None)
        if close is not None:
            await close()
