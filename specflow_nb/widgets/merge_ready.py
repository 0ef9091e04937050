"""MergeReadyPanel: verify passed; look at what the merge brings in (View diff), then Run merge."""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from specflow_nb.machine import Command, MergeCommand
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.server.api import DiffResponse
from specflow_nb.widgets import theme
from specflow_nb.widgets._html import esc
from specflow_nb.widgets.theme import show

_STATE_WORDS = {"committed": "", "uncommitted": "not committed yet", "untracked": "new, not committed yet"}


def _patch_html(patch: str) -> str:
    lines = []
    for line in patch.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(f'<span class="sf-add">{esc(line)}</span>')
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(f'<span class="sf-del">{esc(line)}</span>')
        elif line.startswith("@@"):
            lines.append(f'<span class="sf-hunk">{esc(line)}</span>')
        else:
            lines.append(f"{esc(line)}\n")
    return "".join(lines)


def diff_html(diff: DiffResponse) -> str:
    """Files with +/− counts, each patch behind a click (``<details>``), newest state of the branch."""
    if not diff.files:
        return theme.note(f"No changes: {diff.feature_branch} adds nothing to {diff.target_branch}.", "info")
    added = sum(f.added or 0 for f in diff.files)
    deleted = sum(f.deleted or 0 for f in diff.files)
    head = (
        f'<div class="sf-muted">{len(diff.files)} file{"s" if len(diff.files) != 1 else ""} changed on '
        f"<code>{esc(diff.feature_branch)}</code> against <code>{esc(diff.target_branch)}</code>: "
        f'<span class="sf-plus">{added}</span> <span class="sf-minus">{deleted}</span></div>'
    )
    rows = []
    for f in diff.files:
        counts = (
            "binary"
            if f.added is None
            else f'<span class="sf-plus">{f.added}</span> <span class="sf-minus">{f.deleted or 0}</span>'
        )
        state = _STATE_WORDS.get(f.state, "")
        note = f' <span class="sf-muted">({esc(state)})</span>' if state else ""
        cut = '\n<span class="sf-hunk">… patch cut here (too long)</span>' if f.truncated else ""
        rows.append(
            f'<details data-path="{esc(f.path)}"><summary><span class="sf-path">{esc(f.path)}</span>{note}'
            f"<span>{counts}</span></summary><pre>{_patch_html(f.patch)}{cut}</pre></details>"
        )
    more = f'<div class="sf-muted">… and {diff.more_files} more files</div>' if diff.more_files else ""
    return f'<div class="sf-diff">{head}<div class="sf-diff-files">{"".join(rows)}</div>{more}</div>'


class MergeReadyPanel(w.VBox):
    """Shown in ``waiting_merge``. ``on_view_diff()`` asks the panel to fetch the diff and hand it to
    :meth:`show_diff`."""

    def __init__(self, on_command: Callable[[Command], None], on_view_diff: Callable[[], None]) -> None:
        self.merge = w.Button(
            description="Run merge", icon="code-branch", button_style="primary", tooltip="Merge the feature branch"
        )
        self.merge.add_class("specflow-merge")
        self.view_diff = w.Button(description="View diff", icon="file-alt", tooltip="What the merge brings in")
        self.view_diff.add_class("specflow-view-diff")
        self.merge.on_click(lambda _b: on_command(MergeCommand()))
        self.view_diff.on_click(lambda _b: self._view_diff(on_view_diff))
        self.message = w.HTML()
        self.diff = w.HTML()
        self.diff.add_class("specflow-diff")
        actions = w.HBox([self.merge, self.view_diff])
        actions.add_class("sf-actions")
        super().__init__([self.message, actions, self.diff])
        self.add_class("specflow-merge-ready")

    def _view_diff(self, on_view_diff: Callable[[], None]) -> None:
        self.diff.value = '<span class="sf-muted">Reading the diff…</span>'
        on_view_diff()

    def render(self, execution: OrchestrationExecution) -> None:
        ready = execution.status is OrchestrationStatus.WAITING_MERGE
        show(self, ready)
        if ready:
            target = execution.config.target_branch or "the default branch"
            branch = execution.feature_branch or "the feature branch"
            self.message.value = theme.note(
                f"Verify passed; {branch} can be merged into {target}.", "success", title="Merge ready."
            )
        else:
            self.diff.value = ""

    def show_diff(self, diff: DiffResponse | str) -> None:
        """Show a diff (or a message saying why there is none)."""
        if isinstance(diff, str):
            self.diff.value = theme.note(diff, "info")
        else:
            self.diff.value = diff_html(diff)
