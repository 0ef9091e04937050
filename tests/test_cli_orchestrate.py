"""`specflow-nb orchestrate …` and `specflow-nb demo`: in this process (--local) and against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from specflow_nb.cli import main
from specflow_nb.cli_orchestrate import demo_agent_command
from specflow_nb.demo import prepare_sample
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server

CLI = [sys.executable, "-m", "specflow_nb"]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    for var in CLIENT_ENV_VARS:
        full_env.pop(var, None)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=full_env, cwd=cwd, check=False
    )


def test_demo_completes_a_phase_with_a_healed_batch(tmp_path: Path) -> None:
    result = run_cli("demo", "--dest", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "DEMO agent" in result.stdout
    assert "Batch healed: Batch 2 of 4" in result.stdout  # the log in words (summary.decision_title)
    assert "Complete: 20/20 tasks in 4 batches" in result.stdout
    merged = subprocess.run(
        ["git", "branch", "--merged", "main"], cwd=tmp_path / "demo", capture_output=True, text=True, check=True
    )
    assert "0001-todo-cli" in merged.stdout


def test_demo_json_lines_end_completed(tmp_path: Path) -> None:
    result = run_cli("demo", "--json", "--no-heal", "--dest", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    states = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    versions = [s["version"] for s in states]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert states[-1]["status"] == "completed"
    assert all(b["status"] == "completed" for b in states[-1]["batches"]["items"])


def test_local_start_waits_for_merge_then_merge_completes(sample_project: Path, capsys) -> None:
    p = str(sample_project)
    code = main(["orchestrate", "start", "--local", "--project", p, "--set", f"agentCommand={demo_agent_command()}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Merge ready" in out and "orchestrate merge --local" in out

    assert main(["orchestrate", "status", "--local", "--project", p, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "waiting_merge"

    assert main(["orchestrate", "merge", "--local", "--project", p]) == 0
    assert "Phase complete" in capsys.readouterr().out

    assert main(["orchestrate", "list", "--local", "--project", p, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [x["status"] for x in listed] == ["completed"]


def test_bad_config_is_one_clear_line(sample_project: Path) -> None:
    result = run_cli("orchestrate", "start", "--local", "--project", str(sample_project), "--set", "maxHealAttempts=9")
    assert result.returncode == 1
    assert "maxHealAttempts" in result.stderr and "less than or equal to 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (sample_project / ".specflow" / "workflows").exists()


def test_command_without_orchestration_is_a_clear_error(sample_project: Path) -> None:
    result = run_cli("orchestrate", "recover", "retry", "--local", "--project", str(sample_project))
    assert result.returncode == 1
    assert "No orchestration" in result.stderr and "Traceback" not in result.stderr


def test_second_local_start_is_refused(sample_project: Path) -> None:
    agent = f"agentCommand={demo_agent_command()}"
    first = run_cli("orchestrate", "start", "--local", "--project", str(sample_project), "--set", agent)
    assert first.returncode == 0, first.stderr
    second = run_cli("orchestrate", "start", "--local", "--project", str(sample_project), "--set", agent)
    assert second.returncode == 1
    assert "Orchestration already in progress" in second.stderr


@pytest.fixture(scope="module")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    base = tmp_path_factory.mktemp("cli-server")
    root, runtime = base / "root", base / "runtime"
    root.mkdir()
    prepare_sample(root / "todo")
    with jupyter_server(root, runtime, base=base):
        yield root, runtime


def test_remote_start_follow_merge_through_the_server(server_root: tuple[Path, Path]) -> None:
    root, runtime = server_root
    env = {"JUPYTER_RUNTIME_DIR": str(runtime)}
    project = root / "todo"
    started = run_cli(
        "orchestrate", "start", "--project", str(project), "--set", f"agentCommand={demo_agent_command()}", env=env
    )
    assert started.returncode == 0, started.stderr
    assert "Merge ready" in started.stdout and "--local" not in started.stdout
    assert "Batch done: Batch 1 of 4" in started.stdout  # the log in words (summary.decision_title)

    status = run_cli("orchestrate", "status", "--project", str(project), "--json", env=env)
    assert json.loads(status.stdout)["status"] == "waiting_merge"
    merged = run_cli("orchestrate", "merge", "--project", str(project), "--follow", env=env)
    assert merged.returncode == 0, merged.stderr
    assert "Phase complete" in merged.stdout
    again = run_cli("orchestrate", "merge", "--project", str(project), env=env)
    assert again.returncode == 1
    assert "Cannot merge" in again.stderr and "Traceback" not in again.stderr


def _user_command(tmp_path: Path) -> dict[str, str]:
    """A user-level flow.implement (where SpecFlow installs its skills), in a CLAUDE_CONFIG_DIR of this test."""
    config_dir = tmp_path / "claude-config"
    (config_dir / "commands").mkdir(parents=True)
    (config_dir / "commands" / "flow.implement.md").write_text("Implement the phase. $ARGUMENTS\n")
    return {"CLAUDE_CONFIG_DIR": str(config_dir)}


def test_start_dry_run_names_each_steps_prompt_source_and_starts_nothing(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    env = {**_user_command(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "no-server")}
    args = ("orchestrate", "start", "--dry-run", "--project", str(project), "--set", "skipDesign=true")
    dry = run_cli(*args, "--set", f"agentCommand={demo_agent_command()}", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "4 batches from tasks.md sections" in dry.stdout
    assert "implement: /flow.implement (user:" in dry.stdout and "flow.implement.md" in dry.stdout
    assert "design: built-in prompt" in dry.stdout
    assert "Nothing was started" in dry.stdout
    assert not list((project / ".specflow" / "workflows").glob("orchestration-*.json"))
    as_json = run_cli(*args, "--json", "--set", f"agentCommand={demo_agent_command()}", env=env)
    sources = {s["step"]: s["source"] for s in json.loads(as_json.stdout)["promptSources"]}
    assert sources == {
        "design": "builtin",
        "analyze": "builtin",
        "implement": "user",
        "verify": "builtin",
        "merge": "builtin",
    }
    refused = run_cli(*args, "--set", "agentCommand=no-such-agent-xyz", env=env)
    assert refused.returncode == 1 and "no-such-agent-xyz" in refused.stdout


def test_the_servers_preview_names_prompt_sources(server_root: tuple[Path, Path]) -> None:
    root, runtime = server_root
    project = root / "todo"
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "flow.verify.md").write_text("Verify. $ARGUMENTS\n")
    dry = run_cli(
        "orchestrate",
        "start",
        "--dry-run",
        "--json",
        "--project",
        str(project),
        env={"JUPYTER_RUNTIME_DIR": str(runtime)},
    )
    sources = {s["step"]: s for s in json.loads(dry.stdout)["promptSources"]}
    assert sources["verify"]["source"] == "project" and sources["verify"]["skill"] == "flow.verify"
    assert sources["implement"]["source"] == "builtin"
