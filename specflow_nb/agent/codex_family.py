"""Runs of the Codex CLI (``codex exec --json``): the same contract as Claude Code runs, other protocol.

A Codex run is launched, detached, adopted after a restart, killed and classified by the one runner
(:mod:`specflow_nb.agent.process`, ``AgentOptions(agent="codex")``); this module is the Codex half of the agent
families (:mod:`specflow_nb.agent.family`), what differs from Claude Code:

* **argv** — ``codex exec --json --skip-git-repo-check -C <project> --sandbox workspace-write -c
  approval_policy="never" [-m MODEL] [--output-schema schema.json] [extra args] [resume|fork THREAD_ID] -``. The
  exec options go BEFORE the subcommand: a resume does not keep the saved cwd or sandbox (without them it is
  read-only again). The prompt goes on stdin (``-``). Read-only decisions get ``--sandbox read-only``.
* **structured output** — OpenAI's strict JSON schemas need every property required and ``additionalProperties:
  false``; :func:`strict_schema` rewrites the output models' schemas that way. The final ``agent_message`` item is
  the JSON instance.
* **cost** — Codex reports tokens, not dollars. Cost = tokens × a per-model price table (:data:`specflow_nb.agent.codex_usage.DEFAULT_PRICES`,
  overridable by the host). The JSONL's ``turn.completed.usage`` is the THREAD's running total (a resumed or forked
  run reports earlier turns too), so it is only the fallback. The main source is Codex's session file
  (``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<thread id>.jsonl``), which records a ``token_usage_record`` line
  with the usage of EVERY model call as the run works: the runner sums the records written after the run started
  (:class:`specflow_nb.agent.codex_usage.UsageWatch`) and stops a run whose cost crosses its budget — within one model call.
* **failures** — mapped from Codex's own words: no key ("Missing environment variable"), 401 → ``auth_failed``;
  429 / rate limits → ``rate_limited`` (retried inside the run with backoff, see :data:`specflow_nb.agent.recorder.CODEX_RECORDER`, then
  reported); a ``turn.failed`` → ``turn_failed`` (a failed run: healable); ``invalid_json_schema`` or a final message
  that is not the asked JSON → ``schema_validation_failed``; an unknown thread → ``invalid_session``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from specflow_nb.agent.codex_usage import (
    CODEX_CLI_DEFAULT_MODEL,
    UsageWatch,
    codex_home,
    effective_model,
    find_rollout,
    price_for,
    rollout_total,
    unpriced_message,
    usage_cost,
)
from specflow_nb.agent.options import AgentOptions, SessionMode
from specflow_nb.agent.outcome import (
    AgentOutcome,
    AgentRunError,
    FailureKind,
    name_run_folder,
    structured_output_failure,
)
from specflow_nb.agent.recorder import CODEX_RECORDER
from specflow_nb.agent.rundir import EXIT_FILE, write_json
from specflow_nb.agent.stream import (
    CodexError,
    ItemEvent,
    ThreadStarted,
    TurnCompleted,
    TurnFailed,
    iter_events,
)
from specflow_nb.models import utcnow

CODEX_INSTALL_HINT = "Install the Codex CLI with `npm install -g @openai/codex`, or set the agent command to its path."
CODEX_AUTH_HINT = "Run `codex login`, or set OPENAI_API_KEY in the server's agent environment (agent_env)."
SCHEMA_FILE = "schema.json"
RETRY_PROMPT_FILE = "retry-prompt.md"
#: Rate-limited runs are resumed inside the run this many times (backoff doubling from the base), then reported.
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_BACKOFF_SECONDS = 10.0

_READ_ONLY_TOOLS = frozenset({"Read", "Grep", "Glob"})
_RATE_LIMIT = re.compile(r"\b429\b|rate.?limit|too many requests|usage limit", re.IGNORECASE)
_AUTH = re.compile(
    r"Missing environment variable: `?[A-Z_]*KEY|\b401\b|Unauthorized|not logged in|invalid api key|"
    r"incorrect api key|Please run `?codex login",
    re.IGNORECASE,
)
_UNKNOWN_THREAD = re.compile(r"no rollout found for thread id|thread not found|no session found", re.IGNORECASE)


def strict_schema(schema: Any) -> Any:
    """A JSON schema rewritten for OpenAI's strict structured outputs: every object closed
    (``additionalProperties: false``) with every property required; ``default`` values dropped (not allowed)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: strict_schema(v) for k, v in schema["properties"].items()}
        out["required"] = list(schema["properties"])
        out["additionalProperties"] = False
        out.setdefault("type", "object")
    elif schema.get("type") == "object":
        out["properties"] = {}
        out["required"] = []
        out["additionalProperties"] = False
    return out


