"""The engine's side of the agent choice: which agent and command a configuration runs under a host's settings,
and whether that agent is allowed, installed and (Codex) priced — the Start form's agent check.

Apart from the families because it reads configurations and host settings, never a run folder or a process.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field
from typing import Any

from specflow_nb.agent.claude_family import INSTALL_HINT
from specflow_nb.agent.codex_family import CODEX_INSTALL_HINT
from specflow_nb.agent.codex_usage import effective_model, price_for, unpriced_message
from specflow_nb.agent.options import AgentOptions
from specflow_nb.models import CLAUDE_MODEL_ALIASES, DEFAULT_AGENT_COMMANDS, OrchestrationConfig


@dataclass
class AgentCheck:
    """The agent part of a start's preflight."""

    command: str
    found: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def codex_command(config: OrchestrationConfig, settings: Any) -> str:
    """The Codex command of a run: the host's ``codex_command``; plain ``codex`` when the host imposes a (Claude)
    ``agent_command`` policy without one (a request never chooses what runs then); else the request's."""
    if getattr(settings, "codex_command", None):
        return str(settings.codex_command)
    if getattr(settings, "agent_command", None):
        return DEFAULT_AGENT_COMMANDS["codex"]
    return config.agent_command


def codex_model(model: str | None) -> str | None:
    """The ``-m`` of a Codex run: None (the CLI's own default) for an empty model or a Claude alias."""
    if not model or not model.strip() or model in CLAUDE_MODEL_ALIASES or model.startswith("claude-"):
        return None
    return model


def agent_options(opts: AgentOptions, config: OrchestrationConfig, settings: Any) -> AgentOptions:
    """A run's options for the configuration's agent (Claude's are returned unchanged)."""
    if config.agent != "codex":
        return opts
    return opts.model_copy(
        update={
            "agent": "codex",
            "command": codex_command(config, settings),
            "model": codex_model(config.model),
            "fallback_model": None,
            "prices": getattr(settings, "codex_prices", None),
            "extra_args": [*(getattr(settings, "codex_args", None) or []), *opts.extra_args],
        }
    )


def agent_preflight(config: OrchestrationConfig, settings: Any) -> AgentCheck:
    """Is the configuration's agent allowed, installed and (Codex) priced? What the Start form shows."""
    env = {**os.environ, **(getattr(settings, "agent_env", None) or {})}
    allowed = getattr(settings, "allowed_agents", None)
    command = codex_command(config, settings) if config.agent == "codex" else config.agent_command
    argv0 = (shlex.split(command) or [""])[0]
    found = bool(argv0) and shutil.which(argv0, path=env.get("PATH")) is not None
    check = AgentCheck(command=command, found=found)
    if allowed is not None and config.agent not in allowed:
        check.problems.append(
            f"This server does not allow the agent {config.agent!r} (allowed: {', '.join(allowed) or 'none'})."
        )
    if not found:
        hint = CODEX_INSTALL_HINT if config.agent == "codex" else INSTALL_HINT
        check.problems.append(f"The agent command {argv0!r} was not found. {hint}")
    if config.agent == "codex":
        prices = getattr(settings, "codex_prices", None)
        model = effective_model(codex_model(config.model), env)
        price = price_for(model, prices)
        if price is None:
            check.problems.append(unpriced_message(model, prices))
        else:
            check.warnings.append(
                f"Codex reports tokens, not dollars: cost is priced at ${price.input_per_mtok:g} / "
                f"${price.cached_input_per_mtok:g} / ${price.output_per_mtok:g} per 1M input / cached / output "
                f"tokens of {model}, read per model call from Codex's session files; a run is stopped within one "
                "model call of its budget."
            )
    return check


def apply_default_agent(config: OrchestrationConfig, settings: Any) -> OrchestrationConfig:
    """The host's ``default_agent`` for a request that names no agent (re-validated: per-agent defaults apply)."""
    default = getattr(settings, "default_agent", None)
    if not default or "agent" in config.model_fields_set or config.agent == default:
        return config
    data = config.model_dump(exclude_unset=True, by_alias=True)
    return OrchestrationConfig.model_validate({**data, "agent": default})
