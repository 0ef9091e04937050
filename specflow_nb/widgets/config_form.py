"""OrchestrationConfigForm: the Complete Phase options, generated from ``OrchestrationConfig.model_fields``.

Sections: core options (always visible), advanced options (a collapsed accordion) and one section per nested
model (the budget). Which fields are core is a rule on names, so a field added to the model appears under
"Advanced" without any change here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
from pydantic import BaseModel, ValidationError

from specflow_nb.models import OrchestrationConfig
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.budget_section import BudgetLimitsSection
from specflow_nb.widgets.fields import FieldControl, is_submodel, make_control, unwrap_optional

_CORE_NAMES = frozenset({"auto_merge", "additional_context"})


def is_core(name: str) -> bool:
    """Core options: auto-merge, the additional context and the skip flags (MISSION §8)."""
    return name in _CORE_NAMES or name.startswith("skip_")


class OrchestrationConfigForm(w.VBox):
    """The form. ``config()`` validates with the model and shows each error beside its field."""

    def __init__(self, model: type[OrchestrationConfig] = OrchestrationConfig) -> None:
        self.model = model
        self.controls: dict[tuple[str, ...], FieldControl] = {}
        self.sections: dict[str, w.Widget] = {}
        core_rows: list[w.Widget] = []
        advanced_rows: list[w.Widget] = []
        nested: list[tuple[str, w.Widget]] = []
        for name, info in model.model_fields.items():
            if is_submodel(info):
                sub, _ = unwrap_optional(info.annotation)
                section = BudgetLimitsSection(sub, path=(name,))
                self.controls.update(section.controls)
                nested.append((info.title or name, section))
                continue
            control = make_control(name, info)
            self.controls[(name,)] = control
            (core_rows if is_core(name) else advanced_rows).append(control.row)
        self.sections["core"] = w.VBox(core_rows)
        self.advanced = w.Accordion(children=[w.VBox(advanced_rows)], titles=("Advanced options",))
        self.advanced.selected_index = None  # collapsed
        self.advanced.add_class("specflow-advanced")
        self.sections["advanced"] = self.advanced
        nested_boxes: list[w.Widget] = []
        for title, section in nested:
            self.sections[title] = section
            nested_boxes += [w.HTML(f"<b>{esc(title)}</b>"), section]
        self.form_error = w.HTML()
        super().__init__(
            [w.HTML("<b>Options</b>"), self.sections["core"], *nested_boxes, self.advanced, self.form_error]
        )
        self.add_class("specflow-config-form")
        self._listeners: list[Callable[[], None]] = []
        for control in self.controls.values():
            control.input.observe(self._changed, names="value")

    # --- values --------------------------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        """The form's values as a nested dict of Python names (not validated)."""
        out: dict[str, Any] = {}
        for path, control in self.controls.items():
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = control.get()
        return out

    def set_values(self, config: BaseModel) -> None:
        for path, control in self.controls.items():
            value: Any = config
            for part in path:
                value = getattr(value, part)
            control.set(value)

    def reset(self) -> None:
        """Back to the model's defaults, errors cleared, advanced options collapsed (done on every open)."""
        self.set_values(self.model())
        self.advanced.selected_index = None
        self.validate()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self, _change: dict[str, Any]) -> None:
        self.validate()
        for callback in self._listeners:
            callback()

    # --- validation ----------------------------------------------------------------------------------------

    def validate(self) -> OrchestrationConfig | None:
        """The validated config, or ``None`` with every error shown beside its field."""
        errors: dict[tuple[str, ...], str] = {}
        general: list[str] = []
        config: OrchestrationConfig | None = None
        try:
            config = self.model.model_validate(self.values())
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(str(p) for p in err["loc"])
                if loc in self.controls:
                    errors.setdefault(loc, err["msg"])
                else:
                    general.append(f"{'.'.join(loc) or 'config'}: {err['msg']}")
        for path, control in self.controls.items():
            control.show_error(errors.get(path))
        self.form_error.value = (
            "".join(f'<div style="color:#c62828">{esc(g)}</div>' for g in general) if general else ""
        )
        return config

    @property
    def valid(self) -> bool:
        return not any(c.error.value for c in self.controls.values()) and not self.form_error.value

    def body(self) -> dict[str, Any] | None:
        """The JSON the server receives as ``config`` (camelCase), or ``None`` when invalid."""
        config = self.validate()
        return None if config is None else config.model_dump(mode="json")
