"""Where a command's engine is: a Jupyter server through the REST client, or this process (``--local``).

Apart from the commands so the dry run, the orchestrate commands and the demo share one way to reach an engine.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from specflow_nb import cli_common as _cli

if TYPE_CHECKING:
    from specflow_nb.client import SpecflowClient


# --------------------------------------------------------------------------------------------------------------
# Engines: the server (through the client) or this process


def _client(args: argparse.Namespace) -> SpecflowClient:
    from specflow_nb.client import SpecflowClient

    return SpecflowClient(url=args.server, token=args.token, cwd=_cli.project_path(args))


def _remote_project_id(args: argparse.Namespace, client: SpecflowClient) -> str:
    if args.project_id is not None:
        return str(args.project_id)
    return client.project_id_for(_cli.project_path(args))


def _use_local(args: argparse.Namespace) -> bool:
    """--local, or (for start/watch) no reachable server."""
    if args.local:
        return True
    if args.orchestrate_command not in ("start", "watch", "status", "list"):
        return False
    from specflow_nb.client import NoServerFound

    try:
        _client(args).close()
    except NoServerFound:
        if args.orchestrate_command in ("status", "list"):
            pass  # read from the project's files; nothing is driven
        elif args.orchestrate_command == "watch":
            _cli.console(stderr=True).print(
                "No Jupyter server with specflow_nb found: watching the project's files here "
                "(this terminal only observes; `watch --local` would drive an orchestration nobody drives)."
            )
        else:
            _cli.console(stderr=True).print(
                "No Jupyter server with specflow_nb found: running the engine here (--local)."
            )
        return True
    return False


def _engine_settings(*, observer: bool = False, command_timeout: float | None = None) -> Any:
    from specflow_nb.orchestrator import EngineSettings

    extra = {"command_timeout_seconds": command_timeout} if command_timeout else {}
    return EngineSettings(host_kind="cli", may_take_over=not observer, **extra)
