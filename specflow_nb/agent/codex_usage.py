"""What a Codex run costs: the per-model price table, the configured model, and the per-call usage Codex records
in its session files (:class:`UsageWatch`, which the runner polls to stop a run at its budget).

Apart from the Codex family's argv and classification because the engine (preflight, estimate) prices models too,
without launching anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from specflow_nb.models import ModelPrice

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib; config.toml's model is then not read
    tomllib = None

#: The model codex-cli 0.169.0 uses when neither ``-m`` nor ``$CODEX_HOME/config.toml`` names one.
CODEX_CLI_DEFAULT_MODEL = "gpt-6.1-sol"
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
