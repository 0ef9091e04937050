from __future__ import annotations

import pytest
from pydantic import ValidationError

from specflow_nb.models import BatchStatus, OrchestrationConfig, OrchestrationExecution, OrchestrationStatus, utcnow


def test_config_defaults_match_the_original():
    c = OrchestrationConfig()
    data = c.model_dump(mode="json")
    assert data["autoMerge"] is False
    assert data["maxHealAttempts"] == 1
    assert data["batchSizeFallback"] == 15
    assert data["budget"] == {"maxPerBatch": 5.0, "maxTotal": 50.0, "healingBudget": 2.0, "decisionBudget": 0.5}
    assert data["agentCommand"] == "claude"


def test_config_accepts_both_spellings():
    assert OrchestrationConfig(maxHealAttempts=3).max_heal_attempts == 3
    assert OrchestrationConfig(max_heal_attempts=2).max_heal_attempts == 2


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("maxHealAttempts", 6, "maxHealAttempts"),
        ("batchSizeFallback", 0, "batchSizeFallback"),
        ("batchSizeFallback", 51, "batchSizeFallback"),
        ("budget", {"maxTotal": -1}, "maxTotal"),
    ],
)
def test_bad_config_names_the_field_and_range(field, value, where):
    with pytest.raises(ValidationError) as info:
        OrchestrationConfig.model_validate({field: value})
    text = str(info.value)
    assert where in text.replace("budget.", "")
    assert "than or equal to" in text


def test_unknown_config_field_is_rejected():
    with pytest.raises(ValidationError):
        OrchestrationConfig.model_validate({"autoMerj": True})


def test_execution_round_trips_through_camel_json():
    now = utcnow()
    e = OrchestrationExecution(id="o1", project_id="p", started_at=now, updated_at=now)
    raw = e.model_dump_json()
    assert '"projectId":"p"' in raw and '"decisionLog":[]' in raw
    again = OrchestrationExecution.model_validate_json(raw)
    assert again == e
    assert again.status is OrchestrationStatus.RUNNING
    assert BatchStatus.HEALED.is_done and not BatchStatus.FAILED.is_done
