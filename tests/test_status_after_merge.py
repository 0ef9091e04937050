"""`specflow-nb status` of a phase whose branch was merged says the phase is complete (not verify + BRANCH_MISMATCH)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from specflow_nb.demo import SAMPLE_FEATURE, prepare_sample
from specflow_nb.project import project_status


def _git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=project,
        check=True,
        capture_output=True,
    )


def _finish_tasks(project: Path) -> None:
    tasks = project / "specs" / SAMPLE_FEATURE / "tasks.md"
    tasks.write_text(re.sub(r"- \[ \]", "- [x]", tasks.read_text(encoding="utf-8")), encoding="utf-8")
    _git(project, "commit", "-qam", "implement")


def test_a_merged_phase_is_complete(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    _finish_tasks(project)
    # on the feature branch, all tasks done: verify is next
    before = project_status(project)
    assert (before.step.current, before.next_action) == ("verify", "run_verify")
    _git(project, "checkout", "-q", "main")
    _git(project, "merge", "-q", "--no-ff", "-m", "merge", SAMPLE_FEATURE)
    status = project_status(project)
    assert status.phase.status == "complete" and status.step.current == "merge" and status.step.status == "complete"
    assert status.next_action == "archive_phase"
    assert "BRANCH_MISMATCH" not in [i.code for i in status.health.issues]
    # the command line says the same
    out = subprocess.run(
        [sys.executable, "-m", "specflow_nb", "status", "--json"], cwd=project, capture_output=True, text=True
    )
    data = json.loads(out.stdout)
    assert data["phase"]["status"] == "complete" and data["nextAction"] == "archive_phase", out.stdout


def test_on_another_branch_before_the_merge_it_is_still_a_mismatch(tmp_path: Path) -> None:
    project = prepare_sample(tmp_path / "todo")
    _finish_tasks(project)
    _git(project, "checkout", "-q", "main")
    status = project_status(project)
    assert "BRANCH_MISMATCH" in [i.code for i in status.health.issues]
    assert status.phase.status == "in_progress"
