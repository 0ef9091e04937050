"""gitops against real git repositories in temp folders, and the verify command as a real subprocess."""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from specflow_nb import gitops
from specflow_nb.demo import SAMPLE_FEATURE
from specflow_nb.errors import ConfigError

ID = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *ID, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit_file(repo: Path, name: str, text: str, message: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def no_global_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the machine's global/system git config, as on a fresh JupyterHub image."""
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


# ---------------------------------------------------------------------------------------------------- branches


def test_current_and_default_branch(sample_project: Path) -> None:
    assert gitops.current_branch(sample_project) == SAMPLE_FEATURE
    assert gitops.default_branch(sample_project) == "main"


def test_default_branch_prefers_origin_head(sample_project: Path, tmp_path: Path) -> None:
    git(sample_project, "branch", "-m", "main", "trunk")
    git(sample_project, "checkout", "-q", "trunk")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(sample_project), str(clone)], check=True, capture_output=True)
    git(clone, "branch", "main")  # a local "main" must not win over origin/HEAD
    assert gitops.default_branch(clone) == "trunk"


def test_default_branch_falls_back_to_master_then_none(sample_project: Path) -> None:
    git(sample_project, "branch", "-m", "main", "master")
    assert gitops.default_branch(sample_project) == "master"
    git(sample_project, "branch", "-m", "master", "develop")
    assert gitops.default_branch(sample_project) is None


def test_detached_head_has_no_current_branch(sample_project: Path) -> None:
    git(sample_project, "checkout", "-q", "--detach")
    assert gitops.current_branch(sample_project) is None


def test_not_a_git_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(gitops.NotAGitRepo, match="not a git repository") as info:
        gitops.current_branch(plain)
    assert info.value.hint and "git init" in info.value.hint
    with pytest.raises(gitops.NotAGitRepo):
        gitops.merge_feature(tmp_path / "missing", "a", "b", message="m")


def test_unknown_branch(sample_project: Path) -> None:
    with pytest.raises(gitops.BranchNotFound, match="nope"):
        gitops.is_merged(sample_project, SAMPLE_FEATURE, "nope")
    with pytest.raises(gitops.BranchNotFound, match="nope"):
        gitops.merge_feature(sample_project, "nope", "main", message="m")


# ---------------------------------------------------------------------------------------------------- merge


def test_merge_commits_leftovers_and_merges_no_ff(sample_project: Path) -> None:
    commit_file(sample_project, "todo/model.py", "class Item: ...\n", "T004")
    (sample_project / "todo" / "store.py").write_text("def load(): ...\n")  # leftover, uncommitted
    # .specflow/ must never be committed, even when the project does not ignore it
    (sample_project / ".gitignore").write_text("__pycache__/\n")
    git(sample_project, "commit", "-q", "-am", "stop ignoring .specflow")
    state = sample_project / ".specflow" / "workflows" / "orchestration-1.json"
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    assert not gitops.is_merged(sample_project, SAMPLE_FEATURE, "main")
    assert "todo/model.py" in gitops.diff_stat(sample_project, SAMPLE_FEATURE, "main")

    result = gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="Merge phase 0001")

    assert result.merged, result.message
    assert result.conflict_files == []
    assert result.commit == git(sample_project, "rev-parse", "main")
    assert gitops.current_branch(sample_project) == "main"
    assert gitops.is_merged(sample_project, SAMPLE_FEATURE, "main")
    # --no-ff: a merge commit with two parents and our message
    assert len(git(sample_project, "rev-list", "--parents", "-n1", "main").split()) == 3
    assert git(sample_project, "log", "-1", "--format=%s", "main") == "Merge phase 0001"
    tracked = git(sample_project, "ls-files").splitlines()
    assert "todo/store.py" in tracked
    assert not any(p.startswith(".specflow") for p in tracked)
    assert state.read_text() == "{}"  # survived the branch switch


def test_merge_when_already_merged_is_confirmed_without_new_commit(sample_project: Path) -> None:
    commit_file(sample_project, "a.txt", "a\n", "a")
    first = gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="m1")
    assert first.merged
    again = gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="m2")
    assert again.merged and again.commit == first.commit
    assert "already merged" in again.message


def test_merge_conflict_names_files_and_returns_clean_to_feature(sample_project: Path) -> None:
    commit_file(sample_project, "README.md", "feature version\n", "feature edits README")
    commit_file(sample_project, "todo/__init__.py", "# feature\n", "feature edits init")
    git(sample_project, "checkout", "-q", "main")
    commit_file(sample_project, "README.md", "main version\n", "main edits README")
    commit_file(sample_project, "todo/__init__.py", "# main\n", "main edits init")
    main_before = git(sample_project, "rev-parse", "main")
    git(sample_project, "checkout", "-q", SAMPLE_FEATURE)
    (sample_project / "notes.txt").write_text("leftover\n")

    result = gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="Merge")

    assert not result.merged
    assert sorted(result.conflict_files) == ["README.md", "todo/__init__.py"]
    assert "README.md" in result.message
    assert result.commit is None
    assert gitops.current_branch(sample_project) == SAMPLE_FEATURE
    assert git(sample_project, "status", "--porcelain") == ""
    assert not (sample_project / ".git" / "MERGE_HEAD").exists()
    assert git(sample_project, "rev-parse", "main") == main_before
    assert (sample_project / "README.md").read_text() == "feature version\n"
    assert "notes.txt" in git(sample_project, "ls-files")  # the leftover was committed on the feature branch


def test_merge_from_other_branch_checks_out_feature_when_clean(sample_project: Path) -> None:
    commit_file(sample_project, "a.txt", "a\n", "a")
    git(sample_project, "checkout", "-q", "main")
    assert gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="m").merged


