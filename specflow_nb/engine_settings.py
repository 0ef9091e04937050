"""What a host configures on its engine (``EngineSettings``) and what a request means on that host.

Apart from the engine's moving parts because every host builds the settings (the server from traitlets, the CLI,
the kernel) and the preview reads them without starting any loop: importing this module costs no engine.
``effective_config`` is the one place where the host's policy meets a request (its default agent and model, presets,
its agent command, approvals of a trusted caller).
"""

from __future__ import annotations

import builtins
import os
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from specflow_nb import policy
from specflow_nb.agent.codex import apply_default_agent
from specflow_nb.estimate import (
    DEFAULT_SECONDS_PER_TASK,
    DEFAULT_STEP_SECONDS,
    DEFAULT_STEP_USD,
    DEFAULT_USD_PER_TASK,
    EstimatedStep,
    EstimateSeconds,
    EstimateUsd,
)
from specflow_nb.models import AgentKind, ModelPrice, OrchestrationConfig
from specflow_nb.scanner import DEFAULT_SCAN_DEPTH, MAX_SCAN_DEPTH


class EngineSettings(BaseModel):
    """What a host configures (the server from traitlets). ``agent_env`` may hold secrets: never persisted."""

    model_config = ConfigDict(extra="forbid")

    #: When set, every run uses this agent command whatever the request says (a host's policy).
    agent_command: str | None = None
    #: Used when a start request does not name a model itself.
    default_model: str | None = None
    #: The decision helper's model when a start request does not set decisionModel itself (issue 15.5).
    decision_model: str | None = None
    #: Used when a start request does not set staleAfterSeconds itself.
    stale_after_seconds: float | None = Field(default=None, gt=0)
    #: Active orchestrations this host drives at once; one more start is refused (409).
    max_concurrent: int = Field(default=20, ge=1)
    agent_env: dict[str, str] = Field(default_factory=dict, repr=False)
    #: Longest a step or batch run may take before it is killed as ``timeout``.
    run_timeout_seconds: float = Field(default=4 * 3600, gt=0)
    #: Longest a healer may take (long on purpose: the original cut healers off after 120 s).
    healer_timeout_seconds: float = Field(default=1800, gt=0)
    verify_timeout_seconds: float = Field(default=1800, gt=0)
    #: How deep below the root to look for projects (folders holding specs/ or .specflow/; a project's own folders are
    #: not searched): the one depth of the engine's scans and the projects overview (specflow_nb.scanner).
    scan_depth: int = Field(default=DEFAULT_SCAN_DEPTH, ge=0, le=MAX_SCAN_DEPTH)
    # ---- ownership (ARCHITECTURE.md "One owner per orchestration"; docs/architecture.md)
    #: What this host is, in owner records and messages: server, cli, kernel or engine; and its URL if it has one.
    host_kind: str = "engine"
    host_url: str | None = None
    #: False for a host that only observes (``orchestrate watch``): it never takes an orchestration over.
    may_take_over: bool = True
    #: An owner on another machine is gone when it has not renewed its lease for this long.
    lease_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    renew_seconds: float = Field(default=5.0, gt=0, le=600, allow_inf_nan=False)
    #: How long a command handed to another host's engine waits for that owner to take it.
    command_timeout_seconds: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    #: How often an engine looks for orchestrations other hosts started under its root (to observe them and take
    #: them over if their owner dies).
    rescan_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    #: This machine's id in owner records (default: hostname + boot id + pid namespace; tests simulate a second
    #: machine with another value).
    host_id: str | None = None
    # ---- the agent choice (claude | codex)
    #: The agent of a start request that names none (applied by ``agent.codex.apply_default_agent``).
    default_agent: AgentKind | None = None
    #: The agents a request may choose (None: both); a start naming another one is refused by the preflight.
    allowed_agents: builtins.list[AgentKind] | None = None
    #: When set, every Codex run uses this command (the host's policy, like ``agent_command`` for Claude). A host
    #: that imposes ``agent_command`` without this runs Codex as plain ``codex`` from PATH.
    codex_command: str | None = None
    #: USD per 1M tokens for each Codex model (None: ``agent.codex.DEFAULT_PRICES``; a ``prefix*`` key prices a
    #: family). A budgeted Codex run with an unpriced model is refused.
    codex_prices: dict[str, ModelPrice] | None = None
    #: Extra ``codex exec`` options for every Codex run (e.g. ``-c model_provider=…``), before the subcommand.
    codex_args: builtins.list[str] = Field(default_factory=list)
    # ---- what a grant may do (specflow_nb.policy, specflow_nb.redact)
    #: True for a host whose callers may run code anyway (CLI, kernel): the commands it is given are approved.
    #: False (the Jupyter server): a record's commands run only if they are the server's, a preset, or approved.
    trust_requests: bool = True
    #: Where approvals (digests of commands chosen by someone who may run code) are kept; None: the default place.
    approved_commands_file: Path | None = None
    #: The verify command of a request that names none, and named presets any user may pick.
    verify_command: str | None = None
    verify_commands: dict[str, str] = Field(default_factory=dict)
    #: Named agent commands any user may pick; models any user may pick besides the default.
    agent_commands: dict[str, str] = Field(default_factory=dict)
    allowed_models: builtins.list[str] = Field(default_factory=list)
    #: Names (or ``PREFIX_*``) of the server's environment variables added to the verify and agent allow-lists.
    env_allow: builtins.list[str] = Field(default_factory=list)
    #: Who gets an agent with a shell (Bash): "execute" (runs of orchestrations started, and not since continued,
    #: by a user who may run code) or "all". Only where ``trust_requests`` is False.
    shell_for: Literal["execute", "all"] = "execute"
    # ---- the estimate before start (specflow_nb.estimate): what it assumes while the project has no past runs
    #: One task of a batch: seconds and USD.
    estimate_seconds_per_task: float = Field(default=DEFAULT_SECONDS_PER_TASK, ge=0, le=86_400, allow_inf_nan=False)
    estimate_usd_per_task: float = Field(default=DEFAULT_USD_PER_TASK, ge=0, le=1000, allow_inf_nan=False)
    #: Each step's run (design, analyze, verify, merge by an agent): seconds and USD; a step left out keeps its
    #: default.
    estimate_step_seconds: dict[EstimatedStep, EstimateSeconds] = Field(
        default_factory=lambda: dict(DEFAULT_STEP_SECONDS)
    )
    estimate_step_usd: dict[EstimatedStep, EstimateUsd] = Field(default_factory=lambda: dict(DEFAULT_STEP_USD))