def base_argv(opts: AgentOptions, schema_path: Path | None) -> list[str]:
    """Everything up to the subcommand: the exec options every run of the thread needs (resume keeps none)."""
    argv = shlex.split(opts.command)
    argv += ["exec", "--json", "--skip-git-repo-check", "-C", str(opts.cwd)]
    read_only = opts.tools is not None and set(opts.tools) <= _READ_ONLY_TOOLS
    argv += ["--sandbox", "read-only" if read_only else (opts.sandbox or "workspace-write")]
    argv += ["-c", 'approval_policy="never"']
    if opts.model:
        argv += ["-m", opts.model]
    if schema_path is not None:
        argv += ["--output-schema", str(schema_path)]
    if opts.no_session_persistence:
        argv.append("--ephemeral")
    argv += opts.extra_args
    return argv


def build_codex_argv(opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
    """The argument list of one Codex run (the prompt goes on stdin: the trailing ``-``)."""
    argv = base_argv(opts, schema_path)
    if opts.session_mode is not SessionMode.NEW:
        if not opts.session_id:
            raise AgentRunError(
                FailureKind.INVALID_SESSION,
                f"Session mode {opts.session_mode.value!r} needs a thread id.",
                hint="Pass the thread id of the run to continue, or use a new session.",
            )
        argv += ["fork" if opts.session_mode is SessionMode.FORK else "resume", opts.session_id]
    argv.append("-")
    return argv


def launch_info(opts: AgentOptions, env: Mapping[str, str]) -> dict[str, Any]:
    """What a Codex run's argv.json records beyond the common fields: the CODEX_HOME, the model it is priced as,
    the price table, the budget and (resume/fork) where the thread's usage stood at launch."""
    home = codex_home(env)
    info: dict[str, Any] = {
        "agent": "codex",
        "codexHome": str(home),
        "model": effective_model(opts.model, env),
        "prices": None if opts.prices is None else {k: v.model_dump() for k, v in opts.prices.items()},
        "maxBudgetUsd": opts.max_budget_usd,
        "rateLimitRetries": opts.rate_limit_retries,
    }
    if opts.session_mode is not SessionMode.NEW and opts.session_id:
        path = find_rollout(home, opts.session_id)
        if path is not None:
            with contextlib.suppress(OSError):
                info["usageBase"] = {
                    "rollout": str(path) if opts.session_mode is SessionMode.RESUME else "",
                    "offset": path.stat().st_size,
                    "total": rollout_total(path),
                }
    return info


def classify(
    run_dir: Path,
    record: Mapping[str, Any],
    argv_info: Mapping[str, Any],
    exit_info: Mapping[str, Any],
    kill_info: Mapping[str, Any],
    stderr: str,
    warnings: list[str],
) -> AgentOutcome:
    """The :class:`AgentOutcome` of a finished Codex run, from its files and its session file."""
    parse_warnings: list[str] = []
    thread_id: str | None = None
    last_message: str | None = None
    turns = 0
    completed: TurnCompleted | None = None
    failed: TurnFailed | None = None
    errors: list[str] = []
    for event in iter_events(run_dir / "stream.jsonl", warnings=parse_warnings):
        if isinstance(event, ThreadStarted):
            thread_id = event.thread_id or thread_id
        elif event.type == "turn.started":
            failed = None
        elif isinstance(event, TurnCompleted):
            turns += 1
            completed = event
        elif isinstance(event, TurnFailed):
            turns += 1
            failed = event
        elif isinstance(event, CodexError):
            errors.append(event.message)
        elif isinstance(event, ItemEvent) and event.type == "item.completed" and event.item_type == "agent_message":
            last_message = event.text

    watch = UsageWatch(run_dir, argv_info)
    cost = watch.poll()
    all_warnings = list(dict.fromkeys([*warnings, *parse_warnings]))
    if watch.path is None and completed is not None:
        # No session file (ephemeral run, or CODEX_HOME elsewhere): the turn's thread total minus where it stood.
        base = (argv_info.get("usageBase") or {}).get("total") or {}
        delta = {k: v - int(base.get(k) or 0) for k, v in completed.usage.items() if isinstance(v, int)}
        price = price_for(str(argv_info.get("model") or CODEX_CLI_DEFAULT_MODEL), watch.prices)
        if price is not None:
            cost = usage_cost(delta, price)
        all_warnings.append("Codex's session file was not found: the cost comes from the turn's usage total")
    if watch.unpriced:
        all_warnings.append(f"no price for model {watch.unpriced}: its calls are recorded at $0")

    duration = None
    with contextlib.suppress(TypeError, ValueError, KeyError):
        started = datetime.fromisoformat(str(record.get("startedAt")))
        ended = datetime.fromisoformat(str(exit_info["endedAt"])) if exit_info.get("endedAt") else utcnow()
        duration = max(0.0, (ended - started).total_seconds())

    schema = argv_info.get("outputSchema")
    structured: dict[str, Any] | None = None
    if schema is not None and last_message is not None:
        with contextlib.suppress(ValueError):
            value = json.loads(last_message)
            structured = value if isinstance(value, dict) else None
    exit_code = exit_info.get("exitCode")
    outcome = AgentOutcome(
        execution_id=run_dir.name,
        exit_code=exit_code,
        session_id=thread_id,
        model=watch.model or argv_info.get("model"),
        cost_usd=round(cost, 6),
        num_turns=turns,
        is_error=failed is not None or completed is None,
        subtype="turn.failed" if failed is not None else ("turn.completed" if completed is not None else None),
        result_text=last_message,
        structured_output=structured,
        stderr_tail=stderr,
        duration_s=duration,
        warnings=all_warnings,
    )
    if exit_info.get("rateLimitRetries"):
        outcome.warnings.append(f"rate limited: resumed {exit_info['rateLimitRetries']} time(s) after a backoff")
    kind, message = _failure(outcome, failed, errors, kill_info, schema, stderr)
    outcome.failure, outcome.failure_message = kind, name_run_folder(message, run_dir)
    if kind is FailureKind.BUDGET_EXCEEDED:
        outcome.subtype = "error_max_budget_usd"
    return outcome


def _failure(
    outcome: AgentOutcome,
    failed: TurnFailed | None,
    errors: list[str],
    kill_info: Mapping[str, Any],
    schema: Any,
    stderr: str,
) -> tuple[FailureKind | None, str | None]:
    code = outcome.exit_code
    if kill_info.get("reason"):
        kind = FailureKind(kill_info["reason"])
        if kill_info.get("message"):
            return kind, str(kill_info["message"])
        texts = {
            FailureKind.TIMEOUT: "The run exceeded its time limit and was stopped (SIGTERM, then SIGKILL).",
            FailureKind.STALLED: "The run produced no output for too long and was stopped.",
            FailureKind.BUDGET_EXCEEDED: f"The run was stopped at its budget after ${outcome.cost_usd:.4f}.",
        }
        return kind, texts.get(kind, "The run was cancelled.") + " Retry it, or raise the limit if it needs more."
    failure_text = failed.message if failed is not None else ""
    every_error = " ".join([failure_text, *errors, stderr])
    if code == 127 and outcome.session_id is None:
        return FailureKind.NOT_INSTALLED, f"The Codex command was not found (exit 127). {CODEX_INSTALL_HINT}"
    if _UNKNOWN_THREAD.search(stderr + failure_text):
        last = next((ln for ln in stderr.splitlines() if _UNKNOWN_THREAD.search(ln)), failure_text or "unknown thread")
        return FailureKind.INVALID_SESSION, f"The Codex thread could not be resumed: {last.strip()}. Start a new one."
    if failed is not None or (code not in (0, None) and outcome.session_id is not None):
        if _AUTH.search(failure_text or every_error):
            return (
                FailureKind.AUTH_FAILED,
                f"Codex is not authenticated ({failure_text or 'auth error'}). {CODEX_AUTH_HINT}",
            )
        if _RATE_LIMIT.search(failure_text or every_error):
            return FailureKind.RATE_LIMITED, (
                f"Codex was rate limited ({failure_text or 'rate limit'}), also after the run's retries with backoff. "
                "Wait, then retry; or lower the concurrency of runs on this key."
            )
        if "invalid_json_schema" in every_error or "Invalid schema for response_format" in every_error:
            return FailureKind.SCHEMA_VALIDATION_FAILED, (
                f"The API refused the structured-output schema: {failure_text[:300]}. This is a bug in the output "
                "model's schema (strict schemas need every property required and additionalProperties false)."
            )
        if failed is not None:
            return FailureKind.TURN_FAILED, (
                f"The Codex turn failed: {failure_text or 'no message'}. See stream.jsonl in the run folder."
            )
    if outcome.session_id is None or code not in (0, None):
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no stderr"
        code_text = f"exit code {code}" if code is not None else "an unknown exit code (adopted run)"
        return FailureKind.PROCESS_FAILED, (
            f"The Codex process ended with {code_text}: {tail}. See stderr.log in the run folder."
        )
    if outcome.subtype != "turn.completed":
        return FailureKind.PROCESS_FAILED, "The Codex run ended without completing its turn. See stream.jsonl."
    return structured_output_failure(
        schema,
        outcome,
        "The run was asked for structured output (--output-schema) but its final message is not a JSON object: "
        f"{(outcome.result_text or '')[:200]!r}. Retry the run.",
    )


def transcript_events(run_dir: Path) -> list[dict[str, Any]]:
    """A Codex run's items as Claude-shaped transcript messages (what healing shows a healer), oldest first."""
    out: list[dict[str, Any]] = []
    for event in iter_events(Path(run_dir) / "stream.jsonl"):
        if isinstance(event, TurnFailed):
            out.append({"type": "assistant", "message": {"content": []}, "error": event.message or "turn failed"})
            continue
        if not isinstance(event, ItemEvent) or event.type != "item.completed":
            continue
        item = event.item
        kind = event.item_type
        if kind == "agent_message":
            out.append({"type": "assistant", "message": {"content": [{"type": "text", "text": event.text}]}})
        elif kind == "command_execution":
            out.append(
                {
                    "type": "assistant",
                    "message": {
                        "content": [
                            {"type": "tool_use", "name": "exec_command", "input": {"command": item.get("command")}}
                        ]
                    },
                }
            )
            out.append(
                {
                    "type": "user",
                    "message": {
                        "content": [
                            {
                                "type": "tool_result",
                                "content": str(item.get("aggregated_output") or ""),
                                "is_error": item.get("exit_code") not in (0, None),
                            }
                        ]
                    },
                }
            )
        elif kind == "file_change":
            paths = ", ".join(str(c.get("path")) for c in item.get("changes") or [] if isinstance(c, dict))
            out.append(
                {
                    "type": "assistant",
                    "message": {"content": [{"type": "tool_use", "name": "apply_patch", "input": {"path": paths}}]},
                }
            )
        elif kind == "error":
            out.append({"type": "assistant", "message": {"content": []}, "error": str(item.get("message") or "")})
    return out


class CodexFamily:
    """The Codex CLI behind the :class:`specflow_nb.agent.family.AgentFamily` interface."""

    name = "codex"
    install_hint = CODEX_INSTALL_HINT

    def check(self, opts: AgentOptions, env: Mapping[str, str]) -> None:
        """A budgeted run needs a price for its model (Codex reports tokens, not dollars)."""
        model = effective_model(opts.model, env)
        if opts.max_budget_usd is not None and price_for(model, opts.prices) is None:
            raise AgentRunError(FailureKind.PRICE_UNKNOWN, unpriced_message(model, opts.prices))

    def schema_path(self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str]) -> Path | None:
        return run_dir / SCHEMA_FILE if opts.output_schema is not None else None

    def build_argv(self, opts: AgentOptions, schema_path: Path | None = None) -> list[str]:
        if not shlex.split(opts.command):
            raise AgentRunError(FailureKind.NOT_INSTALLED, "The agent command is empty.", hint=CODEX_INSTALL_HINT)
        return build_codex_argv(opts, schema_path)

    def prepare(
        self, run_dir: Path, opts: AgentOptions, env: Mapping[str, str], resolved: str
    ) -> tuple[dict[str, Any], list[str]]:
        """The strict schema file, argv.json's Codex fields, and the recorder that retries rate-limited turns."""
        schema = strict_schema(opts.output_schema) if opts.output_schema is not None else None
        if schema is not None:
            write_json(run_dir / SCHEMA_FILE, schema)
        # The exec options without the subcommand and the prompt: what a rate-limit retry resumes the thread with.
        base = [resolved, *base_argv(opts, run_dir / SCHEMA_FILE if schema is not None else None)[1:]]
        spec = {"retries": opts.rate_limit_retries, "backoff": opts.rate_limit_backoff_seconds, "baseArgv": base}
        return launch_info(opts, env), [CODEX_RECORDER, str(run_dir / EXIT_FILE), json.dumps(spec)]

    def usage_watch(self, run_dir: Path, info: Mapping[str, Any]) -> tuple[UsageWatch | None, float | None]:
        """For a budgeted run: the watch over its session file's per-call usage, and the run's budget."""
        if not isinstance(info.get("maxBudgetUsd"), (int, float)):
            return None, None
        return UsageWatch(run_dir, info), float(info["maxBudgetUsd"])

    classify = staticmethod(classify)
    transcript_events = staticmethod(transcript_events)