def test_merge_refuses_dirty_other_branch(sample_project: Path) -> None:
    git(sample_project, "checkout", "-q", "main")
    (sample_project / "README.md").write_text("edited on main\n")
    with pytest.raises(gitops.GitError, match="uncommitted changes"):
        gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="m")
    assert (sample_project / "README.md").read_text() == "edited on main\n"


def test_merge_into_itself_is_refused(sample_project: Path) -> None:
    with pytest.raises(gitops.GitError, match="into itself"):
        gitops.merge_feature(sample_project, SAMPLE_FEATURE, SAMPLE_FEATURE, message="m")


def test_identity_fallback_only_when_none_configured(sample_project: Path, no_global_identity: None) -> None:
    (sample_project / "x.txt").write_text("x\n")
    assert gitops.merge_feature(sample_project, SAMPLE_FEATURE, "main", message="m").merged
    assert git(sample_project, "log", "-1", "--format=%an <%ae>", "main") == "specflow_nb <specflow_nb@localhost>"

    subprocess.run(["git", "config", "user.name", "Ada"], cwd=sample_project, check=True)
    subprocess.run(["git", "config", "user.email", "ada@example.invalid"], cwd=sample_project, check=True)
    git(sample_project, "checkout", "-q", SAMPLE_FEATURE)
    (sample_project / "y.txt").write_text("y\n")
    assert gitops.commit_leftovers(sample_project, message="leftovers") is not None
    out = subprocess.run(
        ["git", "log", "-1", "--format=%an <%ae>"], cwd=sample_project, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "Ada <ada@example.invalid>"


def test_commit_leftovers_returns_none_when_clean(sample_project: Path) -> None:
    assert gitops.commit_leftovers(sample_project, message="nothing") is None
    assert gitops.is_clean(sample_project)


# ---------------------------------------------------------------------------------------------------- verify command


def py(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


def run_verify(project: Path, command: str, timeout: float, **kw: object) -> gitops.CommandResult:
    return anyio.run(functools.partial(gitops.run_verify_command_async, project, command, timeout, **kw))


def test_verify_command_passes(tmp_path: Path) -> None:
    result = run_verify(tmp_path, py("import os; print('ok in', os.getcwd())"), timeout=30)
    assert result.passed and result.exit_code == 0 and not result.timed_out
    assert f"ok in {tmp_path}" in result.output_tail


def test_verify_command_fails_with_output_tail(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(5000): print('line', i)\nprint('FAILED boom', file=sys.stderr)\nsys.exit(3)"
    result = run_verify(tmp_path, py(code), timeout=30, max_output_chars=500)
    assert not result.passed and result.exit_code == 3
    assert len(result.output_tail) <= 500
    assert result.output_tail.rstrip().endswith("FAILED boom")
    assert "line 0\n" not in result.output_tail


def test_verify_command_is_not_run_by_a_shell(tmp_path: Path) -> None:
    # "&&" and ">" reach the program as arguments instead of being interpreted
    result = run_verify(tmp_path, py("import sys; print(sys.argv[1:])") + " '&&' '>' out.txt", 30)
    assert result.passed
    assert "['&&', '>', 'out.txt']" in result.output_tail
    assert not (tmp_path / "out.txt").exists()


def test_verify_command_timeout_kills_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )
    result = run_verify(tmp_path, py(code), timeout=2)
    assert result.timed_out and not result.passed
    assert "started" in result.output_tail and "timed out after 2 s" in result.output_tail
    child = int(pidfile.read_text())
    for _ in range(50):  # the orphaned child is reaped by init shortly after the kill
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_verify_command_missing_executable(tmp_path: Path) -> None:
    result = run_verify(tmp_path, "no-such-tool-xyz --run", timeout=5)
    assert result.exit_code == gitops.EXIT_NOT_FOUND and not result.passed
    assert "no-such-tool-xyz" in result.output_tail and "not found" in result.output_tail


@pytest.mark.parametrize("command", ["", "   ", "pytest -k 'unbalanced"])
def test_verify_command_unparseable_is_a_config_error(tmp_path: Path, command: str) -> None:
    with pytest.raises(ConfigError):
        run_verify(tmp_path, command, timeout=5)


# ---------------------------------------------------------------------------------------------------- async verify


def test_async_verify_command_pass_fail_missing(tmp_path: Path) -> None:
    async def main() -> list[gitops.CommandResult]:
        return [
            await gitops.run_verify_command_async(tmp_path, py("print('fine')"), 30),
            await gitops.run_verify_command_async(tmp_path, py("import sys; print('bad'); sys.exit(4)"), 30),
            await gitops.run_verify_command_async(tmp_path, "no-such-tool-xyz", 30),
        ]

    ok, bad, missing = anyio.run(main)
    assert ok.passed and "fine" in ok.output_tail
    assert bad.exit_code == 4 and "bad" in bad.output_tail
    assert missing.exit_code == gitops.EXIT_NOT_FOUND


def _sleeper(pidfile: Path) -> str:
    return py(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(600)\n"
    )


def _wait_dead(pid: int) -> bool:
    for _ in range(50):
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_async_verify_command_timeout_kills_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    result = anyio.run(gitops.run_verify_command_async, tmp_path, _sleeper(pidfile), 2)
    assert result.timed_out and "started" in result.output_tail
    assert _wait_dead(int(pidfile.read_text()))


def test_async_verify_command_cancelled_kills_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gitops.run_verify_command_async, tmp_path, _sleeper(pidfile), 600)
            while not pidfile.exists() or not pidfile.read_text():
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert _wait_dead(int(pidfile.read_text()))
