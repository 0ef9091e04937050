"""The Jupyter server extension that hosts the specflow engine and serves its REST API.

Enabled by ``jupyter_server_config.d/specflow_nb.json`` (``"specflow_nb.server": true``). Importing this package
does not import jupyter_server: only the extension point below does, so the client can use
:mod:`specflow_nb.server.api` from a plain kernel.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """The entry point jupyter_server looks up on the module named in its config."""
    from specflow_nb.server.extension import SpecflowExtension

    return [{"module": "specflow_nb.server", "app": SpecflowExtension}]
