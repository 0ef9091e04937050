"""Placing a widget in the JupyterLab shell (the right side panel) with ipylab."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

#: Areas of the JupyterLab shell ipylab can add a widget to.
AREAS = ("main", "left", "right", "down")
#: JupyterLab's command that shows a shell widget by its id (it expands a side area and selects the widget's tab).
ACTIVATE_COMMAND = "tabsmenu:activate-by-id"


def show_in_shell(widget: w.Widget, *, area: str = "right", label: str = "Specflow") -> Any:
    """Add ``widget`` to JupyterLab's ``area`` (a side panel for left/right), show it, and return the ipylab panel.

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
    shell_id = f"specflow-{area}-{holder.model_id}"

    def added(change: dict[str, Any]) -> None:
        # the frontend adds asynchronously and then syncs its widget list back: only now can the tab be selected
        if any(isinstance(item, dict) and item.get("id") == shell_id for item in change["new"]):
            app.shell.unobserve(added, names="_widgets")
            app.commands.execute(ACTIVATE_COMMAND, {"id": shell_id})

    app.shell.observe(added, names="_widgets")
    # Shell.add of ipylab gives the widget a random DOM id; its frontend accepts ours in the payload (to activate it)
    app.shell.send(
        {
            "func": "add",
            "payload": {
                "serializedWidget": w.widget_serialization["to_json"](holder, None),
                "area": area,
                "args": {"rank": 1000},
                "id": shell_id,
            },
        }
    )
    return holder
