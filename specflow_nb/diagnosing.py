"""The decision helper's run at needs_attention (issue 15.5): start it (or adopt it after a restart), turn its
typed answer into the machine's ``DiagnosisFinished``.

Apart from the other actions because it is a whole one-shot agent call with its own model choice, prompt and
failure reading, run beside the stopped orchestration (not under the project's lock).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from specflow_nb import policy, redact
from specflow_nb.agent.claude import FailureKind
from specflow_nb.agent.codex import codex_command, codex_model
from specflow_nb.engine_settings import EngineSettings
from specflow_nb.engine_state import WORKFLOWS, Slot, feature_folder, run_dir
from specflow_nb.errors import SpecflowError
from specflow_nb.machine import Diagnose, DiagnosisFinished
from specflow_nb.models import OrchestrationConfig, OrchestrationExecution, utcnow


class Diagnoser:
    """Runs the decision helper for a ``Diagnose`` action."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings

    async def diagnose(
        self,
        slot: Slot,
        ex: OrchestrationExecution,
        action: Diagnose,
        feed: Callable[[Slot, DiagnosisFinished], Awaitable[None]],
    ) -> None:
        """Run (or, after a restart, adopt) the read-only decision helper beside the stopped orchestration and feed
        its answer back. Not under the project's lock: a Retry meanwhile goes ahead, and the answer lands late."""
        event = await self.diagnosis_event(slot, ex, action)
        await feed(slot, event)

    def decision_model(self, config: OrchestrationConfig) -> str | None:
        """The decision helper's model: decisionModel (Codex: a Claude name there means the run's own model)."""
        if config.agent == "codex":
            return codex_model(config.decision_model) or codex_model(config.model)
        return config.decision_model or config.model

    async def diagnosis_event(self, slot: Slot, ex: OrchestrationExecution, action: Diagnose) -> DiagnosisFinished:
        from specflow_nb.agent.helper import DiagnosisOutput, adopt_helper, claude_helper, diagnosis_prompt

        folder = run_dir(slot.project, action.run_id)
        model = self.decision_model(ex.config)

        def finished(**kw: Any) -> DiagnosisFinished:
            return DiagnosisFinished(
                at=utcnow(), run_id=action.run_id, recovery_seq=action.recovery_seq, model=model, **kw
            )

        try:
            result = await adopt_helper(folder, DiagnosisOutput)
            if result is None:
                if not action.start:
                    return finished(failure="lost", message="the decision helper never started (its host stopped)")
                cfg = policy.enforce_agent_command(ex.config, self.settings)  # every run, whoever wrote the record
                feature = feature_folder(slot, ex)
                prompt = diagnosis_prompt(
                    issue=action.issue,
                    options=[o.value for o in action.options],
                    failed_run_folder=(WORKFLOWS / action.failed_run_id).as_posix() if action.failed_run_id else None,
                    issue_kind=action.issue_kind,
                    step=action.step.value if action.step else None,
                    remaining_task_ids=action.remaining_task_ids,
                    feature_dir=feature.relative_to(slot.project).as_posix() if feature else None,
                    additional_context=cfg.additional_context,
                )
                agent: dict[str, Any] = {}
                command = cfg.agent_command
                if cfg.agent == "codex":  # the Codex runner: the read-only tools make its sandbox read-only
                    command = codex_command(cfg, self.settings)
                    agent = {
                        "agent": "codex",
                        "prices": self.settings.codex_prices,
                        "extra_args": list(self.settings.codex_args),
                    }
                result = await claude_helper(
                    redact.redact(prompt),
                    slot.project,
                    DiagnosisOutput,
                    preset="decision",
                    command=command,
                    model=model,
                    max_budget_usd=action.max_budget_usd,
                    env={**redact.allowed_environment(self.settings.env_allow), **self.settings.agent_env},
                    run_dir=folder,
                    **agent,
                )
        except SpecflowError as exc:
            return finished(failure=FailureKind.PROCESS_FAILED.value, message=str(exc))
        except OSError as exc:
            return finished(failure=FailureKind.PROCESS_FAILED.value, message=f"the helper's folder: {exc}")
        cost = result.cost_usd if math.isfinite(result.cost_usd) and result.cost_usd > 0 else 0.0
        if result.outcome is not None and result.outcome.model:
            model = result.outcome.model
        if not result.ok or result.value is None:
            failure = result.failure.value if result.failure else "process_failed"
            return finished(failure=failure, message=redact.redact(result.failure_message or ""), cost_usd=cost)
        value = result.value
        return finished(
            diagnosis=redact.redact(value.diagnosis),
            suggestion=value.suggestion,
            fix=redact.redact(value.fix) if value.fix else None,
            cost_usd=cost,
        )
