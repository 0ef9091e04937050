"""Form fields generated from a pydantic model's fields: widget type, label, help text, range and default.

Nothing here knows OrchestrationConfig's field names: adding a field to the model adds it to the form.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import ipywidgets as w
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from specflow_nb.widgets._html import esc

#: Help after a field's model description, by field name (in its tooltip; the form's groups say it too).
FIELD_HELP: dict[str, str] = {
    "healing_budget": "One amount for the whole orchestration (all healers of all batches), not per batch.",
    "max_per_batch": "Also each step's run; a batch's retries count against it.",
    "max_total": "Everything the orchestration spends, healers included.",
}
#: Strings allowed to be at least this long get a multi-line text area.
_TEXTAREA_MIN_MAX_LENGTH = 1000


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``str | None`` → ``(str, True)``; ``int`` → ``(int, False)``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def bounds(info: FieldInfo) -> dict[str, float]:
    """The numeric limits in a field's metadata (``ge``, ``gt``, ``le``, ``lt``) and its ``max_length``."""
    found: dict[str, float] = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt", "max_length", "min_length"):
            value = getattr(item, name, None)
            if value is not None and isinstance(item, annotated_types.BaseMetadata):
                found[name] = value
    return found


def range_text(info: FieldInfo) -> str:
    b = bounds(info)
    low = f"≥ {b['ge']:g}" if "ge" in b else (f"> {b['gt']:g}" if "gt" in b else "")
    high = f"≤ {b['le']:g}" if "le" in b else (f"< {b['lt']:g}" if "lt" in b else "")
    return ", ".join(p for p in (low, high) if p)


def is_submodel(info: FieldInfo) -> bool:
    annotation, _ = unwrap_optional(info.annotation)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@dataclass
class FieldControl:
    """One generated field: its input widget, the error line beside it, and how to read/write a Python value.

    ``check`` is a second line beside the field for what the server's preflight found about it (e.g. the agent
    command is not installed), with room for a fix button.
    """

    name: str
    info: FieldInfo
    input: w.ValueWidget
    error: w.HTML
    row: w.Box
    optional: bool
    kind: type
    check: w.VBox
    help: str = ""
    locked: bool = False

    @property
    def default(self) -> Any:
        return self.info.get_default(call_default_factory=True)

    def get(self) -> Any:
        """The value to validate: empty text in an optional field means ``None``."""
        value = self.input.value
        if self.optional and isinstance(value, str) and not value.strip():
            return None
        return value

    def set(self, value: Any) -> None:
        if value is None and self.kind is str:
            value = ""
        self.input.value = value

    def show_error(self, message: str | None) -> None:
        self.error.value = f'<div class="sf-error" role="alert">{esc(message)}</div>' if message else ""
        if message:
            self.row.add_class("specflow-field-invalid")
        else:
            self.row.remove_class("specflow-field-invalid")

    def lock(self, reason: str | None) -> None:
        """Read-only with the reason beside it (e.g. set by the server), or editable again (``None``)."""
        self.input.disabled = reason is not None
        if reason is None:
            if self.locked:
                self.check.children = ()
                self.row.remove_class("specflow-field-locked")
            self.locked = False
            return
        self.check.children = (w.HTML(f'<div class="sf-muted">{esc(reason)}</div>'),)
        self.locked = True
        self.row.add_class("specflow-field-locked")

    def show_check(self, message: str | None, *actions: w.Widget) -> None:
        """Show (or clear) a preflight finding beside the field, with optional fix buttons."""
        if not message:
            self.check.children = ()
            self.row.remove_class("specflow-field-checked")
            return
        text = w.HTML(f'<div class="sf-error" role="alert">{esc(message)}</div>')
        buttons = w.HBox(list(actions))
        buttons.add_class("sf-actions")
        self.check.children = (text, buttons) if actions else (text,)
        self.row.add_class("specflow-field-checked")


def make_control(name: str, info: FieldInfo, help_text: str | None = None) -> FieldControl:
    """The widget for one scalar field (bool → Checkbox, int → IntText, float → FloatText, str → Text/Textarea).

    Labels sit above their inputs (they never get cut in a narrow side panel); the field's help and range are its
    tooltip — each group of the form carries one help line instead. Numbers use plain text boxes rather than
    bounded ones: a bounded box silently clamps, whereas we want the model's own error shown beside the field.
    ``help_text`` (default: :data:`FIELD_HELP`) follows the field's description where a host says more.
    """
    annotation, optional = unwrap_optional(info.annotation)
    title = info.title or name.replace("_", " ").capitalize()
    extra = help_text or FIELD_HELP.get(name)
    help_text = " ".join(p for p in (info.description, extra) if p)
    limits = range_text(info)
    tooltip = f"{help_text} ({limits})" if limits and help_text else (help_text or limits)
    default = info.get_default(call_default_factory=True)
    layout = w.Layout(width="100%")
    widget: w.ValueWidget
    label: w.Widget | None = None
    if annotation is bool:
        widget = w.Checkbox(value=bool(default), description=title, indent=False, tooltip=tooltip)
        widget.layout.width = "auto"
        kind: type = bool
    else:
        label = w.HTML(f'<span class="sf-field-label" title="{esc(tooltip)}">{esc(title)}</span>')
        if get_origin(annotation) is Literal or (isinstance(annotation, type) and issubclass(annotation, Enum)):
            choices = list(get_args(annotation)) if get_origin(annotation) is Literal else [m.value for m in annotation]
            widget = w.Dropdown(options=choices, value=default, tooltip=tooltip, layout=layout)
            kind = str
        elif annotation is int:
            widget = w.IntText(value=default, tooltip=tooltip, layout=layout)
            kind = int
        elif annotation is float:
            widget = w.FloatText(value=default, tooltip=tooltip, layout=layout)
            kind = float
        elif annotation is str:
            long_text = bounds(info).get("max_length", 0) >= _TEXTAREA_MIN_MAX_LENGTH
            cls = w.Textarea if long_text else w.Text
            widget = cls(
                value=default or "",
                tooltip=tooltip,
                placeholder=("(none) " + help_text if optional else help_text)[:80],
                layout=w.Layout(width="100%", height="56px" if long_text else None),
            )
            kind = str
        else:
            raise TypeError(f"the form has no widget for field {name!r} of type {info.annotation!r}")
    widget.add_class(f"specflow-field-{name}")
    error = w.HTML()
    check = w.VBox()
    parts = [label, widget, error, check] if label is not None else [widget, error, check]
    row = w.VBox(parts)
    row.add_class("sf-field")
    row.add_class(f"specflow-row-{name}")
    control = FieldControl(
        name=name, info=info, input=widget, error=error, row=row, optional=optional, kind=kind, check=check
    )
    control.help = tooltip
    return control


def field_title(control: FieldControl) -> str:
    """The label a person sees for the field."""
    return control.info.title or control.name.replace("_", " ").capitalize()
