"""Small HTML helpers. Everything shown comes through :func:`esc`: decision reasons and errors come from agents."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any


def esc(value: Any) -> str:
    """Escape any value for ipywidgets.HTML (text from agents and users is never trusted as markup)."""
    return html.escape(str(value), quote=True)


def pill(label: str, color: str, *, css_class: str = "specflow-badge") -> str:
    """A coloured rounded label, the look of a status badge."""
    return (
        f'<span class="{esc(css_class)}" style="display:inline-block;padding:1px 8px;border-radius:10px;'
        f'background:{esc(color)};color:white;font-size:12px;font-weight:600">{esc(label)}</span>'
    )


def muted(text: str) -> str:
    return f'<span style="color:#666;font-size:12px">{esc(text)}</span>'


def fmt_duration(delta: timedelta | None) -> str:
    """``1h 02m``, ``4m 10s``, ``12s``; ``—`` when unknown."""
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_usd(amount: float) -> str:
    return f"${amount:,.2f}"
