"""What every ``specflow-nb`` command shares: the common options, the console, JSON output, the project folder.

Apart from :mod:`specflow_nb.cli` (the parser and the project commands) so the engine commands
(:mod:`specflow_nb.cli_orchestrate` and its helpers) use the same helpers without importing the entry point back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts after its name too (``specflow-nb status --project X``).

    Defaults are SUPPRESS so a subcommand that is not given them keeps the values parsed before its name.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--project", metavar="PATH", default=argparse.SUPPRESS, help="project folder (default: .)")
    parent.add_argument(
        "--feature", metavar="NAME", default=argparse.SUPPRESS, help="feature folder under specs/ (default: newest)"
    )
    return parent


def console(stderr: bool = False) -> Console:
    """A rich console on the current stdout/stderr (looked up at call time, so redirection and capture work)."""
    from rich.console import Console

    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def project_path(args: argparse.Namespace) -> Path:
    """The ``--project`` folder, resolved; :class:`ProjectNotFound` when it is not an existing folder."""
    from specflow_nb.errors import ProjectNotFound

    path = Path(getattr(args, "project", ".") or ".").expanduser()
    if not path.is_dir():
        raise ProjectNotFound(
            f"Project folder not found: {path}", hint="Pass an existing project folder with --project PATH."
        )
    return path.resolve()


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
