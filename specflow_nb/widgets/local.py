"""LocalBackend: the engine inside this kernel (no server reachable: nbval, VS Code, a plain IPython)."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from specflow_nb.activity import Activity
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution, Preview
from specflow_nb.orchestrator import EngineSettings
from specflow_nb.server.api import DiffResponse
from specflow_nb.transcript import Transcript
from specflow_nb.widgets.backend import Command, ProjectCard
from specflow_nb.widgets.plan import PlanPreview

#: How long one wait on the engine's change signal lasts before it is simply renewed.
WATCH_TIMEOUT = 25.0


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class LocalBackend:
    """Runs :class:`specflow_nb.orchestrator.Orchestrator` on the kernel's event loop, rooted at ``root``.

    Agent runs are detached processes writing to files, so they survive a kernel restart; the next LocalBackend
    (or a server) on the same folder adopts them. Beside a server that drives the project it observes and routes
    commands to that server's engine (docs/architecture.md).
    """

    def __init__(self, root: str | Path, *, settings: EngineSettings | None = None) -> None:
        from specflow_nb.orchestrator import EngineSettings, Orchestrator

        self.root = Path(root).resolve()
        self.description = f"the engine in this kernel ({self.root})"
        # The kernel's engine follows the same rules as any host: it drives only what it owns (it takes over only
        # an orchestration whose owner is gone) and hands its commands to the owner otherwise.
        self.orchestrator = Orchestrator(root=self.root, settings=settings or EngineSettings(host_kind="kernel"))
        self._loop_started = False

    async def _engine(self) -> Any:
        if not self._loop_started:
            self._loop_started = True
            await self.orchestrator.start_loop()
        return self.orchestrator

    async def preview(self, project_id: str, config: OrchestrationConfig) -> PlanPreview:
        engine = await self._engine()
        return PlanPreview.of(Preview.model_validate(await _maybe_await(engine.preview(project_id, config))))

    async def start(self, project_id: str, config: OrchestrationConfig) -> OrchestrationExecution:
        engine = await self._engine()
        result: OrchestrationExecution = await engine.start(project_id, config, actor="notebook")
        return result

    async def status(self, project_id: str) -> OrchestrationExecution | None:
        engine = await self._engine()
        result: OrchestrationExecution | None = await _maybe_await(engine.status(project_id))
        return result

    async def list(self, project_id: str) -> builtins.list[OrchestrationExecution]:
        engine = await self._engine()
        return list(await _maybe_await(engine.list(project_id)))

    async def command(
        self, project_id: str, command: Command, orchestration_id: str | None = None
    ) -> OrchestrationExecution:
        engine = await self._engine()
        result: OrchestrationExecution = await engine.command(
            project_id, command, orchestration_id=orchestration_id, actor="notebook"
        )
        return result

    async def watch(self, project_id: str, since: int) -> AsyncIterator[OrchestrationExecution]:
        engine = await self._engine()
        seen: tuple[str, int] | None = None
        while True:
            # known_id: a new orchestration wakes the wait although its version is lower than the old one's
            execution = await engine.wait_for_change(
                project_id, since, WATCH_TIMEOUT, known_id=seen[0] if seen else None
            )
            if execution is None or (execution.id, execution.version) == seen:
                continue  # the wait timed out with nothing new
            seen = (execution.id, execution.version)
            since = execution.version
            yield execution

    async def projects(self) -> builtins.list[ProjectCard]:
        from specflow_nb.projects_view import projects_overview

        engine = await self._engine()
        response = await projects_overview(self.root, lambda: engine, depth=engine.settings.scan_depth)
        return [ProjectCard.from_summary(p) for p in response.projects]

    def project_path(self, project_id: str) -> Path | None:
        from specflow_nb.project import resolve_project

        return resolve_project(self.root, project_id)

    async def diff(self, project_id: str, orchestration_id: str | None = None) -> DiffResponse:
        import asyncio

        from specflow_nb import gitops
        from specflow_nb.errors import ConfigError
        from specflow_nb.project import resolve_project

        engine = await self._engine()
        project = resolve_project(self.root, project_id)
        ex = await _maybe_await(engine.status(project_id, orchestration_id))

        def compute() -> DiffResponse:
            feature = (ex.feature_branch if ex else None) or gitops.current_branch(project)
            target = (ex.config.target_branch if ex else None) or gitops.default_branch(project)
            if not feature or not target:
                raise ConfigError("No diff: the project has no feature branch or no target branch.")
            return DiffResponse.of(gitops.branch_diff(project, feature, target))

        return await asyncio.to_thread(compute)

    async def watch_activity(self, project_id: str) -> AsyncIterator[Activity | None]:
        from specflow_nb.activity import wait_activity
        from specflow_nb.project import resolve_project

        engine = await self._engine()
        project = resolve_project(self.root, project_id)
        etag: str | None = None
        while True:
            act = await wait_activity(project, lambda: engine.status(project_id), etag, WATCH_TIMEOUT)
            new = act.etag if act is not None else ""
            if new != etag:
                etag = new
                yield act

    async def transcript(self, project_id: str, run_id: str) -> Transcript:
        import asyncio

        from specflow_nb import transcript
        from specflow_nb.project import resolve_project

        project = resolve_project(self.root, project_id)
        return await asyncio.to_thread(transcript.build, project, run_id, project_id)

    async def aclose(self) -> None:
        if self._loop_started:
            self._loop_started = False
            await self.orchestrator.stop_loop()
