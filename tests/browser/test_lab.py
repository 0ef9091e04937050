"""A real browser: JupyterLab 4 at 1280×800 with the extension, the panel in a notebook cell AND in the right side
panel, light and dark theme, from the form through running → pause → needs attention → merge ready → complete.

At each stop it checks what a person meets: every visible control has a clickable box once scrolled to
(``elementFromPoint`` at its centre reaches it), every text reaches 4.5:1 contrast against what is behind it (computed
styles), and Pause shows "Pausing" within 2 s. Screenshots go to tests/browser/artifacts/ (git-ignored); with
SPECFLOW_README_IMAGES=1 the README's screenshots in docs/img/ are rewritten from the same run.

Debian's chromium (/usr/bin/chromium) driven by the Python ``playwright`` package (never ``playwright install``).
Skipped when either is missing, unless SPECFLOW_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from specflow_nb.demo import prepare_sample
from tests.browser import lab
from tests.browser.lab import ARTIFACTS, CHROMIUM

PHASE_SECONDS = 120
README_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = pytest.mark.timeout(420)


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


@pytest.fixture
def lab_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab rooted at a folder holding the sample; batch 1 is slow (time to pause), batch 3 fails once."""
    root = tmp_path / "root"
    prepare_sample(root / "todo")
    # q: a second panel on the project, not displayed: a notification still shows once per event
    cells = ['import specflow_nb\nq = specflow_nb.panel("todo")\np = specflow_nb.panel("todo")\np', "p.show()"]
    lab.write_notebook(root, "panel.ipynb", cells)
    script = tmp_path / "demo-script.json"
    rules = [
        {"match": "Phase 1", "run": 1, "scenario": "slow"},
        {"match": "Phase 3", "run": 1, "scenario": "partial"},
    ]
    script.write_text(json.dumps({"default": "success", "rules": rules}), encoding="utf-8")
    env = {"SPECFLOW_DEMO_SCRIPT": str(script), "SPECFLOW_DEMO_DELAY": "0.8"}
    with lab.jupyterlab(root, tmp_path, env=env) as url:
        yield url, root


class Checker:
    """What a person meets at one moment, in both views (cell and side panel) and both themes."""

    def __init__(self, page: Any, views: dict[str, Any]) -> None:
        self.page = page
        self.views = views
        self.problems: list[str] = []
        self.ratios: list[float] = []

    def check(self, moment: str, *, dark_too: bool = True) -> None:
        themes = ["JupyterLab Light", "JupyterLab Dark"] if dark_too else ["JupyterLab Light"]
        for theme in themes:
            if theme != themes[0]:
                lab.set_theme(self.page, theme)
            self.top()
            self.shot(f"{moment}-{'dark' if 'Dark' in theme else 'light'}")
            for name, view in self.views.items():
                where = f"{moment} / {name} / {theme}"
                for item in lab.contrast(view):
                    self.ratios.append(item["ratio"])
                    if item["ratio"] < 4.5:
                        self.problems.append(
                            f"{where}: contrast {item['ratio']} for {item['text']!r} {item['fg']} on {item['bg']}"
                        )
                for item in lab.unreachable(view):
                    self.problems.append(f"{where}: {item['label']!r} not clickable ({item['why']})")
        self.top()
        if len(themes) > 1:
            lab.set_theme(self.page, "JupyterLab Light")

    def top(self) -> None:
        """Both views scrolled back to the panel's top (what a person sees first)."""
        for view in self.views.values():
            view.evaluate("(el) => el.scrollIntoView({block: 'start'})")
        self.page.locator(".specflow-side-panel").first.evaluate("(el) => { el.scrollTop = 0; }")

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


