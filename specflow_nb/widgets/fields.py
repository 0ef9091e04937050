"""Form fields generated from a pydantic model's fields: widget type, label, help text, range and default.

Nothing here knows OrchestrationConfig's field names: adding a field to the model adds it to the form.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import annotated_types
import ipywidgets as w
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from specflow_nb.widgets._html import esc

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
    """One generated field: its input widget, the error line beside it, and how to read/write a Python value."""

    name: str
    info: FieldInfo
    input: w.ValueWidget
    error: w.HTML
    row: w.Box
    optional: bool
    kind: type

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
        self.error.value = f'<span style="color:#c62828;font-size:12px">{esc(message)}</span>' if message else ""
        if message:
            self.row.add_class("specflow-field-invalid")
        else:
            self.row.remove_class("specflow-field-invalid")


def make_control(name: str, info: FieldInfo) -> FieldControl:
    """The widget for one scalar field (bool → Checkbox, int → IntText, float → FloatText, str → Text/Textarea).

    Numbers use plain text boxes rather than bounded ones: a bounded box silently clamps, whereas we want the
    model's own error shown beside the field.
    """
    annotation, optional = unwrap_optional(info.annotation)
    title = info.title or name.replace("_", " ").capitalize()
    help_text = info.description or ""
    limits = range_text(info)
    tooltip = f"{help_text} ({limits})" if limits else help_text
    default = info.get_default(call_default_factory=True)
    layout = w.Layout(width="auto")
    style = {"description_width": "initial"}
    widget: w.ValueWidget
    if annotation is bool:
        widget = w.Checkbox(value=bool(default), description=title, indent=False, tooltip=tooltip, layout=layout)
        kind: type = bool
    elif annotation is int:
        widget = w.IntText(value=default, description=title, tooltip=tooltip, style=style, layout=layout)
        kind = int
    elif annotation is float:
        widget = w.FloatText(value=default, description=title, tooltip=tooltip, style=style, layout=layout)
        kind = float
    elif annotation is str:
        long_text = bounds(info).get("max_length", 0) >= _TEXTAREA_MIN_MAX_LENGTH
        cls = w.Textarea if long_text else w.Text
        widget = cls(
            value=default or "",
            description=title,
            tooltip=tooltip,
            placeholder="(none)" if optional else "",
            style=style,
            layout=w.Layout(width="95%"),
        )
        kind = str
    else:
        raise TypeError(f"the form has no widget for field {name!r} of type {info.annotation!r}")
    widget.add_class(f"specflow-field-{name}")
    help_html = w.HTML(
        f'<span style="color:#666;font-size:11px">{esc(help_text)}{esc(" · " + limits) if limits else ""}</span>'
    )
    error = w.HTML()
    row = w.VBox([widget, help_html, error], layout=w.Layout(margin="0 0 4px 0"))
    return FieldControl(name=name, info=info, input=widget, error=error, row=row, optional=optional, kind=kind)
