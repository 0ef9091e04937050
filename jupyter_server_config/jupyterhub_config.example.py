"""Example JupyterHub configuration for a team using specflow_nb: observers, shared projects, long runs.

Copy the parts you need into your ``jupyterhub_config.py`` (or load this file from it with
``load_subconfig("/path/to/jupyterhub_config.example.py")`` and override the names below). Tested as is by
tests/hub/ against a real JupyterHub (dummy authenticator, local-process spawner).

What it sets up:

* **Read-only observers.** ``oscar`` may watch ``alice``'s orchestrations (status, list, live channel, projects
  overview) but not start, pause, cancel, merge or recover them (403), and cannot open her files, kernels or
  terminals. Two parts are needed: the role below, and :class:`specflow_nb.server.hub_authorizer.SpecflowHubAuthorizer`
  in the single-user servers — JupyterHub's default authorizer checks only ``access:servers`` and would let an
  observer do everything.
* **A shared project account** (the collaboration-account pattern). ``team-todo`` is a hub user that nobody logs in
  as; its server holds the team's project, and ``alice`` and ``carol`` both drive its orchestration. Each decision a
  user's command causes records that user's hub name (``actor`` in the decision log entry's data).
* **Long runs.** The specflow extension reports a progressing orchestration as server activity, so
  jupyterhub-idle-culler does not cull a server in the middle of a phase; a culled or restarted server adopts or
  resumes its agent runs when it starts again.
"""

import sys

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

#: The user whose orchestrations observers may watch, and who may watch them.
WATCHED_USER = "alice"
OBSERVERS = ["oscar"]
#: The shared project account and the team members who drive its orchestrations.
TEAM_ACCOUNT = "team-todo"
TEAM_MEMBERS = ["alice", "carol"]

# -- custom scopes: what the single-user server's SpecflowHubAuthorizer checks for non-owners -----------------------
# jupyter_server asks for action read (GET), write (POST …) or execute (kernels, terminals) on a resource; every
# specflow route is the resource "specflow".
c.JupyterHub.custom_scopes = {
    "custom:jupyter_server:read:specflow": {
        "description": "Watch specflow orchestrations: status, list, live updates, projects overview.",
    },
    "custom:jupyter_server:write:specflow": {
        "description": "Control specflow orchestrations: start, pause, resume, cancel, merge, recover, answer.",
        "subscopes": ["custom:jupyter_server:read:specflow"],
    },
    "custom:jupyter_server:read:*": {
        "description": "Read everything on the server (files, sessions, specflow).",
    },
    "custom:jupyter_server:write:*": {
        "description": "Change files and control specflow on the server (no code execution).",
        "subscopes": ["custom:jupyter_server:read:*"],
    },
    "custom:jupyter_server:execute:*": {
        "description": "Full use of the server: run kernels and terminals.",
        "subscopes": ["custom:jupyter_server:write:*", "custom:jupyter_server:read:*"],
    },
}

c.JupyterHub.load_roles = [
    {
        # Read-only observers: reach alice's server, and only watch specflow on it.
        "name": "specflow-observer",
        "description": f"Watch {WATCHED_USER}'s specflow orchestrations without controlling them.",
        "scopes": [
            f"access:servers!user={WATCHED_USER}",
            f"custom:jupyter_server:read:specflow!user={WATCHED_USER}",
        ],
        "users": OBSERVERS,
    },
    {
        # The team drives the project account's server fully (a narrower grant: write:specflow + read:* only).
        "name": "team-todo-members",
        "description": f"Use the shared project account {TEAM_ACCOUNT}'s server and start/stop it.",
        "scopes": [
            f"access:servers!user={TEAM_ACCOUNT}",
            f"servers!user={TEAM_ACCOUNT}",
            f"custom:jupyter_server:execute:*!user={TEAM_ACCOUNT}",
        ],
        "users": TEAM_MEMBERS,
    },
]

# -- single-user servers -------------------------------------------------------------------------------------------
# The specflow extension is enabled by the package's installed config (jupyter_server_config.d/specflow_nb.json);
# the authorizer turns the custom scopes above into permissions.
c.Spawner.args = [
    "--ServerApp.authorizer_class=specflow_nb.server.hub_authorizer.SpecflowHubAuthorizer",
]
# Browser sessions (OAuth) carry only the scopes the server's OAuth client may ask for: include the custom ones, so
# an observer opening alice's server in a browser keeps their read-only grant.
c.Spawner.oauth_client_allowed_scopes = [
    "custom:jupyter_server:read:specflow!server",
    "custom:jupyter_server:write:specflow!server",
    "custom:jupyter_server:read:*!server",
    "custom:jupyter_server:write:*!server",
    "custom:jupyter_server:execute:*!server",
]
# How often a single-user server posts its last activity to the hub (seconds; JupyterHub's default is 300). The
# culler can only see activity that has been posted, so keep this well below the culler's timeout.
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "60"}

# -- idle culling that respects long runs ----------------------------------------------------------------------------
# A server with a running orchestration keeps reporting activity, so only truly idle servers are culled. Agent runs
# are detached processes: a server culled anyway (or restarted) adopts them when it starts again.
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=3600"],
    },
]
c.JupyterHub.load_roles.append(
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
)
