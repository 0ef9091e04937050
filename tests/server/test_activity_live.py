"""Now and transcripts through a real `jupyter server` subprocess: a slow demo-agent batch streams tool calls, the
client's activity long-poll shows each one in words as it comes, tasks tick one by one; the run's transcript shows
the tool calls, redacted; a specflow-only observer learns that a transcript exists, nothing of its content."""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.client import SpecflowClient
from specflow_nb.demo import prepare_sample
from specflow_nb.errors import OrchestrationNotFound
from specflow_nb.models import OrchestrationConfig
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server

pytestmark = pytest.mark.timeout(180)

DEMO_AGENT = f"{shlex.quote(sys.executable)} -m specflow_nb.demo.demo_agent"
SECRET = "sk-live-test-secret-value-123456"


def _config(base: Path, **extension: Any) -> None:
    folder = base / "config"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"agent_command": DEMO_AGENT, **extension}
    (folder / "jupyter_server_config.json").write_text(json.dumps({"SpecflowExtension": settings}))


def test_now_follows_each_tool_call_and_the_transcript_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    runtime = tmp_path / "runtime"
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    _config(tmp_path)
    env = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.25", "SPECFLOW_TEST_API_KEY": SECRET}

    seen: list[tuple[float, Any]] = []

    async def follow(client: SpecflowClient) -> None:
        async for response in client.watch_activity("todo", poll_timeout=10):
            act = response.activity
            if act is None:
                continue
            seen.append((time.time(), act))
            if (act.tasks_done or 0) >= 4:
                return

    with jupyter_server(root, runtime, base=tmp_path, env=env), SpecflowClient(cwd=project) as client:
        config = OrchestrationConfig.model_validate(
            {"skipDesign": True, "skipAnalyze": True, "skipVerify": True, "additionalContext": f"key {SECRET}"}
        )
        started = client.start("todo", config).orchestration
        asyncio.run(asyncio.wait_for(follow(client), 90))
        ex = client.cancel("todo", started.id)
        nows = [a.now for _, a in seen]
        # each tool call in words, as it happened, relative to the project
        assert any(n.startswith("Reading specs/0001-todo-cli/tasks.md") for n in nows), nows
        assert any(n.startswith("Writing .demo_agent/T00") for n in nows), nows
        assert any(n.startswith("Editing specs/0001-todo-cli/tasks.md") for n in nows), nows
        # the Now line changed with (nearly) every tool call: no batching of several calls into one update
        distinct = [n for i, n in enumerate(nows) if i == 0 or n != nows[i - 1]]
        assert len(distinct) >= 6, nows
        # tasks tick one by one as tasks.md changes, not per batch
        done = sorted({a.tasks_done for _, a in seen if a.tasks_done is not None})
        assert done[:1] == [0] or done[0] <= 1, done
        assert all(b - a == 1 for a, b in itertools.pairwise(done)), done
        assert seen[-1][1].tasks_total == 20
        # the output line reached this client soon after the agent wrote it (the benchmark measures it properly)
        lags = [t - a.last_output_at.timestamp() for t, a in seen if a.last_output_at is not None]
        assert sorted(lags)[len(lags) // 2] < 2.0, lags
        assert seen[-1][1].turns >= 4, [a.turns for _, a in seen]

        run_id = seen[-1][1].run_id
        t = client.transcript("todo", run_id)
        assert t.available and t.folder == f".specflow/workflows/{run_id}"
        titles = [e.title for e in t.entries]
        assert any(x.startswith("Editing specs/0001-todo-cli/tasks.md") for x in titles), titles
        assert any(e.kind == "tool_result" for e in t.entries)
        assert "Execute only the" in t.prompt, t.prompt
        everything = t.model_dump_json()
        assert SECRET not in everything and "***" in t.prompt  # the prompt carried the secret: redacted
        with pytest.raises(OrchestrationNotFound):
            client.transcript("todo", "no-such-run")
        assert ex.status.value == "cancelled"
        # a finished orchestration has no live run
        assert client.activity("todo").activity is None


def test_a_specflow_only_observer_gets_no_transcript_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    run = project / ".specflow" / "workflows" / "orch-x-001-batch1"
    run.mkdir(parents=True)
    (run / "prompt.md").write_text("secret prompt words\n")
    (run / "stream.jsonl").write_text(
        json.dumps({"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "private"}]}})
        + "\n"
    )
    runtime = tmp_path / "runtime"
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    _config(tmp_path)
    authorizer = tmp_path / "observer_auth.py"
    authorizer.write_text(
        "from jupyter_server.auth.authorizer import Authorizer\n"
        "class SpecflowOnly(Authorizer):\n"
        "    def is_authorized(self, handler, user, action, resource):\n"
        "        return resource == 'specflow' and action == 'read'\n"
    )
    cfg = json.loads((tmp_path / "config" / "jupyter_server_config.json").read_text())
    cfg["ServerApp"] = {"authorizer_class": "observer_auth.SpecflowOnly"}
    (tmp_path / "config" / "jupyter_server_config.json").write_text(json.dumps(cfg))
    with (
        jupyter_server(root, runtime, base=tmp_path, env={"PYTHONPATH": str(tmp_path)}),
        SpecflowClient(cwd=project) as client,
    ):
        t = client.transcript("todo", "orch-x-001-batch1")
        assert not t.available and "read the project's files" in (t.reason or "")
        assert t.folder == ".specflow/workflows/orch-x-001-batch1"
        body = t.model_dump_json()
        assert "private" not in body and "secret prompt" not in body and not t.entries
        with pytest.raises(OrchestrationNotFound):
            client.transcript("todo", "orch-x-002-batch2")


def test_watch_through_the_server_prints_now_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`specflow-nb orchestrate watch` against the server (REST): the Now lines come from the activity channel."""
    import os
    import subprocess

    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    runtime = tmp_path / "runtime"
    _config(tmp_path)
    env = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": "0.2"}
    watch_env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_VARS}
    watch_env.update(JUPYTER_RUNTIME_DIR=str(runtime), COLUMNS="80")
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    with jupyter_server(root, runtime, base=tmp_path, env=env), SpecflowClient(cwd=project) as client:
        config = {"skipDesign": True, "skipAnalyze": True, "pauseBetweenBatches": True}
        client.start("todo", OrchestrationConfig.model_validate(config))
        watch = subprocess.run(
            [sys.executable, "-m", "specflow_nb", "orchestrate", "watch", "--project", str(project)],
            env=watch_env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    out = watch.stdout
    assert "now: Editing specs/0001-todo-cli/tasks.md" in out and "now: Writing .demo_agent/T00" in out, (
        out + watch.stderr
    )
    assert "Paused after batch 1" in out or "paused" in out.lower()
