"""Runs of the Codex CLI (``codex exec --json``): the same contract as Claude Code runs, other protocol.

A Codex run is launched, detached, adopted after a restart, killed and classified by the one runner in
:mod:`specflow_nb.agent.claude` (``AgentOptions(agent="codex")``); this module holds what differs:

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

import contextlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specflow_nb.agent.stream import (
    CodexError,
    ItemEvent,
    ThreadStarted,
    TurnCompleted,
    TurnFailed,
    iter_events,
)
from specflow_nb.models import CLAUDE_MODEL_ALIASES, DEFAULT_AGENT_COMMANDS, ModelPrice, utcnow

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; config.toml's model is then not read
    tomllib = None

if TYPE_CHECKING:
    from specflow_nb.agent.claude import AgentOptions, AgentOutcome, FailureKind
    from specflow_nb.models import OrchestrationConfig

CODEX_INSTALL_HINT = "Install the Codex CLI with `npm install -g @openai/codex`, or set the agent command to its path."
CODEX_AUTH_HINT = "Run `codex login`, or set OPENAI_API_KEY in the server's agent environment (agent_env)."
#: The model codex-cli 0.169.0 uses when neither ``-m`` nor ``$CODEX_HOME/config.toml`` names one.
CODEX_CLI_DEFAULT_MODEL = "gpt-6.1-sol"
SCHEMA_FILE = "schema.json"
RETRY_PROMPT_FILE = "retry-prompt.md"
#: Rate-limited runs are resumed inside the run this many times (backoff doubling from the base), then reported.
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_BACKOFF_SECONDS = 10.0
#: How often a budgeted Codex run's session file is read for new per-call usage.
USAGE_POLL_SECONDS = 1.0

#: List prices in USD per million tokens (input, cached input, output) when this was written. A host overrides
#: or extends them (``c.SpecflowExtension.codex_prices`` / ``EngineSettings.codex_prices``); a key ending in ``*``
#: prices every model starting with what precedes it. A budgeted run with a model missing here is refused.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    name: ModelPrice(input_per_mtok=i, cached_input_per_mtok=c, output_per_mtok=o)
    for name, (i, c, o) in {
        "gpt-5": (1.25, 0.125, 10.0),
        "gpt-5-codex": (1.25, 0.125, 10.0),
        "gpt-5.1": (1.25, 0.125, 10.0),
        "gpt-5.1-codex": (1.25, 0.125, 10.0),
        "gpt-5.1-codex-max": (1.25, 0.125, 10.0),
        "gpt-5-mini": (0.25, 0.025, 2.0),
        "gpt-5.1-codex-mini": (0.25, 0.025, 2.0),
        "gpt-5-nano": (0.05, 0.005, 0.4),
        "o3": (2.0, 0.5, 8.0),
        "o4-mini": (1.1, 0.275, 4.4),
        "gpt-4.1": (2.0, 0.5, 8.0),
    }.items()
}

_READ_ONLY_TOOLS = frozenset({"Read", "Grep", "Glob"})
_RATE_LIMIT = re.compile(r"\b429\b|rate.?limit|too many requests|usage limit", re.IGNORECASE)
_AUTH = re.compile(
    r"Missing environment variable: `?[A-Z_]*KEY|\b401\b|Unauthorized|not logged in|invalid api key|"
    r"incorrect api key|Please run `?codex login",
    re.IGNORECASE,
)
_UNKNOWN_THREAD = re.compile(r"no rollout found for thread id|thread not found|no session found", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------------------
# Models and prices


def codex_home(env: Mapping[str, str] | None = None) -> Path:
    """``$CODEX_HOME``, else ``~/.codex`` (of ``HOME`` in ``env``)."""
    env = os.environ if env is None else env
    home = env.get("CODEX_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    base = env.get("HOME", "").strip()
    return (Path(base) if base else Path.home()) / ".codex"


def configured_model(env: Mapping[str, str] | None = None) -> str | None:
    """The ``model`` of ``$CODEX_HOME/config.toml``, if it names one."""
    if tomllib is None:
        return None
    try:
        data = tomllib.loads((codex_home(env) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = data.get("model")
    return model if isinstance(model, str) and model.strip() else None


def effective_model(model: str | None, env: Mapping[str, str] | None = None) -> str:
    """The model a run will use: the configuration's, else config.toml's, else the CLI's own default."""
    return model or configured_model(env) or CODEX_CLI_DEFAULT_MODEL


def price_for(model: str, prices: Mapping[str, ModelPrice] | None = None) -> ModelPrice | None:
    """The price of ``model`` (exact name, else the longest ``prefix*`` key), or None."""
    table = DEFAULT_PRICES if prices is None else prices
    if model in table:
        return table[model]
    best: tuple[int, ModelPrice] | None = None
    for key, price in table.items():
        if key.endswith("*") and model.startswith(key[:-1]) and (best is None or len(key) > best[0]):
            best = (len(key), price)
    return best[1] if best else None


