"""A project on disk: where it is, its active feature folder, its artifacts, and its phase status.

Decisions (documented here because hosts and agents rely on them):

- **Project ids** are folder paths relative to the server root (``""`` or ``"."`` is the root itself). Anything that
  resolves outside the root — ``..``, an absolute path elsewhere, a symlink leading out — is refused with
  :class:`ProjectOutsideRoot` *before* existence is checked, so the answer never reveals what exists outside.
- **The feature folder** is chosen in this order: an explicit name/path/number (``--feature``); the ``feature`` key
  of ``.specflow/orchestration-state.json`` (``specflow-nb state set feature=0002-x``) when it names an existing
  folder; else the ``specs/NNNN-name`` (or spec-kit ``NNN-name``) folder with the highest number.
- **State overrides.** ``.specflow/orchestration-state.json`` may record ``orchestration.phase.{number, name,
  branch, status, hasUserGate}`` and ``orchestration.step.{current, index, status}`` (the original SpecFlow layout,
  written by ``state set``). Recorded values win over what is derived from the artifacts.
- **User gate.** A phase has a user gate when its spec.md, plan.md or tasks.md contains the marker ``USER GATE``
  (upper case, as spec-kit roadmaps write it), or the state records ``orchestration.phase.hasUserGate``.
- **Never raise on a weird project.** :func:`project_status` turns unreadable state, unreadable or empty tasks,
  parse warnings, a branch mismatch or set-aside records into ``health.issues``. It raises only for a missing project
  folder (:class:`ProjectNotFound`) and an explicit feature that does not exist.
- **The original's contract** (``specflow status --json``, kept so its scripts work): ``phase.number`` is a string,
  the feature folder's number as written (``"001"``, ``"0042"``); ``health.status`` is ``ready`` when there is no
  issue (else ``warning``/``error``); an unreadable state file is the original's ``NO_STATE`` error (the derived
  fields are still filled in), and a missing project folder is its ``NO_PROJECT`` error in the same shape
  (:func:`no_project_status`, printed by the CLI). "All tasks done" and "design complete" are the machine's rules
  (:func:`specflow_nb.machine.all_tasks_done`, :func:`specflow_nb.machine.design_complete`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from specflow_nb import gitops
from specflow_nb.confinement import PROJECT_LINKS, SPECS_DIR, check_links, link_outside, resolve_project
from specflow_nb.errors import ConfigError, SpecflowError
from specflow_nb.features import (
    _FEATURE_RE,
    _require_project,
    _state_feature,
    find_feature_dir,
    list_feature_dirs,
    parse_feature_name,
)
from specflow_nb.machine.events import all_tasks_done, design_complete
from specflow_nb.models import STEP_ORDER, CamelModel, OrchestrationPhase, TaskState
from specflow_nb.models.preview import (  # the status view is a model; imported here for its old import path
    Health,
    HealthIssue,
    HealthStatus,
    NextAction,
    PhaseInfo,
    Progress,
    ProjectStatus,
    Severity,
    StatusContext,
    StepInfo,
)
from specflow_nb.store import OrchestrationStore, StateFile
from specflow_nb.tasks import ParsedTasks, read_tasks

__all__ = [
    "PROJECT_LINKS",
    "SPECS_DIR",
    "Artifacts",
    "HealthIssue",
    "NextAction",
    "ProjectStatus",
    "check_links",
    "collect_artifacts",
    "find_feature_dir",
    "link_outside",
    "list_feature_dirs",
    "no_project_status",
    "parse_feature_name",
    "project_status",
    "resolve_project",
]

USER_GATE_MARKER = "USER GATE"


# --------------------------------------------------------------------------------------------------------------
# Where the project is


# --------------------------------------------------------------------------------------------------------------
# Artifacts


class Artifacts(CamelModel):
    """The design artifacts of one feature folder (paths are None when the file is absent)."""

    feature_dir: Path | None = None
    spec: Path | None = None
    plan: Path | None = None
    tasks: Path | None = None
    checklists: list[Path] = Field(default_factory=list)
    #: Number of tasks parsed from tasks.md (0 when absent or unreadable).
    task_count: int = 0

    _parsed: ParsedTasks | None = PrivateAttr(default=None)
    _tasks_error: str | None = PrivateAttr(default=None)

    @property
    def has_spec(self) -> bool:
        return self.spec is not None

    @property
    def has_plan(self) -> bool:
        return self.plan is not None

    @property
    def has_tasks(self) -> bool:
        """tasks.md exists and holds at least one task (the design step's completion rule)."""
        return self.task_count > 0

    @property
    def has_checklists(self) -> bool:
        return bool(self.checklists)

    @property
    def design_complete(self) -> bool:
        """The machine's one rule (:func:`specflow_nb.machine.design_complete`)."""
        return design_complete(has_spec=self.has_spec, has_plan=self.has_plan, task_count=self.task_count)

    @property
    def parsed_tasks(self) -> ParsedTasks | None:
        """The parsed tasks.md (None when absent or unreadable)."""
        return self._parsed

    @property
    def tasks_error(self) -> str | None:
        """Why tasks.md could not be read, when it exists but could not be."""
        return self._tasks_error


def collect_artifacts(feature_dir: Path | None) -> Artifacts:
    """Look at ``feature_dir`` (None gives empty artifacts). Never raises: read errors land in ``tasks_error``."""
    if feature_dir is None:
        return Artifacts()
    feature_dir = Path(feature_dir)

    def file(name: str) -> Path | None:
        p = feature_dir / name
        return p if p.is_file() else None

    try:
        checklists = sorted(p for p in (feature_dir / "checklists").glob("*.md") if p.is_file())
    except OSError:
        checklists = []
    art = Artifacts(
        feature_dir=feature_dir,
        spec=file("spec.md"),
        plan=file("plan.md"),
        tasks=file("tasks.md"),
        checklists=checklists,
    )
    if art.tasks is not None:
        try:
            parsed = read_tasks(art.tasks)
        except (SpecflowError, OSError) as exc:
            art._tasks_error = str(exc)
        else:
            art._parsed = parsed
            art.task_count = parsed.total
    return art


# --------------------------------------------------------------------------------------------------------------
# Git


def _branch_and_repo(project: Path) -> tuple[str | None, bool]:
    """(checked-out branch or None, whether ``project`` is in a git work tree with git installed)."""
    try:
        return gitops.current_branch(Path(project)), True
    except SpecflowError:
        return None, False


def _merged_into(project: Path, branch: str, into: str) -> bool:
    """True when ``branch`` exists and every commit of it is in ``into`` (the phase was merged)."""
    try:
        return gitops.is_merged(Path(project), branch, into)
    except SpecflowError:
        return False


# --------------------------------------------------------------------------------------------------------------
# The status view (MISSION §7, `specflow-nb status --json`)


_STEP_NAMES = [s.value for s in STEP_ORDER]
_KNOWN_STEPS = {*_STEP_NAMES, OrchestrationPhase.COMPLETE.value}
_MAX_WARNING_ISSUES = 20


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


#: Whether a file holds the USER GATE marker, by the file's identity and change stamps (ino, size, mtime, ctime):
#: the engine asks on every transition, and spec.md and plan.md rarely change during a phase.
_MARKED: dict[str, tuple[tuple[int, int, int, int], bool]] = {}
#: A file changed less than this long ago is read again even when its stamps look the same: two writes within one
#: tick of the file system's clock could leave the same stamps.
_SETTLED_NS = 2_000_000_000


def _has_marker(path: Path) -> bool:
    st = os.stat(path)
    stamps = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    key = str(path)
    known = _MARKED.get(key)
    if known is not None and known[0] == stamps:
        return known[1]
    found = USER_GATE_MARKER in path.read_text(encoding="utf-8", errors="replace")
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
        if len(_MARKED) >= 256:
            _MARKED.clear()
        _MARKED[key] = (stamps, found)
    return found


def _has_user_gate(art: Artifacts) -> bool:
    for p in (art.spec, art.plan, art.tasks):
        if p is None:
            continue
        try:
            if _has_marker(p):
                return True
        except OSError:
            continue
    return False


def user_gate(project: Path, art: Artifacts) -> bool:
    """Does the phase have a USER GATE? The recorded state's ``hasUserGate`` when it has one, else the marker in
    spec.md, plan.md or tasks.md: what :func:`project_status` reports, without its git reads."""
    try:
        state = StateFile(project).load()
    except ConfigError:
        state = {}
    recorded = _dig(state, "orchestration", "phase", "hasUserGate")
    return recorded if isinstance(recorded, bool) else _has_user_gate(art)


def _derive_step(art: Artifacts, parsed: ParsedTasks | None) -> tuple[str, str]:
    """(step, step status) from the artifacts alone, when the state does not record them."""
    if not art.design_complete:
        started = art.has_spec or art.has_plan or art.tasks is not None
        return "design", "in_progress" if started else "not_started"
    assert parsed is not None  # design_complete implies tasks were parsed
    if _tasks_complete(parsed):
        return "verify", "not_started"
    if parsed.done == 0:
        return "analyze", "not_started"
    return "implement", "in_progress"


def _tasks_complete(parsed: ParsedTasks | None) -> bool:
    """The machine's one "all done" rule (:func:`specflow_nb.machine.all_tasks_done`: at least one task, every task
    settled, i.e. done or deferred), so ``status`` and the engine never disagree."""
    return parsed is not None and all_tasks_done([t.id for t in parsed.tasks], parsed.settled_ids)


def _next_action(
    *,
    health: HealthStatus,
    feature_dir: Path | None,
    phase_status: str | None,
    step: str,
    step_status: str | None,
    art: Artifacts,
    parsed: ParsedTasks | None,
    has_user_gate: bool,
) -> NextAction:
    if health == "error":
        return "fix_health"
    if phase_status == "not_started" or (feature_dir is None and phase_status is None):
        return "start_phase"
    if phase_status == "awaiting_user_gate":
        return "awaiting_user_gate"
    if phase_status == "complete" or step == "complete":
        return "archive_phase"
    step_done = step_status == "complete"
    if step == "design":
        return "run_analyze" if art.design_complete else "run_design"
    if step == "analyze":
        if not step_done:
            return "run_analyze"
        return "run_verify" if _tasks_complete(parsed) else "continue_implement"
    if step == "implement":
        return "run_verify" if _tasks_complete(parsed) else "continue_implement"
    if step == "verify":
        if not step_done:
            return "run_verify"
        return "awaiting_user_gate" if has_user_gate else "ready_to_merge"
    # merge
    return "archive_phase" if step_done else "ready_to_merge"


class _Issues(list[HealthIssue]):
    """The health issues a status read collects, in the order found."""

    def add(self, code: str, severity: Severity, message: str) -> None:
        self.append(HealthIssue(code=code, severity=severity, message=message))

    @property
    def health(self) -> HealthStatus:
        return "error" if any(i.severity == "error" for i in self) else "warning" if self else "ready"


def _recorded_state(project: Path, issues: _Issues) -> dict[str, Any]:
    """The recorded state (optional, may be broken: the original's NO_STATE, and the rest is still derived)."""
    try:
        return StateFile(project).load()
    except ConfigError as exc:
        issues.add("NO_STATE", "error", f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
        return {}


def _check_feature(feature: str | None, feature_dir: Path | None, state: dict[str, Any], issues: _Issues) -> None:
    """A feature the state names that is not a folder (a warning: the newest folder is used instead)."""
    recorded = _state_feature(state)
    if not feature and recorded and (feature_dir is None or feature_dir.name != Path(recorded).name):
        issues.add(
            "STATE_FEATURE_MISSING",
            "warning",
            f"The state names feature {recorded!r}, which is not a folder; using "
            f"{feature_dir.name if feature_dir else 'none'}",
        )


def _check_tasks(art: Artifacts, issues: _Issues) -> None:
    """tasks.md unreadable, empty, or with parse warnings (at most :data:`_MAX_WARNING_ISSUES` of them)."""
    parsed = art.parsed_tasks
    if art.tasks_error:
        issues.add("TASKS_UNREADABLE", "error", f"tasks.md cannot be read: {art.tasks_error}")
    elif parsed is not None:
        if parsed.total == 0:
            issues.add(
                "TASKS_EMPTY", "warning", "tasks.md holds no tasks (expected lines like `- [ ] T001 Description`)"
            )
        for w in parsed.warnings[:_MAX_WARNING_ISSUES]:
            issues.add("TASKS_WARNING", "warning", w)
        if len(parsed.warnings) > _MAX_WARNING_ISSUES:
            issues.add("TASKS_WARNING", "warning", f"… and {len(parsed.warnings) - _MAX_WARNING_ISSUES} more warnings")


def _phase_info(state: dict[str, Any], feature_dir: Path | None, has_user_gate: bool, issues: _Issues) -> PhaseInfo:
    """The phase: the state's recorded number, name, branch and status win over the feature folder's."""
    parsed_name = parse_feature_name(feature_dir.name) if feature_dir else None
    folder_number = _FEATURE_RE.match(feature_dir.name) if feature_dir else None
    number: str | None = folder_number.group(1) if folder_number else None
    recorded_number = _dig(state, "orchestration", "phase", "number")
    if recorded_number is not None:
        text_number = _str_or_none(recorded_number)
        if text_number is not None and text_number.strip().isdigit():
            number = text_number.strip()
        else:
            issues.add("STATE_INVALID", "warning", f"orchestration.phase.number is not a number: {recorded_number!r}")
    name = _str_or_none(_dig(state, "orchestration", "phase", "name")) or (parsed_name[1] if parsed_name else None)
    branch = _str_or_none(_dig(state, "orchestration", "phase", "branch")) or (
        feature_dir.name if feature_dir else None
    )
    phase_status = _str_or_none(_dig(state, "orchestration", "phase", "status"))
    if phase_status is None and feature_dir is not None:
        phase_status = "in_progress"
    return PhaseInfo(number=number, name=name, branch=branch, status=phase_status, has_user_gate=has_user_gate)


def _step_info(state: dict[str, Any], art: Artifacts, issues: _Issues) -> StepInfo:
    """The step: the state's recorded step (when it is a known one) wins over the one derived from the artifacts."""
    derived_step, derived_status = _derive_step(art, art.parsed_tasks)
    step = derived_step
    step_status: str | None = derived_status
    recorded_step = _str_or_none(_dig(state, "orchestration", "step", "current"))
    if recorded_step is not None:
        if recorded_step in _KNOWN_STEPS:
            step = recorded_step
            recorded_status = _str_or_none(_dig(state, "orchestration", "step", "status"))
            step_status = recorded_status or (derived_status if recorded_step == derived_step else None)
        else:
            issues.add(
                "STATE_INVALID",
                "warning",
                f"orchestration.step.current is {recorded_step!r}; expected one of {', '.join(sorted(_KNOWN_STEPS))}",
            )
    elif (recorded_status := _str_or_none(_dig(state, "orchestration", "step", "status"))) is not None:
        step_status = recorded_status
    index = _STEP_NAMES.index(step) if step in _STEP_NAMES else len(_STEP_NAMES)
    recorded_index = _dig(state, "orchestration", "step", "index")
    if isinstance(recorded_index, int) and not isinstance(recorded_index, bool) and recorded_step == step:
        index = recorded_index
    if step in ("implement", "verify", "merge") and not art.has_tasks:
        issues.add("TASKS_MISSING", "warning", f"The step is {step} but the feature has no tasks.md with tasks")
    return StepInfo(current=step, index=index, status=step_status)


def _check_git(
    project: Path,
    phase: PhaseInfo,
    step: StepInfo,
    feature_dir: Path | None,
    parsed: ParsedTasks | None,
    issues: _Issues,
) -> tuple[str | None, PhaseInfo, StepInfo]:
    """(checked-out branch, phase, step): a phase branch merged into the checked-out one completes the phase;
    otherwise another branch checked out is a mismatch."""
    current, is_repo = _branch_and_repo(project)
    if not is_repo:
        issues.add("NOT_A_GIT_REPO", "warning", "The project is not a git repository: the merge step cannot run")
    elif current is None:
        issues.add("DETACHED_HEAD", "warning", "HEAD is detached: check out the phase branch before implementing")
    elif phase.branch and feature_dir is not None and current != phase.branch:
        if _tasks_complete(parsed) and _merged_into(project, phase.branch, current):
            # the phase branch is merged into the checked-out branch: the phase is complete, not mismatched
            phase = phase.model_copy(update={"status": "complete"})
            step = StepInfo(current="merge", index=_STEP_NAMES.index("merge"), status="complete")
        else:
            issues.add(
                "BRANCH_MISMATCH",
                "warning",
                f"Checked-out branch {current!r} is not the phase branch {phase.branch!r}",
            )
    return current, phase, step


def _check_records(project: Path, issues: _Issues) -> None:
    """Records the store set aside as unreadable."""
    corrupt = OrchestrationStore(project).corrupt_files()
    if corrupt:
        issues.add(
            "CORRUPT_RECORDS",
            "warning",
            f"{len(corrupt)} orchestration record(s) were unreadable and set aside in .specflow/workflows/ "
            f"(e.g. {corrupt[-1].name})",
        )


def _blockers(step: StepInfo, parsed: ParsedTasks | None, issues: _Issues) -> list[str]:
    """What holds the phase: a blocked or failed step, blocked tasks, and every error."""
    blockers: list[str] = []
    step_state = step.status  # a step's state (blocked, failed, …), not an orchestration status
    if step_state == "blocked":
        blockers.append(f"The {step.current} step is blocked")
    elif step_state == "failed":
        blockers.append(f"The {step.current} step failed")
    if parsed is not None:
        for t in parsed.tasks:
            if t.state is TaskState.BLOCKED:
                blockers.append(f"{t.id} is blocked" + (f": {t.blocked_reason}" if t.blocked_reason else ""))
    blockers.extend(i.message for i in issues if i.severity == "error")
    return blockers


def _progress(parsed: ParsedTasks | None) -> Progress:
    total = parsed.total if parsed else 0
    done = parsed.done if parsed else 0
    return Progress(
        tasks_completed=done,
        tasks_total=total,
        tasks_blocked=parsed.blocked if parsed else 0,
        percentage=round(done * 100 / total) if total else 0,
        tasks_deferred=parsed.deferred if parsed else 0,
    )


def project_status(project: Path, feature: str | None = None) -> ProjectStatus:
    """The phase status of ``project`` (see the module docstring for where each field comes from).

    Raises :class:`ProjectNotFound` for a missing project folder or an explicit ``feature`` that does not exist;
    any other oddity is reported in ``health`` instead.
    """
    project = _require_project(project)
    issues = _Issues()
    state = _recorded_state(project, issues)
    feature_dir = find_feature_dir(project, feature)
    _check_feature(feature, feature_dir, state, issues)
    art = collect_artifacts(feature_dir)
    parsed = art.parsed_tasks
    _check_tasks(art, issues)
    phase = _phase_info(state, feature_dir, user_gate(project, art), issues)
    step = _step_info(state, art, issues)
    current, phase, step = _check_git(project, phase, step, feature_dir, parsed, issues)
    _check_records(project, issues)
    health = issues.health
    return ProjectStatus(
        phase=phase,
        step=step,
        progress=_progress(parsed),
        health=Health(status=health, issues=list(issues)),
        next_action=_next_action(
            health=health,
            feature_dir=feature_dir,
            phase_status=phase.status,
            step=step.current or "",
            step_status=step.status,
            art=art,
            parsed=parsed,
            has_user_gate=phase.has_user_gate,
        ),
        blockers=_blockers(step, parsed, issues),
        context=StatusContext(
            feature_dir=_relative(project, feature_dir),
            has_spec=art.has_spec,
            has_plan=art.has_plan,
            has_tasks=art.has_tasks,
            has_checklists=art.has_checklists,
            current_branch=current,
        ),
    )


def no_project_status(message: str = "Not in a SpecFlow project") -> ProjectStatus:
    """The original's ``NO_PROJECT`` answer, in the status shape: every field empty, ``fix_health``."""
    return ProjectStatus(
        phase=PhaseInfo(),
        step=StepInfo(),
        progress=Progress(),
        health=Health(status="error", issues=[HealthIssue(code="NO_PROJECT", severity="error", message=message)]),
        next_action="fix_health",
        blockers=[message],
        context=StatusContext(),
    )


def _relative(project: Path, path: Path | None) -> str | None:
    """A path relative to the project (POSIX separators), so status never reveals the server's folders."""
    if path is None:
        return None
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
