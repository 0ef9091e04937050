"""What a project re-read asks of git (issue 17's transition latency): git is asked whether the feature branch is
merged only when the decision that follows reads it — a merge run being confirmed, or a command re-reading the
project — never after a design, analyze, batch, healer or verify run."""

from __future__ import annotations

from specflow_nb.machine import MergeCommand, ReadProject
from tests.test_machine import FakeProject, Harness, designed, ok, three_sections


def reads(h: Harness) -> list[ReadProject]:
    return [a for a in h.all_actions if isinstance(a, ReadProject)]


def test_only_confirming_a_merge_asks_git_whether_it_merged():
    h = Harness(FakeProject(has_spec=False, has_plan=False), verify_command="pytest -q", skip_analyze=False)
    h.start()
    h.run_step(ok(), effect=lambda: designed(h))
    h.run_step(ok(output={"status": "completed"}))
    for _ in range(3):
        h.run_batch(ok())
    h.finish(ok(output={"passed": True}))
    h.project.verify_exit_code = 0
    h.read()
    assert [r.read_git for r in reads(h)] == [False] * 6
    h.cmd(MergeCommand())
    assert reads(h)[-1].read_git  # a command re-reads everything
    h.read()
    h.project.merged = True
    h.finish(ok())
    assert reads(h)[-1] == ReadProject(reason="confirm the merge step", read_git=True)
    h.read()
    assert h.ex.status.value == "completed"


def test_a_failed_batch_and_its_healer_read_no_git_and_a_restart_with_a_finished_merge_does():
    h = Harness(three_sections(), auto_merge=True)
    h.start()
    h.run_batch(ok(), check=False)  # the batch ends with its tasks unchecked: a healer runs
    assert h.run.kind.value == "healer"
    h.run_batch(ok(output={"status": "fixed"}))
    h.run_batch(ok())
    h.run_batch(ok())
    h.finish(ok(output={"passed": True}))
    h.read()
    assert [r.read_git for r in reads(h)] == [False] * 5
    assert h.run.builtin and h.run.step.value == "merge"
    h.finish(ok())
    h.restart(run_alive=False)  # the host died after the merge's result, before its confirmation
    assert reads(h)[-1] == ReadProject(reason="confirm the merge step", read_git=True)
