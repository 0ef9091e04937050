"""Small HTML helpers. Everything shown comes through :func:`esc`: decision reasons and errors come from agents."""

from __future__ import annotations

import html
from typing import Any

from specflow_nb.summary import fmt_duration

__all__ = ["esc", "fmt_duration", "fmt_usd", "muted"]


def esc(value: Any) -> str:
    """Escape any value for ipywidgets.HTML (text from agents and users is never trusted as markup)."""
    return html.escape(str(value), quote=True)


def muted(text: str) -> str:
    """Secondary text (``--jp-ui-font-color2``: only on the plain layout colours, where it stays above 4.5:1)."""
    return f'<span class="sf-muted">{esc(text)}</span>'


def fmt_usd(amount: float) -> str:
    return f"${amount:,.2f}"
