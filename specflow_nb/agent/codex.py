"""Runs of the Codex CLI (``codex exec --json``): the same contract as Claude Code runs, other protocol.

This module re-exports the Codex names: the family (argv, classification: :mod:`specflow_nb.agent.codex_family`),
its prices and usage (:mod:`specflow_nb.agent.codex_usage`) and the engine's agent choice
(:mod:`specflow_nb.agent.choice`). A Codex run is launched, detached, adopted after a restart, killed and classified
by the one runner (:mod:`specflow_nb.agent.process`, ``AgentOptions(agent="codex")``); what differs:

* **argv** — ``codex exec --json --skip-git-repo-check -C <project> --sandbox workspace-write -c
  approval_policy="never" [-m MODEL] [--output-schema schema.json] [extra args] [resume|fork THREAD_ID] -``. The
  exec options go BEFORE the subcommand: a resume does not keep the saved cwd or sandbox (without them it is
  read-only again). The prompt goes on stdin (``-``). Read-only decisions get ``--sandbox read-only``.
* **structured output** — OpenAI's strict JSON schemas need every property required and ``additionalProperties:
  false``; :func:`strict_schema` rewrites the output models' schemas that way. The final ``agent_message`` item is
  the JSON instance.
* **cost** — Codex reports tokens, not dollars. Cost = tokens × a per-model price table (:data:`DEFAULT_PRICES`,
  overridable by the host). The JSONL's ``turn.completed.usage`` is the THREAD's running total (a resumed or forked
  run reports earlier turns too), so it is only the fallback. The main source is Codex's session file
  (``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<thread id>.jsonl``), which records a ``token_usage_record`` line
  with the usage of EVERY model call as the run works: the runner sums the records written after the run started
  (:class:`UsageWatch`) and stops a run whose cost crosses its budget — within one model call.
* **failures** — mapped from Codex's own words: no key ("Missing environment variable"), 401 → ``auth_failed``;
  429 / rate limits → ``rate_limited`` (retried inside the run with backoff, see :data:`CODEX_RECORDER`, then
  reported); a ``turn.failed`` → ``turn_failed`` (a failed run: healable); ``invalid_json_schema`` or a final message
  that is not the asked JSON → ``schema_validation_failed``; an unknown thread → ``invalid_session``.
"""

from __future__ import annotations

from specflow_nb.agent.choice import (
    AgentCheck,
    agent_options,
    agent_preflight,
    apply_default_agent,
    codex_command,
    codex_model,
)
from specflow_nb.agent.codex_family import (
    CODEX_AUTH_HINT,
    CODEX_INSTALL_HINT,
    RATE_LIMIT_BACKOFF_SECONDS,
    RATE_LIMIT_RETRIES,
    RETRY_PROMPT_FILE,
    SCHEMA_FILE,
    CodexFamily,
    base_argv,
    build_codex_argv,
    classify,
    launch_info,
    strict_schema,
    transcript_events,
)
from specflow_nb.agent.codex_usage import (
    CODEX_CLI_DEFAULT_MODEL,
    DEFAULT_PRICES,
    USAGE_POLL_SECONDS,
    UsageWatch,
    codex_home,
    configured_model,
    effective_model,
    find_rollout,
    parse_prices,
    price_for,
    rollout_total,
    unpriced_message,
    usage_cost,
)
from specflow_nb.agent.recorder import CODEX_RECORDER

__all__ = [
    "CODEX_AUTH_HINT",
    "CODEX_CLI_DEFAULT_MODEL",
    "CODEX_INSTALL_HINT",
    "CODEX_RECORDER",
    "DEFAULT_PRICES",
    "RATE_LIMIT_BACKOFF_SECONDS",
    "RATE_LIMIT_RETRIES",
    "RETRY_PROMPT_FILE",
    "SCHEMA_FILE",
    "USAGE_POLL_SECONDS",
    "AgentCheck",
    "CodexFamily",
    "UsageWatch",
    "agent_options",
    "agent_preflight",
    "apply_default_agent",
    "base_argv",
    "build_codex_argv",
    "classify",
    "codex_command",
    "codex_home",
    "codex_model",
    "configured_model",
    "effective_model",
    "find_rollout",
    "launch_info",
    "parse_prices",
    "price_for",
    "rollout_total",
    "strict_schema",
    "transcript_events",
    "unpriced_message",
    "usage_cost",
]
