"""Performing actions: what the transition path computes once instead of on every spawn."""

from __future__ import annotations

from specflow_nb.agent.prompts import OUTPUT_MODELS, StepPrompt
from specflow_nb.performing import output_schema


def test_the_cached_output_schema_is_the_prompts_schema_and_a_fresh_copy() -> None:
    for step, model in OUTPUT_MODELS.items():
        prompt = StepPrompt(step=step, text="", output_model=model, source="builtin")  # type: ignore[arg-type]
        first = output_schema(prompt)
        assert first == prompt.json_schema
        first["mutated"] = True  # one run changing its copy changes no other run's
        assert "mutated" not in output_schema(prompt)
