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
TASK_ID_RE = re.compile(r"\bT\d{3,}[a-z]?\b")
TASK_LINE_RE = re.compile(r"^(\s*[-*]\s+\[)([ ])(\]\s+)(T\d{3,}[a-z]?)\b")
DEMO_VERSION = "demo-agent"
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
# Output in Claude Code's shapes


class Emitter:
    def __init__(self, fmt: str, session_id: str, delay: float = 0.0) -> None:
        self.fmt = fmt
        self.session_id = session_id
        self.delay = delay
        self._msg = 0

    def line(self, obj: dict[str, Any]) -> None:
        if self.fmt == "stream-json" or obj.get("type") == "result":
            if self.fmt == "text" and obj.get("type") == "result":
                sys.stdout.write(str(obj.get("result") or "") + "\n")
            else:
                sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            if self.delay:
                time.sleep(self.delay)

    def raw(self, data: bytes) -> None:
        if self.fmt == "stream-json":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

    def init(self, cwd: str, model: str, tools: list[str]) -> None:
        self.line(
            {
                "type": "system",
                "subtype": "init",
                "cwd": cwd,
                "session_id": self.session_id,
                "tools": tools,
                "mcp_servers": [],
                "model": model,
                "permissionMode": "acceptEdits",
                "slash_commands": [],
                "apiKeySource": "none",
                "claude_code_version": DEMO_VERSION,
                "output_style": "default",
                "agents": [],
                "skills": [],
                "plugins": [],
                "uuid": str(uuid.uuid4()),
            }
        )

    def assistant(self, model: str, content: list[dict[str, Any]], error: str | None = None) -> None:
        self._msg += 1
        obj: dict[str, Any] = {
            "type": "assistant",
            "message": {
                "id": f"msg_demo_{self._msg}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 5},
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": str(uuid.uuid4()),
        }
        if error:
            obj["error"] = error
        self.line(obj)

    def tool(self, model: str, name: str, tool_input: dict[str, Any], result: str) -> None:
        tool_id = f"toolu_demo_{uuid.uuid4().hex[:12]}"
        self.assistant(model, [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}])
        self.line(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": result}],
                },
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": str(uuid.uuid4()),
            }
        )

    def result(
        self,
        *,
        subtype: str = "success",
        is_error: bool = False,
        result: str | None,
        cost: float,
        turns: int,
        started: float,
        structured: Any = None,
        errors: list[str] | None = None,
    ) -> None:
        obj: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "duration_api_ms": 0,
            "num_turns": turns,
            "session_id": self.session_id,
            "total_cost_usd": cost,
            "usage": {"input_tokens": 12 * turns, "output_tokens": 5 * turns},
            "modelUsage": {},
            "permission_denials": [],
            "uuid": str(uuid.uuid4()),
        }
        if result is not None:
            obj["result"] = result
        if structured is not None:
            obj["structured_output"] = structured
        if errors:
            obj["errors"] = errors
        self.line(obj)


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
DIAGNOSIS_HEADING = "# Diagnose a stopped orchestration"
_FOLDER_RE = re.compile(r"`([^`]*\.specflow/workflows/[^`/]+)/stream\.jsonl`")
_OPTIONS_RE = re.compile(r"The person may choose: ([a-z, ]+?) \(")
_UNCHECKED_RE = re.compile(r"Tasks still unchecked[^:]*: ([^.]*)\.")


def is_diagnosis(prompt: str) -> bool:
    return prompt.lstrip().startswith(DIAGNOSIS_HEADING)


def _last_result(stream: Path) -> dict[str, Any] | None:
    try:
        lines = stream.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            return obj
    return None


def diagnose(cwd: Path, prompt: str, emit: Emitter, model: str) -> dict[str, Any]:
    """Read the failed run's stderr.log and transcript (as the real helper would) and write a short diagnosis."""
    found = _FOLDER_RE.search(prompt)
    folder = cwd / found.group(1) if found else None
    options_found = _OPTIONS_RE.search(prompt)
    options = [o.strip() for o in options_found.group(1).split(",")] if options_found else ["retry", "abort"]
    unchecked_found = _UNCHECKED_RE.search(prompt)
    unchecked = TASK_ID_RE.findall(unchecked_found.group(1)) if unchecked_found else []
    stderr_text, result = "", None
    if folder is not None:
        stderr = folder / "stderr.log"
        if stderr.exists():
            stderr_text = stderr.read_text(encoding="utf-8", errors="replace").strip()
            emit.tool(model, "Read", {"file_path": str(stderr)}, stderr_text[-2000:] or "(empty)")
        stream = folder / "stream.jsonl"
        if stream.exists():
            result = _last_result(stream)
            emit.tool(model, "Read", {"file_path": str(stream)}, json.dumps(result)[:2000] if result else "(no result)")
    if stderr_text:
        last = stderr_text.splitlines()[-1][:200]
        text = (
            f"DEMO diagnosis: the run failed with an error in stderr.log ({last}). The work itself was not the "
            "problem: the agent process stopped before it finished."
        )
        return {"diagnosis": text, "suggestion": "fix", "fix": f"Fix what stderr.log reports ({last}), then retry."}
    if unchecked:
        ended = "ended normally" if result and not result.get("is_error") else "ended early"
        text = (
            f"DEMO diagnosis: the run {ended} but left {', '.join(unchecked)} unchecked in tasks.md: it stopped "
            "half-way. stderr.log is empty, so nothing in the environment is broken; running it again is likely to "
            "finish the remaining tasks."
        )
        suggestion = "retry" if "retry" in options else options[0]
        return {"diagnosis": text, "suggestion": suggestion, "fix": None}
    text = "DEMO diagnosis: the transcript shows no error and no task left; the step's check failed. Look at it again."
    return {"diagnosis": text, "suggestion": "retry" if "retry" in options else options[0], "fix": None}