def unpriced_message(model: str, prices: Mapping[str, ModelPrice] | None = None) -> str:
    table = DEFAULT_PRICES if prices is None else prices
    known = ", ".join(sorted(table)) or "none"
    return (
        f"No price for the Codex model {model!r}: Codex reports tokens, not dollars, so a budget cannot be enforced. "
        f"Add its price (USD per 1M input, cached input and output tokens) to the price table "
        f"(c.SpecflowExtension.codex_prices, or EngineSettings.codex_prices), or choose a priced model "
        f"(priced: {known})."
    )


def usage_cost(usage: Mapping[str, Any], price: ModelPrice) -> float:
    """USD for one usage record (cached input is part of input; reasoning is part of output)."""

    def n(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, (int, float)) and value > 0 else 0

    cached = min(n("cached_input_tokens"), n("input_tokens"))
    fresh = n("input_tokens") - cached
    return (
        fresh * price.input_per_mtok + cached * price.cached_input_per_mtok + n("output_tokens") * price.output_per_mtok
    ) / 1_000_000


def parse_prices(raw: Mapping[str, Any] | None) -> dict[str, ModelPrice] | None:
    """A price table from JSON-ish data (``{model: {inputPerMtok, cachedInputPerMtok, outputPerMtok}}``)."""
    if raw is None:
        return None
    return {str(k): v if isinstance(v, ModelPrice) else ModelPrice.model_validate(v) for k, v in raw.items()}


# --------------------------------------------------------------------------------------------------------------
# Schema and argv


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
    from specflow_nb.agent.claude import AgentRunError, FailureKind, SessionMode

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


# --------------------------------------------------------------------------------------------------------------
# Usage from the session files


def find_rollout(home: Path, thread_id: str) -> Path | None:
    """The session file of a thread under ``home/sessions`` (newest day folders first), or None."""
    sessions = home / "sessions"
    if not thread_id or not sessions.is_dir():
        return None
    pattern = f"rollout-*-{thread_id}.jsonl"
    with contextlib.suppress(OSError):
        for day in sorted(sessions.glob("*/*/*"), reverse=True):
            for path in day.glob(pattern):
                return path
        for path in sessions.rglob(pattern):
            return path
    return None


def rollout_total(path: Path) -> dict[str, Any] | None:
    """The thread's running usage total as last recorded in its session file (``token_count`` events)."""
    total = None
    with contextlib.suppress(OSError), path.open("rb") as f:
        for raw in f:
            if b'"token_count"' not in raw:
                continue
            with contextlib.suppress(ValueError):
                obj = json.loads(raw)
                info = (obj.get("payload") or {}).get("info") or {}
                if isinstance(info.get("total_token_usage"), dict):
                    total = info["total_token_usage"]
    return total


