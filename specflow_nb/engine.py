"""``Engine``: exactly what hosts use of an engine (the server's handlers and extension, the CLI's ``--local``, the
kernel's LocalBackend, the webhook, the test hosts), as a ``typing.Protocol``.

Apart from ``orchestrator.py`` so that a host can name the surface without importing the engine (importing it costs
the agent runners), and so that a replacement engine (the server's ``orchestrator_class``, like jupyter-scheduler's
``scheduler_class``) is checked against the surface rather than against one implementation. ``Orchestrator``
satisfies it (checked statically in orchestrator.py, at run time by :func:`check_engine_class`). docs/engine-api.md
describes each member.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # types only: a host naming the surface imports none of the engine
    from specflow_nb.engine_settings import EngineSettings
    from specflow_nb.machine import Command, Notify
    from specflow_nb.models import OrchestrationConfig, OrchestrationExecution
    from specflow_nb.ownership import OwnerRecord
    from specflow_nb.preflight import Preview


@runtime_checkable
class Engine(Protocol):
    """The engine's surface for hosts (docs/engine-api.md)."""

    root: Path
    settings: EngineSettings

    @property
    def running(self) -> bool: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any: ...

    async def start_loop(self) -> None: ...

    async def stop_loop(self) -> None: ...

    async def start(
        self, project_id: str, config: OrchestrationConfig | dict[str, Any] | None = None, *, actor: str | None = None
    ) -> OrchestrationExecution: ...

    async def command(
        self,
        project_id: str,
        command: Command | dict[str, Any],
        orchestration_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> OrchestrationExecution: ...

    def status(self, project_id: str, orchestration_id: str | None = None) -> OrchestrationExecution | None: ...

    def list(self, project_id: str) -> builtins.list[OrchestrationExecution]: ...

    def preview(self, project_id: str, config: OrchestrationConfig | dict[str, Any] | None = None) -> Preview: ...

    async def wait_for_change(
        self, project_id: str, since_version: int, timeout: float, *, known_id: str | None = None
    ) -> OrchestrationExecution | None: ...

    def subscribe(self, callback: Callable[[OrchestrationExecution], Any]) -> Callable[[], None]: ...

    def subscribe_notifications(
        self, callback: Callable[[OrchestrationExecution, Notify], Any]
    ) -> Callable[[], None]: ...

    def active(self) -> builtins.list[OrchestrationExecution]: ...

    def owns(self, project_id: str) -> bool: ...

    def owner_of(self, project_id: str, orchestration_id: str) -> OwnerRecord | None: ...

    def who_drives(self, project_id: str, orchestration_id: str) -> str: ...


#: The members of :class:`Engine`, for checks and docs.
ENGINE_MEMBERS: frozenset[str] = frozenset(
    {
        "root",
        "settings",
        "running",
        "__aenter__",
        "__aexit__",
        "start_loop",
        "stop_loop",
        "start",
        "command",
        "status",
        "list",
        "preview",
        "wait_for_change",
        "subscribe",
        "subscribe_notifications",
        "active",
        "owns",
        "owner_of",
        "who_drives",
    }
)

#: Instance attributes (set in ``__init__``, so a class does not have them before it is built).
_INSTANCE_ATTRIBUTES = frozenset({"root", "settings"})


def check_engine_class(cls: object) -> type[Engine]:
    """``cls`` as an engine class (the server's ``orchestrator_class``), or TypeError naming what it lacks."""
    if not isinstance(cls, type):
        raise TypeError(f"{cls!r} is not a class: an engine class is built as cls(root=..., settings=...).")
    missing = sorted(
        name
        for name in ENGINE_MEMBERS - _INSTANCE_ATTRIBUTES
        if not callable(getattr(cls, name, None)) and not isinstance(getattr(cls, name, None), property)
    )
    if missing:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} is not an engine: it lacks {', '.join(missing)} "
            "(see specflow_nb.engine.Engine and docs/engine-api.md)."
        )
    return cls
