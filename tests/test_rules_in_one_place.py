"""Rules live in one place (issue 17): hosts compare an orchestration's status with the enum, never a literal.

The values of ``OrchestrationStatus`` ("running", "paused", …) may appear as string literals only in the machine
(``specflow_nb/machine/``), ``summary.py`` (the words a person reads) and ``models.py`` (the enum itself). Anywhere
else a status is read through the enum (``ex.status is OrchestrationStatus.PAUSED``), or through the machine's
views (``allowed_commands``, ``go_back_targets``, ``SETTLED_STATUSES``): a renamed status then breaks at import
time, not silently in one host.

Found with ``ast``: a status name compared with a status (``x.status``, ``x.status.value`` or a variable named
``status``: ``==``, ``!=``, ``in``, ``not in``, ``is``) and tables keyed by status names (a dict with three or more
of them as keys). The same words used for something else (a run's failure ``"cancelled"``, a step state, a
notification event, an agent's output ``status``) are not statuses and are not flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

import specflow_nb
from specflow_nb.models import OrchestrationStatus

PACKAGE = Path(specflow_nb.__file__).parent
STATUS_NAMES = {s.value for s in OrchestrationStatus}
ALLOWED = ("machine/", "summary.py", "models.py")


def _is_status(node: ast.expr) -> bool:
    """``status``, ``x.status`` or ``x.status.value``."""
    if isinstance(node, ast.Attribute) and node.attr == "value":
        node = node.value
    return (isinstance(node, ast.Attribute) and node.attr == "status") or (
        isinstance(node, ast.Name) and node.id == "status"
    )


def _names_in(node: ast.expr) -> list[str]:
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in STATUS_NAMES
    ]


def status_literals(source: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_status(o) for o in operands):
                found += [(node.lineno, name) for o in operands if not _is_status(o) for name in _names_in(o)]
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in STATUS_NAMES]
            if len(keys) >= 3:
                found += [(node.lineno, k) for k in keys]
    return found


def test_status_names_are_literals_only_in_the_machine_summary_and_models() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED[0]) or rel in ALLOWED[1:]:
            continue
        offenders += [f"{rel}:{line}: {name!r}" for line, name in status_literals(path.read_text(encoding="utf-8"))]
    assert offenders == [], "compare with OrchestrationStatus (or the machine's views):\n" + "\n".join(offenders)


def test_the_finder_finds_what_it_must() -> None:
    """The check can fail: each way a host used to compare with a literal is found, other words are not."""
    found = status_literals(
        "a = ex.status.value == 'running'\n"
        "b = status == 'waiting_merge'\n"
        "c = ex.status.value in ('needs_attention', 'failed')\n"
        "d = {'paused': 1, 'waiting_merge': 2, 'needs_attention': 3}.get(status)\n"
        "e = 'cancelled' != self.ex.status\n"
    )
    assert sorted(found) == [
        (1, "running"),
        (2, "waiting_merge"),
        (3, "failed"),
        (3, "needs_attention"),
        (4, "needs_attention"),
        (4, "paused"),
        (4, "waiting_merge"),
        (5, "cancelled"),
    ]
    assert status_literals("x = out.failure == 'cancelled'\ny = ('completed', 'failed')\nz = {'completed': 1}\n") == []
