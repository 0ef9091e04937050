"""Placing a widget in the JupyterLab shell (the right side panel) with ipylab."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

#: Areas of the JupyterLab shell ipylab can add a widget to.
AREAS = ("main", "left", "right", "down")


def show_in_shell(widget: w.Widget, *, area: str = "right", label: str = "Specflow") -> Any:
    """Add ``widget`` to JupyterLab's ``area`` (a side panel for left/right) and return the ipylab panel.

    Needs JupyterLab with the ``ipylab`` extension (``pip install specflow_nb[widgets]``).
    """
    if area not in AREAS:
        raise ValueError(f"area must be one of {', '.join(AREAS)}, not {area!r}")
    try:
        from ipylab import JupyterFrontEnd, Panel
    except ImportError as exc:
        from specflow_nb.errors import SpecflowError

        raise SpecflowError(
            "Showing the panel in the JupyterLab shell needs ipylab.",
            hint="pip install 'specflow_nb[widgets]' and reload JupyterLab; or display the panel in a cell.",
        ) from exc
    holder = Panel([widget])
    holder.title.label = label
    holder.title.caption = "specflow_nb: Complete Phase"
    holder.title.icon_class = "jp-BuildIcon"
    holder.add_class("specflow-side-panel")
    app = JupyterFrontEnd()
    app.shell.add(holder, area, {"rank": 1000})
    if area == "right":
        app.shell.expand_right()
    elif area == "left":
        app.shell.expand_left()
    return holder
