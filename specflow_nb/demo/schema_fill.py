"""The demo agent's structured output: a sensible instance of any JSON schema (``--json-schema``), with what the
run did filled in (checked tasks, a verdict, a verify question).

Apart from the run loop because it is pure: schema and hints in, a JSON value out.
"""

from __future__ import annotations

import re
from typing import Any


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
