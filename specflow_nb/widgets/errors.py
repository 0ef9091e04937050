"""The one line a widget shows for a failed action (a refused start, a lost connection, a missing transcript).

Apart from the panel because the panel, its live follower and the projects overview all show errors the same way.
"""

from __future__ import annotations

from specflow_nb.errors import SpecflowError


def error_text(exc: BaseException) -> str:
    """A user-facing line for an error: a SpecflowError's message and hint, else the exception's text."""
    if isinstance(exc, SpecflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
