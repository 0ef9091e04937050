"""What users send: the command models and ``parse_command`` (hosts validate request bodies with ``COMMAND_ADAPTER``).

Apart from the rules: hosts import commands without importing a single transition rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from specflow_nb.errors import ConfigError
from specflow_nb.machine.base import Frozen
from specflow_nb.models import (
    BudgetChange,
    OrchestrationPhase,
    RecoveryOption,
)

P = OrchestrationPhase


class PauseCommand(Frozen):
    action: Literal["pause"] = "pause"


class ResumeCommand(Frozen):
    action: Literal["resume"] = "resume"
    #: New budget limits before resuming (e.g. after "budget reached"); the limits not given stay.
    budget: BudgetChange | None = None


class CancelCommand(Frozen):
    action: Literal["cancel"] = "cancel"


class MergeCommand(Frozen):
    action: Literal["merge"] = "merge"


class RecoverCommand(Frozen):
    action: Literal["recover"] = "recover"
    option: RecoveryOption
    #: New budget limits before recovering; the limits not given stay.
    budget: BudgetChange | None = None


class GoBackCommand(Frozen):
    action: Literal["go_back"] = "go_back"
    step: OrchestrationPhase

    @field_validator("step")
    @classmethod
    def _a_real_step(cls, v: OrchestrationPhase) -> OrchestrationPhase:
        if v is P.COMPLETE:
            raise ValueError("go_back needs a step: design, analyze, implement, verify or merge")
        return v


class AnswerCommand(Frozen):
    action: Literal["answer"] = "answer"
    #: question id (or question text) -> answer
    answers: dict[str, str] = Field(min_length=1)


Command = Annotated[
    PauseCommand | ResumeCommand | CancelCommand | MergeCommand | RecoverCommand | GoBackCommand | AnswerCommand,
    Field(discriminator="action"),
]


COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(data: Any) -> Command:
    """Validate a request body as a Command; a bad body raises ConfigError (400) naming the problem."""
    from pydantic import ValidationError

    try:
        return COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:] if not isinstance(p, int)) if len(first["loc"]) > 1 else ""
        raise ConfigError(
            f"Invalid command: {where + ': ' if where else ''}{first['msg']}",
            hint="Send {action: pause|resume|cancel|merge|recover|go_back|answer, ...}.",
            details=exc.errors(include_url=False, include_context=False),
        ) from exc
