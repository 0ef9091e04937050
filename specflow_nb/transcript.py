"""A run's transcript a person reads: prompt, the agent's text, tool calls and results (shortened), the final result
and cost, the stderr tail — built from the run folder (``prompt.md``, ``stream.jsonl``, ``stderr.log``,
``outcome.json``) by any host, secrets redacted (:mod:`specflow_nb.redact`).

Served by ``GET workflow/orchestrate/transcript`` only to users who may read the project's files; a specflow-only
observer gets ``available: false`` (it learns the run exists, and where its folder is, nothing of its content).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from specflow_nb.activity import describe_tool
from specflow_nb.agent.stream import iter_events
from specflow_nb.models import CamelModel

PROMPT_CHARS = 6000
TEXT_CHARS = 4000
TOOL_INPUT_CHARS = 600
TOOL_RESULT_CHARS = 800
STDERR_CHARS = 3000
MAX_ENTRIES = 400
#: The run's folder, relative to its project.
WORKFLOWS = ".specflow/workflows"


class TranscriptEntry(CamelModel):
    """One step of the run: ``kind`` is text, tool, tool_result, error or result."""

    kind: str
    title: str
    body: str = ""
    truncated: bool = False


class Transcript(CamelModel):
    run_id: str
    project_id: str = ""
    #: The run's folder relative to the project (``.specflow/workflows/<run id>``), where stderr.log and the raw
    #: stream are.
    folder: str
    available: bool = True
    reason: str | None = Field(None, description="Why the content is not shown (no permission, no such run).")
    agent: str = "claude"
    prompt: str = ""
    entries: list[TranscriptEntry] = Field(default_factory=list)
    omitted_entries: int = 0
    result: str | None = None
    is_error: bool | None = None
    cost_usd: float | None = None
    turns: int | None = None
    duration_ms: int | None = None
    failure: str | None = None
    stderr_tail: str = ""


def _clip(text: str, limit: int) -> tuple[str, bool]:
    text = str(text or "")
    if len(text) <= limit:
        return text, False
    return text[: limit - 1] + f"… ({len(text) - limit + 1} more characters)", True


def _read(path: Path, limit: int | None = None, *, tail: bool = False) -> str:
    try:
        with path.open("rb") as f:
            if limit is not None and tail:
                size = f.seek(0, 2)
                f.seek(max(0, size - limit))
            data = f.read(limit if limit is not None else -1)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") == "text")
    return str(content or "")


def _messages(folder: Path, agent: str) -> list[dict[str, Any]]:
    if agent == "codex":
        from specflow_nb.agent.codex import transcript_events

        return transcript_events(folder)
    return [e.model_dump(mode="json", by_alias=True) for e in iter_events(folder / "stream.jsonl")]


def _fallback_redact(value: Any) -> Any:
    """Values (8+ characters) of the server's KEY/TOKEN/SECRET/PASSWORD/CREDENTIAL variables → ``***``."""
    import os
    import re

    names = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
    secrets = sorted({v for k, v in os.environ.items() if names.search(k) and len(v) >= 8}, key=len, reverse=True)
    if not secrets:
        return value
    pattern = re.compile("|".join(re.escape(s) for s in secrets))

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return pattern.sub("***", v)
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def _redact(value: Any) -> Any:
    """The server's redaction (:mod:`specflow_nb.redact`: its environment's secrets and ``agent_env``)."""
    try:
        from specflow_nb.redact import redact_data
    except ImportError:  # the redaction module of the security work: until it is there, the same rule by hand
        return _fallback_redact(value)
    return _fallback_redact(redact_data(value))


