"""The panel against a real `jupyter server` subprocess with the extension (RemoteBackend over REST + long-poll).

The kernel side finds the server by itself (its runtime file under JUPYTER_RUNTIME_DIR) and maps the project's
folder to its id on the server; the phase is driven through the panel's own buttons.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import specflow_nb
from specflow_nb.demo import prepare_sample
from specflow_nb.widgets.remote import RemoteBackend
from specflow_nb.widgets.sync import descendants
from tests.support.live_server import CLIENT_ENV_VARS, jupyter_server
from tests.widgets.panel_driver import shown, start_from_form, status_is, until

pytestmark = pytest.mark.timeout(180)


def test_a_phase_driven_from_the_panel_on_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    project = prepare_sample(root / "team" / "todo")
    runtime = tmp_path / "runtime"
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))

    async def scenario() -> None:
        panel = specflow_nb.panel(project)
        try:
            assert isinstance(panel.backend, RemoteBackend), panel.status_line.value
            assert panel.project_id == "team/todo"
            assert panel.footer.value and "server http://127.0.0.1:" in panel.footer.value
            await start_from_form(panel, skip_analyze=True)
            assert panel.live
            await until(panel, status_is("waiting_merge"), "merge ready", timeout=90)
            assert panel.badge.label == "Merge ready" and shown(panel.progress.merge)
            assert "20/20 tasks (100%)" in panel.progress.batch.tasks.value
            diff = await panel.view_diff()  # GET workflow/orchestrate/diff on the server
            assert not isinstance(diff, str), diff
            assert "specs/0001-todo-cli/tasks.md" in [f.path for f in diff.files]
            assert all(f.added is not None and f.patch.startswith("diff --git") for f in diff.files)
            panel.progress.merge.merge.click()
            done = await until(panel, status_is("completed"), "complete", timeout=60)
            assert panel.badge.label == "Complete" and done.completed_at is not None
            await asyncio.sleep(0.5)
            assert panel.past_runs.count == 1
            assert (project / ".specflow" / "workflows" / f"orchestration-{done.id}.json").exists()
        finally:
            await panel.aclose()
            if panel.backend is not None:
                await panel.backend.aclose()

    with jupyter_server(root, runtime, base=tmp_path):
        asyncio.run(scenario())
        # a wrong path says so, naming the server's root (the server itself is fine)
        wrong = specflow_nb.panel(root / "nope")
        try:
            said = " ".join(c.value for c in descendants(wrong) if isinstance(getattr(c, "value", None), str))
            assert "Project not found." in said and f"under the server root {root}" in said, said
            assert "No Jupyter server" not in said and wrong.local_button not in list(descendants(wrong))
        finally:
            wrong.close()


def test_a_second_panel_follows_the_run_and_a_second_start_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two panels on one project: the second one switches to the first one's run by itself (live channel), and a
    Start from it gets the server's 409 shown in its form, not a traceback."""
    root = tmp_path / "root"
    project = prepare_sample(root / "todo")
    runtime = tmp_path / "runtime"
    for var in CLIENT_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))

    async def scenario() -> None:
        first, second = specflow_nb.panel(project), specflow_nb.panel(project)
        try:
            second.complete.click()  # opened before the first one starts
            assert second.mode == "form"
            started = await start_from_form(first, skip_design=True, skip_analyze=True)
            await until(second, lambda ex: ex.id == started.id, "the second panel to see the run")
            assert second.mode == "progress"
            refused = await second.start(started.config)
            assert refused is None and "Orchestration already in progress" in second.form.notes.value
            first.progress.controls.cancel.click()
            first.progress.controls.confirm_yes.click()
            await until(first, status_is("cancelled", "waiting_merge"), "stopped", timeout=60)
            await until(second, status_is("cancelled", "waiting_merge"), "the second panel to see it stop")
        finally:
            for p in (first, second):
                await p.aclose()
                if p.backend is not None:
                    await p.backend.aclose()

    with jupyter_server(root, runtime, base=tmp_path):
        asyncio.run(scenario())
