"""Which machine and which process: identities that survive pid reuse, on every platform.

A process is named by its pid AND its creation time (psutil's ``create_time``, seconds since the epoch), so a pid
the OS handed to a new process never passes for the old one. A machine is named by a host id that differs between
machines, between boots and between pid namespaces (containers), because only on the same host id may a pid be
looked up at all; elsewhere a lease decides (see :mod:`specflow_nb.ownership`).

Linux fast paths (pidfd to await a stranger's exit, inotify to watch folders) are used where they exist.
``SPECFLOW_PORTABLE=1`` turns them off, so the portable paths (psutil, watchfiles, polling) run on Linux too: the
liveness and takeover tests run through both.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import socket
from pathlib import Path

import psutil

#: Two readings of one process's creation time differ by less than this (psutil rounds to the clock tick).
CREATE_TIME_TOLERANCE = 0.05


def portable() -> bool:
    """True when the Linux fast paths are switched off (``SPECFLOW_PORTABLE=1``) or do not exist."""
    return os.environ.get("SPECFLOW_PORTABLE", "") not in ("", "0") or not Path("/proc/self/stat").exists()


@functools.lru_cache(maxsize=1)
def _default_host_id() -> str:
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        try:
            parts.append(Path(path).read_text(encoding="ascii").strip())
            break
        except OSError:
            continue
    else:
        parts.append(str(int(psutil.boot_time())))
    with contextlib.suppress(OSError):  # containers on one machine share the boot id but not the pid namespace
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def host_id() -> str:
    """This machine (boot, pid namespace). ``SPECFLOW_HOST_ID`` overrides it (tests simulate a second machine)."""
    return os.environ.get("SPECFLOW_HOST_ID") or _default_host_id()


def hostname() -> str:
    return socket.gethostname()


def create_time(pid: int) -> float | None:
    """The creation time of process ``pid``, or None when there is none (or it is a zombie)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, OSError):
        return None


def is_alive(pid: int, created: float | None) -> bool:
    """The recorded process (same pid, same creation time) still runs on this host."""
    if not isinstance(pid, int) or pid <= 0 or not isinstance(created, (int, float)):
        return False
    now = create_time(pid)
    return now is not None and abs(now - float(created)) < CREATE_TIME_TOLERANCE


def self_create_time() -> float:
    """This process's creation time (cached per pid: a forked child asks again)."""
    return _own_create_time(os.getpid())


@functools.lru_cache(maxsize=4)
def _own_create_time(pid: int) -> float:
    created = create_time(pid)
    assert created is not None
    return created
