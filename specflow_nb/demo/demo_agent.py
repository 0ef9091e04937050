"""specflow-nb DEMO agent: a stand-in for ``claude -p`` that needs no account, no network and no model.

It is NOT Claude Code. It accepts the same command line as ``claude -p --output-format stream-json --verbose``
(flags it does not need are ignored), reads the prompt on stdin, prints Claude Code's stream-json lines (system
init, assistant text/tool_use, user tool_result, the final result with ``total_cost_usd``, ``num_turns``,
``session_id`` and ``structured_output`` when ``--json-schema`` is given) and acts on the project like an agent:

* a prompt naming task ids (``T001``…) checks those tasks in the active feature's tasks.md (``specs/*/tasks.md``,
  newest folder) — only the checkbox character changes — and writes ``.demo_agent/<task>.md`` per task;
* a design prompt with no task ids writes spec.md, plan.md and tasks.md when they are missing;
* a decision-helper prompt (the diagnosis at needs_attention, ``# Diagnose a stopped orchestration``) reads the
  failed run's stderr.log and transcript and answers a short plausible diagnosis with a suggested option; only
  script rules marked ``"diagnosis": true`` choose its scenario (the defaults and run counters are the other
  runs');
* anything else (analyze, verify) only reads.

Behaviour is chosen per run (see ``specflow-nb-demo-agent --help``):

``SPECFLOW_DEMO_SCENARIO``  success (default) | partial | crash | hang | stubborn_hang | slow | auth_error |
                            budget_error | max_turns_error | no_structured_output | invalid_json_line |
                            needs_input | huge_output | verify_question
                            (``verify_question``: the verify run asks whether to accept a gap in the spec — unless
                            its prompt already carries answers — and every other run succeeds; an answer starting
                            with "no" fails verify, any other passes it)
``SPECFLOW_DEMO_SCRIPT``    a JSON file of rules choosing the scenario per run (first match wins)::

                                {"default": "success",
                                 "rules": [{"match": "Phase 2", "run": 1, "scenario": "partial", "cost": 0.2}]}

                            (a bare list of rules works too). ``match``: a substring of the prompt; ``run``: the
                            n-th run (1-based) whose prompt contained ``match`` — or the n-th run overall when no
                            ``match`` is given; ``cost``: this run's cost; ``diagnosis``: true for a rule of the
                            decision helper's runs (the diagnosis; they follow no other rule).
``SPECFLOW_DEMO_COST``      cost per run in USD (default 0.01); above ``--max-budget-usd`` the run fails like the real
                            budget cap (``error_max_budget_usd``)
``SPECFLOW_DEMO_DELAY``     seconds between output lines for ``slow`` (default 0.5)
``SPECFLOW_DEMO_HUGE_BYTES`` size of the long line of ``huge_output`` (default 20 MiB)
``SPECFLOW_DEMO_LOG``       a file to which one JSON line per run is appended (pid, prompt head, task ids, scenario,
                            session) so tests can count runs

Known sessions (for ``--resume``) and run counters live in ``<cwd>/.specflow/demo_agent_sessions.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from filelock import FileLock

from specflow_nb.demo.diagnosis import DIAGNOSIS_HEADING, TASK_ID_RE, diagnose, is_diagnosis
from specflow_nb.demo.emitter import DEMO_VERSION, Emitter
from specflow_nb.demo.schema_fill import VERIFY_QUESTION, answers_in, fill, is_verify_schema, structured_output

__all__ = [
    "DEMO_VERSION",
    "DIAGNOSIS_HEADING",
    "SCENARIOS",
    "VERIFY_QUESTION",
    "Emitter",
    "check_tasks",
    "fill",
    "main",
    "structured_output",
    "task_ids_in",
]

SCENARIOS = (
    "success",
    "partial",
    "crash",
    "hang",
    "stubborn_hang",
    "slow",
    "auth_error",
    "budget_error",
    "max_turns_error",
    "no_structured_output",
    "invalid_json_line",
    "needs_input",
    "huge_output",
    "verify_question",
)
TASK_LINE_RE = re.compile(r"^(\s*[-*]\s+\[)([ ])(\]\s+)(T\d{3,}[a-z]?)\b")
STATE_FILE = Path(".specflow") / "demo_agent_sessions.json"


# --------------------------------------------------------------------------------------------------------------
# Command line (the subset of `claude` that matters; the rest is accepted and ignored)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="specflow-nb-demo-agent",
        description="specflow-nb DEMO agent: speaks Claude Code's print-mode protocol with scripted behaviour "
        "(no model, no network). Scenarios: " + ", ".join(SCENARIOS) + ". See the module docstring for env vars.",
        allow_abbrev=False,
    )
    p.add_argument("prompt", nargs="?", help="the prompt (default: read from stdin)")
    p.add_argument("-p", "--print", action="store_true")
    p.add_argument("--output-format", default="text", choices=["text", "json", "stream-json"])
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--json-schema")
    p.add_argument("-r", "--resume")
    p.add_argument("--fork-session", action="store_true")
    p.add_argument("--session-id")
    p.add_argument("--no-session-persistence", action="store_true")
    p.add_argument("--max-budget-usd", type=float)
    p.add_argument("--max-turns", type=int)
    p.add_argument("--model")
    # Accepted so their values are not mistaken for the prompt; the demo agent does not need them.
    for flag in (
        "--fallback-model",
        "--permission-mode",
        "--append-system-prompt",
        "--system-prompt",
        "--settings",
        "--input-format",
        "--effort",
        "--agent",
        "--agents",
        "--setting-sources",
    ):
        p.add_argument(flag)
    for flag in ("--allowedTools", "--allowed-tools", "--disallowedTools", "--disallowed-tools", "--tools"):
        p.add_argument(flag, action="append")
    for flag in ("--add-dir", "--mcp-config", "--betas"):
        p.add_argument(flag, nargs="*")
    for flag in ("--dangerously-skip-permissions", "--include-partial-messages", "--strict-mcp-config", "--bare"):
        p.add_argument(flag, action="store_true")
    return p


# --------------------------------------------------------------------------------------------------------------
# State: known sessions and per-rule run counters


class State:
    def __init__(self, cwd: Path) -> None:
        self.path = cwd / STATE_FILE
        self.lock = FileLock(str(self.path) + ".lock", timeout=30)

    def update(self, fn: Any) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            try:
                data = json.loads(self.path.read_text())
            except (FileNotFoundError, ValueError):
                data = {}
            data.setdefault("sessions", {})
            data.setdefault("runs", 0)
            data.setdefault("matchCounts", {})
            out = fn(data)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, self.path)
            return out


def _load_script() -> tuple[list[dict[str, Any]], str | None]:
    path = os.environ.get("SPECFLOW_DEMO_SCRIPT")
    if not path:
        return [], None
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        return data, None
    return list(data.get("rules", [])), data.get("default")


def choose_scenario(prompt: str, state: State) -> tuple[str, float | None]:
    """The scenario (and cost override) of this run: first matching script rule, else the env/default.

    A decision-helper run (the diagnosis) follows only rules marked ``"diagnosis": true`` (else it succeeds), and
    is counted apart: it never shifts the counters of the other rules."""
    rules, default = _load_script()
    diagnosis = is_diagnosis(prompt)
    rules = [r for r in rules if bool(r.get("diagnosis")) == diagnosis]
    if diagnosis:
        default = "success"
    prefix = "diagnosis:" if diagnosis else ""
    matches = sorted({r["match"] for r in rules if r.get("match")})

    def count(data: dict[str, Any]) -> tuple[int, dict[str, int]]:
        data.setdefault("diagnosisRuns", 0)
        data["diagnosisRuns" if diagnosis else "runs"] += 1
        for m in matches:
            if m in prompt:
                data["matchCounts"][prefix + m] = data["matchCounts"].get(prefix + m, 0) + 1
        return data["diagnosisRuns" if diagnosis else "runs"], dict(data["matchCounts"])

    run_no, counts = state.update(count)
    for rule in rules:
        sub = rule.get("match")
        if sub and sub not in prompt:
            continue
        nth = counts.get(prefix + sub, 0) if sub else run_no
        if rule.get("run") is not None and int(rule["run"]) != nth:
            continue
        return str(rule.get("scenario", "success")), rule.get("cost")
    if diagnosis:
        return "success", None
    return default or os.environ.get("SPECFLOW_DEMO_SCENARIO") or "success", None


# --------------------------------------------------------------------------------------------------------------
# Acting on the project


def active_feature(cwd: Path) -> Path | None:
    folders = sorted(p for p in (cwd / "specs").glob("*") if p.is_dir()) if (cwd / "specs").is_dir() else []
    return folders[-1] if folders else None


def check_tasks(tasks_md: Path, ids: list[str]) -> list[str]:
    """Check the pending tasks ``ids`` in tasks.md, changing only their checkbox character; returns those checked."""
    with tasks_md.open(encoding="utf-8", newline="") as f:
        lines = f.read().splitlines(keepends=True)
    wanted, checked, in_fence = set(ids), [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        m = None if in_fence else TASK_LINE_RE.match(line)
        if m and m.group(4) in wanted:
            lines[i] = line[: m.start(2)] + "x" + line[m.end(2) :]
            checked.append(m.group(4))
    if checked:
        with tasks_md.open("w", encoding="utf-8", newline="") as f:
            f.write("".join(lines))
    return checked


_BATCH_RE = re.compile(r'Execute only the ".*?" section \(([^)]*)\)', re.DOTALL)
_HEAL_RE = re.compile(r'Complete only these remaining tasks of the ".*?" section: ([^.]*)\.', re.DOTALL)


def task_ids_in(prompt: str) -> list[str]:
    """The tasks to work on: the ids of an implement batch sentence or a healer's remaining-tasks sentence.

    Other prompts (design, analyze, verify) may show example ids such as ``T001`` in their instructions: those are
    not work orders, so the agent checks nothing for them.
    """
    found = _BATCH_RE.search(prompt) or _HEAL_RE.search(prompt)
    return list(dict.fromkeys(TASK_ID_RE.findall(found.group(1)))) if found else []


_DESIGN_WORDS = re.compile(r"\b(design|specify|spec\.md|plan\.md|tasks\.md)\b", re.IGNORECASE)

DEMO_SPEC = "# Feature: demo feature\n\nWritten by the specflow-nb DEMO agent.\n\n## Requirements\n\n- It works.\n"
DEMO_PLAN = "# Plan: demo feature\n\nWritten by the specflow-nb DEMO agent.\n"
DEMO_TASKS = (
    "# Tasks: demo feature\n\n## Phase 1: Setup\n\n- [ ] T001 Create the demo module\n"
    "- [ ] T002 [P] Add a demo test\n\n## Phase 2: Core\n\n- [ ] T003 Implement the demo feature\n"
)


def act(cwd: Path, prompt: str, emit: Emitter, model: str, scenario: str) -> dict[str, Any]:
    """Do the prompt's work as the scenario allows; returns what was done (for the result and structured output)."""
    ids = task_ids_in(prompt)
    done: dict[str, Any] = {"taskIds": ids, "checked": [], "remaining": [], "wrote": []}
    feature = active_feature(cwd)
    if ids:
        tasks_md = feature / "tasks.md" if feature else None
        if tasks_md is None or not tasks_md.exists():
            emit.assistant(model, [{"type": "text", "text": "DEMO agent: no tasks.md found in specs/*/."}])
            done["remaining"] = ids
            return done
        # an agent that needs input asks before it does the work (its answers decide how)
        todo = ids[: len(ids) // 2] if scenario == "partial" else [] if scenario == "needs_input" else ids
        emit.tool(model, "Read", {"file_path": str(tasks_md)}, tasks_md.read_text(encoding="utf-8")[:2000])
        for task in todo:
            note = cwd / ".demo_agent" / f"{task}.md"
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(f"# {task}\n\nDone by the specflow-nb DEMO agent (no real work).\n", encoding="utf-8")
            emit.tool(model, "Write", {"file_path": str(note), "content": "…"}, f"File created successfully at: {note}")
            done["wrote"].append(str(note.relative_to(cwd)))
            if check_tasks(tasks_md, [task]):
                done["checked"].append(task)
                emit.tool(
                    model,
                    "Edit",
                    {"file_path": str(tasks_md), "old_string": f"[ ] {task}", "new_string": f"[x] {task}"},
                    f"The file {tasks_md} has been updated successfully.",
                )
        done["remaining"] = [t for t in ids if t not in done["checked"]]
        return done
    if _DESIGN_WORDS.search(prompt):
        feature = feature or cwd / "specs" / "0001-demo-feature"
        feature.mkdir(parents=True, exist_ok=True)
        for name, body in (("spec.md", DEMO_SPEC), ("plan.md", DEMO_PLAN), ("tasks.md", DEMO_TASKS)):
            path = feature / name
            if not path.exists():
                path.write_text(body, encoding="utf-8")
                emit.tool(model, "Write", {"file_path": str(path), "content": body}, f"File created: {path}")
                done["wrote"].append(str(path.relative_to(cwd)))
    return done


# --------------------------------------------------------------------------------------------------------------
# The decision helper: a diagnosis at needs_attention

#: The first line of specflow_nb's diagnosis prompt (``specflow_nb.agent.helper.DIAGNOSIS_HEADING``).


# --------------------------------------------------------------------------------------------------------------
# The run


def _log_run(record: dict[str, Any]) -> None:
    path = os.environ.get("SPECFLOW_DEMO_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    args, _unknown = _parser().parse_known_args(argv)
    started = time.monotonic()
    if args.output_format == "stream-json" and not args.verbose:
        sys.stderr.write("Error: When using --print, --output-format=stream-json requires --verbose\n")
        return 1
    bypass = args.dangerously_skip_permissions or args.permission_mode == "bypassPermissions"
    if bypass and hasattr(os, "geteuid") and os.geteuid() == 0 and not os.environ.get("IS_SANDBOX"):
        # The real CLI's refusal, word for word, so the runner's handling of it is tested without the real CLI.
        sys.stderr.write(
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n"
        )
        return 1
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    cwd = Path.cwd()
    state = State(cwd)
    scenario, cost_override = choose_scenario(prompt, state)
    if scenario == "verify_question":
        asks = bool(args.json_schema) and is_verify_schema(json.loads(args.json_schema)) and not answers_in(prompt)
        scenario = "needs_input" if asks else "success"
    if scenario not in SCENARIOS:
        sys.stderr.write(
            f"specflow-nb demo agent: unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}\n"
        )
        return 2
    cost = float(cost_override if cost_override is not None else os.environ.get("SPECFLOW_DEMO_COST", "0.01"))
    model = args.model or "demo-sonnet"

    # Sessions, as the real CLI checks them.
    def sessions(data: dict[str, Any]) -> tuple[str | None, str | None]:
        known = data["sessions"]
        if args.resume:
            if args.resume not in known:
                return None, f"No conversation found with session ID: {args.resume}"
            sid = str(uuid.uuid4()) if args.fork_session else args.resume
        elif args.session_id:
            if args.session_id in known:
                return None, f"Error: Session ID {args.session_id} is already in use."
            sid = args.session_id
        else:
            sid = str(uuid.uuid4())
        if not args.no_session_persistence:
            known[sid] = {"parent": args.resume, "createdAt": time.time()}
        return sid, None

    session_id, session_error = state.update(sessions)
    _log_run(
        {
            "pid": os.getpid(),
            "promptHead": prompt[:300],
            "taskIds": task_ids_in(prompt),
            "scenario": scenario,
            "diagnosis": is_diagnosis(prompt),
            "sessionId": session_id,
            "resume": args.resume,
            "fork": args.fork_session,
            "cwd": str(cwd),
            "answers": answers_in(prompt),
        }
    )
    if session_error is not None:
        sys.stderr.write(session_error + "\n")
        if args.resume and args.output_format != "text":
            Emitter(args.output_format, args.resume).result(
                subtype="error_during_execution",
                is_error=True,
                result=None,
                cost=0,
                turns=0,
                started=started,
                errors=[session_error],
            )
        return 1
    assert session_id is not None
    delay = float(os.environ.get("SPECFLOW_DEMO_DELAY", "0.5")) if scenario == "slow" else 0.0
    emit = Emitter(args.output_format, session_id, delay)
    emit.init(str(cwd), model, ["Bash", "Edit", "Glob", "Grep", "Read", "Write"])

    if scenario == "auth_error":
        text = "Not logged in · Please run /login"
        emit.assistant("<synthetic>", [{"type": "text", "text": text}], error="authentication_failed")
        emit.result(is_error=True, result=text, cost=0, turns=1, started=started)
        return 1
    if scenario == "crash":
        emit.assistant(model, [{"type": "text", "text": "DEMO agent: starting, then crashing on purpose."}])
        sys.stderr.write("specflow-nb demo agent: simulated crash (scenario 'crash')\n")
        return 1
    if scenario in ("hang", "stubborn_hang"):
        if scenario == "stubborn_hang":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends it: tests the escalation
        emit.assistant(model, [{"type": "text", "text": "DEMO agent: hanging until killed."}])
        while True:
            time.sleep(3600)
    if scenario == "budget_error" or (args.max_budget_usd is not None and cost > args.max_budget_usd):
        cap = args.max_budget_usd if args.max_budget_usd is not None else cost / 2
        emit.assistant(model, [{"type": "text", "text": "DEMO agent: working…"}])
        emit.result(
            subtype="error_max_budget_usd",
            is_error=True,
            result=None,
            cost=cost,
            turns=1,
            started=started,
            errors=[f"Reached maximum budget (${cap:g})"],
        )
        return 1
    if scenario == "max_turns_error":
        emit.assistant(model, [{"type": "text", "text": "DEMO agent: working…"}])
        turns = args.max_turns or 1
        emit.result(
            subtype="error_max_turns",
            is_error=True,
            result=None,
            cost=cost,
            turns=turns + 1,
            started=started,
            errors=[f"Reached maximum number of turns ({turns})"],
        )
        return 1

    emit.assistant(model, [{"type": "text", "text": f"DEMO agent ({scenario}): working on the prompt."}])
    if scenario == "invalid_json_line":
        emit.raw(b"this is not JSON \xff\xfe (DEMO agent scenario invalid_json_line)\n")
    if scenario == "huge_output":
        size = int(os.environ.get("SPECFLOW_DEMO_HUGE_BYTES", str(20 * 1024 * 1024)))
        emit.assistant(model, [{"type": "text", "text": "x" * size}])
    if is_diagnosis(prompt):
        answer = diagnose(cwd, prompt, emit, model)
        done: dict[str, Any] = {"taskIds": [], "checked": [], "remaining": [], "wrote": []}
        structured = answer if args.json_schema and scenario != "no_structured_output" else None
        if structured is not None:
            emit.tool(model, "StructuredOutput", structured, "Structured output provided successfully")
        else:
            emit.assistant(model, [{"type": "text", "text": answer["diagnosis"]}])
    else:
        done = act(cwd, prompt, emit, model, scenario)
        structured = None
        if args.json_schema and scenario != "no_structured_output":
            structured = structured_output(json.loads(args.json_schema), done, scenario, prompt)
            emit.tool(model, "StructuredOutput", structured, "Structured output provided successfully")
    text = f"DEMO agent ({scenario}): " + (
        f"checked {', '.join(done['checked']) or 'no tasks'}"
        + (f", left {', '.join(done['remaining'])}" if done["remaining"] else "")
        if done["taskIds"]
        else (f"wrote {', '.join(done['wrote'])}" if done["wrote"] else "done")
    )
    emit.assistant(model, [{"type": "text", "text": text}])
    turns = max(1, math.ceil(len(done["wrote"]) / 2) + 1)
    emit.result(
        result=json.dumps(structured) if structured is not None else text,
        cost=cost,
        turns=turns,
        started=started,
        structured=structured,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
