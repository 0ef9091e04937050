"""Where the panel's commands go: a Jupyter server with the specflow_nb extension, or the engine in this kernel.

The panel only knows :class:`Backend`. :class:`RemoteBackend` wraps :class:`specflow_nb.client.SpecflowClient`
(REST + long-poll live channel); :class:`LocalBackend` runs :class:`specflow_nb.orchestrator.Orchestrator` on the
kernel's own event loop (the fallback when no server is reachable, e.g. under nbval or another frontend).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from specflow_nb.activity import Activity
from specflow_nb.machine import Command as MachineCommand
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution, OrchestrationStatus
from specflow_nb.server.api import DiffResponse, ProjectSummary
from specflow_nb.transcript import Transcript
from specflow_nb.widgets.plan import PlanPreview

#: What a widget sends: the machine's typed command, forwarded as it is by every backend to the owning engine.
Command = MachineCommand


@dataclass(frozen=True)
class ProjectCard:
    """One project of the overview: its newest orchestration's status and the card's badge text."""

    project_id: str
    name: str
    status: OrchestrationStatus | None = None
    badge: str | None = None
    status_error: str | None = None

    @classmethod
    def from_summary(cls, summary: ProjectSummary) -> ProjectCard:
        """From the server's (or the in-kernel scan's) ``ProjectSummary``."""
        orch = summary.orchestration
        return cls(
            project_id=summary.project_id,
            name=summary.name or summary.project_id or "(root)",
            status=orch.status if orch is not None else None,
            badge=summary.badge or (orch.badge if orch is not None else None),
            status_error=summary.status_error,
        )


class Backend(Protocol):
    """The engine surface the panel uses (docs/engine-api.md), async so the kernel never blocks."""

    #: Where commands go, for the panel's footer ("server http://127.0.0.1:8888/", "this kernel").
    description: str

    async def preview(self, project_id: str, config: OrchestrationConfig) -> PlanPreview: ...

    async def start(self, project_id: str, config: OrchestrationConfig) -> OrchestrationExecution: ...

    async def status(self, project_id: str) -> OrchestrationExecution | None: ...

    async def list(self, project_id: str) -> builtins.list[OrchestrationExecution]: ...

    async def command(
        self, project_id: str, command: Command, orchestration_id: str | None = None
    ) -> OrchestrationExecution: ...

    def watch(self, project_id: str, since: int) -> AsyncIterator[OrchestrationExecution]:
        """Every newer version of the project's orchestration, as soon as it is saved (raises on network errors)."""
        ...

    async def projects(self) -> builtins.list[ProjectCard]: ...

    def project_path(self, project_id: str) -> Path | None:
        """The project's folder on this machine, when the kernel can see it."""
        ...

    async def diff(self, project_id: str, orchestration_id: str | None = None) -> DiffResponse:
        """View diff: the feature branch against the target, file by file (``GET workflow/orchestrate/diff``)."""
        ...

    def watch_activity(self, project_id: str) -> AsyncIterator[Activity | None]:
        """The live run's Now line at once, then on every change (None while no agent run is live)."""
        ...

    async def transcript(self, project_id: str, run_id: str) -> Transcript:
        """A run's transcript (redacted; ``available`` False without read access to the project's files)."""
        ...

    async def aclose(self) -> None: ...


async def diff_text(path: Path, target_branch: str | None) -> str:
    """``git diff --stat target...feature`` of the checked-out feature branch, plus the files not committed yet
    (the built-in merge commits them first, so they are part of what a merge brings in). Runs off the event loop."""
    import subprocess

    from specflow_nb import gitops

    def _diff() -> str:
        feature = gitops.current_branch(path)
        target = target_branch or gitops.default_branch(path)
        if feature is None or target is None:
            return "No diff: the project has no checked-out feature branch or no target branch."
        committed = gitops.diff_stat(path, feature, target)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.splitlines()
        parts = [
            f"Committed on {feature} since {target}:\n{committed}"
            if committed
            else f"No commits on {feature} since {target}."
        ]
        if status:
            parts.append(f"Not committed yet ({len(status)} files; the merge commits them):\n" + "\n".join(status))
        return "\n\n".join(parts)

    return await asyncio.to_thread(_diff)
