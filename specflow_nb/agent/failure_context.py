"""The context of a failed batch run as a healer (and the recovery panel) reads it: data only.

Apart from :mod:`specflow_nb.healing`, which collects it from the run folder, because the prompt builder
(:mod:`specflow_nb.agent.prompts`) renders it: both import this module, neither imports the other.
"""

from __future__ import annotations

from pydantic import Field

from specflow_nb.models import CamelModel


class TranscriptMessage(CamelModel):
    """One message of a run's stream, reduced to what a healer (or a human) needs to read."""

    role: str  # assistant | user | result
    text: str


class FailureContext(CamelModel):
    """Everything known about a failed batch run, for the healer's prompt and for needs_attention."""

    batch_index: int
    section: str
    error_message: str
    failure_kind: str = Field(description="process_failed, tasks_unchecked, timeout, budget_exceeded, …")
    exit_code: int | None = None
    stderr_tail: str = ""
    transcript: list[TranscriptMessage] = Field(default_factory=list)
    completed_task_ids: list[str] = Field(default_factory=list)
    remaining_task_ids: list[str] = Field(default_factory=list)
    failed_run_id: str | None = None
    session_id: str | None = None

    def describe_failure(self) -> str:
        """A few lines for the healer's prompt and the recovery panel."""
        lines = [f"- Failure: {self.failure_kind}", f"- Error: {self.error_message}"]
        if self.exit_code is not None:
            lines.append(f"- Exit code: {self.exit_code}")
        done = ", ".join(self.completed_task_ids) or "none"
        left = ", ".join(self.remaining_task_ids) or "none"
        lines += [f"- Tasks of the batch already checked: {done}", f"- Tasks of the batch remaining: {left}"]
        return "\n".join(lines)

    def describe_transcript(self) -> str:
        if not self.transcript:
            return "(no transcript was recorded)"
        return "\n".join(f"- **{m.role}**: {m.text}" for m in self.transcript)
