"""The preview before Start: the batch plan, the estimate and the preflight checks the form shows (nothing starts).

Apart from the engine's loop because a preview only reads files: the server runs it in a worker thread (or a worker
process for a huge tasks.md) on an engine whose loop may not run, and the CLI's ``start --dry-run`` never starts one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from specflow_nb import gitops
from specflow_nb.agent.codex import agent_preflight
from specflow_nb.agent.prompts import prompt_agent, prompt_sources
from specflow_nb.engine_settings import EngineSettings, agent_env_view, effective_config
from specflow_nb.engine_state import Slot
from specflow_nb.errors import SpecflowError
from specflow_nb.estimate import estimate_plan
from specflow_nb.machine import ProjectSnapshot
from specflow_nb.models import OrchestrationConfig, Preflight, Preview
from specflow_nb.project import collect_artifacts, find_feature_dir, project_status
from specflow_nb.tasks import plan_batches


class Previewer:
    """Computes the engine's :class:`Preview` of a project (``Orchestrator.preview``)."""

    def __init__(self, settings: EngineSettings, resolve: Callable[[str], Slot]) -> None:
        self.settings = settings
        self._resolve = resolve

    def _effective_config(self, config: OrchestrationConfig | dict[str, Any] | None) -> OrchestrationConfig:
        return effective_config(self.settings, config)

    def _agent_env_view(self) -> Mapping[str, str]:
        return agent_env_view(self.settings)

    def preview(self, project_id: str, config: OrchestrationConfig | dict[str, Any] | None = None) -> Preview:
        """The batch plan and the checks the Start form shows (nothing is started)."""
        slot = self._resolve(project_id)
        config = self._effective_config(config)
        problems: list[str] = []
        warnings: list[str] = []
        feature_dir = find_feature_dir(slot.project)
        art = collect_artifacts(feature_dir)
        plan = plan_batches(art.parsed_tasks, config.batch_size_fallback) if art.parsed_tasks else None
        if feature_dir is None:
            problems.append("No feature folder (specs/NNNN-name/): open the phase first.")
        elif config.skip_design and not art.has_tasks:
            problems.append("Design is skipped but tasks.md has no tasks: untick 'Skip design' or write tasks.md.")
        if art.tasks_error:
            problems.append(f"tasks.md cannot be read: {art.tasks_error}")
        check = agent_preflight(config, self.settings)
        problems += check.problems
        warnings += check.warnings
        agent_found = check.found
        records = slot.store.list()  # read once: the active one and the history of the estimate
        active = next((e for e in records if e.status.is_active), None)
        if active is not None:
            problems.append(f"Orchestration already in progress: {active.id}. Cancel it first or wait for completion.")
        branch = target = None
        try:
            branch = gitops.current_branch(slot.project)
            target = config.target_branch or gitops.default_branch(slot.project)
        except gitops.GitError as exc:
            warnings.append(f"{exc.message} The merge step needs a git repository.")
        if branch and target and branch == target:
            warnings.append(f"The project is on {target}, the merge target: the merge step will have nothing to merge.")
        status = None
        with contextlib.suppress(SpecflowError):
            status = project_status(slot.project)
        with prompt_agent(config.agent):
            sources = prompt_sources(slot.project, self._agent_env_view())
        parsed = art.parsed_tasks
        snapshot = ProjectSnapshot(
            has_spec=art.has_spec,
            has_plan=art.has_plan,
            has_tasks=art.has_tasks,
            task_ids=[t.id for t in parsed.tasks] if parsed else [],
            done_task_ids=parsed.settled_ids if parsed else [],
        )
        estimate = estimate_plan(
            slot.project,
            plan,
            config,
            self.settings,
            snapshot=snapshot,
            records=records,
            merge_by_agent=any(s.step == "merge" and s.source != "builtin" for s in sources),
        )
        return Preview(
            batch_plan=plan,
            estimate=estimate,
            preflight=Preflight(
                ok=not problems,
                problems=problems,
                warnings=warnings,
                agent_command=check.command,
                agent_found=agent_found,
                feature_dir=feature_dir.relative_to(slot.project).as_posix() if feature_dir else None,
                has_tasks=art.has_tasks,
                branch=branch,
                target_branch=target,
                active_orchestration_id=active.id if active else None,
            ),
            project_status=status,
            prompt_sources=sources,
        )
