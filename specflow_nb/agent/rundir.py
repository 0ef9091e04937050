"""A run's folder and its processes' identity: the file names, atomic JSON, run.lock, pid records, pidfds.

Apart from the process code (:mod:`specflow_nb.agent.process`) because reading a run folder is needed by more than
launching: the outcome reader, the families' classifiers, the helper and healing read the same files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from specflow_nb import procs
from specflow_nb.agent.outcome import AgentRunError, FailureKind

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

STDERR_TAIL_CHARS = 4000

PROMPT_FILE = "prompt.md"
ARGV_FILE = "argv.json"
PID_FILE = "pid.json"
STREAM_FILE = "stream.jsonl"
STDERR_FILE = "stderr.log"
EXIT_FILE = "exit.json"
KILL_FILE = "kill.json"
OUTCOME_FILE = "outcome.json"
RUN_LOCK_FILE = "run.lock"
LEADER_FILE = "leader.json"


def write_json(path: Path, data: Any) -> None:
    """Atomic: a reader never sees half a file, even if this process dies mid-write.

    Not fsynced: a run folder need not outlive the operating system, because the run's processes do not either
    (after a power loss every run is lost and reconciled from the record). What must survive is in the record, which
    the store fsyncs before each spawn (write-ahead); an fsync here would cost a transition ~5 ms per file.

    Compact JSON in one ``write``: ``json.dump`` with an indent runs the pure-Python encoder chunk by chunk, which
    cost a transition a few hundred microseconds per file (argv.json holds the output schema)."""
    tmp = path.with_name(tmp_name(path.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(json.dumps(data, default=str).encode("ascii"))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def tmp_name(name: str) -> str:
    """The temp file :func:`write_json` writes ``name`` through (one per process: two writers never share one)."""
    return f".{name}.{os.getpid()}.tmp"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def resolve_command(argv0: str, env: dict[str, str]) -> str | None:
    if os.sep in argv0:
        return argv0 if os.access(argv0, os.X_OK) and not os.path.isdir(argv0) else None
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


def stderr_tail(run_dir: Path, chars: int = STDERR_TAIL_CHARS) -> str:
    path = run_dir / STDERR_FILE
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars * 4))
            return f.read().decode("utf-8", errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def _legacy_proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat: how pid.json named a process before createTime."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def record_alive(record: dict[str, Any]) -> bool:
    """The process a pid.json names still runs: same pid, same creation time, not a zombie."""
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    if isinstance(record.get("createTime"), (int, float)):
        return procs.is_alive(pid, record["createTime"])
    ticks = record.get("startTime")  # a record written by an older specflow_nb
    stat = _legacy_proc_stat(pid) if isinstance(ticks, int) else None
    return stat is not None and stat[1] == ticks and stat[0] not in ("Z", "X")


def pidfd_open(pid: int) -> int | None:
    """A pidfd pins one process (immune to pid reuse) and becomes readable when it exits (Linux fast path)."""
    if not hasattr(os, "pidfd_open") or procs.portable():
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def run_lock_held(run_dir: Path) -> bool:
    """Some process of the run (its exit recorder, the agent, or the host launching it) still holds ``run.lock``.

    The launcher takes the lock before it forks and hands it to the run's processes, which keep it until the last
    of them exits; so a held lock means the run lives even when its pid.json was never written (the launching
    host died between the fork and that write). Where there is no ``fcntl`` (Windows) this says False.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(run_dir / RUN_LOCK_FILE, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def take_run_lock(run_dir: Path) -> int | None:
    if fcntl is None:
        return None
    fd = os.open(run_dir / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AgentRunError(
            FailureKind.PROCESS_FAILED,
            f"Run {run_dir.name} still has a live process: it is not started twice.",
            hint="Wait for it to end (or cancel the orchestration), then retry.",
        ) from None
    return fd
