"""The configuration a command line gives: ``--config``, ``--set key=value``, ``--set budget.…`` and answers.

Apart from the commands because it only turns text into typed values (or a usage error naming the bad one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from specflow_nb.models import OrchestrationConfig


# --------------------------------------------------------------------------------------------------------------
# Configuration from the command line


def apply_sets(data: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """Every ``--set key=value`` (dot paths, typed values) into ``data``."""
    from specflow_nb.errors import ConfigError
    from specflow_nb.store import parse_value, split_key

    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not key=value.", hint="e.g. --set budget.maxTotal=10")
        parts = split_key(key.strip())
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not an object.", hint="Check the key's dot path.")
        node[parts[-1]] = parse_value(value)
    return data


def budget_set(text: str) -> str:
    """argparse type of ``recover``/``resume --set``: only the budget's limits (anything else is a usage error)."""
    from specflow_nb.budget_raise import KEYS

    key, sep, _value = text.partition("=")
    parts = key.strip().split(".")
    if sep and parts[0] == "budget" and (len(parts) == 1 or (len(parts) == 2 and parts[1] in KEYS)):
        return text
    limits = ", ".join(f"budget.{k}" for k in KEYS)
    raise argparse.ArgumentTypeError(
        f"{text!r}: only the budget can be changed here ({limits}, e.g. --set budget.maxTotal=20); "
        "the other settings are chosen when an orchestration starts"
    )


def build_config(args: argparse.Namespace) -> OrchestrationConfig:
    """``--config FILE|JSON`` then every ``--set key=value`` (dot paths, typed values) on top."""
    from pydantic import ValidationError

    from specflow_nb.errors import ConfigError
    from specflow_nb.models import OrchestrationConfig

    data: dict[str, Any] = {}
    if args.config:
        text = args.config
        path = Path(text).expanduser()
        if not text.lstrip().startswith("{") and path.is_file():
            text = path.read_text(encoding="utf-8")
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"--config is neither a JSON object nor a readable JSON file: {exc}",
                hint="Pass e.g. --config '{\"autoMerge\": true}' or --config config.json.",
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError("--config must be a JSON object.", hint="e.g. --config '{\"autoMerge\": true}'")
        data.update(loaded)
    apply_sets(data, args.set or [])
    try:
        return OrchestrationConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(
            f"Invalid configuration: {problems}",
            hint="Field names are the camelCase ones of the form (e.g. maxHealAttempts, budget.maxTotal).",
        ) from None


def _answers(items: list[str]) -> dict[str, str]:
    from specflow_nb.errors import ConfigError

    answers = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Answer {item!r} is not ID=ANSWER.", hint="e.g. answer q1=yes 'q2=use sqlite'")
        answers[key] = value
    return answers


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value <= 600):
        raise argparse.ArgumentTypeError("give a number of seconds between 0 and 600")
    return value