def effective_config(
    settings: EngineSettings, config: OrchestrationConfig | dict[str, Any] | None, *, approve: bool = False
) -> OrchestrationConfig:
    """The configuration a request means on this host; ``approve`` (a start) records a trusted caller's choices
    (a preview or a rebuilt record approves nothing)."""
    if config is None:
        config = OrchestrationConfig()
    elif not isinstance(config, OrchestrationConfig):
        config = OrchestrationConfig.model_validate(config)
    config = apply_default_agent(config, settings)  # the host's default agent, for a request naming none
    given = config.model_fields_set
    config = policy.resolve_presets(config, settings)  # a preset's name becomes its command
    if approve and settings.trust_requests:  # a CLI or kernel user may run code anyway: their choice counts
        policy.approve_config(settings.approved_commands_file or policy.default_approvals_path(), config)
    update: dict[str, Any] = {}
    if settings.verify_command and not (config.verify_command or "").strip():  # none chosen (the form
        update["verify_command"] = settings.verify_command  # sends null): the server's
    if settings.agent_command:  # the host's policy (e.g. a team's wrapper) wins over the request
        update["agent_command"] = settings.agent_command
    if settings.default_model and "model" not in given:
        update["model"] = settings.default_model
    if settings.decision_model and "decision_model" not in given:
        update["decision_model"] = settings.decision_model
    if settings.stale_after_seconds and "stale_after_seconds" not in given:
        update["stale_after_seconds"] = settings.stale_after_seconds
    return config.model_copy(update=update) if update else config


def agent_env_view(settings: EngineSettings) -> Mapping[str, str]:
    """The environment a run sees, for where it looks for commands (CLAUDE_CONFIG_DIR, CODEX_HOME): a view (no copy
    of the environment on every transition)."""
    return ChainMap(settings.agent_env, os.environ)