def build(project: Path, run_id: str, project_id: str = "") -> Transcript:
    """The transcript of run ``run_id`` of ``project`` (``available: false`` when its folder does not exist)."""
    folder = Path(project) / WORKFLOWS / run_id
    rel = f"{WORKFLOWS}/{run_id}"
    inside = folder.resolve().is_relative_to(Path(project).resolve() / WORKFLOWS)  # no link out of the project
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith(".") or not folder.is_dir() or not inside:
        return Transcript(run_id=run_id, project_id=project_id, folder=rel, available=False, reason="No such run.")
    argv = {}
    try:
        argv = json.loads(_read(folder / "argv.json") or "{}")
    except ValueError:
        argv = {}
    agent = str(argv.get("agent") or "claude") if isinstance(argv, dict) else "claude"
    prompt, _ = _clip(_read(folder / "prompt.md", PROMPT_CHARS * 2), PROMPT_CHARS)
    t = Transcript(run_id=run_id, project_id=project_id, folder=rel, agent=agent, prompt=prompt)
    entries: list[TranscriptEntry] = []
    names: dict[str, str] = {}
    for msg in _messages(folder, agent):
        kind = msg.get("type")
        content = (msg.get("message") or {}).get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if kind == "assistant":
            if msg.get("error"):
                entries.append(TranscriptEntry(kind="error", title=f"Error: {msg['error']}"))
            for b in blocks:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "text" and str(b.get("text") or "").strip():
                    body, cut = _clip(b["text"], TEXT_CHARS)
                    entries.append(TranscriptEntry(kind="text", title="Agent", body=body, truncated=cut))
                elif b.get("type") == "tool_use":
                    name = str(b.get("name") or "tool")
                    names[str(b.get("id"))] = name
                    body, cut = _clip(json.dumps(b.get("input"), indent=1, default=str), TOOL_INPUT_CHARS)
                    title = describe_tool(name, b.get("input"), Path(project))
                    entries.append(TranscriptEntry(kind="tool", title=title, body=body, truncated=cut))
        elif kind == "user":
            for b in blocks:
                if isinstance(b, dict) and b.get("type") == "tool_result":
                    body, cut = _clip(_result_text(b.get("content")), TOOL_RESULT_CHARS)
                    name = names.get(str(b.get("tool_use_id")), "the tool")
                    failed = bool(b.get("is_error"))
                    title = f"{name} failed" if failed else f"{name} result"
                    entries.append(
                        TranscriptEntry(
                            kind="error" if failed else "tool_result", title=title, body=body, truncated=cut
                        )
                    )
        elif kind == "result":
            t.result, _ = _clip(str(msg.get("result") or ""), TEXT_CHARS)
            t.is_error = bool(msg.get("is_error"))
            t.cost_usd = float(msg.get("total_cost_usd") or 0.0)
            t.turns = int(msg.get("num_turns") or 0)
            t.duration_ms = msg.get("duration_ms") if isinstance(msg.get("duration_ms"), int) else None
    outcome: dict[str, Any] = {}
    try:
        outcome = json.loads(_read(folder / "outcome.json") or "{}")
    except ValueError:
        outcome = {}
    if isinstance(outcome, dict) and outcome:
        t.failure = outcome.get("failure") or None
        if t.cost_usd is None and isinstance(outcome.get("costUsd"), (int, float)):
            t.cost_usd = float(outcome["costUsd"])
        if t.is_error is None and "isError" in outcome:
            t.is_error = bool(outcome.get("isError"))
        if t.failure and not t.result:
            t.result = str(outcome.get("message") or "") or None
    if len(entries) > MAX_ENTRIES:
        t.omitted_entries = len(entries) - MAX_ENTRIES
        entries = entries[:50] + entries[-(MAX_ENTRIES - 50) :]
    t.entries = entries
    t.stderr_tail = _read(folder / "stderr.log", STDERR_CHARS, tail=True)
    return Transcript.model_validate(_redact(t.model_dump(mode="json", by_alias=True)))


def unavailable(run_id: str, project_id: str, reason: str) -> Transcript:
    """What a user who may not read the project's files gets: the run exists, its folder; no content."""
    return Transcript(
        run_id=run_id, project_id=project_id, folder=f"{WORKFLOWS}/{run_id}", available=False, reason=reason
    )


def run_ids(execution: Any, project: Path | None = None) -> list[tuple[str, str]]:
    """Every agent run of an orchestration as (run id, label), in the order they ran: the step refs, every run id
    named in the decision log, and (when the project's folder is visible) every run folder of the orchestration."""
    import re

    from specflow_nb.summary import run_label

    pattern = re.compile(rf"{re.escape(execution.id)}-\d{{3}}-[A-Za-z0-9_]+")
    ids: set[str] = set()
    ex = execution.executions
    for value in (ex.design, ex.analyze, *(ex.implement or []), *(ex.healers or []), ex.verify, ex.merge):
        if isinstance(value, str) and value:
            ids.add(value)
    for b in execution.batches.items:
        for value in (b.workflow_execution_id, b.healer_execution_id):
            if isinstance(value, str) and value:
                ids.add(value)
    if execution.current_run is not None:
        ids.add(execution.current_run.execution_id)
    for entry in execution.decision_log:
        ids.update(pattern.findall(json.dumps(entry.data or {}, default=str)))
        ids.update(pattern.findall(entry.reason or ""))
    if project is not None:
        with contextlib.suppress(OSError):
            ids.update(p.name for p in (Path(project) / WORKFLOWS).iterdir() if pattern.fullmatch(p.name))
    return [(i, run_label(execution, i)) for i in sorted(ids, key=_run_order)]


def _run_order(run_id: str) -> str:
    # ids are "<orchestration>-<NNN>-<label>": the sequence number orders them
    parts = run_id.rsplit("-", 2)
    return parts[-2] if len(parts) == 3 else run_id
