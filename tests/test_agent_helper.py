"""claude_helper through the DEMO agent: presets, validation against the output model, session retry."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from specflow_nb.agent import FailureKind, claude_helper

DEMO = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Decision(BaseModel):
    status: str
    passed: bool


class Strict(BaseModel):
    score: int = Field(ge=5)  # the demo agent fills integers with 0: never valid


def argv_of(result_dir: Path | None) -> list[str]:
    assert result_dir is not None
    return json.loads((result_dir / "argv.json").read_text())["argv"]


@pytest.mark.anyio
async def test_decision_preset_is_read_only_and_typed(sample_project: Path) -> None:
    result = await claude_helper("Should we continue?", sample_project, Decision, command=DEMO)
    assert result.ok and result.value == Decision(status="DEMO agent status", passed=True)
    assert result.cost_usd == pytest.approx(0.01) and result.num_turns >= 1 and result.session_id
    argv = argv_of(result.run_dir)
    assert argv[argv.index("--tools") + 1] == "Read,Grep,Glob"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Grep,Glob"
    assert "--no-session-persistence" in argv
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5"
    assert json.loads(argv[argv.index("--json-schema") + 1]) == Decision.model_json_schema()


@pytest.mark.anyio
async def test_healing_preset_forks_the_session(sample_project: Path) -> None:
    first = await claude_helper("Look around.", sample_project, Decision, command=DEMO, preset="custom")
    healed = await claude_helper(
        "Heal T004.", sample_project, Decision, command=DEMO, preset="healing", session_id=first.session_id
    )
    assert healed.ok and healed.session_id != first.session_id
    argv = argv_of(healed.run_dir)
    assert argv[argv.index("--resume") + 1] == first.session_id and "--fork-session" in argv
    assert argv[argv.index("--max-budget-usd") + 1] == "2"
    record = json.loads((healed.run_dir / "argv.json").read_text())  # type: ignore[operator]
    assert record["timeoutSeconds"] == 1800  # the original's 120 s cut healers off


@pytest.mark.anyio
async def test_output_that_does_not_validate_is_schema_validation_failed(sample_project: Path) -> None:
    result = await claude_helper("Score it.", sample_project, Strict, command=DEMO)
    assert result.failure is FailureKind.SCHEMA_VALIDATION_FAILED and result.value is None
    assert "score" in (result.failure_message or "") and result.cost_usd == pytest.approx(0.01)


@pytest.mark.anyio
async def test_invalid_session_is_retried_once_as_new(sample_project: Path) -> None:
    result = await claude_helper(
        "Heal.", sample_project, Decision, command=DEMO, preset="healing", session_id="no-such-session"
    )
    assert result.ok, result.failure_message
    assert any("retried as a new session" in w for w in result.warnings)
    assert result.run_dir is not None and result.run_dir.name.endswith("-new-session")
    assert "--resume" not in argv_of(result.run_dir)


@pytest.mark.anyio
async def test_missing_agent_is_a_typed_failure(tmp_path: Path) -> None:
    result = await claude_helper("x", tmp_path, Decision, command="definitely-not-claude-here")
    assert result.failure is FailureKind.NOT_INSTALLED and "npm install" in (result.failure_message or "")


@pytest.mark.anyio
async def test_budget_error_scenario_is_reported_with_cost(sample_project: Path) -> None:
    result = await claude_helper(
        "x", sample_project, Decision, command=DEMO, env={"SPECFLOW_DEMO_SCENARIO": "budget_error"}
    )
    assert result.failure is FailureKind.BUDGET_EXCEEDED and result.cost_usd == pytest.approx(0.01)
