"""How a run ended, typed: :class:`FailureKind`, :class:`AgentOutcome`, and :class:`AgentRunError` for a run that
could not start.

Apart from the classification (each agent family's own) and the process code so the engine, the helper and the
families share one vocabulary of outcomes without importing each other.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from specflow_nb.errors import AgentError


class FailureKind(str, Enum):
    NOT_INSTALLED = "not_installed"
    AUTH_FAILED = "auth_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    MAX_TURNS = "max_turns"
    SCHEMA_VALIDATION_FAILED = "schema_validation_failed"
    INVALID_SESSION = "invalid_session"
    TIMEOUT = "timeout"
    PERMISSION_REFUSED = "permission_refused"
    PROCESS_FAILED = "process_failed"
    #: The caller killed the run (user cancel) — ``AgentRun.kill(reason=...)``.
    CANCELLED = "cancelled"
    #: The caller killed the run because it stalled (no output for stale_after).
    STALLED = "stalled"
    #: Codex: the API kept answering 429 / rate limit, also after the run's own retries with backoff.
    RATE_LIMITED = "rate_limited"
    #: Codex: the turn failed (``turn.failed``) for a reason other than auth, rate limit or schema — healable.
    TURN_FAILED = "turn_failed"
    #: Codex: a budgeted run with a model the price table does not price (refused before it starts).
    PRICE_UNKNOWN = "price_unknown"


class AgentRunError(AgentError):
    """A run could not start (or its options are unusable); ``kind`` says which :class:`FailureKind`."""

    def __init__(self, kind: FailureKind, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"kind": kind.value})
        self.kind = kind


class AgentOutcome(BaseModel):
    """How a finished run ended, in the runner's detail (``outcome.json``). ``failure`` is None exactly when the run
    succeeded. The machine decides on its reduction, :class:`specflow_nb.models.RunOutcome`."""

    execution_id: str
    exit_code: int | None = None
    session_id: str | None = None
    model: str | None = None
    cost_usd: float = 0.0
    num_turns: int = 0
    is_error: bool = False
    subtype: str | None = None
    result_text: str | None = None
    structured_output: dict[str, Any] | None = None
    failure: FailureKind | None = None
    failure_message: str | None = None
    stderr_tail: str = ""
    duration_s: float | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


def name_run_folder(message: str | None, run_dir: Path) -> str | None:
    """ "… See stderr.log in the run folder." names the folder (``.specflow/`` is hidden in JupyterLab's browser)."""
    if not message or "in the run folder" not in message:
        return message
    parts = Path(run_dir).parts
    where = "/".join(parts[parts.index(".specflow") :]) if ".specflow" in parts else str(run_dir)
    return re.sub(r"See (\S+) in the run folder", lambda m: f"See {where}/{m.group(1)}", message)


def structured_output_failure(
    schema: dict[str, Any] | None, outcome: AgentOutcome, none_given: str
) -> tuple[FailureKind | None, str | None]:
    """Whether a run asked for structured output (``schema``, the argv.json's ``outputSchema``) returned it: the
    schema failure and its message, else ``(None, None)``. ``none_given``: what the agent's family says when there
    is no structured output at all (each asks for it its own way)."""
    if schema is None:
        return None, None
    if outcome.structured_output is None:
        return FailureKind.SCHEMA_VALIDATION_FAILED, none_given
    missing = [k for k in schema.get("required", []) if k not in outcome.structured_output]
    if missing:
        return FailureKind.SCHEMA_VALIDATION_FAILED, (
            f"The structured output lacks required field(s) {', '.join(missing)}. Retry the run."
        )
    return None, None
