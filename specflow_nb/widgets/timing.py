"""Elapsed and estimated remaining time of an orchestration (the words live in :mod:`specflow_nb.summary`)."""

from __future__ import annotations

from specflow_nb.summary import elapsed, remaining, time_text

__all__ = ["elapsed", "remaining", "time_text"]
