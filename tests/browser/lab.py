"""JupyterLab in a real Chromium: start the server, drive the notebook, measure what a person sees.

Debian's chromium (/usr/bin/chromium) driven by the Python ``playwright`` package (never ``playwright install``:
no browser download). Used by the browser tests and by ``python -m tests.browser.lab`` (a manual look around).
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.live_server import CLIENT_ENV_VARS, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "browser-test-token"
DEMO_AGENT = str(Path(sys.executable).with_name("specflow-nb-demo-agent"))
STARTUP_SECONDS = 90
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The issue's window: a laptop screen.
VIEWPORT = {"width": 1280, "height": 800}


def notebook(cells: list[str]) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@contextmanager
def jupyterlab(root: Path, base: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 with the specflow_nb server extension, rooted at ``root``; yields its URL."""
    port = free_port()
    full_env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_CONFIG_DIR": str(base / "cfg"),
        "JUPYTER_DATA_DIR": str(base / "data"),
    }
    for var in CLIENT_ENV_VARS:
        full_env.pop(var, None)
    full_env.update(env or {})
    log = base / "lab.log"
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
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
            f"--LabApp.user_settings_dir={base / 'settings'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=full_env,
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
                raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def launch(sync_api: Any, pw: Any) -> Any:
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def open_notebook(page: Any, url: str, name: str) -> None:
    page.set_default_timeout(STARTUP_SECONDS * 1000)
    page.goto(f"{url}lab/tree/{name}?token={TOKEN}")
    # the kernel is ready when the toolbar's kernel status says Idle
    page.locator(".jp-Notebook").first.wait_for()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()


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


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme ("JupyterLab Light" / "JupyterLab Dark") through its Settings menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=theme).first.click()
    want = "false" if "Dark" in theme else "true"
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{want}'", timeout=30_000)
    page.wait_for_timeout(300)  # the theme's stylesheet applies after the attribute flips


# ---- measurements (computed styles, as the browser renders them) -----------------------------------------------

_CONTRAST_JS = """
(root) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => {
    const a = top[3] + bottom[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    return [0, 1, 2].map(i => (top[i] * top[3] + bottom[i] * bottom[3] * (1 - top[3])) / a).concat([a]);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    let color = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) color = over(layers[i], color);
    return color;
  };
  const lum = (c) => {
    const ch = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
  };
  const out = [];
  const all = root.querySelectorAll('*');
  for (const el of all) {
    const own = Array.from(el.childNodes).filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
    const value = (el.tagName === 'INPUT' && el.type !== 'checkbox') || el.tagName === 'TEXTAREA' ? (el.value || '') : '';
    const text = (own || value).trim();
    if (!text) continue;
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || st.visibility === 'hidden' || st.display === 'none') continue;
    if (el.closest('button:disabled, input:disabled, select:disabled, textarea:disabled')) continue;  // WCAG: inactive controls
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const bg = background(el);
    const fg = over([...parse(st.color).slice(0, 3), parse(st.color)[3] * opacity], bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    out.push({text: text.slice(0, 60), ratio: Math.round(ratio * 100) / 100, cls: (el.className || '').toString().slice(0, 80),
              fg: st.color, bg: 'rgb(' + bg.slice(0, 3).map(Math.round).join(',') + ')'});
  }
  return out;
}
"""

_CLICKABLE_JS = """
(root) => {
  const out = [];
  for (const b of root.querySelectorAll('button, summary, select, input, textarea, .lm-AccordionPanel-title, .widget-toggle-button')) {
    const st = getComputedStyle(b);
    const r0 = b.getBoundingClientRect();
    if (st.display === 'none' || st.visibility === 'hidden' || (r0.width === 0 && r0.height === 0 && !b.offsetParent)) continue;
    let hidden = false;
    for (let e = b; e && e !== root; e = e.parentElement) if (getComputedStyle(e).display === 'none') hidden = true;
    if (hidden) continue;
    b.scrollIntoView({block: 'center', inline: 'nearest'});
    const r = b.getBoundingClientRect();
    const label = (b.innerText || b.value || b.title || b.className || b.tagName).toString().trim().slice(0, 40);
    if (r.width < 8 || r.height < 8) { out.push({label, ok: false, why: `box ${Math.round(r.width)}x${Math.round(r.height)}`}); continue; }
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    const ok = !!hit && (hit === b || b.contains(hit));
    out.push({label, ok, why: ok ? '' : `covered by ${hit ? hit.tagName + '.' + hit.className : 'nothing'} at ${Math.round(x)},${Math.round(y)}`,
              w: Math.round(r.width), h: Math.round(r.height)});
  }
  return out;
}
"""


def contrast(locator: Any) -> list[dict[str, Any]]:
    """Every visible text element under ``locator`` with its contrast ratio against its effective background."""
    return list(locator.evaluate(_CONTRAST_JS))


def clickable(locator: Any) -> list[dict[str, Any]]:
    """Every visible control under ``locator``, scrolled into view, and whether a click at its centre reaches it."""
    return list(locator.evaluate(_CLICKABLE_JS))


def low_contrast(locator: Any, minimum: float = 4.5) -> list[dict[str, Any]]:
    return [item for item in contrast(locator) if item["ratio"] < minimum]


def unreachable(locator: Any) -> list[dict[str, Any]]:
    return [item for item in clickable(locator) if not item["ok"]]


def write_notebook(root: Path, name: str, cells: list[str]) -> None:
    (root / name).write_text(json.dumps(notebook(cells)), encoding="utf-8")
