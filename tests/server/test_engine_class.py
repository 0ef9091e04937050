"""The server's ``orchestrator_class`` is checked against the Engine Protocol as the settings are read (issue 17).

A class missing a member of :class:`specflow_nb.engine.Engine`, or a name that does not import, stops the server
from starting with a TraitError that names what is wrong; a class that has every member is the engine the routes use.
The servers here are real (pytest-jupyter), configured through traitlets as an administrator would.
"""

from __future__ import annotations

from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from specflow_nb.orchestrator import Orchestrator
from specflow_nb.server.extension import SpecflowExtension


class HalfEngine:
    """An engine class that forgot most of the surface: it can be built, but the routes would call what it lacks."""

    def __init__(self, root: Any = None, settings: Any = None) -> None:
        self.root, self.settings = root, settings

    async def start_loop(self) -> None: ...

    async def stop_loop(self) -> None: ...


class TeamEngine(Orchestrator):
    """A team's engine: the real one with a tweak, as ``orchestrator_class`` is meant for."""


def _config(orchestrator_class: str) -> Config:
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"specflow_nb.server": True},
                "reraise_server_extension_failures": True,
            },
            "SpecflowExtension": {"orchestrator_class": orchestrator_class},
        }
    )


def refused(start_server: Any, caplog: pytest.LogCaptureFixture, capsys: Any) -> str:
    """Start the configured server: it must exit (status 1) and say why; returns what it said."""
    with pytest.raises(SystemExit) as exited:
        start_server()
    assert exited.value.code == 1
    out = capsys.readouterr()
    said = "\n".join([*(r.getMessage() for r in caplog.records), out.out, out.err])
    lines = [line for line in said.splitlines() if "SpecflowExtension.orchestrator_class" in line]
    assert lines, said
    return lines[0]


class TestAClassMissingMembers:
    @pytest.fixture
    def jp_server_config(self) -> Config:
        return _config(f"{__name__}.HalfEngine")

    def test_the_server_refuses_to_start_naming_the_missing_members(
        self, jp_configurable_serverapp: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        text = refused(jp_configurable_serverapp, caplog, capsys)
        assert "SpecflowExtension.orchestrator_class" in text and f"{__name__}.HalfEngine is not an engine" in text
        missing = text.split("it lacks ", 1)[1].split(" (", 1)[0].split(", ")
        assert {"status", "command", "preview", "wait_for_change", "who_drives"} <= set(missing), text
        assert "start_loop" not in missing and "stop_loop" not in missing  # it has those
        assert "docs/engine-api.md" in text


class TestANameThatDoesNotImport:
    @pytest.fixture
    def jp_server_config(self) -> Config:
        return _config("specflow_nb.no_such_module.Engine")

    def test_the_server_refuses_to_start_saying_it_cannot_import(
        self, jp_configurable_serverapp: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        text = refused(jp_configurable_serverapp, caplog, capsys)
        assert "cannot import 'specflow_nb.no_such_module.Engine'" in text and "ModuleNotFoundError" in text, text


class TestAnEngineWithEveryMember:
    @pytest.fixture
    def jp_server_config(self) -> Config:
        return _config(f"{__name__}.TeamEngine")

    async def test_it_is_the_engine_the_routes_use(self, specflow_ext: SpecflowExtension, api: Any) -> None:
        assert specflow_ext.orchestrator_class == f"{__name__}.TeamEngine"
        code, body = await api("GET", "projects")
        assert (code, body) == (200, {"projects": [], "truncated": False})
        assert type(specflow_ext.orchestrator) is TeamEngine


def test_setting_a_bad_class_later_is_refused_too() -> None:
    """The check is the trait's own: any assignment (not only the config file at start) goes through it."""
    ext = SpecflowExtension()
    with pytest.raises(TraitError, match="HalfEngine is not an engine: it lacks"):
        ext.orchestrator_class = f"{__name__}.HalfEngine"
    assert ext.orchestrator_class == "specflow_nb.orchestrator.Orchestrator"  # unchanged
    ext.orchestrator_class = f"{__name__}.TeamEngine"
    assert ext.orchestrator_class == f"{__name__}.TeamEngine"
