"""One real JupyterHub for every test under tests/hub/ (package scope: starting a hub and its servers takes seconds).

Skipped with the reason when jupyterhub, jupyterhub-idle-culler or configurable-http-proxy is missing — unless
``SPECFLOW_REQUIRE_HUB=1`` (CI), which turns the skip into a failure. The proxy is found through
``SPECFLOW_CHP_BIN``, then ``.ci/node/node_modules/.bin/configurable-http-proxy``, then ``PATH``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hubctl import Hub, find_proxy, hub_missing_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The idle-culler test culls every idle server on the shared hub: run it after the other hub tests."""
    here = Path(__file__).parent
    culler = [item for item in items if "idle_culler" in item.name and item.path.is_relative_to(here)]
    rest = [item for item in items if item not in culler]
    hub_items = [i for i, item in enumerate(rest) if item.path.is_relative_to(here)]
    at = hub_items[-1] + 1 if hub_items else len(rest)
    items[:] = rest[:at] + culler + rest[at:]


@pytest.fixture(scope="package")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    reason = hub_missing_reason()
    if reason is not None:
        if os.environ.get("SPECFLOW_REQUIRE_HUB") == "1":
            pytest.fail(f"SPECFLOW_REQUIRE_HUB=1 but {reason}")
        pytest.skip(reason)
    proxy = find_proxy()
    assert proxy is not None
    h = Hub(Path(tmp_path_factory.mktemp("hub")), proxy)
    h.start()
    try:
        yield h
    finally:
        h.stop()
