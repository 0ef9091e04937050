"""OrchestrationConfigForm: the Complete Phase options, generated from ``OrchestrationConfig.model_fields``.

Fields fall into collapsible groups by a rule on their names (the core options open, the rest collapsed), each
group with one help line; a field added to the model lands in "Advanced" without any change here. Short fields
(checkboxes, numbers) sit in a grid, so the whole form fits JupyterLab's side panel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
from pydantic import BaseModel, ValidationError

from specflow_nb.models import OrchestrationConfig
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.fields import FieldControl, is_submodel, make_control, unwrap_optional

_CORE_NAMES = frozenset({"auto_merge", "additional_context", "pause_between_batches"})


def is_core(name: str) -> bool:
    """Core options: auto-merge, pause between batches, the additional context and the skip flags (MISSION §8)."""
    return name in _CORE_NAMES or name.startswith("skip_")


@dataclass(frozen=True)
class Group:
    title: str
    help: str
    names: frozenset[str] = frozenset()
    open: bool = False


#: The form's groups in order; ``core`` takes :func:`is_core` fields, ``budget`` the nested budget model.
GROUPS: dict[str, Group] = {
    "core": Group(
        "Steps",
        "Checked steps are skipped. Smart config also skips design when spec, plan and tasks exist, and "
        "implement when every task is done.",
        open=True,
    ),
    "budget": Group(
        "Budget limits (USD)",
        "Enforced: each agent run is started with what is left of them. Max total covers the whole orchestration; "
        "max per batch one batch (or one step's run); the healing budget is one amount for the whole orchestration, "
        "all healers together, not per batch. When one is reached, Retry with a higher budget goes on.",
    ),
    "agent": Group(
        "Agent",
        "What runs each step. Verify passes only when its command (if any) also exits 0.",
        frozenset(
            {"agent", "agent_command", "model", "fallback_model", "decision_model", "verify_command", "target_branch"}
        ),
    ),
    "healing": Group(
        "Healing and batches",
        "A failed batch is healed before you are asked; a tasks.md without ## sections is cut into batches of "
        "this size; a run silent this long is reported as stalled.",
        frozenset({"auto_heal_enabled", "max_heal_attempts", "batch_size_fallback", "stale_after_seconds"}),
    ),
    "advanced": Group("Advanced", "Further options of the orchestration."),
}


def group_of(name: str, *, nested: bool = False) -> str:
    if nested:
        return "budget"
    if is_core(name):
        return "core"
    for key, group in GROUPS.items():
        if name in group.names:
            return key
    return "advanced"


def _grid(rows: list[w.Widget]) -> w.Box:
    box = w.Box(rows)
    box.add_class("sf-grid")
    return box


class OrchestrationConfigForm(w.VBox):
    """The form. ``config()`` validates with the model and shows each error beside its field."""

    def __init__(self, model: type[OrchestrationConfig] = OrchestrationConfig) -> None:
        self.model = model
        self.controls: dict[tuple[str, ...], FieldControl] = {}
        members: dict[str, list[FieldControl]] = {key: [] for key in GROUPS}
        for name, info in model.model_fields.items():
            if is_submodel(info):
                sub, _ = unwrap_optional(info.annotation)
                for sub_name, sub_info in sub.model_fields.items():
                    control = make_control(sub_name, sub_info)
                    self.controls[(name, sub_name)] = control
                    members["budget"].append(control)
                continue
            control = make_control(name, info)
            self.controls[(name,)] = control
            members[group_of(name)].append(control)
        self.groups: dict[str, w.Accordion] = {}
        self.sections: dict[str, w.Box] = {}
        for key, group in GROUPS.items():
            controls = members[key]
            if not controls:
                continue
            short = [c.row for c in controls if c.kind in (bool, int, float)]
            long = [c.row for c in controls if c.kind not in (bool, int, float)]
            body = w.VBox(
                [w.HTML(f'<div class="sf-muted">{esc(group.help)}</div>'), *([_grid(short)] if short else []), *long]
            )
            self.sections[key] = body
            accordion = w.Accordion(children=[body], titles=(group.title,))
            accordion.selected_index = 0 if group.open else None
            accordion.add_class(f"specflow-group-{key}")
            self.groups[key] = accordion
        self.form_error = w.HTML()
        super().__init__([*self.groups.values(), self.form_error])
        self.add_class("specflow-config-form")
        self._listeners: list[Callable[[], None]] = []
        for control in self.controls.values():
            control.input.observe(self._changed, names="value")

    @property
    def advanced(self) -> w.Accordion:
        """The agent group (where the agent command lives)."""
        return self.groups["agent"]

    def group_of_control(self, path: tuple[str, ...]) -> w.Accordion:
        return self.groups[group_of(path[0], nested=len(path) > 1)]

    def open_group(self, path: tuple[str, ...]) -> None:
        """Expand the group holding ``path`` (to show an error or a check beside that field)."""
        self.group_of_control(path).selected_index = 0

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

    def reset(self, config: BaseModel | None = None) -> None:
        """Back to ``config`` (default: the model's defaults), errors cleared, groups in their first state."""
        self.set_values(config if config is not None else self.model())
        for key, accordion in self.groups.items():
            accordion.selected_index = 0 if GROUPS[key].open else None
        for control in self.controls.values():
            control.show_check(None)
        self.validate()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _changed(self, _change: dict[str, Any]) -> None:
        self.validate()
        for callback in self._listeners:
            callback()

    # --- validation ----------------------------------------------------------------------------------------

    def validate(self) -> OrchestrationConfig | None:
        """The validated config, or ``None`` with every error shown beside its field (its group opened)."""
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
            if path in errors:
                self.open_group(path)
        self.form_error.value = "".join(f'<div class="sf-error">{esc(g)}</div>' for g in general) if general else ""
        return config

    @property
    def valid(self) -> bool:
        return not any(c.error.value for c in self.controls.values()) and not self.form_error.value

    def invalid_fields(self) -> list[str]:
        """The titles of the fields with an error (for "Start is disabled: fix Max heal attempts")."""
        return [c.info.title or c.name for c in self.controls.values() if c.error.value]

    def body(self) -> dict[str, Any] | None:
        """The JSON the server receives as ``config`` (camelCase), or ``None`` when invalid."""
        config = self.validate()
        return None if config is None else config.model_dump(mode="json")
