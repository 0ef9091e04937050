"""The estimate over a real `jupyter server` (its SpecflowExtension settings) and in `orchestrate start --dry-run`
(a CLI subprocess at 80 columns), with the server and without one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from specflow_nb.client import SpecflowClient
from specflow_nb.demo import prepare_sample
from specflow_nb.models import OrchestrationConfig
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server
from tests.support.orch_helpers import DEMO_AGENT
from tests.test_cli_orchestrate import run_cli

#: The server's estimate settings: 40 cents a task, verify one minute (the other steps keep their defaults).
SERVER_SETTINGS = {"estimate_usd_per_task": 0.4, "estimate_step_seconds": {"verify": 60}}


def long_section(project: Path) -> Path:
    """The sample with section 3's title too long for an 80-column row: the CLI must cut the title, not a number."""
    tasks = next((project / "specs").glob("*/tasks.md"))
    title = "## Phase 3: User Story 1 - Add and list (Priority: P1)"
    tasks.write_text(tasks.read_text().replace(title, title + " with filters, sorting and colours"))
    return project


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("estimate-live")
    root, runtime = base / "root", base / "runtime"
    (base / "config").mkdir()
    (base / "config" / "jupyter_server_config.json").write_text(json.dumps({"SpecflowExtension": SERVER_SETTINGS}))
    long_section(prepare_sample(root / "todo"))
    with jupyter_server(root, runtime, base=base):
        yield root, runtime


def test_the_servers_preview_carries_the_estimate_from_its_settings(
    server: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, runtime = server
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    config = OrchestrationConfig.model_validate({"agentCommand": DEMO_AGENT, "budget": {"maxPerBatch": 3.0}})
    with SpecflowClient(cwd=root / "todo") as client:
        response = client.preview("todo", config)
        raw = client._http.get(
            "workflow/orchestrate/status",
            params={"projectId": "todo", "preview": "true", "config": config.model_dump_json(by_alias=True)},
        )
    est = response.estimate
    assert est is not None and est.basis == "defaults"
    assert [b.usd for b in est.batches] == [1.2, 2.0, 3.2, 1.6]  # the server's 40 cents a task
    steps = {s.step.value: (s.seconds, s.usd) for s in est.steps}
    assert steps == {"analyze": (180, 0.3), "verify": (60, 0.5), "merge": (5, 0.0)}
    assert est.total_usd == pytest.approx(8.0 + 0.8)
    (warning,) = est.warnings
    assert "Batch 3" in warning and "$0.20 over Max per batch (budget.maxPerBatch $3.00)" in warning
    body = raw.json()
    assert raw.status_code == 200 and body["estimate"]["totalUsd"] == 8.8 and "basisLabel" in body["estimate"]


def _table_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Estimate ("))
    end = next(i for i, line in enumerate(lines) if line.startswith("Total"))
    return lines[start : end + 1]


def _check_80_columns(out: str, per_task: float) -> None:
    table = _table_lines(out)
    assert all(len(line) <= 80 for line in table), "\n".join(line for line in table if len(line) > 80)
    rows = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in table if "│" in line}
    assert rows["1. Phase 1: Setup"] == ["3", "~6 min", f"${3 * per_task:.2f}"]
    # the long section title is cut to fit, never the numbers
    (long_title,) = [k for k in rows if k.startswith("3. Phase 3: User Story 1")]
    assert long_title.endswith("…") and rows[long_title] == ["8", "~16 min", f"${8 * per_task:.2f}"]
    assert rows["merge step (built-in)"] == ["", "~5s", "$0.00"]
    assert rows["Total"][0] == "20"


def test_dry_run_prints_the_estimate_in_80_columns_through_the_server(server: tuple[Path, Path]) -> None:
    root, runtime = server
    env = {"JUPYTER_RUNTIME_DIR": str(runtime), "COLUMNS": "80"}
    args = ("orchestrate", "start", "--dry-run", "--project", str(root / "todo"), "--set", f"agentCommand={DEMO_AGENT}")
    dry = run_cli(*args, "--set", "budget.maxTotal=5", env=env)
    assert dry.returncode == 0, dry.stderr
    _check_80_columns(dry.stdout, 0.4)  # the server's settings: it was the server's preview
    assert "Estimate (defaults)" in dry.stdout and "estimate_usd_per_task" in dry.stdout
    assert "over budget: The estimated total $8.80 is $3.80 over Max total" in " ".join(dry.stdout.split())
    as_json = run_cli(*args, "--json", env=env)
    est = json.loads(as_json.stdout)["estimate"]
    assert est["totalUsd"] == 8.8 and [b["taskCount"] for b in est["batches"]] == [3, 5, 8, 4]


def test_dry_run_without_a_server_estimates_in_this_process(tmp_path: Path) -> None:
    project = long_section(prepare_sample(tmp_path / "todo"))
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-server"), "COLUMNS": "80"}
    args = ("orchestrate", "start", "--dry-run", "--project", str(project), "--set", f"agentCommand={DEMO_AGENT}")
    dry = run_cli(*args, env=env)
    assert dry.returncode == 0, dry.stderr
    _check_80_columns(dry.stdout, 0.15)  # the engine's own defaults
    assert "over budget" not in dry.stdout
    as_json = run_cli(*args, "--json", env=env)
    assert json.loads(as_json.stdout)["estimate"]["totalUsd"] == 3.8
    local = run_cli(*args, "--local", env=env)
    assert local.returncode == 0 and _table_lines(local.stdout) == _table_lines(dry.stdout)