#: Records (time, text) of every change of the side panel's Now line, in the browser (a MutationObserver).
_RECORD_NOW_JS = """
() => {
  window.__sfNow = [];
  let last = '';
  const look = () => {
    const el = document.querySelector('#jp-right-stack .specflow-side-panel .sf-now-doing');
    const text = el ? el.textContent : '';
    if (text && text !== last) { last = text; window.__sfNow.push([Date.now() / 1000, text]); }
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


class StreamRecorder(threading.Thread):
    """Watches batch 1's stream.jsonl and notes when each tool call's line was written (the file's modification
    time: the agent writes one line every 0.8 s, so the newest line's time)."""

    def __init__(self, project: Path) -> None:
        super().__init__(daemon=True)
        self.project = project
        self.calls: list[tuple[float, str]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        from specflow_nb.activity import describe_tool

        offset = 0
        while not self._stop_event.is_set():
            files = list((self.project / ".specflow" / "workflows").glob("*-batch1/stream.jsonl"))
            if files:
                data = files[0].read_bytes()
                mtime = files[0].stat().st_mtime  # when the agent wrote its last line (0.8 s apart)
                while b"\n" in data[offset:]:
                    end = data.index(b"\n", offset)
                    line, offset = data[offset:end], end + 1
                    obj = json.loads(line)
                    for block in (obj.get("message") or {}).get("content") or []:
                        if isinstance(block, dict) and block.get("type") == "tool_use":
                            what = describe_tool(block["name"], block.get("input"), self.project)
                            self.calls.append((mtime, what))
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def lags(self, shown: list[list[Any]]) -> list[float]:
        """For each tool call: seconds until the browser showed its words (a call never shown fails the test)."""
        out = []
        for written, what in self.calls:
            seen = [t for t, text in shown if t >= written and text == what]
            assert seen, f"{what!r} (written at {written:.2f}) never shown; shown: {shown}"
            out.append(seen[0] - written)
        return out


def _dismiss_notifications(page: Any) -> None:
    """Close every toast as a person would (its ×): a notification is read, then it must cover nothing."""
    for _ in range(10):
        close = page.locator(".Toastify__toast .jp-Notification-Toast-Close")
        if close.count() == 0:
            return
        with contextlib.suppress(Exception):
            close.first.click(timeout=2_000)
        page.wait_for_timeout(400)


def _dismiss_news(page: Any) -> None:
    """JupyterLab's "get notified about news?" toast covers the bottom right: answer it like a person would."""
    no = page.locator(".Toastify__toast-container button", has_text="No").first
    with contextlib.suppress(Exception):
        no.click(timeout=5_000)
        no.wait_for(state="detached", timeout=5_000)


def _readme_image(page: Any, name: str) -> None:
    if os.environ.get("SPECFLOW_README_IMAGES") == "1":
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(README_IMAGES / name))


def test_the_panel_in_a_cell_and_the_side_panel_light_and_dark(lab_url: tuple[str, Path]) -> None:
    sync_api = _require_browser()
    expect = sync_api.expect
    url, root = lab_url
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = lab.launch(sync_api, pw)
        page = browser.new_page(viewport=lab.VIEWPORT)
        page.on("console", lambda m: print("CONSOLE", m.type, m.text[:300]) if m.type == "error" else None)
        try:
            lab.open_notebook(page, url, "panel.ipynb")
            lab.run_cell(page, 0)
            cell = page.locator(".jp-OutputArea .specflow-panel").first
            cell.wait_for()
            assert "via server http://127.0.0.1" in cell.inner_text()  # found the server and the project by itself
            lab.run_cell(page, 1)
            side = page.locator("#jp-right-stack .specflow-side-panel").first
            side.wait_for(timeout=30_000)
            _dismiss_news(page)
            checker = Checker(page, {"cell": cell, "side panel": side})
            badge = side.locator(".specflow-header .specflow-status-badge")

            # --- the form, in the side panel (the narrow place): the agent check sits beside the agent field
            side.locator(".specflow-complete-phase").click()
            agent_row = side.locator(".specflow-row-agent_command")
            expect(agent_row.locator(".sf-error")).to_contain_text("agent command", timeout=30_000)
            expect(side.locator(".specflow-start-blocked")).to_contain_text("Start is disabled: the agent command")
            assert "Detected 4 batches from tasks.md" in side.locator(".specflow-plan").inner_text()
            checker.check("01-form")
            agent_row.locator("button.specflow-use-demo-agent").click()
            side.locator(".specflow-group-healing").get_by_text("Healing and batches").click()
            side.locator(".specflow-field-auto_heal_enabled input").uncheck()
            start = side.locator("button.specflow-start")
            expect(start).to_be_enabled(timeout=30_000)
            checker.check("02-form-ready", dark_too=False)
            start.click()

            # --- running batch 1 (slow): the Now line follows each tool call; Pause answers within 2 s
            page.evaluate(_RECORD_NOW_JS)
            stream = StreamRecorder(root / "todo")
            stream.start()
            expect(side.locator(".specflow-step-line")).to_contain_text("Implementing batch 1 of 4", timeout=60_000)
            expect(side.locator(".sf-now-doing")).to_contain_text(
                "Reading specs/0001-todo-cli/tasks.md", timeout=30_000
            )
            expect(cell.locator(".sf-now-doing")).to_be_visible()
            expect(badge).to_have_text("Running")
            assert cell.locator(".specflow-status-badge").count() == 1  # one badge per view
            _readme_image(page, "panel-running-light.png")
            clicked = time.monotonic()
            side.locator("button.specflow-pause").click()
            expect(side.locator(".specflow-step-line")).to_contain_text("Pausing after batch 1 of 4", timeout=2_000)
            expect(badge).to_have_text("Pausing", timeout=2_000)
            expect(side.locator("button.specflow-pause")).to_be_disabled(timeout=2_000)
            pausing_after = time.monotonic() - clicked
            checker.check("03-pausing", dark_too=False)
            lab.set_theme(page, "JupyterLab Dark")
            _readme_image(page, "panel-running-dark.png")
            lab.set_theme(page, "JupyterLab Light")
            expect(badge).to_have_text("Paused", timeout=60_000)
            stream.stop()
            now_lags = stream.lags(page.evaluate("window.__sfNow"))
            expect(side.locator(".specflow-now")).to_be_hidden()  # nothing runs while paused
            expect(side.locator(".specflow-step-line")).to_contain_text("Paused after batch 1 of 4 — next: Phase 2")
            checker.check("04-paused")

            # --- resume → batch 3 fails (no healing): needs attention, Retry / Skip apart from Abort
            side.locator("button.specflow-resume").click()
            expect(badge).to_have_text("Needs attention", timeout=PHASE_SECONDS * 1000)
            expect(side.locator(".specflow-recovery-issue")).to_contain_text("Needs attention")
            # a JupyterLab notification, once although two panels follow the project
            toast = page.locator(".Toastify__toast", has_text="Specflow — todo: needs attention")
            expect(toast).to_have_count(1, timeout=10_000)
            # the failing run's transcript, one click from the message
            side.locator("button.specflow-recovery-transcript").click()
            transcript = side.locator(".specflow-progress .specflow-transcript-body")
            expect(transcript).to_contain_text("Editing specs/0001-todo-cli/tasks.md", timeout=15_000)
            expect(transcript).to_contain_text("Finished")
            page.wait_for_timeout(1000)
            expect(toast).to_have_count(1)
            _dismiss_notifications(page)
            transcript.evaluate("(el) => el.scrollIntoView({block: 'start'})")
            page.locator(".specflow-side-panel").first.evaluate(
                "(el) => { el.scrollTop = Math.max(0, el.scrollTop - 60); }"
            )
            _readme_image(page, "panel-transcript-light.png")
            lab.set_theme(page, "JupyterLab Dark")
            _readme_image(page, "panel-transcript-dark.png")
            lab.set_theme(page, "JupyterLab Light")  # the transcript stays open: the checks below cover it
            side.locator(".specflow-decision-log").get_by_text("Decision log").click()  # open: it must cover nothing
            checker.check("05-needs-attention")
            _readme_image(page, "panel-needs-attention-light.png")
            lab.set_theme(page, "JupyterLab Dark")
            _readme_image(page, "panel-needs-attention-dark.png")
            lab.set_theme(page, "JupyterLab Light")

            # --- retry → merge ready: View diff lists files with +/- and an expandable patch
            side.locator("button.specflow-recover-retry").click()
            expect(badge).to_have_text("Merge ready", timeout=PHASE_SECONDS * 1000)
            expect(page.locator(".Toastify__toast", has_text="Specflow — todo: merge ready")).to_have_count(
                1, timeout=10_000
            )
            _dismiss_notifications(page)
            side.locator("button.specflow-view-diff").click()
            tasks_file = side.locator('.specflow-diff details[data-path="specs/0001-todo-cli/tasks.md"]')
            tasks_file.wait_for(timeout=30_000)
            tasks_file.locator("summary").click()
            expect(tasks_file.locator("pre")).to_contain_text("+- [x] T001")
            checker.check("06-merge-ready")

            # --- merge → complete; the skipped design step is still skipped
            side.locator("button.specflow-merge").click()
            expect(badge).to_have_text("Complete", timeout=60_000)
            expect(page.locator(".Toastify__toast", has_text="Specflow — todo: completed")).to_have_count(
                1, timeout=10_000
            )
            _dismiss_notifications(page)
            assert side.locator('[data-step="design"]').get_attribute("data-state") == "skipped"
            expect(side.locator(".specflow-step-line")).to_have_text("Phase complete")
            checker.check("07-complete")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()
    ratios = sorted(checker.ratios)
    print(
        f"\ntexts measured: {len(ratios)}, lowest contrast {ratios[0] if ratios else None}, pausing after {pausing_after:.2f}s"
    )
    assert not checker.problems, "\n".join(checker.problems[:60])
    assert pausing_after < 2.0
    # every tool call of batch 1 reached the screen in words, each soon after the agent wrote it
    print(f"agent output line -> screen: {', '.join(f'{x:.2f}s' for x in sorted(now_lags))}")
    assert len(now_lags) >= 6 and max(now_lags) < 3.0, now_lags
    state = list((root / "todo" / ".specflow" / "workflows").glob("orchestration-*.json"))
    assert len(state) == 1 and json.loads(state[0].read_text())["status"] == "completed"
