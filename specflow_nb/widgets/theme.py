"""The panel's look: one stylesheet, every colour a JupyterLab ``--jp-*`` variable, so light, dark and custom themes
all read well (text stays on ``--jp-ui-font-color0/1`` or, on the plain layout colours only, ``--jp-ui-font-color2``;
status colours are used for dots and borders, never for text).

The stylesheet travels inside the panel (an HTML widget holding a ``<style>``), so it needs no JupyterLab extension
and reaches the notebook cell, the side panel and any other frontend that renders ipywidgets.
"""

from __future__ import annotations

import ipywidgets as w

from specflow_nb import summary
from specflow_nb.widgets._html import esc

#: A status tone → the theme variable of its dot and border.
TONE_COLORS = {
    "info": "var(--jp-brand-color1)",
    "success": "var(--jp-success-color1)",
    "warn": "var(--jp-warn-color1)",
    "error": "var(--jp-error-color1)",
    "neutral": "var(--jp-layout-color4)",
}

CSS = """
.specflow-root {
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
  box-sizing: border-box;
  max-width: 760px;
  gap: 6px;
}
/* nothing shrinks below its content: a tall panel scrolls instead of squeezing its sections */
.specflow-root, .specflow-root .widget-box, .specflow-root .widget-box > *, .specflow-root .lm-Widget { flex-shrink: 0; }
.specflow-root .widget-html, .specflow-root .widget-html-content { line-height: 1.45; height: auto; }
.specflow-root .widget-html-content { white-space: normal; min-width: 0; max-width: 100%; }
.specflow-root .widget-html { min-width: 0; max-width: 100%; }
.specflow-side-panel { overflow-y: auto !important; overflow-x: hidden !important;
  background: var(--jp-layout-color1); padding: 8px 10px; box-sizing: border-box; }
.specflow-side-panel > .specflow-root { width: 100%; }
.specflow-root .sf-muted { color: var(--jp-ui-font-color2); font-size: 12px; }
.specflow-root .sf-title { font-size: var(--jp-ui-font-size2); font-weight: 600; margin: 0; color: var(--jp-ui-font-color0); }
.specflow-root .sf-headline { font-weight: 600; color: var(--jp-ui-font-color0); }
.specflow-root .sf-section-title { font-weight: 600; color: var(--jp-ui-font-color0); margin: 2px 0; }
/* the badge: text in the theme's font colour, the status as a dot and a border */
.sf-badge { display: inline-flex; align-items: center; gap: 6px; padding: 0 10px; border-radius: 12px;
  border: 1px solid var(--sf-tone); color: var(--jp-ui-font-color0); background: var(--jp-layout-color1);
  font-size: 12px; font-weight: 600; line-height: 20px; white-space: nowrap; }
.sf-badge::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--sf-tone); }
.sf-badge.sf-live::before { animation: sf-pulse 1.6s ease-in-out infinite; }
@keyframes sf-pulse { 50% { opacity: 0.35; } }
.sf-tone-info { --sf-tone: var(--jp-brand-color1); }
.sf-tone-success { --sf-tone: var(--jp-success-color1); }
.sf-tone-warn { --sf-tone: var(--jp-warn-color1); }
.sf-tone-error { --sf-tone: var(--jp-error-color1); }
.sf-tone-neutral { --sf-tone: var(--jp-layout-color4); }
/* notes: a coloured edge, text in the font colour */
.sf-note { border-left: 3px solid var(--sf-tone); background: var(--jp-layout-color2); color: var(--jp-ui-font-color1);
  padding: 6px 8px; border-radius: 2px; margin: 4px 0; line-height: 1.4; }
.sf-note b { color: var(--jp-ui-font-color0); }
/* the phase bar */
.sf-steps { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 6px; }
.sf-step { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; color: var(--jp-ui-font-color1); }
.sf-step-dot { width: 10px; height: 10px; border-radius: 50%; box-sizing: border-box; border: 2px solid var(--sf-tone);
  background: transparent; }
.sf-step[data-state="done"] .sf-step-dot { background: var(--sf-tone); }
.sf-step[data-state="current"] { font-weight: 700; color: var(--jp-ui-font-color0); }
.sf-step[data-state="current"] .sf-step-dot { background: var(--sf-tone); box-shadow: 0 0 0 3px var(--jp-layout-color2); }
.sf-step[data-state="skipped"] { text-decoration: line-through; color: var(--jp-ui-font-color2); }
.sf-step[data-state="skipped"] .sf-step-dot { border-style: dashed; }
.sf-step[data-state="stopped"] .sf-step-dot { border-radius: 1px; background: var(--sf-tone); }
.sf-step-link { width: 14px; height: 2px; background: var(--jp-border-color1); }
/* tables (cost, past runs, diff files) */
.sf-table { border-collapse: collapse; font-size: 12px; }
.sf-table td, .sf-table th { padding: 2px 8px 2px 0; text-align: left; color: var(--jp-ui-font-color1); }
.sf-table td:last-child, .sf-table th:last-child { padding-right: 0; }
.specflow-estimate-body details { overflow-x: auto; }
.specflow-estimate-body .sf-table td:first-child { overflow-wrap: anywhere; }
.sf-table th { font-weight: 600; color: var(--jp-ui-font-color0); }
.sf-table td.sf-num, .sf-table th.sf-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.sf-over { font-weight: 700; }
.sf-table td.sf-over { white-space: normal; }
.sf-nowrap, .sf-over-mark { white-space: nowrap; }
.sf-over-mark { font-weight: 400; }
/* the decision log */
.sf-log { font-size: 12px; }
.sf-log details { border-bottom: 1px solid var(--jp-border-color2); padding: 3px 0; }
.sf-log summary { cursor: pointer; list-style-position: outside; margin-left: 14px; color: var(--jp-ui-font-color1); }
.sf-log summary .sf-when { color: var(--jp-ui-font-color1); font-variant-numeric: tabular-nums; margin-right: 6px; }
.sf-log summary b { color: var(--jp-ui-font-color0); }
.sf-log dl { margin: 4px 0 2px 14px; display: grid; grid-template-columns: max-content 1fr; gap: 1px 8px; }
.sf-log dt, .sf-log dd { margin: 0; color: var(--jp-ui-font-color1); font-family: var(--jp-code-font-family); font-size: 11px;
  overflow-wrap: anywhere; }
/* the diff */
.sf-diff details { border: 1px solid var(--jp-border-color2); border-radius: 2px; margin: 3px 0; }
.sf-diff, .sf-diff-files, .sf-diff details { min-width: 0; max-width: 100%; box-sizing: border-box; }
.sf-diff { width: 100%; }
.sf-diff-files { max-height: 420px; overflow-y: auto; }
.sf-diff summary { cursor: pointer; padding: 3px 6px; display: flex; flex-wrap: wrap; gap: 0 8px;
  color: var(--jp-ui-font-color1); }
.sf-diff summary .sf-path { flex: 1 1 14em; min-width: 0; font-family: var(--jp-code-font-family);
  overflow-wrap: anywhere; }
.sf-diff pre { margin: 0; padding: 6px; max-width: 100%; box-sizing: border-box; max-height: 320px; overflow: auto; font-size: 11px; line-height: 1.35;
  background: var(--jp-layout-color0); color: var(--jp-content-font-color1); font-family: var(--jp-code-font-family); }
.sf-diff .sf-add { border-left: 3px solid var(--jp-success-color1); display: block; padding-left: 4px; }
.sf-diff .sf-del { border-left: 3px solid var(--jp-error-color1); display: block; padding-left: 4px; }
.sf-diff .sf-hunk { color: var(--jp-content-font-color2); display: block; }
.sf-plus::before { content: "+"; } .sf-minus::before { content: "−"; }
.sf-plus, .sf-minus { font-variant-numeric: tabular-nums; white-space: nowrap; }
/* controls: icons on the text's line, a gap between groups, the destructive group apart */
.specflow-root .jupyter-button { width: auto; min-width: 72px; padding: 0 12px; display: inline-flex; align-items: center;
  justify-content: center; gap: 6px; flex-shrink: 0; }
.specflow-root .jupyter-button > i { margin: 0; line-height: 1; }
.specflow-root .sf-actions { flex-wrap: wrap; gap: 6px; align-items: center; }
.specflow-root .sf-danger-zone { border-top: 1px solid var(--jp-border-color2); padding-top: 6px; margin-top: 4px;
  flex-wrap: wrap; gap: 6px; align-items: flex-start; }
.specflow-root .jupyter-button.sf-quiet { background: transparent; border: 1px solid var(--jp-border-color1);
  color: var(--jp-ui-font-color1); box-shadow: none; }
.specflow-root .jupyter-button.sf-quiet:hover:enabled { background: var(--jp-layout-color2); }
/* ipywidgets' own greys sit below 4.5:1 on some theme layers */
.specflow-root .lm-AccordionPanel-title, .specflow-root .jupyter-widget-Collapse-header,
.specflow-root .p-Collapse-header { color: var(--jp-ui-font-color0) !important; font-weight: 600; }
.specflow-root .widget-label, .specflow-root .widget-label-basic, .specflow-root .widget-inline-hbox .widget-label,
.specflow-root .widget-checkbox label, .specflow-root .widget-checkbox span { color: var(--jp-ui-font-color1); }
.specflow-root .jupyter-widget-Collapse-contents, .specflow-root .lm-AccordionPanel-content { padding: 6px 8px; }
.specflow-root .widget-text input, .specflow-root .widget-textarea textarea, .specflow-root .widget-dropdown select {
  color: var(--jp-ui-font-color0); }
.specflow-root input::placeholder, .specflow-root textarea::placeholder { color: var(--jp-ui-font-color2); opacity: 1; }
.specflow-root .sf-field { margin: 0 0 6px 0; }
.specflow-root .sf-field .widget-text, .specflow-root .sf-field .widget-textarea { width: 100%; margin: 0; }
.specflow-root .sf-field-label { font-size: 12px; color: var(--jp-ui-font-color1); }
.specflow-root .sf-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 2px 12px; }
.specflow-root .sf-error { color: var(--jp-ui-font-color0); font-size: 12px; border-left: 3px solid var(--jp-error-color1);
  padding-left: 6px; margin-top: 2px; }
.specflow-root .specflow-field-invalid input, .specflow-root .specflow-field-invalid textarea {
  border-color: var(--jp-error-color1) !important; }
.specflow-root .widget-progress .progress { background: var(--jp-layout-color2); }
.specflow-root .widget-progress .progress-bar { background: var(--jp-brand-color1); }
.specflow-root .widget-progress .progress-bar-success { background: var(--jp-success-color1); }
.specflow-card { border: 1px solid var(--jp-border-color2); border-radius: 4px; padding: 8px 10px; }
/* Now: what the agent is doing */
.sf-now { border-left: 3px solid var(--jp-brand-color1); background: var(--jp-layout-color2); padding: 4px 8px;
  border-radius: 2px; min-width: 0; }
.sf-now-line { display: flex; gap: 8px; align-items: baseline; min-width: 0; color: var(--jp-ui-font-color0); }
.sf-now-label { font-weight: 700; font-size: 11px; text-transform: uppercase; letter-spacing: 0.04em; flex: none; }
.sf-now-doing { font-family: var(--jp-code-font-family); font-size: 12px; overflow-wrap: anywhere; min-width: 0; }
.specflow-root .sf-now .sf-muted { color: var(--jp-ui-font-color1); }
.sf-now-recent { list-style: none; margin: 2px 0 0 0; padding: 0; font-size: 11px; color: var(--jp-ui-font-color1);
  font-family: var(--jp-code-font-family); }
.sf-now-recent li { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
/* transcripts */
.sf-transcript { font-size: 12px; min-width: 0; max-width: 100%; max-height: 520px; overflow: auto;
  border: 1px solid var(--jp-border-color2); border-radius: 2px; padding: 6px; box-sizing: border-box; }
.sf-transcript details { margin: 2px 0; }
.sf-transcript summary { cursor: pointer; color: var(--jp-ui-font-color0); overflow-wrap: anywhere; }
.sf-transcript pre { margin: 2px 0 4px 12px; padding: 4px 6px; white-space: pre-wrap; overflow-wrap: anywhere;
  max-height: 240px; overflow: auto; font-size: 11px; background: var(--jp-layout-color0);
  color: var(--jp-content-font-color1); font-family: var(--jp-code-font-family); }
.sf-transcript code { font-family: var(--jp-code-font-family); overflow-wrap: anywhere; }
.sf-tr-text { white-space: pre-wrap; overflow-wrap: anywhere; border-left: 3px solid var(--jp-border-color1);
  padding: 2px 6px; margin: 4px 0; color: var(--jp-ui-font-color1); }
.sf-transcript [data-kind="error"] > summary, .sf-transcript div[data-kind="error"] {
  border-left: 3px solid var(--jp-error-color1); padding-left: 4px; }
.sf-tr-result { border-top: 1px solid var(--jp-border-color2); margin-top: 6px; padding-top: 4px;
  color: var(--jp-ui-font-color0); }
.specflow-run-picker .widget-dropdown { min-width: 0; }
"""


