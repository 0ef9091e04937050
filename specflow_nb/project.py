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
  (:func:`no_project_status`, printed by the CLI). "All tasks done" is :func:`specflow_nb.tasks.all_done`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from specflow_nb import gitops
from specflow_nb.errors import ConfigError, ProjectNotFound, ProjectOutsideRoot, SpecflowError
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
from specflow_nb.tasks import ParsedTasks, all_done, read_tasks

__all__ = [
    "Artifacts",
    "HealthIssue",
    "NextAction",
    "ProjectStatus",
    "collect_artifacts",
    "find_feature_dir",
    "list_feature_dirs",
    "no_project_status",
    "parse_feature_name",
    "project_status",
    "resolve_project",
]

SPECS_DIR = "specs"
USER_GATE_MARKER = "USER GATE"
_FEATURE_RE = re.compile(r"^(\d{3,})-(.+)$")


# --------------------------------------------------------------------------------------------------------------
# Where the project is


def resolve_project(root: Path, project_id: str) -> Path:
    """The project folder for ``project_id`` under ``root`` (resolved, symlinks followed).

    Raises :class:`ProjectOutsideRoot` (403) when it would leave ``root``, :class:`ProjectNotFound` (404) when it
    is not an existing folder, :class:`ConfigError` for an id that is not a path at all.
    """
    root = Path(root)
    pid = (project_id or "").strip()
    if "\x00" in pid:
        raise ConfigError("Invalid project id: it contains a NUL character", hint="Pass a folder path under the root.")
    too_long = [part for part in pid.replace("\\", "/").split("/") if len(part.encode("utf-8", "replace")) > 255]
    if too_long or len(pid.encode("utf-8", "replace")) > 4096:
        raise ConfigError(
            "Invalid project id: a folder name is longer than 255 bytes (or the path longer than 4096)",
            hint="Pass a folder path under the root.",
            details={"loc": ["projectId"]},
        )
    try:
        root_resolved = root.resolve()
        candidate = (root_resolved / pid).resolve() if pid not in ("", ".") else root_resolved
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ProjectNotFound(f"Cannot resolve project {project_id!r}: {exc}", hint="Check the folder.") from None
    if not candidate.is_relative_to(root_resolved):
        raise ProjectOutsideRoot(
            f"Project {project_id!r} is outside the root folder",
            hint="Use a folder path relative to the root (no '..', no absolute paths or symlinks leading elsewhere).",
        )
    if not candidate.is_dir():
        where = "the root folder" if candidate == root_resolved else f"{project_id!r} under the root folder"
        raise ProjectNotFound(
            f"Project not found: {where} does not exist or is not a folder",
            hint="Check the path; project ids are folder paths relative to the root.",
            details={"projectId": project_id},
        )
    check_links(candidate)
    return candidate


#: The folders of a project specflow_nb reads or writes: each must stay inside the project (a link out is refused).
PROJECT_LINKS: tuple[str, ...] = (
    ".specflow",
    ".specflow/workflows",
    ".specflow/inbox",
    ".specflow/locks",
    SPECS_DIR,
)


def link_outside(project: Path) -> str | None:
    """The first of the project's own folders (``.specflow/``, ``specs/``, each feature folder) that resolves
    outside ``project`` (a symlink leading elsewhere), as a path relative to it; None when all stay inside."""
    project = Path(project)
    try:
        base = project.resolve()
        for rel in PROJECT_LINKS:
            path = project / rel
            if (path.is_symlink() or path.exists()) and not path.resolve().is_relative_to(base):
                return rel
        specs = project / SPECS_DIR
        if specs.is_dir():
            for child in specs.iterdir():
                if child.is_symlink() and not child.resolve().is_relative_to(base):
                    return f"{SPECS_DIR}/{child.name}"
    except (OSError, RuntimeError):  # a symlink loop, or a folder we may not read: not inside either
        return ".specflow"
    return None


def check_links(project: Path) -> None:
    """Raise :class:`ProjectOutsideRoot` (403) naming the first project folder that is a link out of the project."""
    link = link_outside(project)
    if link is not None:
        raise ProjectOutsideRoot(
            f"'{link}' in project {project.name!r} is a link leading outside the project: nothing is read or written "
            "through it",
            hint=f"Replace the link '{link}' with a real folder inside the project.",
            details={"link": link},
        )


def _require_project(project: Path) -> Path:
    project = Path(project)
    if not project.is_dir():
        raise ProjectNotFound(
            f"Project folder not found: {project}", hint="Pass an existing project folder (--project PATH)."
        )
    return project


# --------------------------------------------------------------------------------------------------------------
# Feature folders


