"""The ``Engine`` Protocol names exactly what hosts use of an engine, and ``Orchestrator`` satisfies it.

Three checks: mypy (static: ``Orchestrator`` assigned to ``Engine``; a class lacking a member is refused), the
member names at run time (``isinstance`` and ``check_engine_class``), and a scan of the hosts' code: every engine
member a host calls is in the Protocol.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

from specflow_nb.engine import ENGINE_MEMBERS, Engine, check_engine_class
from specflow_nb.orchestrator import EngineSettings, Orchestrator

REPO = Path(__file__).resolve().parents[1]

#: Host code and how it names the engine there.
HOSTS: dict[str, str] = {
    "specflow_nb/server/handlers.py": r"self\.engine",
    "specflow_nb/server/extension.py": r"(?:self\._?orchestrator|orch)",
    "specflow_nb/server/offload.py": r"engine",
    "specflow_nb/server/projects.py": r"engine\(\)",
    "specflow_nb/widgets/local.py": r"(?:engine|self\.orchestrator)",
    "specflow_nb/cli_orchestrate.py": r"orch",
    "specflow_nb/webhook.py": r"orchestrator",
    "tests/support/orch_helpers.py": r"orch",
    "tests/support/crash_host.py": r"orch",
}


def protocol_members() -> set[str]:
    attrs = getattr(Engine, "__protocol_attrs__", None)
    if attrs is None:  # Python < 3.12
        from typing import _get_protocol_attrs  # type: ignore[attr-defined]

        attrs = _get_protocol_attrs(Engine)
    return set(attrs)


def test_the_member_list_is_the_protocol() -> None:
    assert protocol_members() == set(ENGINE_MEMBERS)


def test_orchestrator_is_an_engine_at_run_time(tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path, EngineSettings())
    assert isinstance(orch, Engine)
    assert check_engine_class(Orchestrator) is Orchestrator
    for name in ENGINE_MEMBERS:  # same parameters as the Protocol's (names and kinds), not just the name
        proto, impl = getattr(Engine, name, None), getattr(Orchestrator, name, None)
        if callable(proto) and name not in ("__aexit__",):
            assert inspect.signature(impl).parameters.keys() == inspect.signature(proto).parameters.keys(), name


def test_a_class_that_is_not_an_engine_is_refused() -> None:
    class Half:
        async def start_loop(self) -> None: ...

    with pytest.raises(TypeError) as err:
        check_engine_class(Half)
    assert "lacks" in str(err.value) and "status" in str(err.value) and "start_loop" not in str(err.value)
    with pytest.raises(TypeError):
        check_engine_class(Orchestrator(Path(".")))


def test_every_engine_member_a_host_uses_is_in_the_protocol() -> None:
    used: dict[str, set[str]] = {}
    for rel, name in HOSTS.items():
        text = (REPO / rel).read_text(encoding="utf-8")
        for member in re.findall(rf"\b{name}\.([A-Za-z_]\w*)", text):
            used.setdefault(member, set()).add(rel)
    assert used, "the scan found the hosts' engine calls"
    outside = {m: sorted(files) for m, files in used.items() if m not in ENGINE_MEMBERS}
    assert outside == {}, f"hosts use engine members the Engine Protocol does not name: {outside}"


def test_mypy_checks_orchestrator_against_the_protocol(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    good = tmp_path / "good.py"
    good.write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            from specflow_nb.engine import Engine
            from specflow_nb.orchestrator import Orchestrator

            engine: Engine = Orchestrator(Path("."))
            """
        )
    )
    bad = tmp_path / "bad.py"
    bad.write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            from specflow_nb.engine import Engine

            class Half:
                root = Path(".")
                async def start_loop(self) -> None: ...

            engine: Engine = Half()
            """
        )
    )
    args = ["--no-error-summary", "--follow-imports=silent", "--cache-dir", str(tmp_path / ".mypy_cache")]
    out, err, code = api.run([*args, str(good)])
    assert code == 0, out + err
    out, _, code = api.run([*args, str(bad)])
    assert code != 0 and "Engine" in out
