"""One exception base with specific subclasses; every message says what happened and what to do next.

Hosts map these to user-facing output: the server to ``{error, details?, hint?}`` with ``http_status``, the CLI to
a one-line message and ``exit_code``.
"""

from __future__ import annotations

from typing import Any


class SpecflowError(Exception):
    """Base of every error a user can cause or fix."""

    http_status: int = 400
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.details is not None:
            body["details"] = self.details
        if self.hint:
            body["hint"] = self.hint
        return body

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(SpecflowError):
    """A configuration or request body failed validation."""


class ProjectNotFound(SpecflowError):
    http_status = 404


class ProjectOutsideRoot(SpecflowError):
    http_status = 403


class TasksFileMissing(SpecflowError):
    """tasks.md is needed (design skipped, or a task command) but absent."""


class OrchestrationNotFound(SpecflowError):
    http_status = 404


class OrchestrationConflict(SpecflowError):
    """A second active orchestration on one project, or a command not valid in the current state."""

    http_status = 409


class StateLocked(SpecflowError):
    """Another process holds the project's state lock for too long."""

    http_status = 409


class AgentError(SpecflowError):
    """An agent run could not be started or ended in a typed failure (see ``specflow_nb.agent``)."""

    http_status = 400


class PhaseNotOpen(SpecflowError):
    """The project has no feature folder (``specs/NNNN-name/``): there is no phase to complete."""
