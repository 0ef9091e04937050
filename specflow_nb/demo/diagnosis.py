"""The demo agent as the decision helper: a short, plausible diagnosis of a stopped orchestration, read from the
failed run's files.

Apart from the batch and step runs because it answers a different prompt with a different schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from specflow_nb.demo.emitter import Emitter

TASK_ID_RE = re.compile(r"\bT\d{3,}[a-z]?\b")


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
