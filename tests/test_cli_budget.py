"""Raise a budget and go on from a terminal (issue 15.1): ``orchestrate recover retry --set budget.…`` and
``orchestrate resume --set budget.…``, with the engine in the command's process (--local) and through a real server.

The demo agent charges known costs per batch; the budget stops the phase in batch 2; the terminal says the limits,
what was spent and the exact command; too little is refused before sending; the printed command finishes the phase.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from specflow_nb.cli_orchestrate import _command, demo_agent_command
from specflow_nb.demo import prepare_sample
from specflow_nb.errors import ConfigError
from tests.support.live_server import jupyter_server
from tests.test_budget_raise import design_hit_its_cap, stop_before_batch_3
from tests.test_cli_orchestrate import run_cli

pytestmark = pytest.mark.timeout(240)

#: Each batch's run costs this much; analyze costs the demo's default $0.01.
COSTS = {'"Phase 1': 0.07, '"Phase 2': 0.13, '"Phase 3': 0.11, '"Phase 4': 0.05}
START = ["--set", "autoMerge=true", "--set", "autoHealEnabled=false", "--set", "budget.maxPerBatch=1"]


def cost_env(tmp_path: Path) -> dict[str, str]:
    script = tmp_path / "costs.json"
    script.write_text(json.dumps({"rules": [{"match": m, "cost": c} for m, c in COSTS.items()]}), encoding="utf-8")
    return {"SPECFLOW_DEMO_SCRIPT": str(script)}


def record(project: Path) -> dict:
    [path] = (project / ".specflow" / "workflows").glob("orchestration-*.json")
    data: dict = json.loads(path.read_text())
    return data


def suggested_command(text: str) -> list[str]:
    """The raise command the terminal printed, as arguments (after `specflow-nb`)."""
    found = re.search(r"specflow-nb (orchestrate recover retry (?:--set budget\.\w+=[\d.]+ ?)+)", text)
    assert found, text
    return found.group(1).split()


def check_the_stop_and_the_refusals(project: Path, where: list[str], env: dict[str, str], flag: str) -> list[str]:
    """At the budget stop: the hint, a retry without --set, a --set that is not a budget, a raise below spent."""
    stopped = record(project)
    assert stopped["status"] == "needs_attention" and stopped["recoveryContext"]["kind"] == "budget"
    assert stopped["totalCostUsd"] == pytest.approx(0.21)

    same = run_cli("orchestrate", "recover", "retry", *where, env=env)
    assert same.returncode == 1, same.stdout + same.stderr
    assert "not retried, the same limits would stop it again at once" in same.stderr
    assert "maxTotal $0.15 is not above the $0.21 all runs already spent" in same.stderr
    assert re.search(r"maxTotal\s+\$0\.15\s+spent \$0\.21 by all runs\s+← stopped it", same.stderr), same.stderr
    assert re.search(r"maxPerBatch\s+\$1\.00\s+spent \$0\.13 by batch 2", same.stderr), same.stderr
    assert "not per batch" in same.stderr and "Traceback" not in same.stderr
    command = suggested_command(same.stderr)
    assert command[3:] == ["--set", "budget.maxTotal=1.08"]  # one more batch's worth: 0.21 + (1 - 0.13)
    assert f"budget.maxTotal=1.08{flag}" in same.stderr

    usage = run_cli("orchestrate", "recover", "retry", "--set", "model=x", *where, env=env)
    assert usage.returncode == 2
    assert "argument --set: 'model=x': only the budget can be changed here" in usage.stderr
    assert "budget.maxTotal" in usage.stderr and "Traceback" not in usage.stderr

    low = run_cli("orchestrate", "recover", "retry", "--set", "budget.maxTotal=0.2", *where, env=env)
    assert low.returncode == 1
    assert "Not sent: maxTotal $0.20 is not above the $0.21 all runs already spent" in low.stderr
    assert "would stop again at once" in low.stderr and "Traceback" not in low.stderr

    nan = run_cli("orchestrate", "recover", "retry", "--set", "budget.maxTotal=NaN", *where, env=env)
    assert nan.returncode == 1 and "budget.maxTotal: Input should be a finite number" in nan.stderr

    assert record(project)["version"] == stopped["version"]  # nothing was sent
    return command


def test_raise_from_the_cli_without_a_server(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    env = cost_env(tmp_path)
    where = ["--local", "--project", str(project)]
    agent = ["--set", f"agentCommand={demo_agent_command()}"]
    started = run_cli("orchestrate", "start", *where, *agent, *START, "--set", "budget.maxTotal=0.15", env=env)
    assert started.returncode == 1, started.stderr  # needs attention
    assert "Budget limits:" in started.stdout
    assert "Raise them and retry: `specflow-nb orchestrate recover retry --set budget.maxTotal=1.08 --local`" in (
        started.stdout
    )
    command = check_the_stop_and_the_refusals(project, where, env, " --local")

    raised = run_cli(*command, *where, env=env)
    assert raised.returncode == 0, raised.stdout + raised.stderr
    assert "Phase complete" in raised.stdout
    done = record(project)
    assert done["status"] == "completed"
    assert done["config"]["budget"] == {
        "maxPerBatch": 1.0,
        "maxTotal": 1.08,
        "healingBudget": 2.0,
        "decisionBudget": 0.5,
    }
    assert any("budget changed: maxTotal $0.15 → $1.08" in d["reason"] for d in done["decisionLog"])


def test_raise_from_the_cli_through_a_server(tmp_path: Path) -> None:
    root, runtime = tmp_path / "root", tmp_path / "runtime"
    project = prepare_sample(root / "todo")
    env = {**cost_env(tmp_path), "JUPYTER_RUNTIME_DIR": str(runtime)}
    where = ["--project", str(project)]
    with jupyter_server(root, runtime, base=tmp_path, env=env):
        agent = ["--set", f"agentCommand={demo_agent_command()}"]
        started = run_cli("orchestrate", "start", *where, *agent, *START, "--set", "budget.maxTotal=0.15", env=env)
        assert started.returncode == 1, started.stderr
        assert "--local" not in started.stdout
        command = check_the_stop_and_the_refusals(project, where, env, "\n")
        # resume is not how a budget stop goes on: the terminal says which command is
        wrong = run_cli("orchestrate", "resume", "--set", "budget.maxTotal=3", *where, env=env)
        assert wrong.returncode == 1 and "needs attention (it is not paused)" in wrong.stderr
        assert "recover retry --set budget.maxTotal=3" in wrong.stderr

        raised = run_cli(*command, "--set", "budget.healingBudget=0.5", "--follow", *where, env=env)
        assert raised.returncode == 0, raised.stdout + raised.stderr
        assert "Phase complete" in raised.stdout
        status = run_cli("orchestrate", "status", "--json", *where, env=env)
        done = json.loads(status.stdout)
        assert done["status"] == "completed"
        assert (done["config"]["budget"]["maxTotal"], done["config"]["budget"]["healingBudget"]) == (1.08, 0.5)


def test_resume_with_a_raise_after_the_total_is_used_up(tmp_path: Path) -> None:
    """Paused between batches with nothing left: resume --set raises it (too little is refused), and it goes on."""
    project = prepare_sample(tmp_path / "todo")
    env = cost_env(tmp_path)
    where = ["--local", "--project", str(project)]
    options = ["--set", "pauseBetweenBatches=true", "--set", "budget.maxTotal=0.08"]  # analyze 0.01 + batch 1 0.07
    agent = ["--set", f"agentCommand={demo_agent_command()}"]
    started = run_cli("orchestrate", "start", *where, *agent, *START, *options, env=env)
    assert started.returncode == 0, started.stderr
    assert record(project)["status"] == "paused"
    low = run_cli("orchestrate", "resume", "--set", "budget.maxTotal=0.08", *where, env=env)
    assert low.returncode == 1 and "resuming would stop again at once" in low.stderr
    usage = run_cli("orchestrate", "resume", "--set", "autoMerge=false", *where, env=env)
    assert usage.returncode == 2 and "only the budget can be changed here" in usage.stderr
    resumed = run_cli("orchestrate", "resume", "--set", "budget.maxTotal=3", *where, env=env)
    assert resumed.returncode == 0, resumed.stderr
    for _ in range(4):  # it pauses after each batch
        if record(project)["status"] == "completed":
            break
        assert run_cli("orchestrate", "resume", *where, env=env).returncode == 0
    done = record(project)
    assert done["status"] == "completed" and done["config"]["budget"]["maxTotal"] == 3.0


def namespace(name: str, **kw: object) -> argparse.Namespace:
    args = argparse.Namespace(orchestrate_command=name, id=None, set=None, notes=[], **kw)
    return args


def test_a_budget_stop_the_same_limits_can_retry_is_sent_with_the_limits_said() -> None:
    """A step's run stopped at its cap: a step's cap is fresh for each run, so the same limits can retry it — the
    retry is sent, and the terminal still says the limits and how to raise them (never silently the same)."""
    h = design_hit_its_cap()
    args = namespace("recover", option="retry")
    command = _command("recover", args, h.ex, local=True)
    assert command.budget is None
    [note] = args.notes
    assert note.startswith("Retrying after a budget stop with the same limits:")
    assert "maxPerBatch" in note and "--set budget.maxPerBatch=1 --local" in note
    # the stop before batch 3 cannot: refused, naming the limit
    with pytest.raises(ConfigError, match="not retried"):
        _command("recover", namespace("recover", option="retry"), stop_before_batch_3().ex, local=False)


def test_recover_set_merges_over_the_current_limits() -> None:
    h = stop_before_batch_3()
    args = namespace("recover", option="retry")
    args.set = ['budget={"healingBudget": 0.25}', "budget.maxTotal=9"]
    command = _command("recover", args, h.ex, local=False)
    assert command.budget.max_total == 9.0 and command.budget.healing_budget == 0.25
    assert command.budget.max_per_batch == h.ex.config.budget.max_per_batch  # kept
    args.set = ["budget=5"]
    with pytest.raises(ConfigError, match="takes a JSON object of limits"):
        _command("recover", args, h.ex, local=False)


def test_a_local_raise_on_a_project_a_server_drives_is_handed_to_the_server(tmp_path: Path) -> None:
    """Several hosts, one project: `--local` beside the server that owns the orchestration hands the raise to it."""
    root, runtime = tmp_path / "root", tmp_path / "runtime"
    project = prepare_sample(root / "todo")
    env = {**cost_env(tmp_path), "JUPYTER_RUNTIME_DIR": str(runtime)}
    with jupyter_server(root, runtime, base=tmp_path, env=env):
        agent = ["--set", f"agentCommand={demo_agent_command()}"]
        started = run_cli(
            "orchestrate", "start", "--project", str(project), *agent, *START, "--set", "budget.maxTotal=0.15", env=env
        )
        assert started.returncode == 1 and record(project)["status"] == "needs_attention", started.stderr
        where = ["--local", "--project", str(project), "--follow"]
        handed = run_cli("orchestrate", "recover", "retry", "--set", "budget.maxTotal=2", *where, env=env)
        assert handed.returncode == 0, handed.stdout + handed.stderr
        assert "Phase complete" in handed.stdout
        done = record(project)
        assert done["status"] == "completed" and done["config"]["budget"]["maxTotal"] == 2.0
        changed = next(d for d in done["decisionLog"] if "budget changed" in d["reason"])
        assert changed["data"].get("commandId"), changed  # it travelled through the owner's inbox