class UsageWatch:
    """Sums the per-call usage Codex records in a run's session file while the run works (incremental reads).

    ``poll()`` returns the cost so far. Only records written after the run started count (a resumed run's file
    holds the earlier runs' calls too); the thread is found from the run's ``thread.started`` line.
    """

    def __init__(self, run_dir: Path, info: Mapping[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.home = Path(str(info.get("codexHome") or codex_home()))
        base = info.get("usageBase") or {}
        self._base_path = str(base.get("rollout") or "")
        self._base_offset = int(base.get("offset") or 0)
        self.prices = parse_prices(info.get("prices"))
        self.model: str | None = info.get("model") or None
        self.thread_id: str | None = None
        self.path: Path | None = None
        self._offset = 0
        self._partial = b""
        self.calls = 0
        self.cost_usd = 0.0
        self.tokens: dict[str, int] = {}
        self.unpriced: str | None = None

    def _thread(self) -> str | None:
        if self.thread_id is None:
            with contextlib.suppress(OSError), (self.run_dir / "stream.jsonl").open("rb") as f:
                first = f.readline(1 << 16)
                with contextlib.suppress(ValueError):
                    obj = json.loads(first)
                    if isinstance(obj, dict) and obj.get("type") == "thread.started":
                        self.thread_id = str(obj.get("thread_id") or "") or None
        return self.thread_id

    def poll(self) -> float:
        if self.path is None:
            thread = self._thread()
            if thread is None:
                return self.cost_usd
            self.path = find_rollout(self.home, thread)
            if self.path is None:
                return self.cost_usd
            self._offset = self._base_offset if str(self.path) == self._base_path else 0
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return self.cost_usd
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            self._line(raw)
        return self.cost_usd

    def _line(self, raw: bytes) -> None:
        if b'"token_usage_record"' not in raw and b'"turn_context"' not in raw:
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            return
        payload = obj.get("payload") if isinstance(obj, dict) else None
        if not isinstance(payload, dict):
            return
        if obj.get("type") == "turn_context":
            if isinstance(payload.get("model"), str):
                self.model = payload["model"]
            return
        usage = payload.get("usage")
        if obj.get("type") != "token_usage_record" or not isinstance(usage, dict):
            return
        self.calls += 1
        for key, value in usage.items():
            if isinstance(value, int):
                self.tokens[key] = self.tokens.get(key, 0) + value
        price = price_for(self.model or CODEX_CLI_DEFAULT_MODEL, self.prices)
        if price is None:
            self.unpriced = self.model or CODEX_CLI_DEFAULT_MODEL
            return
        self.cost_usd += usage_cost(usage, price)


def launch_info(opts: AgentOptions, env: Mapping[str, str]) -> dict[str, Any]:
    """What a Codex run's argv.json records beyond the common fields: the CODEX_HOME, the model it is priced as,
    the price table, the budget and (resume/fork) where the thread's usage stood at launch."""
    from specflow_nb.agent.claude import SessionMode

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


# --------------------------------------------------------------------------------------------------------------
# The run's process: the exit recorder, with rate-limit retries


#: The session leader of a Codex run (see ``_EXIT_RECORDER`` in claude.py, which it extends): when Codex fails a
#: turn on a rate limit, the recorder waits (backoff doubling from the base) and resumes the same thread with a
#: short "continue" prompt, a bounded number of times, appending to the same output; a run being killed (kill.json)
#: is never retried. Arguments: exit.json path, a JSON {retries, backoff, baseArgv}, the agent's argv.
CODEX_RECORDER = r"""
import json, os, re, signal, sys, time
path, spec, argv = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
run_dir = os.path.dirname(path)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: None)
leader = os.path.join(run_dir, "leader.json")
with open(leader + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.replace(leader + ".tmp", leader)
rate = re.compile(r"\b429\b|rate.?limit|too many requests", re.I)

def run(argv, stdin_path):
    pid = os.fork()
    if pid == 0:
        try:
            if stdin_path is not None:
                fd = os.open(stdin_path, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
            os.execv(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"{argv[0]}: {exc}\n")
            os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def last_failure():
    thread, failed = None, None
    try:
        with open(os.path.join(run_dir, "stream.jsonl"), "rb") as f:
            for raw in f:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                if obj.get("type") == "thread.started":
                    thread = obj.get("thread_id")
                elif obj.get("type") == "turn.started":
                    failed = None
                elif obj.get("type") == "turn.failed":
                    failed = str((obj.get("error") or {}).get("message") or "")
    except OSError:
        pass
    return thread, failed

code = run(argv, None)
attempt = 0
while code != 0 and attempt < int(spec.get("retries", 0)):
    if os.path.exists(os.path.join(run_dir, "kill.json")):
        break
    thread, failed = last_failure()
    if not failed or not rate.search(failed):
        break
    attempt += 1
    wait = float(spec.get("backoff", 10)) * 2 ** (attempt - 1)
    sys.stderr.write(f"specflow: rate limited ({failed}); retry {attempt} of {spec['retries']} in {wait:g}s\n")
    sys.stderr.flush()
    deadline = time.time() + wait
    while time.time() < deadline and not os.path.exists(os.path.join(run_dir, "kill.json")):
        time.sleep(min(0.5, max(0.0, deadline - time.time())))
    if os.path.exists(os.path.join(run_dir, "kill.json")):
        break
    if thread:
        prompt = os.path.join(run_dir, "retry-prompt.md")
        with open(prompt, "w") as f:
            f.write("Continue with the task above from where you stopped: the previous attempt was interrupted "
                    "by a rate limit. Finish it and give the final answer in the requested format.\n")
        code = run([*spec["baseArgv"], "resume", thread, "-"], prompt)
    else:
        code = run(argv, os.path.join(run_dir, "prompt.md"))
now = time.time()
ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06d+00:00" % (now % 1 * 1e6)
with open(path + ".tmp", "w") as f:
    json.dump({"exitCode": code, "endedAt": ended, "rateLimitRetries": attempt}, f)
os.replace(path + ".tmp", path)
os._exit(code if code >= 0 else 128 - code)
"""


# --------------------------------------------------------------------------------------------------------------
# Reading a finished run


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
    from specflow_nb.agent.claude import AgentOutcome, FailureKind, name_run_folder

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
    from specflow_nb.agent.claude import FailureKind

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
    if schema is not None:
        if outcome.structured_output is None:
            return FailureKind.SCHEMA_VALIDATION_FAILED, (
                "The run was asked for structured output (--output-schema) but its final message is not a JSON "
                f"object: {(outcome.result_text or '')[:200]!r}. Retry the run."
            )
        missing = [k for k in schema.get("required", []) if k not in outcome.structured_output]
        if missing:
            return FailureKind.SCHEMA_VALIDATION_FAILED, (
                f"The structured output lacks required field(s) {', '.join(missing)}. Retry the run."
            )
    return None, None


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


# --------------------------------------------------------------------------------------------------------------
# The engine's side: the agent choice in a configuration, under a host's settings


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
    from specflow_nb.agent.claude import INSTALL_HINT

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
    from specflow_nb.models import OrchestrationConfig

    data = config.model_dump(exclude_unset=True, by_alias=True)
    return OrchestrationConfig.model_validate({**data, "agent": default})