# --------------------------------------------------------------------------------------------------------------
# Structured output: fill any JSON schema sensibly


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return _resolve(node, root) if isinstance(node, dict) else {}
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _resolve({**{k: v for k, v in schema.items() if k != key}, **options[0]}, root)
    return schema


_PREFERRED_ENUM = ("fixed", "completed", "complete", "passed", "success", "done", "ok", "continue", "proceed")


def fill(schema: dict[str, Any], hints: dict[str, Any], root: dict[str, Any] | None = None, name: str = "") -> Any:
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if _norm(name) in hints:
        return hints[_norm(name)]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        for choice in _PREFERRED_ENUM:
            if choice in schema["enum"]:
                return choice
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        wanted = list(schema.get("required", []))
        wanted += [k for k in props if _norm(k) in hints and k not in wanted]
        return {k: fill(props.get(k, {}), hints, root, k) for k in wanted}
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    if kind == "integer":
        return 0
    if kind == "number":
        return 0.0
    return f"DEMO agent {name or 'value'}"


_ANSWERS_RE = re.compile(r"^Answers to your questions:\n((?:- .*\n?)+)", re.MULTILINE)
VERIFY_QUESTION = "DEMO agent question: the spec does not say what happens without a config file; accept that?"


def answers_in(prompt: str) -> dict[str, str]:
    """The answers a resumed run's prompt carries (``- question: answer`` lines), empty when it has none."""
    found = _ANSWERS_RE.search(prompt)
    pairs = (line[2:].partition(": ") for line in found.group(1).splitlines()) if found else ()
    return {q: a for q, sep, a in pairs if sep}


def is_verify_schema(schema: dict[str, Any]) -> bool:
    return "passed" in _resolve(schema, schema).get("properties", {})


def structured_output(schema: dict[str, Any], done: dict[str, Any], scenario: str, prompt: str) -> Any:
    checked, remaining = done["checked"], done["remaining"]
    summary = f"DEMO agent: checked {', '.join(checked) or 'no tasks'}" + (
        f"; left {', '.join(remaining)}" if remaining else ""
    )
    answers = answers_in(prompt)
    verify = is_verify_schema(schema)
    if answers:  # the answers decide: a verify answered "no" fails, anything else passes
        summary += "; answers used: " + "; ".join(f"{q} = {a}" for q, a in answers.items())
    hints: dict[str, Any] = {
        "passed": True,
        "success": True,
        "fixed": True,
        "completed": True,
        "needsinput": False,
        "summary": summary,
        "reason": summary,
        "message": summary,
    }
    if verify and any(a.strip().lower().startswith("no") for a in answers.values()):
        hints["passed"] = False
        hints["failures"] = [f"DEMO agent: not accepted as answered ({q}: {a})" for q, a in answers.items()]
    props = _resolve(schema, schema).get("properties", {})
    for key, prop in props.items():
        n, prop = _norm(key), _resolve(prop, schema)
        if n in ("taskscompleted", "completedtasks", "tasksdone"):
            hints[n] = len(checked) if prop.get("type") in ("integer", "number") else checked
        if n in ("tasksremaining", "remainingtasks"):
            hints[n] = len(remaining) if prop.get("type") in ("integer", "number") else remaining
    if scenario == "needs_input":
        hints["needsinput"] = True
        hints["status"] = "needs_input"
        item = _resolve(_resolve(props.get("questions", {}), schema).get("items", {}), schema)
        question = VERIFY_QUESTION if verify else "DEMO agent question: which storage format should the feature use?"
        if verify:
            hints["passed"] = False  # a verify that asks gives no verdict
        if item.get("type") == "object" or "properties" in item:
            q = fill(item, {"question": question, "text": question, "id": "q1"}, schema)
        else:
            q = question
        hints["questions"] = [q]
        status = _resolve(props.get("status", {}), schema)
        if status.get("enum") and "needs_input" not in status["enum"]:
            hints.pop("status")
    value = fill(schema, hints)
    if isinstance(value, dict) and scenario == "needs_input":
        # Present even when the schema does not declare them, so a caller can always see the questions.
        value.setdefault("needs_input", True)
        value.setdefault("questions", hints["questions"])
    return value


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
