"""Where this kernel's folder is on the server: the project id of a folder when the server's root is not known.

A server found through its runtime file reports its root folder; one found through a URL (JupyterHub's
``JUPYTERHUB_SERVICE_URL``, ``SPECFLOW_SERVER_URL``) does not. The Jupyter server's own sessions API does: the
session whose kernel is this kernel gives the notebook's path relative to the root, and the kernel runs in the
notebook's folder, so the root is the kernel's folder minus that relative folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import httpx

from specflow_nb.client import ServerInfo


def kernel_id() -> str | None:
    """This kernel's id (from its connection file ``kernel-<id>.json``); ``None`` outside a kernel."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except Exception:  # not in a kernel (a script, a test), or ipykernel missing
        return None
    match = re.fullmatch(r"kernel-(.+)\.json", name)
    return match.group(1) if match else None


def root_from_sessions(server: ServerInfo, kernel: str, cwd: Path, *, timeout: float = 10.0) -> Path | None:
    """The server's root folder as this machine sees it, from the session running ``kernel`` in ``cwd``.

    ``None`` when no session runs that kernel or its notebook's folder is not the tail of ``cwd`` (the kernel
    changed folder, or runs elsewhere).
    """
    headers = {"Authorization": f"token {server.token}"} if server.token else {}
    try:
        response = httpx.get(f"{server.url}api/sessions", headers=headers, timeout=timeout)
        response.raise_for_status()
        sessions = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    for session in sessions if isinstance(sessions, list) else ():
        if (session.get("kernel") or {}).get("id") != kernel:
            continue
        folder = PurePosixPath(session.get("path") or "").parent
        parts = [p for p in folder.parts if p not in ("", ".")]
        here = Path(os.path.abspath(cwd))
        if parts and tuple(here.parts[-len(parts) :]) != tuple(parts):
            return None
        return Path(*here.parts[: len(here.parts) - len(parts)]) if parts else here
    return None


def project_id_on_server(
    server: ServerInfo, project: Path, *, kernel: str | None = None, cwd: Path | None = None
) -> str | None:
    """The id of ``project`` on ``server`` (its folder relative to the server's root), or ``None`` when unknown."""
    root = server.root_dir
    if root is None:
        kernel = kernel or kernel_id()
        if kernel is None:
            return None
        root = root_from_sessions(server, kernel, cwd or Path.cwd())
        if root is None:
            return None
    resolved, base = Path(project).resolve(), Path(root).resolve()
    if not resolved.is_relative_to(base):
        return None
    rel = resolved.relative_to(base).as_posix()
    return "" if rel == "." else rel
