"""A real browser: JupyterLab with the extension, a notebook showing the panel, a phase from Complete Phase to merged.

Debian's chromium (/usr/bin/chromium) driven by the Python ``playwright`` package (never ``playwright install``:
no browser download). Screenshots go to tests/browser/artifacts/ (git-ignored). Skipped when either is missing,
unless SPECFLOW_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from tests.support.live_server import CLIENT_ENV_VARS, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "browser-test-token"
DEMO_AGENT = str(Path(sys.executable).with_name("specflow-nb-demo-agent"))
#: Cold start of JupyterLab and the kernel on a 2-core machine can be slow: generous waits, bounded overall.
STARTUP_SECONDS = 90
PHASE_SECONDS = 120

pytestmark = pytest.mark.timeout(300)


def _require_browser() -> Any:
    """The playwright module, or a skip (a failure when SPECFLOW_REQUIRE_BROWSER=1) saying what is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
        missing.append("the playwright Python package (pip install playwright)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("SPECFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SPECFLOW_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return sync_api


def _notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def run_cell(page: Any, index: int, attempts: int = 6) -> None:
    """Run the notebook's cell ``index`` (Shift+Enter in it). Right after the page loads, the kernel connection may
    not be up yet and the key press only moves on: retried until the cell's prompt shows it ran ([*] or [n])."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt").first
    for _ in range(attempts):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = prompt.inner_text().strip()
            if text not in ("[ ]:", ""):
                return
            time.sleep(0.2)
    raise AssertionError(f"cell {index} did not run (prompt {prompt.inner_text()!r})")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab on 127.0.0.1 with the specflow_nb server extension, rooted at a folder holding the sample."""
    root = tmp_path / "root"
    prepare_sample(root / "todo")
    cells = ['import specflow_nb\np = specflow_nb.panel("todo")\np', 'p.show(area="right")']
    (root / "panel.ipynb").write_text(json.dumps(_notebook(cells)), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    for var in CLIENT_ENV_VARS:
        env.pop(var, None)
    log = tmp_path / "lab.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.jpserver_extensions={'specflow_nb.server': True}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # retries only around the startup
            try:
                with urllib.request.urlopen(f"{url}api/status?token={TOKEN}", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, root
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_complete_phase_in_jupyterlab_and_the_side_panel(lab: tuple[str, Path]) -> None:
    sync_api = _require_browser()
    url, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.on(
                "console", lambda m: print("CONSOLE", m.type, m.text[:300]) if m.type in ("error", "warning") else None
            )
            page.set_default_timeout(STARTUP_SECONDS * 1000)
            page.goto(f"{url}lab/tree/panel.ipynb?token={TOKEN}")
            # the kernel is ready when the toolbar's kernel status says Idle
            page.locator(".jp-Notebook").first.wait_for()
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()
            run_cell(page, 0)
            panel = page.locator(".jp-OutputArea .specflow-panel").first
            panel.wait_for()
            # found the server by itself and mapped the folder to its project id
            assert "via server http://127.0.0.1" in panel.inner_text()
            page.screenshot(path=str(ARTIFACTS / "01-panel.png"))

            panel.locator(".specflow-complete-phase").click()
            panel.locator(".specflow-advanced").get_by_text("Advanced options").click()
            agent = panel.locator(".specflow-field-agent_command input").first
            agent.fill(DEMO_AGENT)
            agent.press("Tab")
            start = panel.locator("button.specflow-start")
            sync_api.expect(start).to_be_enabled(timeout=30_000)
            assert "Detected 4 batches from tasks.md" in panel.locator(".specflow-plan").inner_text()
            panel.screenshot(path=str(ARTIFACTS / "02-form.png"))
            start.click()

            badge = panel.locator(".specflow-progress .specflow-status-badge")
            sync_api.expect(badge).to_have_text("Merge ready", timeout=PHASE_SECONDS * 1000)
            assert "20/20 tasks (100%)" in panel.locator(".specflow-task-count").inner_text()
            panel.screenshot(path=str(ARTIFACTS / "03-merge-ready.png"))
            panel.locator("button.specflow-merge").click()
            sync_api.expect(badge).to_have_text("Complete", timeout=60_000)
            panel.screenshot(path=str(ARTIFACTS / "04-complete.png"))

            # the same panel in JupyterLab's right side panel (ipylab)
            run_cell(page, 1)
            side = page.locator("#jp-right-stack .specflow-side-panel .specflow-panel").first
            side.wait_for(timeout=30_000)
            sync_api.expect(side.locator(".specflow-status-badge").first).to_have_text("Complete")
            page.screenshot(path=str(ARTIFACTS / "05-side-panel.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()
    state = list((root / "todo" / ".specflow" / "workflows").glob("orchestration-*.json"))
    assert len(state) == 1 and json.loads(state[0].read_text())["status"] == "completed"
