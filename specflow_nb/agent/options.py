"""What decides how one agent run is launched: :class:`AgentOptions` and the session mode.

Apart from the runner so every part of :mod:`specflow_nb.agent` (argv building, the detached process, the agent
families, the helper) and the engine can name a run's options without importing the process code.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from specflow_nb.models import AgentKind, ModelPrice

DEFAULT_ALLOWED_TOOLS = ["Bash", "Edit", "Write", "Read", "Glob", "Grep"]


class SessionMode(str, Enum):
    NEW = "new"
    RESUME = "resume"
    FORK = "fork"  # --resume ID --fork-session: continue a conversation under a new session id


class AgentOptions(BaseModel):
    """Everything that decides how one agent run is launched. ``env`` may hold secrets: it is never persisted."""

    model_config = ConfigDict(extra="forbid")

    command: str = "claude"
    cwd: Path
    prompt: str
    output_format: Literal["stream-json", "json"] = "stream-json"
    output_schema: dict[str, Any] | None = None
    session_mode: SessionMode = SessionMode.NEW
    session_id: str | None = None
    no_session_persistence: bool = False
    model: str | None = None
    fallback_model: str | None = None
    allowed_tools: list[str] | None = Field(default_factory=lambda: list(DEFAULT_ALLOWED_TOOLS))
    disallowed_tools: list[str] = Field(default_factory=lambda: ["AskUserQuestion"])
    tools: list[str] | None = None
    permission_mode: str = "acceptEdits"
    max_budget_usd: float | None = Field(default=None, ge=0)
    max_turns: int | None = Field(default=None, ge=1)
    append_system_prompt: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    #: Extra environment for the process (API keys allowed): excluded from repr and from every dump.
    env: dict[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    timeout_seconds: float | None = Field(default=None, gt=0)
    # ---- Codex only (agent="codex"); the Claude fields above that Codex has no flag for are ignored
    #: Which CLI speaks: Claude Code (stream-json) or Codex (``codex exec --json``).
    agent: AgentKind = "claude"
    #: Codex's sandbox for unattended runs (``workspace-write``: edits in the project, ``.git`` read-only).
    sandbox: str | None = "workspace-write"
    #: The per-model price table for Codex's tokens (None: :data:`specflow_nb.agent.codex.DEFAULT_PRICES`).
    prices: dict[str, ModelPrice] | None = None
    #: Resumes of a rate-limited Codex run inside the run (backoff doubling from the base), then ``rate_limited``.
    rate_limit_retries: int = Field(default=3, ge=0, le=10)
    rate_limit_backoff_seconds: float = Field(default=10.0, ge=0)
