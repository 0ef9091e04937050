"""Background-safe widget updates: every change inside ``hold_sync()`` of each widget it may touch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import ipywidgets as w


def descendants(root: w.Widget) -> Iterator[w.Widget]:
    """The widget and every widget below it (Box children, Accordion/Tab pages)."""
    stack = [root]
    seen: set[int] = set()
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        yield widget
        stack.extend(c for c in getattr(widget, "children", ()) if isinstance(c, w.Widget))


@contextmanager
def held(root: w.Widget) -> Iterator[None]:
    """Hold the sync of ``root`` and all its descendants: the frontend gets each widget's changes as one message.

    Background code (the live-update task) sets values only inside this; it never uses ``with output:``, whose
    capture would land in whichever cell happens to be executing.
    """
    with ExitStack() as stack:
        for widget in descendants(root):
            stack.enter_context(widget.hold_sync())
        yield
