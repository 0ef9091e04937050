"""The runner against the REAL Codex CLI (0.169.0), pointed at the scripted Responses API server on 127.0.0.1.

Every run is a real ``codex exec --json`` process with a private CODEX_HOME and a local model provider; the model's
tool calls edit files through Codex's own tools (``exec_command`` and ``apply_patch``, inside the default model's
JavaScript ``exec`` tool or as plain function tools for other models).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest
from pydantic import BaseModel

from specflow_nb.agent import (
    AgentOptions,
    AgentRunError,
    FailureKind,
    SessionMode,
    StreamEvent,
    attach_run,
    claude_helper,
    start_run,
    transcript_tail,
)
from specflow_nb.agent.codex import strict_schema, usage_cost
from specflow_nb.agent.prompts import OUTPUT_MODELS, json_schema
from specflow_nb.agent.stream import ThreadStarted, TurnCompleted
from specflow_nb.models import ModelPrice
from tests.support.codex_cli import DEFAULT_MODEL, PINNED_VERSION, codex_version, hermetic_env, provider_args
from tests.support.responses_server import (
    Delay,
    HttpError,
    Patch,
    ResponsesServer,
    Say,
    Shell,
    strict_schema_problems,
    structured,
)

pytestmark = pytest.mark.anyio

#: $1 per 1M input, $0.10 cached, $10 output: one scripted call (1000 in / 200 cached / 100 out) = $0.00182.
PRICE = ModelPrice(input_per_mtok=1.0, cached_input_per_mtok=0.1, output_per_mtok=10.0)
PRICES = {DEFAULT_MODEL: PRICE, "gpt-5": PRICE}
ONE_CALL = (800 * 1.0 + 200 * 0.1 + 100 * 10.0) / 1_000_000


def opts(
    codex_bin: str, server: ResponsesServer, home: Path, cwd: Path, prompt: str = "Say pong.", **kw: object
) -> AgentOptions:
    fields: dict[str, object] = {
        "agent": "codex",
        "command": codex_bin,
        "cwd": cwd,
        "prompt": prompt,
        "env": hermetic_env(home),
        "extra_args": provider_args(server.url),
        "prices": PRICES,
        "rate_limit_backoff_seconds": 0.2,
    }
    fields.update(kw)
    return AgentOptions(**fields)  # type: ignore[arg-type]


def folder(cwd: Path, name: str) -> Path:
    return cwd / ".specflow" / "workflows" / name


def test_one_call_price() -> None:
    usage = {"input_tokens": 1000, "cached_input_tokens": 200, "output_tokens": 100}
    assert usage_cost(usage, PRICE) == pytest.approx(ONE_CALL)


async def test_pinned_cli_version(codex_bin: str) -> None:
    assert PINNED_VERSION in codex_version(codex_bin)


async def test_plain_run_reports_thread_cost_and_model(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns([Say("pong from the scripted model")])
    events: list[StreamEvent] = []
    run = await start_run(folder(tmp_path, "plain"), opts(codex_bin, responses_server, codex_home, tmp_path))
    outcome = await run.wait(on_event=events.append)

    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.exit_code == 0 and outcome.num_turns == 1
    assert outcome.result_text == "pong from the scripted model"
    assert isinstance(events[0], ThreadStarted) and events[0].thread_id == outcome.session_id
    assert any(isinstance(e, TurnCompleted) for e in events)
    assert outcome.model == DEFAULT_MODEL  # no -m: the CLI's own default, read from its session file
    assert outcome.cost_usd == pytest.approx(ONE_CALL)
    request = responses_server.responses_requests[0]
    assert request.body["stream"] is True and request.model == DEFAULT_MODEL
    assert {k.lower(): v for k, v in request.headers.items()}["authorization"] == "Bearer sk-test-codex"
    argv = json.loads((run.run_dir / "argv.json").read_text())["argv"]
    assert argv[argv.index("--sandbox") + 1] == "workspace-write" and argv[-1] == "-"
    assert "-m" not in argv


class SpecVerdict(BaseModel):
    name: str
    passed: bool
    findings: list[str] = []


async def test_typed_structured_output_is_strict_and_read_only_for_decisions(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(structured(name="spec-ok", passed=True, findings=["none"]))
    o = opts(codex_bin, responses_server, codex_home, tmp_path)
    result = await claude_helper(
        "Judge the spec.",
        tmp_path,
        SpecVerdict,
        preset="decision",
        command=codex_bin,
        env=o.env,
        agent="codex",
        extra_args=o.extra_args,
        prices=PRICES,
    )
    assert result.ok, (result.failure, result.failure_message)
    assert result.value == SpecVerdict(name="spec-ok", passed=True, findings=["none"])
    assert result.cost_usd == pytest.approx(ONE_CALL)
    fmt = responses_server.responses_requests[0].output_format
    assert fmt is not None and fmt["type"] == "json_schema" and fmt["strict"] is True
    assert strict_schema_problems(fmt["schema"]) == []  # `findings` has a default: made required for strict mode
    assert set(fmt["schema"]["required"]) == {"name", "passed", "findings"}
    argv = json.loads((result.run_dir / "argv.json").read_text())["argv"]  # type: ignore[operator]
    assert argv[argv.index("--sandbox") + 1] == "read-only" and "--ephemeral" in argv


def test_every_output_model_schema_is_strict_compatible() -> None:
    for name, model in OUTPUT_MODELS.items():
        raw = json_schema(model)
        assert strict_schema_problems(strict_schema(raw)) == [], name
    # ...and the scripted server's check bites on the raw pydantic schemas (defaults, optional fields)
    assert strict_schema_problems(json_schema(OUTPUT_MODELS["implement"]))


async def test_non_strict_schema_is_refused_like_the_real_api(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}, "required": []}))
    responses_server.add_turns(structured(a=1))
    o = opts(codex_bin, responses_server, codex_home, tmp_path, extra_args=[*provider_args(responses_server.url)])
    o.extra_args += ["--output-schema", str(loose)]
    outcome = await (await start_run(folder(tmp_path, "loose"), o)).wait()
    assert outcome.failure is FailureKind.SCHEMA_VALIDATION_FAILED
    assert "invalid_json_schema" in (outcome.failure_message or "") or "Invalid schema" in (
        outcome.failure_message or ""
    )


@pytest.mark.parametrize("model", [None, "gpt-5"], ids=["exec-tool", "function-tools"])
async def test_model_checks_tasks_with_codex_tools(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, sample_project: Path, model: str | None
) -> None:
    tasks_md = sample_project / "specs" / "0001-todo-cli" / "tasks.md"
    before = tasks_md.read_text()
    patch = "*** Begin Patch\n*** Update File: {}\n@@\n-- [ ] T002 [P]\n+- [x] T002 [P]\n*** End Patch\n"
    responses_server.add_turns(
        [
            Shell(
                "sed -i 's/^- \\[ \\] T001 /- [x] T001 /' specs/0001-todo-cli/tasks.md && grep -c '\\[x\\]' specs/0001-todo-cli/tasks.md"
            )
        ],
        [
            Patch(
                patch.format("specs/0001-todo-cli/tasks.md").replace(
                    "T002 [P]\n", "T002 [P] Add `pyproject.toml` with a `todo` console script\n"
                )
            )
        ],
        structured(status="completed", tasksCompleted=["T001", "T002"], tasksRemaining=[], questions=[], summary="ok"),
    )
    prompt = 'Execute only the "Phase 1: Setup" section (T001, T002). Do NOT work on tasks from other sections.'
    schema = json_schema(OUTPUT_MODELS["implement"])
    o = opts(codex_bin, responses_server, codex_home, sample_project, prompt, model=model, output_schema=schema)
    run = await start_run(folder(sample_project, "edit"), o)
    outcome = await run.wait()

    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.structured_output and outcome.structured_output["tasksCompleted"] == ["T001", "T002"]
    after = tasks_md.read_text()
    assert after == before.replace("- [ ] T001 ", "- [x] T001 ").replace("- [ ] T002 ", "- [x] T002 ")
    assert "1" in responses_server.responses_requests[1].tool_outputs()[-1]  # grep counted the checked task
    assert outcome.cost_usd == pytest.approx(3 * ONE_CALL)
    tail = transcript_tail(run.run_dir, n=10)
    # (gpt-5 also gets a warning item: "Model metadata for `gpt-5` not found" — shown as an error line first)
    assert [m["type"] for m in tail[-4:]] == ["assistant", "user", "assistant", "assistant"]
    assert tail[-4]["message"]["content"][0]["name"] == "exec_command"
    assert tail[-2]["message"]["content"][0]["name"] == "apply_patch"


async def test_resume_charges_the_difference_and_fork_branches(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns([Say("first")], [Say("second")], [Say("forked")])
    first = await (
        await start_run(folder(tmp_path, "a"), opts(codex_bin, responses_server, codex_home, tmp_path))
    ).wait()
    assert first.ok and first.session_id and first.cost_usd == pytest.approx(ONE_CALL)

    o = opts(
        codex_bin,
        responses_server,
        codex_home,
        tmp_path,
        "Again.",
        session_mode=SessionMode.RESUME,
        session_id=first.session_id,
    )
    second_run = await start_run(folder(tmp_path, "b"), o)
    second = await second_run.wait()
    assert second.ok and second.session_id == first.session_id and second.result_text == "second"
    # Codex's turn.completed usage is the thread's running total (2 calls); the run is charged its own call only.
    events = [json.loads(line) for line in (second_run.run_dir / "stream.jsonl").read_text().splitlines()]
    completed = [e for e in events if e["type"] == "turn.completed"][-1]
    assert completed["usage"]["input_tokens"] == 2000
    assert second.cost_usd == pytest.approx(ONE_CALL)
    assert "first" in responses_server.responses_requests[1].assistant_texts()
    # The resume kept the sandbox and the project folder: they go before the subcommand.
    argv = json.loads((second_run.run_dir / "argv.json").read_text())["argv"]
    assert argv.index("--sandbox") < argv.index("resume") and argv.index("-C") < argv.index("resume")

    o = opts(
        codex_bin,
        responses_server,
        codex_home,
        tmp_path,
        "Branch.",
        session_mode=SessionMode.FORK,
        session_id=first.session_id,
    )
    forked = await (await start_run(folder(tmp_path, "c"), o)).wait()
    assert forked.ok and forked.result_text == "forked"
    assert forked.session_id and forked.session_id != first.session_id
    assert forked.cost_usd == pytest.approx(ONE_CALL)  # the fork's thread total includes its parent's: not charged
    assert {"first", "second"} <= set(responses_server.responses_requests[2].assistant_texts())


async def test_unknown_thread_is_invalid_session_and_helper_retries_new(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    unknown = "99999999-2222-4333-8444-555555555555"
    o = opts(codex_bin, responses_server, codex_home, tmp_path, session_mode=SessionMode.RESUME, session_id=unknown)
    outcome = await (await start_run(folder(tmp_path, "bad"), o)).wait()
    assert outcome.failure is FailureKind.INVALID_SESSION, outcome.failure_message
    assert responses_server.responses_requests == []

    responses_server.add_turns(structured(name="healed", passed=True, findings=[]))
    healed = await claude_helper(
        "Heal.",
        tmp_path,
        SpecVerdict,
        preset="healing",
        session_id=unknown,
        command=codex_bin,
        env=o.env,
        agent="codex",
        extra_args=o.extra_args,
        prices=PRICES,
    )
    assert healed.ok, healed.failure_message
    assert any("retried as a new session" in w for w in healed.warnings)


async def test_not_installed_is_a_clear_error(
    codex_home: Path, responses_server: ResponsesServer, tmp_path: Path
) -> None:
    o = opts(str(tmp_path / "no-such-codex"), responses_server, codex_home, tmp_path)
    with pytest.raises(AgentRunError) as err:
        await start_run(folder(tmp_path, "missing"), o)
    assert err.value.kind is FailureKind.NOT_INSTALLED
    assert "npm install -g @openai/codex" in (err.value.hint or "")


async def test_no_key_is_auth_failed(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    o = opts(codex_bin, responses_server, codex_home, tmp_path, env=hermetic_env(codex_home, api_key=None))
    outcome = await (await start_run(folder(tmp_path, "nokey"), o)).wait()
    assert outcome.failure is FailureKind.AUTH_FAILED, outcome.failure_message
    assert "OPENAI_API_KEY" in (outcome.failure_message or "") and "codex login" in (outcome.failure_message or "")
    assert outcome.cost_usd == 0 and responses_server.responses_requests == []


async def test_rejected_key_is_auth_failed(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(*[HttpError(401, "Incorrect API key provided")] * 8)
    outcome = await (
        await start_run(folder(tmp_path, "401"), opts(codex_bin, responses_server, codex_home, tmp_path))
    ).wait()
    assert outcome.failure is FailureKind.AUTH_FAILED, outcome.failure_message


async def test_rate_limit_is_retried_inside_the_run_then_succeeds(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(HttpError(429, "Rate limit reached", "rate_limit_exceeded"), [Say("after the limit")])
    run = await start_run(folder(tmp_path, "rl"), opts(codex_bin, responses_server, codex_home, tmp_path))
    outcome = await run.wait()
    assert outcome.ok, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.result_text == "after the limit"
    assert any("rate limited: resumed 1 time" in w for w in outcome.warnings)
    assert "retry 1 of 3" in outcome.stderr_tail
    assert outcome.cost_usd == pytest.approx(ONE_CALL)


async def test_rate_limit_past_the_retries_is_rate_limited(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(*[HttpError(429, "Rate limit reached", "rate_limit_exceeded")] * 6)
    o = opts(codex_bin, responses_server, codex_home, tmp_path, rate_limit_retries=2)
    outcome = await (await start_run(folder(tmp_path, "rl2"), o)).wait()
    assert outcome.failure is FailureKind.RATE_LIMITED, outcome.failure_message
    assert len(responses_server.responses_requests) == 3  # the first try and two resumes


async def test_budget_stops_the_run_from_per_call_usage(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    # Eight tool calls, each answered after a pause: the run is stopped once three calls' cost crosses the budget.
    responses_server.add_turns(*[Delay(0.7, [Shell(f"echo step {i}")]) for i in range(8)], [Say("never reached")])
    o = opts(codex_bin, responses_server, codex_home, tmp_path, max_budget_usd=2.5 * ONE_CALL)
    outcome = await (await start_run(folder(tmp_path, "budget"), o)).wait()
    assert outcome.failure is FailureKind.BUDGET_EXCEEDED, (outcome.failure_message, outcome.stderr_tail)
    assert outcome.subtype == "error_max_budget_usd"
    assert "Stopped at its budget" in (outcome.failure_message or "")
    assert outcome.cost_usd >= 2.5 * ONE_CALL
    assert len(responses_server.responses_requests) < 8  # stopped while it worked, not at the end of the turn


async def test_unpriced_model_with_a_budget_is_refused(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    o = opts(codex_bin, responses_server, codex_home, tmp_path, model="gpt-unpriced", max_budget_usd=1.0)
    with pytest.raises(AgentRunError) as err:
        await start_run(folder(tmp_path, "unpriced"), o)
    assert err.value.kind is FailureKind.PRICE_UNKNOWN
    assert "gpt-unpriced" in str(err.value) and "price table" in str(err.value)
    assert responses_server.responses_requests == []


async def test_stall_is_reported_and_a_detached_run_is_adopted(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(Delay(3.0, [Say("slow answer")]))
    run = await start_run(folder(tmp_path, "slow"), opts(codex_bin, responses_server, codex_home, tmp_path))
    # A "new host" adopts the live run from its folder (pid + creation time), as after a server restart.
    adopted = attach_run(run.run_dir)
    assert adopted is not None and adopted.pid == run.pid
    stalls: list[float] = []
    outcome = await adopted.wait(stale_after=1.0, on_stall=lambda: stalls.append(1.0))
    assert outcome.ok and outcome.result_text == "slow answer"
    assert stalls  # three silent seconds with stale_after=1
    assert outcome.exit_code == 0  # the exit recorder told the adopting host how the run ended


async def test_kill_is_cancelled(
    codex_bin: str, responses_server: ResponsesServer, codex_home: Path, tmp_path: Path
) -> None:
    responses_server.add_turns(Delay(20.0, [Say("too late")]))
    run = await start_run(folder(tmp_path, "kill"), opts(codex_bin, responses_server, codex_home, tmp_path))
    with anyio.fail_after(30):
        while not (run.run_dir / "stream.jsonl").stat().st_size:
            await anyio.sleep(0.1)
        await run.kill(reason=FailureKind.CANCELLED)
        outcome = await run.wait()
    assert outcome.failure is FailureKind.CANCELLED


def test_server_refuses_loose_schema_directly(codex_bin: str, codex_home: Path, tmp_path: Path) -> None:
    """The scripted server's strictness check, seen by the real CLI without the runner in between."""
    with ResponsesServer(idle_timeout=60) as server:
        server.add_turns(structured(a=1))
        schema = tmp_path / "s.json"
        schema.write_text(json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}}))
        argv = [codex_bin, "exec", "--json", "--skip-git-repo-check", "-C", str(tmp_path), *provider_args(server.url)]
        proc = subprocess.run(
            [*argv, "--output-schema", str(schema), "-"],
            input="hi",
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **hermetic_env(codex_home)},
        )
    assert proc.returncode == 1
    failed = [json.loads(line) for line in proc.stdout.splitlines() if '"turn.failed"' in line]
    assert failed and "invalid_json_schema" in failed[0]["error"]["message"]