def parse_feature_name(name: str) -> tuple[int, str] | None:
    """``0001-todo-cli`` -> ``(1, "todo-cli")``; None for a name that is not a numbered feature folder."""
    m = _FEATURE_RE.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def list_feature_dirs(project: Path) -> list[Path]:
    """The numbered feature folders under ``specs/``, newest (highest number) first."""
    specs = Path(project) / SPECS_DIR
    try:
        entries = [p for p in specs.iterdir() if p.is_dir() and parse_feature_name(p.name)]
    except OSError:
        return []
    return sorted(entries, key=lambda p: (parse_feature_name(p.name) or (0, ""), p.name), reverse=True)


def _lookup_feature(project: Path, ref: str) -> Path | None:
    """A feature folder named by number (``1``, ``0001``), name (``0001-todo-cli``) or path; None if absent."""
    ref = ref.strip()
    if not ref:
        return None
    if ref.isdigit():
        for p in list_feature_dirs(project):
            parsed = parse_feature_name(p.name)
            if parsed and parsed[0] == int(ref):
                return p
        return None
    project_resolved = project.resolve()
    for base in (project / SPECS_DIR, project):
        candidate = (base / ref).resolve()
        if not candidate.is_relative_to(project_resolved):
            raise ProjectOutsideRoot(
                f"Feature folder {ref!r} is outside the project", hint="Name a folder under the project's specs/."
            )
        if candidate.is_dir():
            return candidate
    return None


def _state_feature(state: dict[str, Any]) -> str | None:
    value = state.get("feature")
    return value if isinstance(value, str) and value.strip() else None


def find_feature_dir(project: Path, explicit: str | None = None) -> Path | None:
    """The active feature folder: ``explicit`` (raises :class:`ProjectNotFound` if absent), else the state's
    ``feature`` key when it names an existing folder, else the highest-numbered ``specs/NNNN-name``; None if none.
    """
    project = _require_project(project)
    if explicit:
        found = _lookup_feature(project, explicit)
        if found is None:
            available = ", ".join(p.name for p in list_feature_dirs(project)) or "none"
            raise ProjectNotFound(
                f"Feature folder not found: {explicit}",
                hint=f"Pass a folder under specs/ by name or number (available: {available}).",
            )
        return found
    try:
        recorded = _state_feature(StateFile(project).load())
    except ConfigError:
        recorded = None
    if recorded:
        try:
            found = _lookup_feature(project, recorded)
        except ProjectOutsideRoot:
            found = None
        if found is not None:
            return found
    dirs = list_feature_dirs(project)
    return dirs[0] if dirs else None


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
        return self.has_spec and self.has_plan and self.has_tasks

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


def _has_user_gate(art: Artifacts) -> bool:
    for p in (art.spec, art.plan, art.tasks):
        if p is None:
            continue
        try:
            if USER_GATE_MARKER in p.read_text(encoding="utf-8", errors="replace"):
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
    """The one "all done" rule (:func:`specflow_nb.tasks.all_done`): no pending, no blocked, at least one task."""
    return all_done(parsed)


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