def stylesheet() -> w.HTML:
    """The panel's stylesheet as a widget (invisible; put it first in the panel's children)."""
    sheet = w.HTML(f"<style>{CSS}</style>", layout=w.Layout(display="none"))
    sheet.add_class("specflow-style")
    return sheet


def show(widget: w.DOMWidget, visible: bool) -> None:
    """Show or hide ``widget``. Shown widgets keep their own CSS display (a button forced to ``flex`` puts its icon
    top-left)."""
    widget.layout.display = None if visible else "none"


def badge(label: str, *, tone: str | None = None, live: bool | None = None) -> str:
    """A status badge for ``label``; its tone (dot and border colour) from the label (one of
    :data:`specflow_nb.summary.BADGE_LABELS`) unless given. Running and Healing pulse."""
    tone = tone or summary.tone(label)
    live = label in ("Running", "Healing") if live is None else live
    return (
        f'<span class="sf-badge sf-tone-{esc(tone)}{" sf-live" if live else ""} specflow-badge" role="status">'
        f"{esc(label)}</span>"
    )


def note(text: str, kind: str = "info", *, title: str = "") -> str:
    """A callout: ``kind`` is info, warn, error or success (its edge colour); text always in the font colour."""
    head = f"<b>{esc(title)}</b> " if title else ""
    return f'<div class="sf-note sf-tone-{esc(kind)}">{head}{esc(text)}</div>'


def muted(text: str) -> str:
    return f'<span class="sf-muted">{esc(text)}</span>'
