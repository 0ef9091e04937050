"""Plain git and the verify command: the operations the orchestrator performs itself, without an agent.

Everything runs as an argument list (never through a shell). Git commands that create commits pass an identity with
``-c user.name=… -c user.email=…`` only when the repository has none configured, so a user's own identity is always
kept and an unconfigured machine (a fresh JupyterHub image) still works.

The built-in merge (MISSION §1): commit leftovers on the feature branch, switch to the target branch,
``git merge --no-ff``; on a conflict the merge is aborted, the feature branch checked out again and the conflicting
files reported, so a human can resolve them. The project's ``.specflow/`` folder (orchestration state, run folders)
is never committed: it must survive branch switches untouched.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio
import anyio.abc

from specflow_nb.errors import ConfigError, SpecflowError
from specflow_nb.redact import verify_environment

#: Used only when neither the repository nor the user's git config names an author.
FALLBACK_IDENTITY = ("specflow_nb", "specflow_nb@localhost")
#: The engine's own folder; kept out of every commit so branch switches never move or delete state files.
STATE_DIR = ".specflow"
#: Seconds between SIGTERM and SIGKILL when a verify command times out.
KILL_GRACE_SECONDS = 5.0
#: Exit code reported when the verify command's executable does not exist (what a shell would report).
EXIT_NOT_FOUND = 127
#: The exit code reported for a verify command the server's policy did not run (specflow_nb.policy).
EXIT_REFUSED = 126


class GitError(SpecflowError):
    """A git operation failed."""


class GitNotInstalled(GitError):
    """The ``git`` executable is not on PATH."""


class NotAGitRepo(GitError):
    """The project folder is not inside a git repository."""


class BranchNotFound(GitError):
    """A branch named in the configuration or the phase does not exist."""


@dataclass(frozen=True)
class MergeResult:
    """Outcome of :func:`merge_feature`. ``merged`` is confirmed by git, never assumed."""

    merged: bool
    conflict_files: list[str] = field(default_factory=list)
    commit: str | None = None
    message: str = ""


@dataclass(frozen=True)
class CommandResult:
    """Outcome of :func:`run_verify_command_async`: the exit code, the end of its combined stdout/stderr, a timeout flag."""

    exit_code: int
    output_tail: str
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# --------------------------------------------------------------------------------------------------------------
# git plumbing


def _git(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``git args…`` in ``project``; raise :class:`GitError` on a non-zero exit when ``check``."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"}
    try:
        proc = subprocess.run(
            ["git", *args], cwd=project, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise GitNotInstalled(
            "git is not installed or not on PATH", hint="Install git; specflow_nb needs it to merge and verify."
        ) from exc
    except NotADirectoryError as exc:
        raise NotAGitRepo(f"{project} is not a folder", hint="Pass the project's folder.") from exc
    if check and proc.returncode != 0:
        raise GitError(
            f"git {args[0]} failed in {project}: {(proc.stderr or proc.stdout).strip()}",
            hint="Check the repository's state with `git status`.",
            details={"argv": ["git", *args], "exit_code": proc.returncode},
        )
    return proc


def _ensure_repo(project: Path) -> None:
    if not Path(project).is_dir():
        raise NotAGitRepo(f"{project} does not exist", hint="Pass the project's folder.")
    proc = _git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if proc.returncode != 0 or proc.stdout.strip() != "true":
        raise NotAGitRepo(
            f"{project} is not a git repository",
            hint="Run `git init` in the project (and commit) so specflow_nb can merge the phase.",
        )


def _branch_exists(project: Path, branch: str) -> bool:
    return _git(project, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0


def _require_branch(project: Path, branch: str) -> None:
    if not _branch_exists(project, branch):
        raise BranchNotFound(
            f"Branch {branch!r} does not exist in {project}",
            hint="Check the branch name (target branch in the configuration, or the phase's feature branch).",
        )


def _identity_args(project: Path) -> list[str]:
    """``-c user.name=… -c user.email=…`` when git has no identity for this repo, else nothing."""
    name = _git(project, "config", "user.name", check=False).stdout.strip()
    email = _git(project, "config", "user.email", check=False).stdout.strip()
    if name and email:
        return []
    return ["-c", f"user.name={name or FALLBACK_IDENTITY[0]}", "-c", f"user.email={email or FALLBACK_IDENTITY[1]}"]


def _head(project: Path) -> str:
    return _git(project, "rev-parse", "HEAD").stdout.strip()


def current_branch(project: Path) -> str | None:
    """The checked-out branch's short name, or None on a detached HEAD."""
    _ensure_repo(project)
    proc = _git(project, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def default_branch(project: Path) -> str | None:
    """The repository's default branch: ``origin/HEAD``'s target, else ``main``, else ``master``, else None."""
    _ensure_repo(project)
    proc = _git(project, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", check=False)
    ref = proc.stdout.strip()
    if proc.returncode == 0 and ref.startswith("refs/remotes/origin/"):
        return ref.removeprefix("refs/remotes/origin/")
    for name in ("main", "master"):
        if _branch_exists(project, name):
            return name
    return None


def is_merged(project: Path, feature_branch: str, target_branch: str) -> bool:
    """True when every commit of ``feature_branch`` is in ``target_branch`` (``git merge-base --is-ancestor``).

    A feature branch with no commits of its own is trivially merged: callers ask only after the merge step.
    """
    _ensure_repo(project)
    _require_branch(project, feature_branch)
    _require_branch(project, target_branch)
    proc = _git(
        project,
        "merge-base",
        "--is-ancestor",
        f"refs/heads/{feature_branch}",
        f"refs/heads/{target_branch}",
        check=False,
    )
    if proc.returncode in (0, 1):
        return proc.returncode == 0
    raise GitError(
        f"git merge-base failed in {project}: {proc.stderr.strip()}", hint="Check the repository with `git status`."
    )


def is_clean(project: Path) -> bool:
    """True when the working tree has no changes outside ``.specflow/`` (tracked or untracked)."""
    _ensure_repo(project)
    out = _git(project, "status", "--porcelain", "--", ".", f":(exclude){STATE_DIR}").stdout
    return not out.strip()


def diff_stat(project: Path, feature_branch: str, target_branch: str) -> str:
    """``git diff --stat target...feature``: what merging the feature would bring in (the "View diff" panel)."""
    _ensure_repo(project)
    _require_branch(project, feature_branch)
    _require_branch(project, target_branch)
    return _git(project, "diff", "--stat", f"{target_branch}...{feature_branch}").stdout


@dataclass(frozen=True)
class FileDiff:
    """One file a merge would bring in: lines added and deleted (None for binary files) and its patch."""

    path: str
    added: int | None
    deleted: int | None
    patch: str
    #: ``committed`` on the feature branch, or ``uncommitted`` / ``untracked`` in its checked-out work tree (the
    #: built-in merge commits those first, so they are part of what the merge brings in).
    state: str = "committed"
    truncated: bool = False


@dataclass(frozen=True)
class BranchDiff:
    feature_branch: str
    target_branch: str
    files: list[FileDiff] = field(default_factory=list)
    #: Files left out beyond ``max_files``.
    more_files: int = 0


def _numstat(text: str) -> dict[str, tuple[int | None, int | None]]:
    counts: dict[str, tuple[int | None, int | None]] = {}
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) == 3:
            added, deleted, path = parts
            counts[path] = (None, None) if added == "-" else (int(added), int(deleted))
    return counts


def _split_patches(text: str) -> dict[str, str]:
    """``git diff`` output → path → that file's patch (keyed by the new path, ``b/…``)."""
    patches: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git "):
            if current is not None:
                patches[current] = "".join(lines)
            current, lines = line.rstrip("\n").split(" b/", 1)[-1], []
        lines.append(line)
    if current is not None:
        patches[current] = "".join(lines)
    return patches


def _cut(patch: str, max_chars: int) -> tuple[str, bool]:
    return (patch, False) if len(patch) <= max_chars else (patch[:max_chars], True)


def branch_diff(
    project: Path,
    feature_branch: str,
    target_branch: str,
    *,
    max_files: int = 300,
    max_patch_chars: int = 60_000,
) -> BranchDiff:
    """What merging ``feature_branch`` into ``target_branch`` brings in, file by file (the panel's View diff).

    Committed changes are ``target...feature`` (since the branches forked). When the feature branch is checked
    out, its uncommitted and untracked files count too (outside ``.specflow/``): the built-in merge commits them.
    """
    _ensure_repo(project)
    _require_branch(project, feature_branch)
    _require_branch(project, target_branch)
    exclude = f":(exclude){STATE_DIR}"
    span = f"{target_branch}...{feature_branch}"
    counts = _numstat(_git(project, "diff", "--numstat", "--no-renames", span, "--", ".", exclude).stdout)
    patches = _split_patches(_git(project, "diff", "--no-renames", "--no-color", span, "--", ".", exclude).stdout)
    files: dict[str, FileDiff] = {}
    for path, (added, deleted) in counts.items():
        patch, cut = _cut(patches.get(path, ""), max_patch_chars)
        files[path] = FileDiff(path, added, deleted, patch, "committed", cut)
    if current_branch(project) == feature_branch:
        work = _numstat(_git(project, "diff", "--numstat", "--no-renames", "HEAD", "--", ".", exclude).stdout)
        work_patches = _split_patches(
            _git(project, "diff", "--no-renames", "--no-color", "HEAD", "--", ".", exclude).stdout
        )
        for path, (added, deleted) in work.items():
            before = files.get(path)
            if before is not None and before.added is not None and added is not None and deleted is not None:
                added, deleted = before.added + added, (before.deleted or 0) + deleted
            patch, cut = _cut((before.patch if before else "") + work_patches.get(path, ""), max_patch_chars)
            files[path] = FileDiff(path, added, deleted, patch, "uncommitted", cut)
        untracked = _git(project, "ls-files", "--others", "--exclude-standard", "--", ".", exclude).stdout.splitlines()
        for path in untracked:
            proc = _git(project, "diff", "--no-index", "--no-color", "--numstat", "/dev/null", path, check=False)
            stat = _numstat(proc.stdout)
            added, deleted = next(iter(stat.values()), (None, None))
            text = _git(project, "diff", "--no-index", "--no-color", "/dev/null", path, check=False).stdout
            patch, cut = _cut(text, max_patch_chars)
            files[path] = FileDiff(path, added, deleted, patch, "untracked", cut)
    ordered = sorted(files.values(), key=lambda f: f.path)
    return BranchDiff(feature_branch, target_branch, ordered[:max_files], max(0, len(ordered) - max_files))


def commit_leftovers(project: Path, *, message: str) -> str | None:
    """Stage everything except ``.specflow/`` and commit it; return the new commit, or None when nothing changed."""
    _ensure_repo(project)
    # Stage everything, then unstage the state folder: naming it in an exclude pathspec fails when it is ignored.
    _git(project, "add", "-A")
    _git(project, "reset", "--quiet", "--", STATE_DIR, check=False)
    if _git(project, "diff", "--cached", "--quiet", check=False).returncode == 0:
        return None
    _git(project, *_identity_args(project), "commit", "--quiet", "-m", message)
    return _head(project)


def merge_feature(project: Path, feature_branch: str, target_branch: str, *, message: str) -> MergeResult:
    """Merge ``feature_branch`` into ``target_branch`` with ``--no-ff`` (the built-in merge step).

    Leftover changes are committed on the feature branch first. On success the target branch stays checked out
    (the merge commit is ``commit``). On a conflict the merge is aborted, the feature branch is checked out again
    with a clean tree, and ``conflict_files`` names the files. Raises :class:`NotAGitRepo`, :class:`BranchNotFound`,
    or :class:`GitError` when the repository is not in a state to merge (e.g. another branch with uncommitted
    changes is checked out).
    """
    _ensure_repo(project)
    _require_branch(project, feature_branch)
    _require_branch(project, target_branch)
    if feature_branch == target_branch:
        raise GitError(
            f"Cannot merge {feature_branch!r} into itself",
            hint="Set a target branch different from the feature branch in the configuration.",
        )
    branch = current_branch(project)
    if branch != feature_branch:
        if not is_clean(project):
            raise GitError(
                f"Branch {branch or '(detached HEAD)'} is checked out with uncommitted changes; expected {feature_branch!r}",
                hint=f"Commit or stash those changes and check out {feature_branch!r}, then merge again.",
            )
        _git(project, "checkout", "--quiet", feature_branch)

    try:
        commit_leftovers(project, message=f"Commit remaining changes of {feature_branch} before merge")
    except GitError as exc:  # a pre-commit hook refused, for instance: the human decides
        return MergeResult(
            merged=False, message=f"Could not commit leftover changes on {feature_branch}: {exc.message}"
        )

    if is_merged(project, feature_branch, target_branch):
        return MergeResult(
            merged=True,
            commit=_git(project, "rev-parse", f"refs/heads/{target_branch}").stdout.strip(),
            message=f"{feature_branch} is already merged into {target_branch}",
        )

    _git(project, "checkout", "--quiet", target_branch)
    proc = _git(
        project, *_identity_args(project), "merge", "--no-ff", "--no-edit", "-m", message, feature_branch, check=False
    )
    if proc.returncode == 0 and is_merged(project, feature_branch, target_branch):
        return MergeResult(merged=True, commit=_head(project), message=f"Merged {feature_branch} into {target_branch}")

    conflicts = [
        line
        for line in _git(project, "diff", "--name-only", "--diff-filter=U", check=False).stdout.splitlines()
        if line
    ]
    if _git(project, "rev-parse", "--verify", "--quiet", "MERGE_HEAD", check=False).returncode == 0:
        _git(project, "merge", "--abort", check=False)
    _git(project, "checkout", "--quiet", feature_branch)
    if conflicts:
        return MergeResult(
            merged=False,
            conflict_files=conflicts,
            message=f"Merging {feature_branch} into {target_branch} conflicts in: {', '.join(conflicts)}",
        )
    detail = (proc.stderr or proc.stdout).strip()
    return MergeResult(merged=False, message=f"git merge of {feature_branch} into {target_branch} failed: {detail}")


# --------------------------------------------------------------------------------------------------------------
# verifyCommand


def command_argv(command: str) -> list[str]:
    """Split a verify command with shell quoting rules (``shlex``), without a shell.

    Pipes, redirections, ``&&`` and variables are NOT interpreted; a user who wants a shell writes it explicitly,
    e.g. ``bash -c 'pytest -q && ruff check .'``. Raises :class:`ConfigError` on an empty or unparseable command.
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"verifyCommand cannot be parsed: {exc}", hint="Check its quotes, e.g. `pytest -q -k 'not slow'`."
        ) from exc
    if not argv:
        raise ConfigError("verifyCommand is empty", hint="Set a command such as `pytest -q`, or leave it unset.")
    return argv


def _tail(data: bytes, max_chars: int) -> str:
    text = data[-(max_chars * 4) :].decode("utf-8", errors="replace")
    return text[-max_chars:]


def _not_started(command: str, argv: list[str], exc: OSError) -> CommandResult:
    if isinstance(exc, FileNotFoundError):
        return CommandResult(
            exit_code=EXIT_NOT_FOUND,
            output_tail=f"verifyCommand {command!r}: executable {argv[0]!r} not found (not on PATH?)",
        )
    return CommandResult(exit_code=126, output_tail=f"verifyCommand {command!r}: {exc}")


def _result(out: IO[bytes], exit_code: int | None, timed_out: bool, timeout: float, max_chars: int) -> CommandResult:
    out.seek(0, os.SEEK_END)
    out.seek(max(0, out.tell() - max_chars * 4))
    tail = _tail(out.read(), max_chars)
    if timed_out:
        tail = f"{tail}\n[verifyCommand timed out after {timeout:g} s and was stopped]".lstrip("\n")
    return CommandResult(exit_code=-1 if exit_code is None else exit_code, output_tail=tail, timed_out=timed_out)


async def _akill_group(proc: anyio.abc.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with anyio.move_on_after(KILL_GRACE_SECONDS):
        await proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


async def run_verify_command_async(
    project: Path,
    command: str,
    timeout: float,
    *,
    max_output_chars: int = 4000,
    env: dict[str, str] | None = None,
    env_allow: Iterable[str] = (),
) -> CommandResult:
    """Run the configured verifyCommand in ``project`` (argument list from :func:`command_argv`, never a shell) and
    report its exit code and the end of its output. On timeout the command's process group gets SIGTERM, then
    SIGKILL after the grace period; a cancelled caller (e.g. the user cancels the orchestration during verify) kills
    it the same way before the cancellation propagates. A missing executable is exit code 127.

    The command sees only the allow-listed part of the server's environment (:func:`specflow_nb.redact.
    verify_environment`: PATH, HOME, locale, ``SPECFLOW_*`` … plus ``env_allow``) and ``env``: never the server's
    API keys or tokens."""
    argv = command_argv(command)
    with tempfile.TemporaryFile() as out:
        try:
            proc = await anyio.open_process(
                argv,
                cwd=project,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**verify_environment(env_allow), **(env or {})},
                start_new_session=True,
            )
        except OSError as exc:
            return _not_started(command, argv, exc)
        timed_out = False
        try:
            with anyio.fail_after(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
            await _akill_group(proc)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _akill_group(proc)
            raise
        return _result(out, proc.returncode, timed_out, timeout, max_output_chars)