def project_status(project: Path, feature: str | None = None) -> ProjectStatus:
    """The phase status of ``project`` (see the module docstring for where each field comes from).

    Raises :class:`ProjectNotFound` for a missing project folder or an explicit ``feature`` that does not exist;
    any other oddity is reported in ``health`` instead.
    """
    project = _require_project(project)
    issues: list[HealthIssue] = []

    def issue(code: str, severity: Severity, message: str) -> None:
        issues.append(HealthIssue(code=code, severity=severity, message=message))

    # Recorded state (optional, may be broken)
    try:
        state = StateFile(project).load()
    except ConfigError as exc:
        state = {}
        # The original's code for a state file it cannot read; the rest of the status is still derived.
        issue("NO_STATE", "error", f"{exc.message} ({exc.hint})" if exc.hint else exc.message)

    feature_dir = find_feature_dir(project, feature)
    recorded_feature = _state_feature(state)
    if not feature and recorded_feature and (feature_dir is None or feature_dir.name != Path(recorded_feature).name):
        issue(
            "STATE_FEATURE_MISSING",
            "warning",
            f"The state names feature {recorded_feature!r}, which is not a folder; using "
            f"{feature_dir.name if feature_dir else 'none'}",
        )

    art = collect_artifacts(feature_dir)
    parsed = art.parsed_tasks
    if art.tasks_error:
        issue("TASKS_UNREADABLE", "error", f"tasks.md cannot be read: {art.tasks_error}")
    elif parsed is not None:
        if parsed.total == 0:
            issue("TASKS_EMPTY", "warning", "tasks.md holds no tasks (expected lines like `- [ ] T001 Description`)")
        for w in parsed.warnings[:_MAX_WARNING_ISSUES]:
            issue("TASKS_WARNING", "warning", w)
        if len(parsed.warnings) > _MAX_WARNING_ISSUES:
            issue("TASKS_WARNING", "warning", f"… and {len(parsed.warnings) - _MAX_WARNING_ISSUES} more warnings")

    # Phase
    parsed_name = parse_feature_name(feature_dir.name) if feature_dir else None
    folder_number = _FEATURE_RE.match(feature_dir.name) if feature_dir else None
    number: str | None = folder_number.group(1) if folder_number else None
    recorded_number = _dig(state, "orchestration", "phase", "number")
    if recorded_number is not None:
        text_number = _str_or_none(recorded_number)
        if text_number is not None and text_number.strip().isdigit():
            number = text_number.strip()
        else:
            issue("STATE_INVALID", "warning", f"orchestration.phase.number is not a number: {recorded_number!r}")
    name = _str_or_none(_dig(state, "orchestration", "phase", "name")) or (parsed_name[1] if parsed_name else None)
    branch = _str_or_none(_dig(state, "orchestration", "phase", "branch")) or (
        feature_dir.name if feature_dir else None
    )
    phase_status = _str_or_none(_dig(state, "orchestration", "phase", "status"))
    if phase_status is None and feature_dir is not None:
        phase_status = "in_progress"
    has_user_gate = user_gate(project, art)

    # Step
    derived_step, derived_status = _derive_step(art, parsed)
    step = derived_step
    step_status: str | None = derived_status
    recorded_step = _str_or_none(_dig(state, "orchestration", "step", "current"))
    if recorded_step is not None:
        if recorded_step in _KNOWN_STEPS:
            step = recorded_step
            recorded_status = _str_or_none(_dig(state, "orchestration", "step", "status"))
            step_status = recorded_status or (derived_status if recorded_step == derived_step else None)
        else:
            issue(
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
        issue("TASKS_MISSING", "warning", f"The step is {step} but the feature has no tasks.md with tasks")

    # Git
    current, is_repo = _branch_and_repo(project)
    if not is_repo:
        issue("NOT_A_GIT_REPO", "warning", "The project is not a git repository: the merge step cannot run")
    elif current is None:
        issue("DETACHED_HEAD", "warning", "HEAD is detached: check out the phase branch before implementing")
    elif branch and feature_dir is not None and current != branch:
        if _tasks_complete(parsed) and _merged_into(project, branch, current):
            # the phase branch is merged into the checked-out branch: the phase is complete, not mismatched
            phase_status, step, step_status = "complete", "merge", "complete"
            index = _STEP_NAMES.index("merge")
        else:
            issue(
                "BRANCH_MISMATCH",
                "warning",
                f"Checked-out branch {current!r} is not the phase branch {branch!r}",
            )

    # Records set aside by the store
    corrupt = OrchestrationStore(project).corrupt_files()
    if corrupt:
        issue(
            "CORRUPT_RECORDS",
            "warning",
            f"{len(corrupt)} orchestration record(s) were unreadable and set aside in .specflow/workflows/ "
            f"(e.g. {corrupt[-1].name})",
        )

    health: HealthStatus = "error" if any(i.severity == "error" for i in issues) else "warning" if issues else "ready"

    blockers: list[str] = []
    if step_status == "blocked":
        blockers.append(f"The {step} step is blocked")
    elif step_status == "failed":
        blockers.append(f"The {step} step failed")
    if parsed is not None:
        for t in parsed.tasks:
            if t.state is TaskState.BLOCKED:
                blockers.append(f"{t.id} is blocked" + (f": {t.blocked_reason}" if t.blocked_reason else ""))
    blockers.extend(i.message for i in issues if i.severity == "error")

    total = parsed.total if parsed else 0
    done = parsed.done if parsed else 0
    return ProjectStatus(
        phase=PhaseInfo(number=number, name=name, branch=branch, status=phase_status, has_user_gate=has_user_gate),
        step=StepInfo(current=step, index=index, status=step_status),
        progress=Progress(
            tasks_completed=done,
            tasks_total=total,
            tasks_blocked=parsed.blocked if parsed else 0,
            percentage=round(done * 100 / total) if total else 0,
            tasks_deferred=parsed.deferred if parsed else 0,
        ),
        health=Health(status=health, issues=issues),
        next_action=_next_action(
            health=health,
            feature_dir=feature_dir,
            phase_status=phase_status,
            step=step,
            step_status=step_status,
            art=art,
            parsed=parsed,
            has_user_gate=has_user_gate,
        ),
        blockers=blockers,
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
