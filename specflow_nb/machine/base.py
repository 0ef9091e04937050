"""The immutable base of every command, event and action the machine exchanges (frozen pydantic models, camelCase JSON).

Apart so that commands, events and actions share one base without importing each other.
"""

from __future__ import annotations

from pydantic import ConfigDict

from specflow_nb.models import (
    CamelModel,
)


class Frozen(CamelModel):
    model_config = ConfigDict(frozen=True)
