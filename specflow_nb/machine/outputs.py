"""The structured output of a run, read through its typed output model (``specflow_nb.agent.prompts``).

The agent CLI validates a run's output against the model's JSON schema, so a real output fits its model. The rules
stay as lenient as they always were with an output that does not: a field that fails validation is dropped (its
default used) and only a missing or invalid *required* field gives no output at all (None: not confirmed).
Validation is strict (``"passed": "true"`` is not ``True``), as the rules' ``is True`` checks always were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from specflow_nb.models import RunOutcome

if TYPE_CHECKING:
    from specflow_nb.agent.prompts import AnalyzeOutput, HealOutput, MergeOutput, VerifyOutput

M = TypeVar("M", bound=BaseModel)


def read_output(model: type[M], out: RunOutcome | None) -> M | None:
    """``out``'s structured output as ``model``; None when there is none or a required field is missing/invalid."""
    data = out.structured_output if out is not None else None
    if not isinstance(data, dict):
        return None
    for _ in range(2):
        try:
            return model.model_validate(data, strict=True)
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if not bad & set(data):
                return None  # a required field is missing: nothing to drop
            data = {k: v for k, v in data.items() if k not in bad}
    return None


def analyze_output(out: RunOutcome | None) -> AnalyzeOutput | None:
    from specflow_nb.agent.prompts import AnalyzeOutput  # lazy: the machine imports without the agent runner

    return read_output(AnalyzeOutput, out)


def verify_output(out: RunOutcome | None) -> VerifyOutput | None:
    from specflow_nb.agent.prompts import VerifyOutput

    return read_output(VerifyOutput, out)


def merge_output(out: RunOutcome | None) -> MergeOutput | None:
    from specflow_nb.agent.prompts import MergeOutput

    return read_output(MergeOutput, out)


def heal_output(out: RunOutcome | None) -> HealOutput | None:
    from specflow_nb.agent.prompts import HealOutput

    return read_output(HealOutput, out)
