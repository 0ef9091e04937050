"""What the user chooses once in the Complete Phase form: :class:`OrchestrationConfig` and its budget (MISSION §3).

Apart because requests, records and the estimate all carry it, and it carries the per-agent defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from specflow_nb.models.base import CamelModel

#: The largest budget a request may set (USD): more is a typo, and a 309-digit ``--max-budget-usd`` is no limit.
MAX_BUDGET_USD = 10_000.0
#: The longest silence a run may be allowed before it counts as stalled (one day).
MAX_STALE_AFTER_SECONDS = 86_400.0


class BudgetConfig(CamelModel):
    """Spending limits in USD. Enforced: each run is started with ``--max-budget-usd`` set to what is left."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_per_batch: float = Field(
        5.0, ge=0, le=MAX_BUDGET_USD, title="Max per batch (USD)", description="Cap for one batch's run."
    )
    max_total: float = Field(
        50.0, ge=0, le=MAX_BUDGET_USD, title="Max total (USD)", description="Cap for the whole orchestration."
    )
    healing_budget: float = Field(
        2.0, ge=0, le=MAX_BUDGET_USD, title="Healing budget (USD)", description="Cap for all healer runs together."
    )
    decision_budget: float = Field(
        0.5, ge=0, le=MAX_BUDGET_USD, title="Decision budget (USD)", description="Cap for one read-only decision call."
    )


class BudgetChange(CamelModel):
    """New limits for some of the budget (a resume's or a recovery's): each one given replaces the current limit,
    the others stay as they are (``over``). The machine merges it, so every host (REST, panel, CLI) means the same
    by ``{"maxTotal": 20}``: raise the total, keep the rest. A full :class:`BudgetConfig` is accepted too."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, from_attributes=True)

    max_per_batch: float | None = Field(None, ge=0, le=MAX_BUDGET_USD, title="Max per batch (USD)")
    max_total: float | None = Field(None, ge=0, le=MAX_BUDGET_USD, title="Max total (USD)")
    healing_budget: float | None = Field(None, ge=0, le=MAX_BUDGET_USD, title="Healing budget (USD)")
    decision_budget: float | None = Field(None, ge=0, le=MAX_BUDGET_USD, title="Decision budget (USD)")

    def over(self, current: BudgetConfig) -> BudgetConfig:
        """``current`` with the limits this change gives."""
        given = self.model_dump(exclude_none=True, by_alias=False)
        return current.model_copy(update=given) if given else current


#: The coding agents specflow_nb can drive: the Claude Code CLI and the Codex CLI.
AgentKind = Literal["claude", "codex"]
#: Each agent's command when the configuration names none.
DEFAULT_AGENT_COMMANDS: dict[str, str] = {"claude": "claude", "codex": "codex"}
#: Claude's model aliases: for Codex they mean "no model given" (a form switched from Claude keeps its default).
CLAUDE_MODEL_ALIASES = frozenset({"sonnet", "opus", "haiku", "default", "opusplan"})


class ModelPrice(CamelModel):
    """What one model costs, in USD per million tokens (Codex reports tokens, not dollars)."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0, description="Uncached input tokens, USD per 1M.")
    cached_input_per_mtok: float = Field(ge=0, description="Cached input tokens, USD per 1M.")
    output_per_mtok: float = Field(ge=0, description="Output tokens (reasoning included), USD per 1M.")


class OrchestrationConfig(CamelModel):
    """What the user chooses once in the Complete Phase form."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # core
    auto_merge: bool = Field(
        False, title="Auto-merge", description="Merge when verify passes instead of waiting for you."
    )
    additional_context: str = Field(
        "", title="Additional context", description="Text added to every step's prompt.", max_length=20_000
    )
    skip_design: bool = Field(False, title="Skip design", description="Skip the design step.")
    skip_analyze: bool = Field(False, title="Skip analyze", description="Skip the analyze step.")
    skip_implement: bool = Field(False, title="Skip implement", description="Skip the implement step.")
    skip_verify: bool = Field(False, title="Skip verify", description="Skip the verify step.")
    # advanced
    auto_heal_enabled: bool = Field(
        True, title="Auto-heal", description="Run a healer on a failed batch before asking you."
    )
    max_heal_attempts: int = Field(
        1, ge=0, le=5, title="Max heal attempts", description="Healer runs per failed batch (0-5)."
    )
    batch_size_fallback: int = Field(
        15,
        ge=1,
        le=50,
        title="Batch size fallback",
        description="Tasks per batch when tasks.md has no ## sections (1-50).",
    )
    pause_between_batches: bool = Field(
        False, title="Pause between batches", description="Pause after each batch for a review."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, title="Budget limits")
    # additions of ours
    agent: AgentKind = Field(
        "claude",
        title="Agent",
        description="The coding agent: Claude Code (claude) or the Codex CLI (codex).",
    )
    agent_command: str = Field(
        "claude",
        min_length=1,
        title="Agent command",
        description="The agent's CLI to run: a name on PATH, a path, or a wrapper (default: claude or codex).",
    )
    model: str | None = Field(
        "sonnet",
        title="Model",
        description="Model for every run (Claude: sonnet by default; Codex: empty = the Codex CLI's own default).",
    )
    fallback_model: str | None = Field(
        None, title="Fallback model", description="Model used when the main one is overloaded."
    )
    verify_command: str | None = Field(
        None,
        title="Verify command",
        description="A command that must exit 0 for verify to pass, e.g. `pytest -q`.",
    )
    target_branch: str | None = Field(
        None, title="Target branch", description="Branch to merge into (default: the repo's default branch)."
    )
    stale_after_seconds: float = Field(
        300.0,
        gt=0,
        le=MAX_STALE_AFTER_SECONDS,
        title="Stale after (s)",
        description="A run with no output for this long is reported as stalled.",
    )
    decision_model: str | None = Field(
        "haiku",
        title="Decision model",
        description="Model of the read-only helper that diagnoses a failure when a person must decide (Claude: "
        "haiku by default; Codex: a Claude name or empty = the run's model). Off when budget.decisionBudget is 0.",
    )

    @model_validator(mode="before")
    @classmethod
    def _agent_defaults(cls, data: Any) -> Any:
        """Per-agent defaults: Codex runs ``codex`` and, unless a model is named, the Codex CLI's own model.

        A Claude default left in a request for Codex (agentCommand ``claude``, model ``sonnet``) means "not set"."""
        if not isinstance(data, dict) or data.get("agent") != "codex":
            return data
        data = dict(data)
        cmd_key = "agentCommand" if "agentCommand" in data else "agent_command"
        if data.get(cmd_key) in (None, "", DEFAULT_AGENT_COMMANDS["claude"]):
            data[cmd_key] = DEFAULT_AGENT_COMMANDS["codex"]
        model = data.get("model")
        if model is None or (isinstance(model, str) and (not model.strip() or model in CLAUDE_MODEL_ALIASES)):
            data["model"] = None
        return data

    @model_validator(mode="after")
    def _claude_model(self) -> OrchestrationConfig:
        if self.agent == "claude" and not self.model:
            self.model = "sonnet"
        return self
