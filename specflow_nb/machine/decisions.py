"""The decisions the machine logs (``Decision``: the original's names, plus a few of ours) and its fixed messages.

The messages a person reads when the machine stops (how to raise a budget, what an unhealable failure needs) live
here once, so every rule that stops says the same thing.
"""

from __future__ import annotations

from enum import Enum


class Decision(str, Enum):
    START = "start"
    STEP_SKIPPED = "step_skipped"
    TRANSITION = "transition"
    NEXT_BATCH = "next_batch"
    BATCH_PLAN = "batch_plan"
    BATCH_COMPLETE = "batch_complete"
    BATCH_FAILED = "batch_failed"
    HEAL_STARTED = "heal_started"
    HEAL_FAILED = "heal_failed"
    BATCH_HEALED = "batch_healed"
    PAUSE_REQUESTED = "pause_requested"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    WAITING_MERGE = "waiting_merge"
    MERGE_TRIGGERED = "merge_triggered"
    NEEDS_ATTENTION = "needs_attention"
    RECOVERY_RETRY = "recovery_retry"
    RECOVERY_SKIP = "recovery_skip"
    RECOVERY_ABORT = "recovery_abort"
    BUDGET_EXCEEDED = "budget_exceeded"
    WAITING_INPUT = "waiting_input"
    ANSWERS_RECEIVED = "answers_received"
    GO_BACK = "go_back"
    STALLED = "stalled"
    KILLED_RUN_ENDED = "killed_run_ended"
    RECONCILE_ADOPTED = "reconcile_adopted"
    RECONCILE_FINISHED = "reconcile_finished"
    RECONCILE_LOST = "reconcile_lost"
    RECONCILE_RESUMED = "reconcile_resumed"
    TAKEOVER = "takeover"
    COMPLETE = "complete"
    FAIL = "fail"
    SESSION_LOST = "session_lost"
    DIAGNOSIS = "diagnosis"


#: Failures of the agent's environment, not of its work: healing cannot help, a person must fix them first.
UNHEALABLE_FAILURES: dict[str, str] = {
    "not_installed": "The agent command is not installed: install it (Claude Code: npm install -g "
    "@anthropic-ai/claude-code; Codex: npm install -g @openai/codex) or fix agentCommand, then retry.",
    "auth_failed": "The agent is not logged in: for Claude Code run `claude /login` or set ANTHROPIC_API_KEY, for "
    "Codex run `codex login` or set OPENAI_API_KEY, in the server's environment, then retry.",
    "permission_refused": "The agent refused to run without permission prompts: keep the default "
    "permission mode (acceptEdits), then retry.",
    "rate_limited": "The agent's API kept answering 'rate limit exceeded' (retried with backoff): wait, or raise "
    "the account's limits, then retry.",
    "price_unknown": "The model has no price in the server's price table, so its cost cannot be kept to the budget: "
    "add it to codex_prices (or choose a priced model), then retry.",
}


#: How a person raises a budget and goes on, from the panel and from a terminal (completed by ``--set …`" ``).
WAY_FORWARD = "in the panel, Retry with a higher budget; in a terminal, `specflow-nb orchestrate recover retry"


HEALING_MEANING = (
    "The healing budget is one amount for the whole orchestration (all healers of all batches together), not per batch"
)
