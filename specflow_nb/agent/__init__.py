"""The only place that spawns an agent process: the Claude Code CLI (or any command speaking its protocol).

``claude`` launches detached runs and reads their outcome; ``helper`` makes typed one-shot calls; ``stream`` holds
the stream-json event models.
"""

from specflow_nb.agent.claude import (
    AgentOptions,
    AgentOutcome,
    AgentRun,
    AgentRunError,
    FailureKind,
    SessionMode,
    attach_run,
    build_argv,
    new_execution_id,
    read_outcome,
    start_run,
    transcript_tail,
)
from specflow_nb.agent.helper import HelperResult, claude_helper
from specflow_nb.agent.stream import (
    AssistantMessage,
    OtherEvent,
    ResultMessage,
    StreamEvent,
    SystemInit,
    UserMessage,
)

__all__ = [
    "AgentOptions",
    "AgentOutcome",
    "AgentRun",
    "AgentRunError",
    "AssistantMessage",
    "FailureKind",
    "HelperResult",
    "OtherEvent",
    "ResultMessage",
    "SessionMode",
    "StreamEvent",
    "SystemInit",
    "UserMessage",
    "attach_run",
    "build_argv",
    "claude_helper",
    "new_execution_id",
    "read_outcome",
    "start_run",
    "transcript_tail",
]
