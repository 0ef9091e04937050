"""Transcripts inside JupyterLab: pick a run (design, a batch, a healer, verify …), read what it did — the prompt,
the agent's text, tool calls and their results (shortened), the final result and cost, the tail of stderr.log (with
its path: ``.specflow/`` is hidden in JupyterLab's file browser). Served by the API, redacted."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.transcript import Transcript
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import note, show

_ICONS = {"tool": "›", "tool_result": "↳", "text": "“", "error": "!", "result": "✓"}


def transcript_html(t: Transcript) -> str:
    folder = f"{t.project_id}/{t.folder}" if t.project_id not in ("", ".") else t.folder
    if not t.available:
        return note(f"{t.reason or 'The transcript is not available.'} Its files are in {folder}/.", "warn")
    parts = [
        f'<div class="sf-muted">Run <code>{esc(t.run_id)}</code> · {esc(t.agent)} · files in <code>{esc(folder)}/</code></div>'
    ]
    if t.prompt:
        parts.append(f"<details><summary><b>Prompt</b></summary><pre>{esc(t.prompt)}</pre></details>")
    rows = []
    for e in t.entries:
        icon = _ICONS.get(e.kind, "·")
        title = f'<span aria-hidden="true">{icon}</span> {esc(e.title)}'
        if e.kind == "text":
            rows.append(f'<div class="sf-tr-text" data-kind="text">{esc(e.body)}</div>')
        elif e.body:
            rows.append(
                f'<details data-kind="{esc(e.kind)}"><summary>{title}</summary><pre>{esc(e.body)}</pre></details>'
            )
        else:
            rows.append(f'<div data-kind="{esc(e.kind)}">{title}</div>')
    if t.omitted_entries:
        rows.insert(50, f'<div class="sf-muted">… {t.omitted_entries} steps left out …</div>')
    parts.append(f'<div class="sf-tr-entries">{"".join(rows) or "<span class=sf-muted>No output yet.</span>"}</div>')
    if t.result is not None or t.cost_usd is not None or t.failure:
        verdict = "Failed" if (t.is_error or t.failure) else "Finished"
        facts = [verdict]
        if t.failure:
            facts.append(t.failure.replace("_", " "))
        if t.turns:
            facts.append(f"{t.turns} turns")
        if t.cost_usd is not None:
            facts.append(f"${t.cost_usd:.2f}")
        if t.duration_ms:
            facts.append(f"{t.duration_ms / 1000:.0f}s")
        body = f"<pre>{esc(t.result)}</pre>" if t.result else ""
        parts.append(f'<div class="sf-tr-result"><b>{esc(" · ".join(facts))}</b>{body}</div>')
    if t.stderr_tail.strip():
        parts.append(
            f"<details open><summary><b>stderr</b> (end of <code>{esc(folder)}/stderr.log</code>)</summary>"
            f"<pre>{esc(t.stderr_tail)}</pre></details>"
        )
    return f'<div class="sf-transcript">{"".join(parts)}</div>'


class TranscriptView(w.VBox):
    """A transcript with a title and a Close button; hidden until :meth:`render`."""

    def __init__(self) -> None:
        self.title = w.HTML()
        self.close_button = w.Button(description="Close", icon="times", tooltip="Close the transcript")
        self.close_button.add_class("sf-quiet")
        self.close_button.add_class("specflow-transcript-close")
        self.close_button.on_click(lambda _b: self.hide())
        head = w.HBox([self.title, self.close_button], layout=w.Layout(justify_content="space-between"))
        head.add_class("sf-actions")
        self.body = w.HTML()
        self.body.add_class("specflow-transcript-body")
        super().__init__([head, self.body])
        self.add_class("specflow-transcript")
        self.transcript: Transcript | None = None
        show(self, False)

    def render(self, t: Transcript | str, label: str = "") -> None:
        if isinstance(t, str):
            self.transcript = None
            self.title.value = '<div class="sf-section-title">Transcript</div>'
            self.body.value = note(t, "error")
        else:
            self.transcript = t
            self.title.value = f'<div class="sf-section-title">Transcript: {esc(label or t.run_id)}</div>'
            self.body.value = transcript_html(t)
        show(self, True)

    def hide(self) -> None:
        show(self, False)


class RunPicker(w.HBox):
    """Runs of an orchestration (or of several) in a dropdown, and "Transcript" to open the chosen one."""

    def __init__(self, on_open: Callable[[str, str], None], *, label: str = "Transcript") -> None:
        self.dropdown = w.Dropdown(options=[], layout=w.Layout(width="auto", min_width="12em", flex="1 1 auto"))
        self.dropdown.add_class("specflow-run-select")
        self.open_button = w.Button(description=label, icon="file-text", tooltip="Read what the agent did in this run")
        self.open_button.add_class("sf-quiet")
        self.open_button.add_class("specflow-open-transcript")
        self.open_button.on_click(lambda _b: self._open(on_open))
        super().__init__([self.dropdown, self.open_button])
        self.add_class("sf-actions")
        self.add_class("specflow-run-picker")
        show(self, False)

    def _open(self, on_open: Callable[[str, str], None]) -> None:
        run_id = self.dropdown.value
        if run_id:
            label = next((text for text, value in self.dropdown.options if value == run_id), run_id)
            on_open(run_id, label)

    def set_runs(self, runs: list[tuple[str, str]]) -> None:
        """``runs``: (run id, label), oldest first; the newest is selected."""
        options = [(label, run_id) for run_id, label in runs]
        if [o[1] for o in options] != [o[1] for o in self.dropdown.options]:
            self.dropdown.options = options
            if options:
                self.dropdown.value = options[-1][1]
        show(self, bool(options))
