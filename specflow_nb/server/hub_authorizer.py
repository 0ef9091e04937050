"""A JupyterHub single-user Authorizer that honours ``custom:jupyter_server:{action}:{resource}`` scopes.

JupyterHub's own ``JupyterHubAuthorizer`` checks only ``access:servers``: whoever may reach a server may do
everything on it, so a "read-only observer" role cannot be expressed. This authorizer keeps that check and adds one
rule for everyone but the server's owner: the request's action on the resource must be granted by a custom scope,

* ``custom:jupyter_server:{action}:{resource}`` (e.g. ``custom:jupyter_server:read:specflow``), or
* ``custom:jupyter_server:{action}:*`` (every resource: contents, kernels, terminals, specflow …),

filtered to this server's user or to this server (``!user=alice``, ``!server=alice/``) or unfiltered. jupyter_server
derives the action from the HTTP method (GET → read, POST/PUT/PATCH/DELETE → write; kernels and terminals need
execute), and every specflow route uses the resource ``specflow``. The owner keeps full access, so the hub's default
``user`` role needs no change. Enable it in the hub's config (see jupyter_server_config/jupyterhub_config.example.py)::

    c.Spawner.args = ["--ServerApp.authorizer_class=specflow_nb.server.hub_authorizer.SpecflowHubAuthorizer"]

This module imports ``jupyterhub``; it is loaded only by single-user servers a JupyterHub spawns.
"""

from __future__ import annotations

import os
from typing import Any

from jupyterhub.singleuser.extension import JupyterHubAuthorizer

SCOPE_PREFIX = "custom:jupyter_server"


def required_scopes(action: str, resource: str, owner: str, server_name: str) -> set[str]:
    """The scopes any one of which lets a non-owner do ``action`` on ``resource`` of ``owner``'s server."""
    filters = (f"!user={owner}", f"!server={owner}/{server_name}")
    return {f"{SCOPE_PREFIX}:{action}:{target}{flt}" for target in (resource, "*") for flt in filters}


class SpecflowHubAuthorizer(JupyterHubAuthorizer):
    """``access:servers`` for everyone; for non-owners also a custom scope naming the action and the resource."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if not super().is_authorized(handler, user, action, resource):
            return False
        owner = os.environ.get("JUPYTERHUB_USER", "")
        hub_user = getattr(user, "hub_user", None) or {}
        if hub_user.get("kind", "user") == "user" and hub_user.get("name") == owner and owner:
            return True
        needed = required_scopes(action, resource, owner, os.environ.get("JUPYTERHUB_SERVER_NAME", ""))
        granted = self.hub_auth.check_scopes(needed, hub_user)
        self.log.debug("%s may %s %s on %s's server: %s", user.username, action, resource, owner, bool(granted))
        return bool(granted)
