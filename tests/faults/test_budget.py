"""Budget safety with scripted costs, through a live server.

The DEMO agent charges each run a known cost (per-section rules) and, like the real CLI, fails a run whose cost
exceeds its ``--max-budget-usd`` with ``error_max_budget_usd`` while still reporting the full cost (the CLI's own
overshoot of one run). For several ``maxTotal`` values, run concurrently on one server:

* the recorded total equals the sum of every run's reported cost (failed runs included);
* it never exceeds maxTotal by more than the cost of one run;
* no run was started with a cap above what was left, or with a cap of 0;
* the orchestration stops in needs_attention with the "Budget reached" message (kind ``budget``), unless the
  whole phase fit in the budget, and a retry with a raised budget finishes the phase.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import WORKFLOWS, LiveServer, fast_config, make_projects, state_files

from .conftest import assert_no_server_error, settle

#: Cost of the run of each batch of the sample phase (4 batches: Phase 1..4 sections).
COSTS = {'"Phase 1': 0.07, '"Phase 2': 0.13, '"Phase 3': 0.11, '"Phase 4': 0.05}
MAX_RUN = max(COSTS.values())
#: maxTotal values: below one run, between runs, exactly at a boundary, and enough for all.
TOTALS = [0.05, 0.15, 0.2, 0.31, 1.0]


def run_costs(project: Path) -> list[tuple[str, float, float | None]]:
    """(run id, reported cost, the --max-budget-usd it was started with) of every run of the project."""
    out = []
    for folder in sorted(p for p in (project / WORKFLOWS).iterdir() if p.is_dir()):
        outcome = json.loads((folder / "outcome.json").read_text())
        argv = json.loads((folder / "argv.json").read_text())["argv"]
        cap = float(argv[argv.index("--max-budget-usd") + 1]) if "--max-budget-usd" in argv else None
        out.append((folder.name, float(outcome["cost_usd"]), cap))
    return out


@pytest.fixture
def server(tmp_path: Path) -> LiveServer:
    script = tmp_path / "costs.json"
    script.write_text(json.dumps({"rules": [{"match": m, "cost": c} for m, c in COSTS.items()]}))
    make_projects(tmp_path / "root", 0)
    return LiveServer(tmp_path / "root", tmp_path / "srv", agent_env={"SPECFLOW_DEMO_SCRIPT": str(script)})


def test_costs_never_exceed_max_total_by_more_than_one_run(server: LiveServer) -> None:
    projects = make_projects(server.root, len(TOTALS), prefix="budget")
    server.start()
    try:
        with server.client() as client:
            for pid, total in zip(projects, TOTALS, strict=True):
                config = fast_config(budget={"maxTotal": total, "maxPerBatch": 1.0}, autoHealEnabled=False)
                r = client.post("workflow/orchestrate", json={"projectId": pid, "config": config})
                assert r.status_code == 201, r.text
            results = {pid: settle(client, pid) for pid in projects}

            for (pid, ex), total in zip(results.items(), TOTALS, strict=True):
                project = server.root / pid
                runs = run_costs(project)
                spent = sum(cost for _, cost, _ in runs)
                assert ex["totalCostUsd"] == pytest.approx(spent, abs=1e-6), (pid, ex["totalCostUsd"], runs)
                assert spent <= total + MAX_RUN + 1e-9, (pid, total, spent)
                # Each run's cap was what was left of maxTotal when it started, never 0 or less.
                before = 0.0
                for run_id, cost, cap in runs:
                    assert cap is not None and 0 < cap <= round(total - before, 6) + 1e-9, (pid, run_id, cap, before)
                    before += cost
                [on_disk] = [json.loads(p.read_text()) for p in state_files(project)]
                assert on_disk["totalCostUsd"] == ex["totalCostUsd"]
                if total >= sum(COSTS.values()):
                    assert ex["status"] == "completed", ex
                    assert spent <= total
                    continue
                assert ex["status"] == "needs_attention", (pid, total, ex["status"])
                rc = ex["recoveryContext"]
                assert rc["kind"] == "budget" and rc["issue"].startswith("Budget reached"), rc
                assert "maxTotal" in rc["issue"], rc

            # Raising the budget lets the phase finish where it stopped.
            pid = projects[1]
            r = client.post(
                "workflow/orchestrate/recover",
                json={"projectId": pid, "option": "retry", "budget": {"maxTotal": 5.0, "maxPerBatch": 1.0}},
            )
            assert r.status_code == 200, r.text
            ex = settle(client, pid)
            assert ex["status"] == "completed", ex
            assert ex["totalCostUsd"] == pytest.approx(sum(c for _, c, _ in run_costs(server.root / pid)), abs=1e-6)
    finally:
        server.stop()
    assert_no_server_error(server.log)
