"""The loop: performs the state machine's actions and feeds it events. It decides nothing itself.

``machine.transition`` returns the next execution and a list of actions; this module performs them in order: ``Persist``
writes the state file (always first: write-ahead), spawns start detached agent runs through ``specflow_nb.agent``
(the only spawner in the package), ``ReadProject`` re-reads tasks.md, the artifacts and git (and runs the
verifyCommand) and feeds the result straight back as ``ProjectRead`` before anything else may touch that execution.

Events arrive, they are never polled for: a run's end is its process's exit (``AgentRun.wait``), a user command is a
method call, a stall is the runner's "no output for stale_after" callback. One ``anyio.Lock`` per project serialises
everything that steps a project's execution, so many projects run concurrently on one event loop while each
project sees one event at a time. One project never has two active orchestrations (checked under the project's
file lock, so two processes cannot both start one).

Hosts use the surface in docs/engine-api.md: ``start``, ``command``, ``status``, ``list``, ``preview``,
``wait_for_change``, ``subscribe``, ``active`` and ``start_loop``/``stop_loop`` (or ``async with``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import math
import os
import shlex
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
from pydantic import BaseModel, ConfigDict, Field

from specflow_nb import gitops, machine, ownership, policy, procs, redact
from specflow_nb.agent.claude import (
    AgentOptions,
    AgentOutcome,
    AgentRun,
    AgentRunError,
    FailureKind,
    SessionMode,
    attach_run,
    read_outcome,
    start_run,
)
from specflow_nb.agent.codex import agent_options, agent_preflight, apply_default_agent, codex_command, codex_model
from specflow_nb.agent.prompts import (
    StepPrompt,
    build_batch_prompt,
    build_heal_prompt,
    build_step_prompt,
    has_project_command,
    prompt_agent,
    prompt_sources,
)
from specflow_nb.errors import (
    OrchestrationConflict,
    OrchestrationNotFound,
    PhaseNotOpen,
    SpecflowError,
    TasksFileMissing,
)
from specflow_nb.estimate import (
    DEFAULT_SECONDS_PER_TASK,
    DEFAULT_STEP_SECONDS,
    DEFAULT_STEP_USD,
    DEFAULT_USD_PER_TASK,
    EstimatedStep,
    EstimateSeconds,
    EstimateUsd,
    estimate_plan,
)
from specflow_nb.healing import capture_failure_context, lost_session_context
from specflow_nb.machine import (
    Action,
    CancelCommand,
    Command,
    Diagnose,
    DiagnosisFinished,
    Event,
    GoBackCommand,
    HostRestarted,
    KillRun,
    Notify,
    Persist,
    ProjectRead,
    ProjectSnapshot,
    ReadProject,
    RunFinished,
    RunMerge,
    RunStalled,
    SpawnBatch,
    SpawnHealer,
    SpawnStep,
    Started,
    UserCommand,
)
from specflow_nb.models import (
    AgentKind,
    ModelPrice,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationStatus,
    Preflight,
    Preview,
    RunOutcome,
    utcnow,
)
from specflow_nb.ownership import OwnerRecord
from specflow_nb.project import (
    collect_artifacts,
    find_feature_dir,
    project_status,
    resolve_project,
    user_gate,
)
from specflow_nb.store import OrchestrationStore
from specflow_nb.tasks import parse_tasks, plan_batches
from specflow_nb.watching import FolderWatch

log = logging.getLogger("specflow_nb.orchestrator")
T = TypeVar("T")

WORKFLOWS = Path(".specflow") / "workflows"
#: Longest wait between two tries of an event whose state could not be saved (e.g. a full disk).
STORAGE_RETRY_MAX_SECONDS = 15.0
#: Coroutines returned by subscribers, kept referenced until done.
_BACKGROUND: set[asyncio.Future[Any]] = set()


class EngineSettings(BaseModel):
    """What a host configures (the server from traitlets). ``agent_env`` may hold secrets: never persisted."""

    model_config = ConfigDict(extra="forbid")

    #: When set, every run uses this agent command whatever the request says (a host's policy).
    agent_command: str | None = None
    #: Used when a start request does not name a model itself.
    default_model: str | None = None
    #: The decision helper's model when a start request does not set decisionModel itself (issue 15.5).
    decision_model: str | None = None
    #: Used when a start request does not set staleAfterSeconds itself.
    stale_after_seconds: float | None = Field(default=None, gt=0)
    #: Active orchestrations this host drives at once; one more start is refused (409).
    max_concurrent: int = Field(default=20, ge=1)
    agent_env: dict[str, str] = Field(default_factory=dict, repr=False)
    #: Longest a step or batch run may take before it is killed as ``timeout``.
    run_timeout_seconds: float = Field(default=4 * 3600, gt=0)
    #: Longest a healer may take (long on purpose: the original cut healers off after 120 s).
    healer_timeout_seconds: float = Field(default=1800, gt=0)
    verify_timeout_seconds: float = Field(default=1800, gt=0)
    #: How deep below the root to look for projects (folders holding specs/ or .specflow/).
    scan_depth: int = Field(default=2, ge=0, le=5)
    # ---- ownership (ARCHITECTURE.md "One owner per orchestration"; docs/architecture.md)
    #: What this host is, in owner records and messages: server, cli, kernel or engine; and its URL if it has one.
    host_kind: str = "engine"
    host_url: str | None = None
    #: False for a host that only observes (``orchestrate watch``): it never takes an orchestration over.
    may_take_over: bool = True
    #: An owner on another machine is gone when it has not renewed its lease for this long.
    lease_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    renew_seconds: float = Field(default=5.0, gt=0, le=600, allow_inf_nan=False)
    #: How long a command handed to another host's engine waits for that owner to take it.
    command_timeout_seconds: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    #: How often an engine looks for orchestrations other hosts started under its root (to observe them and take
    #: them over if their owner dies).
    rescan_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    #: This machine's id in owner records (default: hostname + boot id + pid namespace; tests simulate a second
    #: machine with another value).
    host_id: str | None = None
    # ---- the agent choice (claude | codex)
    #: The agent of a start request that names none (applied by ``agent.codex.apply_default_agent``).
    default_agent: AgentKind | None = None
    #: The agents a request may choose (None: both); a start naming another one is refused by the preflight.
    allowed_agents: builtins.list[AgentKind] | None = None
    #: When set, every Codex run uses this command (the host's policy, like ``agent_command`` for Claude). A host
    #: that imposes ``agent_command`` without this runs Codex as plain ``codex`` from PATH.
    codex_command: str | None = None
    #: USD per 1M tokens for each Codex model (None: ``agent.codex.DEFAULT_PRICES``; a ``prefix*`` key prices a
    #: family). A budgeted Codex run with an unpriced model is refused.
    codex_prices: dict[str, ModelPrice] | None = None
    #: Extra ``codex exec`` options for every Codex run (e.g. ``-c model_provider=…``), before the subcommand.
    codex_args: builtins.list[str] = Field(default_factory=list)
    # ---- what a grant may do (specflow_nb.policy, specflow_nb.redact)
    #: True for a host whose callers may run code anyway (CLI, kernel): the commands it is given are approved.
    #: False (the Jupyter server): a record's commands run only if they are the server's, a preset, or approved.
    trust_requests: bool = True
    #: Where approvals (digests of commands chosen by someone who may run code) are kept; None: the default place.
    approved_commands_file: Path | None = None
    #: The verify command of a request that names none, and named presets any user may pick.
    verify_command: str | None = None
    verify_commands: dict[str, str] = Field(default_factory=dict)
    #: Named agent commands any user may pick; models any user may pick besides the default.
    agent_commands: dict[str, str] = Field(default_factory=dict)
    allowed_models: builtins.list[str] = Field(default_factory=list)
    #: Names (or ``PREFIX_*``) of the server's environment variables added to the verify and agent allow-lists.
    env_allow: builtins.list[str] = Field(default_factory=list)
    #: Who gets an agent with a shell (Bash): "execute" (runs of orchestrations started, and not since continued,
    #: by a user who may run code) or "all". Only where ``trust_requests`` is False.
    shell_for: Literal["execute", "all"] = "execute"
    # ---- the estimate before start (specflow_nb.estimate): what it assumes while the project has no past runs
    #: One task of a batch: seconds and USD.
    estimate_seconds_per_task: float = Field(default=DEFAULT_SECONDS_PER_TASK, ge=0, le=86_400, allow_inf_nan=False)
    estimate_usd_per_task: float = Field(default=DEFAULT_USD_PER_TASK, ge=0, le=1000, allow_inf_nan=False)
    #: Each step's run (design, analyze, verify, merge by an agent): seconds and USD; a step left out keeps its
    #: default.
    estimate_step_seconds: dict[EstimatedStep, EstimateSeconds] = Field(
        default_factory=lambda: dict(DEFAULT_STEP_SECONDS)
    )
    estimate_step_usd: dict[EstimatedStep, EstimateUsd] = Field(default_factory=lambda: dict(DEFAULT_STEP_USD))


@dataclass
class _Slot:
    """One project this host knows: its store, its lock, the execution it drives and that execution's runs."""

    project: Path
    project_id: str
    store: OrchestrationStore
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    execution: OrchestrationExecution | None = None
    runs: dict[str, AgentRun] = field(default_factory=dict)
    merge_conflicts: list[str] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    #: The scope of a long action (verify command, merge) a cancel or go-back may interrupt.
    busy: anyio.CancelScope | None = None
    #: orchestration id -> the repository's default branch (the merge target when the config names none).
    default_branch: dict[str, str] = field(default_factory=dict)
    #: This engine's owner record while it owns ``execution`` (None: it observes).
    owner: OwnerRecord | None = None
    #: The record file's stat signature and version right after this owner's last write (the save fence).
    fence: tuple[int, int, int] | None = None
    fenced_version: int = -1
    #: The record as last loaded by an observer (folder and file signatures), to reload only on change.
    seen: tuple[Any, ...] | None = None
    observing: bool = False


def _signature(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and content stamp: every atomic replace changes it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class _Abandoned(Exception):
    """A long action was interrupted by cancel/go-back: stop performing this transition's actions."""


def to_machine_outcome(outcome: AgentOutcome) -> RunOutcome:
    """The runner's detailed outcome, reduced to what the state machine decides on."""
    message = outcome.failure_message or ""
    if not message and outcome.result_text:
        message = outcome.result_text[:500]
    if outcome.warnings and any(w.startswith("rate limited") for w in outcome.warnings):
        message = "; ".join([m for m in (message,) if m] + [w for w in outcome.warnings if w.startswith("rate")])
    return RunOutcome(
        exit_ok=outcome.exit_code == 0,
        is_error=outcome.is_error,
        failure=outcome.failure.value if outcome.failure else None,
        cost_usd=max(0.0, outcome.cost_usd),
        session_id=outcome.session_id,
        structured_output=outcome.structured_output,
        message=message,
    )


def run_dir(project: Path, run_id: str) -> Path:
    return project / WORKFLOWS / run_id


class Orchestrator:
    """Drives every orchestration under ``root``. See docs/engine-api.md."""

    def __init__(self, root: Path | str, settings: EngineSettings | None = None) -> None:
        self.root = Path(root).resolve()
        self.settings = settings or EngineSettings()
        self.identity = ownership.Identity(
            kind=self.settings.host_kind, url=self.settings.host_url, host_id=self.settings.host_id or procs.host_id()
        )
        self._renewer: threading.Thread | None = None
        self._renew_stop = threading.Event()
        self._slots: dict[Path, _Slot] = {}
        self._subscribers: list[Callable[[OrchestrationExecution], Any]] = []
        self._notify_subscribers: list[Callable[[OrchestrationExecution, Notify], Any]] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._stop: anyio.Event | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Orchestrator:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        ownership.LIVE_ENGINES.add(self.identity.engine_id)
        self._start_renewer()
        try:
            await self.reconcile()
            if self.settings.may_take_over:
                self._background(self._rescan_forever)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        tg, self._tg = self._tg, None
        if tg is not None:
            # Only the waiting stops: agent runs are detached and keep going; the next engine adopts them.
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        self._renew_stop.set()
        ownership.LIVE_ENGINES.discard(self.identity.engine_id)
        # Hand every owned orchestration back at once: an engine watching it takes it over without waiting.
        for slot in self._slots.values():
            mine, slot.owner = slot.owner, None
            if mine is not None:
                try:
                    with slot.store.lock():
                        ownership.release(slot.store.folder, mine)
                except (SpecflowError, OSError) as err:
                    log.warning("could not release %s: %s", mine.orchestration_id, err)

    async def start_loop(self) -> None:
        """Start the loop in a background task (for hosts that cannot nest ``async with``, e.g. the server)."""
        if self._serve_task is not None:
            return
        ready = anyio.Event()
        self._stop = anyio.Event()

        async def serve() -> None:
            async with self:
                ready.set()
                assert self._stop is not None
                await self._stop.wait()

        self._serve_task = asyncio.get_running_loop().create_task(serve())
        with anyio.fail_after(120):
            while not ready.is_set():
                if self._serve_task.done():
                    self._serve_task.result()  # raises what stopped it
                await anyio.sleep(0.01)

    async def stop_loop(self) -> None:
        task, self._serve_task = self._serve_task, None
        if task is None:
            return
        assert self._stop is not None
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def running(self) -> bool:
        return self._tg is not None

    def _require_loop(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise SpecflowError(
                "The orchestration loop is not running.",
                hint="Use `async with Orchestrator(root)` or await start_loop() first.",
            )
        return self._tg

    # ---- ownership: one engine drives an orchestration, every other host observes it --------------------------

    def _owns(self, slot: _Slot) -> bool:
        ex, mine = slot.execution, slot.owner
        return ex is not None and mine is not None and mine.orchestration_id == ex.id

    def owner_of(self, project_id: str, orchestration_id: str) -> ownership.OwnerRecord | None:
        """The owner record of an orchestration (who drives it), or None."""
        slot = self._resolve(project_id)
        return ownership.read_owner(slot.store.folder, orchestration_id)

    def who_drives(self, project_id: str, orchestration_id: str) -> str:
        """Which engine drives an orchestration, in one sentence (or that none does now)."""
        slot = self._resolve(project_id)
        return ownership.who_drives(slot.store.folder, orchestration_id, host_id=self.identity.host_id)

    def owns(self, project_id: str) -> bool:
        """This engine drives the project's current orchestration."""
        return self._owns(self._resolve(project_id))

    def _start_renewer(self) -> None:
        """A thread (not the event loop: a busy kernel must not lose its leases) renews every owned lease."""
        self._renew_stop = threading.Event()
        loop = asyncio.get_running_loop()

        def renew_all() -> None:
            while not self._renew_stop.wait(self.settings.renew_seconds):
                for slot in list(self._slots.values()):
                    mine = slot.owner
                    if mine is None:
                        continue
                    try:
                        with slot.store.lock():
                            renewed = ownership.renew(slot.store.folder, mine)
                    except (SpecflowError, OSError):
                        continue  # busy or unwritable: the next round tries again
                    if renewed is None and slot.owner is mine:
                        with contextlib.suppress(RuntimeError):
                            loop.call_soon_threadsafe(self._lost, slot, mine)

        self._renewer = threading.Thread(target=renew_all, name="specflow-lease", daemon=True)
        self._renewer.start()

    def _lost(self, slot: _Slot, mine: ownership.OwnerRecord) -> None:
        if slot.owner is mine:
            log.warning(
                "%s: orchestration %s is owned by another engine now", slot.project_id or ".", mine.orchestration_id
            )
            self._demote(slot)

    def _demote(self, slot: _Slot) -> None:
        """This engine lost the orchestration (a save was refused): stop driving it and observe it instead."""
        slot.owner = None
        slot.fence = None
        slot.seen = None
        self._refresh(slot)
        self._ensure_observed(slot)

    def _check_fence(self, slot: _Slot, orchestration_id: str) -> None:
        """Refuse a save unless this engine still owns the orchestration and the file holds what it last wrote.
        Hold the project's file lock."""
        mine = slot.owner
        current_owner = ownership.read_owner(slot.store.folder, orchestration_id)
        if (
            mine is None
            or mine.orchestration_id != orchestration_id
            or current_owner is None
            or not current_owner.is_engine(mine.engine_id, mine.epoch)
        ):
            who = current_owner.describe() if current_owner else "nobody"
            raise ownership.NotOwner(
                f"This host no longer owns orchestration {orchestration_id} (owner: {who}); it did not save.",
                hint="The owner applies commands now: send them again and they go to it.",
            )
        path = slot.store.path_for(orchestration_id)
        sig = _signature(path)
        if sig is None or sig == slot.fence:
            return  # unchanged since this owner wrote it (or set aside as corrupt: the owner writes it anew)
        try:
            on_disk = slot.store._parse(path)
        except (ValueError, UnicodeDecodeError):
            return
        if on_disk is not None and on_disk.version != slot.fenced_version:
            raise ownership.NotOwner(
                f"Orchestration {orchestration_id} was saved by someone else (version {on_disk.version}, this host "
                f"last wrote {slot.fenced_version}); it did not overwrite it.",
                hint="The orchestration's owner applies commands now: send them again.",
            )

    def _changed(self, slot: _Slot, ex: OrchestrationExecution) -> None:
        changed, slot.changed = slot.changed, anyio.Event()
        changed.set()
        for cb in list(self._subscribers):
            self._call(cb, ex)

    def _refresh(self, slot: _Slot) -> None:
        """An observed project: load its current orchestration again if its files changed since the last look."""
        if self._owns(slot):
            return
        folder = slot.store.folder
        ex = slot.execution
        try:
            folder_sig = folder.stat().st_mtime_ns
        except OSError:
            folder_sig = None
        seen = (folder_sig, _signature(slot.store.path_for(ex.id)) if ex else None)
        if seen == slot.seen and folder_sig is not None:
            return
        slot.seen = seen
        try:
            fresh = slot.store.active() or next(iter(slot.store.list()), None)
        except SpecflowError:
            return
        if fresh is None:
            return
        if ex is None or (fresh.id, fresh.version) != (ex.id, ex.version):
            slot.execution = fresh
            self._changed(slot, fresh)

    def _ensure_observed(self, slot: _Slot) -> None:
        if slot.observing or self._tg is None or self._owns(slot):
            return
        slot.observing = True
        self._background(self._observe, slot)

    async def _observe(self, slot: _Slot) -> None:
        """Show a project another engine drives, live (file changes), and take it over if that owner dies."""
        try:
            folder = slot.store.folder
            await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
            with FolderWatch(folder) as watch:
                while not self._owns(slot):
                    self._refresh(slot)
                    ex = slot.execution
                    watching_owner = ex is not None and ex.status.is_active and self.settings.may_take_over
                    if watching_owner and ex is not None:
                        owner = ownership.read_owner(folder, ex.id)
                        alive, _why = ownership.owner_alive(owner, host_id=self.identity.host_id)
                        if not alive:
                            async with slot.lock:
                                if not self._owns(slot) and await self._take_over(slot, ex.id):
                                    return
                    await watch.wait(1.0 if watching_owner else 30.0)
        finally:
            slot.observing = False

    async def _take_over(self, slot: _Slot, orchestration_id: str) -> bool:
        """Become the owner of an orchestration whose owner is gone, then reconcile it. Hold ``slot.lock``.
        False when a live owner holds it (exactly one of several racing hosts wins: the claim is under the
        project's file lock)."""

        def claim() -> tuple[Any, ...] | None:
            with slot.store.lock():
                mine, previous, why = ownership.claim(
                    slot.store.folder, orchestration_id, self.identity, lease_seconds=self.settings.lease_seconds
                )
                if mine is None:
                    return None
                try:
                    ex = slot.store.load(orchestration_id)
                except OrchestrationNotFound:
                    ownership.release(slot.store.folder, mine)
                    return None
                return mine, previous, why, ex, _signature(slot.store.path_for(orchestration_id))

        claimed = await anyio.to_thread.run_sync(claim)
        if claimed is None:
            return False
        mine, previous, why, ex, sig = claimed
        slot.owner, slot.execution, slot.fence, slot.fenced_version = mine, ex, sig, ex.version
        took_over_from = None
        if previous is not None and previous.engine_id != mine.engine_id:
            took_over_from = f"{previous.describe()} no longer drives it ({why})"
            log.warning("%s: %s takes over %s: %s", slot.project_id or ".", mine.describe(), ex.id, why)
        self._background(self._serve_inbox, slot, mine)
        if ex.status.is_active:
            await self._reconcile_owned(slot, ex, took_over_from=took_over_from, new_owner=mine.describe())
        else:
            await self._release_if_done(slot)
        return True

    async def _release_if_done(self, slot: _Slot) -> None:
        """An orchestration that has ended (and whose killed runs have all been reported) has no owner."""
        ex, mine = slot.execution, slot.owner
        if mine is None or ex is None or ex.status.is_active or ex.killed_run_ids or ex.pending_diagnoses:
            return

        def release() -> None:
            with slot.store.lock():
                ownership.release(slot.store.folder, mine)

        slot.owner = None
        await anyio.to_thread.run_sync(release)

    async def _serve_inbox(self, slot: _Slot, mine: ownership.OwnerRecord) -> None:
        """The owner's side of the command path: take each command from the inbox, apply it through the same
        path as a local command, answer it. Runs while this engine owns the orchestration, then answers what is
        left (the orchestration ended: the machine refuses them with the reason)."""
        folder = slot.store.folder
        inbox = ownership.inbox_folder(folder, mine.orchestration_id)
        await anyio.to_thread.run_sync(ownership.reopen_claimed, folder, mine.orchestration_id)
        with FolderWatch(inbox) as watch:
            while True:
                still_mine = slot.owner is mine
                for path in list(ownership.pending(folder, mine.orchestration_id)):
                    await self._take_command(slot, mine, path)
                if not still_mine:
                    return
                await watch.wait(5.0)

    async def _take_command(self, slot: _Slot, mine: ownership.OwnerRecord, path: Path) -> None:
        folder = slot.store.folder

        def take() -> ownership.CommandEnvelope | None:
            with slot.store.lock():
                return ownership.take(path)

        env = await anyio.to_thread.run_sync(take)
        if env is None:
            return
        answered = False

        def answer(reply: ownership.CommandReply) -> None:
            nonlocal answered
            if not answered:
                answered = True
                ownership.reply(folder, mine.orchestration_id, reply)

        if env.expired():
            log.warning("%s: dropped command %s from %s: expired", slot.project_id or ".", env.id, env.sender)
            error = ownership.NoOwnerAnswer(
                f"The {env.command.action} command expired before the owner took it.", hint="Send it again."
            )
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(error)))
            return
        me = mine.describe()

        def applied(ex: OrchestrationExecution) -> None:
            answer(ownership.CommandReply(id=env.id, ok=True, status=ex.status, version=ex.version, applied_by=me))

        try:
            ex = await self._command_owned(
                slot,
                env.command,
                env.orchestration_id,
                actor=env.actor or env.sender,
                command_id=env.id,
                on_persist=applied,
            )
        except ownership.NotOwner:
            with contextlib.suppress(OSError):  # back into the inbox: the new owner takes it
                os.replace(path.with_suffix(".claimed"), path)
            return
        except SpecflowError as exc:
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(exc), applied_by=me))
            return
        except Exception as exc:  # a bug must not leave the sender waiting, nor stop the inbox
            log.exception("%s: command %s from %s failed", slot.project_id or ".", env.id, env.sender)
            failure = SpecflowError(f"The owner could not apply the {env.command.action} command: {exc}")
            failure.http_status = 500
            answer(ownership.CommandReply(id=env.id, ok=False, error=ownership.error_dict(failure), applied_by=me))
            return
        applied(ex)

    async def _send_to_owner(
        self, slot: _Slot, ex: OrchestrationExecution, cmd: Command, actor: str | None
    ) -> OrchestrationExecution:
        """Hand a command to the engine that owns ``ex`` and report what it did (or raise what it refused)."""
        folder = slot.store.folder
        owner = ownership.read_owner(folder, ex.id)
        timeout = self.settings.command_timeout_seconds
        env = ownership.CommandEnvelope(
            orchestration_id=ex.id,
            command=cmd,
            actor=actor or self.identity.describe(),
            sender=self.identity.describe(),
            deadline=utcnow() + timedelta(seconds=timeout),
        )
        inbox = ownership.inbox_folder(folder, ex.id)
        await anyio.to_thread.run_sync(ownership.post, folder, env)
        limit = time.monotonic() + timeout
        claimed_grace = False
        with FolderWatch(inbox) as watch:
            while True:
                answer = ownership.read_reply(folder, ex.id, env.id)
                if answer is not None:
                    with contextlib.suppress(OSError):
                        (inbox / f"{env.id}.reply.json").unlink()
                    if not answer.ok:
                        answer.raise_error()
                    return self._after_reply(slot, ex.id, answer.version or 0)
                self._refresh(slot)
                current = slot.execution
                if current is not None and current.id == ex.id and env.id in current.applied_command_ids:
                    return current  # applied; its owner died before answering
                if time.monotonic() >= limit:
                    if await anyio.to_thread.run_sync(self._withdraw, slot, ex.id, env.id):
                        who = owner.describe() if owner else "no engine"
                        raise ownership.NoOwnerAnswer(
                            f"The {cmd.action} command was not applied: the owner of orchestration {ex.id} ({who}) "
                            f"did not take it within {timeout:g} s.",
                            hint="Check that the host driving it is running (`specflow-nb orchestrate status`), "
                            "or run the command with --local on a machine that may take it over.",
                            details={"owner": owner.model_dump(mode="json") if owner else None},
                        )
                    if claimed_grace:
                        raise ownership.NoOwnerAnswer(
                            f"The owner took the {cmd.action} command but did not answer in time.",
                            hint="Look at `specflow-nb orchestrate status`: the decision log shows whether it applied it.",
                        )
                    claimed_grace, limit = True, time.monotonic() + max(30.0, timeout)
                await watch.wait(0.25)

    def _withdraw(self, slot: _Slot, orchestration_id: str, command_id: str) -> bool:
        with slot.store.lock():
            return ownership.withdraw(slot.store.folder, orchestration_id, command_id)

    def _after_reply(self, slot: _Slot, orchestration_id: str, version: int) -> OrchestrationExecution:
        slot.seen = None
        self._refresh(slot)
        ex = slot.execution
        if ex is None or ex.id != orchestration_id or ex.version < version:
            ex = slot.store.load(orchestration_id)
        return ex

    async def _rescan_forever(self) -> None:
        """Find orchestrations other hosts started under this root: observe them (and take over a dead owner's)."""
        scanned: dict[Path, int] = {}
        while True:
            await anyio.sleep(self.settings.rescan_seconds)
            known = {p for p, s in self._slots.items() if s.observing or self._owns(s)}
            for project in await anyio.to_thread.run_sync(self._rescan_once, known, scanned):
                slot = self._slot(project)
                if not self._owns(slot):
                    self._refresh(slot)
                    self._ensure_observed(slot)

    def _rescan_once(self, known: set[Path], scanned: dict[Path, int]) -> builtins.list[Path]:
        """Projects with an active orchestration this host neither owns nor observes (a worker thread)."""
        found = []
        for project in self.scan_projects():
            if project in known:
                continue
            store = OrchestrationStore(project)
            try:
                sig = store.folder.stat().st_mtime_ns
            except OSError:
                continue
            if scanned.get(project) == sig:
                continue
            scanned[project] = sig
            with contextlib.suppress(SpecflowError, OSError):
                if store.active() is not None:
                    found.append(project)
        return found

    # ---- projects --------------------------------------------------------------------------------------------

    def _slot(self, project: Path, project_id: str | None = None) -> _Slot:
        slot = self._slots.get(project)
        if slot is None:
            pid = project_id if project_id is not None else self._project_id(project)
            slot = _Slot(project=project, project_id=pid, store=OrchestrationStore(project))
            self._slots[project] = slot
        return slot

    def _project_id(self, project: Path) -> str:
        rel = project.relative_to(self.root).as_posix()
        return "" if rel == "." else rel

    def _resolve(self, project_id: str) -> _Slot:
        project = resolve_project(self.root, project_id)
        return self._slot(project, self._project_id(project))

    def scan_projects(self) -> Iterator[Path]:
        """Project folders under the root (holding specs/ or .specflow/), at most ``scan_depth`` levels down."""

        def walk(folder: Path, depth: int) -> Iterator[Path]:
            if (folder / "specs").is_dir() or (folder / ".specflow").is_dir():
                yield folder
            if depth >= self.settings.scan_depth:
                return
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:
                return
            for child in children:
                if child.name.startswith(".") or child.name in ("node_modules", "__pycache__", "specs"):
                    continue
                yield from walk(child, depth + 1)

        yield from walk(self.root, 0)

    # ---- host surface ----------------------------------------------------------------------------------------

    def _effective_config(
        self, config: OrchestrationConfig | dict[str, Any] | None, *, approve: bool = False
    ) -> OrchestrationConfig:
        """The configuration a request means on this host; ``approve`` (a start) records a trusted caller's choices
        (a preview or a rebuilt record approves nothing)."""
        if config is None:
            config = OrchestrationConfig()
        elif not isinstance(config, OrchestrationConfig):
            config = OrchestrationConfig.model_validate(config)
        config = apply_default_agent(config, self.settings)  # the host's default agent, for a request naming none
        given = config.model_fields_set
        config = policy.resolve_presets(config, self.settings)  # a preset's name becomes its command
        if approve and self.settings.trust_requests:  # a CLI or kernel user may run code anyway: their choice counts
            policy.approve_config(self.settings.approved_commands_file or policy.default_approvals_path(), config)
        update: dict[str, Any] = {}
        if self.settings.verify_command and not (config.verify_command or "").strip():  # none chosen (the form
            update["verify_command"] = self.settings.verify_command  # sends null): the server's
        if self.settings.agent_command:  # the host's policy (e.g. a team's wrapper) wins over the request
            update["agent_command"] = self.settings.agent_command
        if self.settings.default_model and "model" not in given:
            update["model"] = self.settings.default_model
        if self.settings.decision_model and "decision_model" not in given:
            update["decision_model"] = self.settings.decision_model
        if self.settings.stale_after_seconds and "stale_after_seconds" not in given:
            update["stale_after_seconds"] = self.settings.stale_after_seconds
        return config.model_copy(update=update) if update else config

    async def start(
        self,
        project_id: str,
        config: OrchestrationConfig | dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> OrchestrationExecution:
        """Start completing the project's open phase. Raises OrchestrationConflict when one is already active."""
        self._require_loop()
        slot = self._resolve(project_id)
        config = self._effective_config(config, approve=True)
        feature_dir = find_feature_dir(slot.project)
        if feature_dir is None:
            raise PhaseNotOpen(
                f"No feature folder in {slot.project_id or 'the project root'}: nothing to complete.",
                hint="Open the phase first: create specs/NNNN-name/ with its spec.md (e.g. with /speckit.specify).",
            )
        art = collect_artifacts(feature_dir)
        if config.skip_design and not art.has_tasks:
            where = feature_dir.relative_to(slot.project).as_posix()
            raise TasksFileMissing(
                f"No tasks.md with tasks in {where}, and design is skipped: there is nothing to implement.",
                hint="Untick 'Skip design' so the design step writes tasks.md, or write tasks.md yourself.",
            )
        async with slot.lock:
            # Orchestrations this host drives that hold, or are about to start, an agent run; parked ones (paused,
            # waiting to merge, needing a person) do not count.
            busy = [
                s
                for s in self._slots.values()
                if self._owns(s)
                and s.execution is not None
                and (
                    s.execution.status is OrchestrationStatus.RUNNING
                    or (s.execution.current_run is not None and s.execution.current_run.live)
                )
            ]
            if len(busy) >= self.settings.max_concurrent:
                raise OrchestrationConflict(
                    f"This host already drives {len(busy)} orchestrations (its maximum).",
                    hint="Wait for one to finish, or raise max_concurrent_orchestrations in the server config.",
                )
            with slot.store.lock():
                active = slot.store.active()
                if active is not None:
                    raise self._in_progress(slot, active)
                now = utcnow()
                ex = machine.new_execution(OrchestrationStore.new_id(now), slot.project_id, config, now)
                ex.feature_dir = feature_dir.relative_to(slot.project).as_posix()
                with contextlib.suppress(gitops.GitError):
                    ex.feature_branch = gitops.current_branch(slot.project)
                # The record claims the project while the lock is held: another process's start now sees it, and
                # this engine owns it. (Later saves run in a worker thread, which must not wait for this thread's
                # lock.)
                path = slot.store.save(ex)
                mine, _, _ = ownership.claim(
                    slot.store.folder, ex.id, self.identity, lease_seconds=self.settings.lease_seconds, now=now
                )
                slot.owner, slot.fence, slot.fenced_version = mine, _signature(path), ex.version
            self._background(self._serve_inbox, slot, mine)
            try:
                snapshot = await self._snapshot(slot, ex)
                slot.execution = ex
                slot.merge_conflicts = []
                if actor:
                    log.info("orchestration %s started by %s", ex.id, actor)
                return await self._apply(slot, Started(at=now, snapshot=snapshot, actor=actor))
            except BaseException:
                current = slot.execution
                if current is None or current.id != ex.id or current.version == 0:
                    # Never started (nothing past the claim was saved): give the project back.
                    slot.store.path_for(ex.id).unlink(missing_ok=True)
                    ownership.owner_path(slot.store.folder, ex.id).unlink(missing_ok=True)
                    slot.owner = None
                    if current is not None and current.id == ex.id:
                        slot.execution = None
                raise

    def _in_progress(self, slot: _Slot, active: OrchestrationExecution) -> OrchestrationConflict:
        """The refusal of a second start: names the orchestration and the engine that drives it."""
        owner = ownership.read_owner(slot.store.folder, active.id)
        alive, why = ownership.owner_alive(owner, host_id=self.identity.host_id)
        if alive and owner is not None:
            hint = (
                f"It is driven by {owner.describe()}. Cancel it first or wait for completion; "
                "`specflow-nb orchestrate watch` shows it live."
            )
        else:
            hint = (
                f"No engine drives it now ({why}): a Jupyter server on this folder, or "
                "`specflow-nb orchestrate watch --local`, takes it over; or cancel it with "
                "`specflow-nb orchestrate cancel --local`."
            )
        return OrchestrationConflict(
            f"Orchestration already in progress: {active.id}. Cancel it first or wait for completion.",
            hint=hint,
            details={
                "id": active.id,
                "status": active.status.value,
                "owner": owner.model_dump(mode="json") if owner and alive else None,
            },
        )

    async def command(
        self,
        project_id: str,
        command: Command | dict[str, Any],
        orchestration_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> OrchestrationExecution:
        """Apply a user command (pause, resume, cancel, merge, recover, go_back, answer). 409 when not allowed now.

        On the engine that owns the orchestration it is applied here; otherwise it is handed to the owner (its
        inbox) and this returns what the owner did. An orchestration whose owner is gone is taken over first (by
        hosts that may); a command no owner takes within ``command_timeout_seconds`` raises NoOwnerAnswer (409)."""
        self._require_loop()
        cmd = command if isinstance(command, BaseModel) else machine.parse_command(command)
        slot = self._resolve(project_id)
        for _ in range(3):
            if self._owns(slot) and orchestration_id in (None, slot.execution.id if slot.execution else None):
                try:
                    return await self._command_owned(slot, cmd, orchestration_id, actor=actor)
                except ownership.NotOwner:
                    continue  # another engine took it over meanwhile: hand the command to it
            self._refresh(slot)
            ex = self._target(slot, orchestration_id)
            if not ex.status.is_active:
                machine.transition(ex, UserCommand(at=utcnow(), command=cmd, actor=actor))  # raises the machine's 409
                raise OrchestrationConflict(f"Orchestration {ex.id} is {ex.status.value}: nothing to {cmd.action}.")
            if self.settings.may_take_over:
                async with slot.lock:
                    if not self._owns(slot) and await self._take_over(slot, ex.id):
                        continue
            if self._owns(slot):
                continue
            return await self._send_to_owner(slot, ex, cmd, actor)
        raise OrchestrationConflict(
            "The orchestration changed owner several times while the command was on its way.",
            hint="Send it again.",
        )

    async def _command_owned(
        self,
        slot: _Slot,
        cmd: Command,
        orchestration_id: str | None,
        *,
        actor: str | None,
        command_id: str | None = None,
        on_persist: Callable[[OrchestrationExecution], None] | None = None,
    ) -> OrchestrationExecution:
        if isinstance(cmd, (CancelCommand, GoBackCommand)) and slot.busy is not None:
            slot.busy.cancel()  # a running verify command or merge must not delay a cancel
        async with slot.lock:
            ex = slot.execution
            if not self._owns(slot) or ex is None or orchestration_id not in (None, ex.id):
                raise ownership.NotOwner(f"This host does not own orchestration {orchestration_id or '?'}.")
            event = UserCommand(at=utcnow(), command=cmd, actor=actor, command_id=command_id)
            return await self._apply(slot, event, on_persist=on_persist)

    def _target(self, slot: _Slot, orchestration_id: str | None) -> OrchestrationExecution:
        ex = slot.execution
        if ex is not None and orchestration_id in (None, ex.id) and (ex.status.is_active or orchestration_id):
            return ex
        if orchestration_id is not None:
            return slot.store.load(orchestration_id)
        active = slot.store.active()
        if active is not None:
            return active
        newest = slot.store.list()
        if newest:
            return newest[0]
        raise OrchestrationNotFound(
            f"No orchestration in {slot.project_id or 'the project root'}.",
            hint="Start one with Complete Phase (POST workflow/orchestrate).",
        )

    def status(self, project_id: str, orchestration_id: str | None = None) -> OrchestrationExecution | None:
        """The given orchestration, else the project's active one, else its newest; None when it never had one."""
        slot = self._resolve(project_id)
        self._refresh(slot)
        if orchestration_id is not None:
            if slot.execution is not None and slot.execution.id == orchestration_id:
                return slot.execution
            return slot.store.load(orchestration_id)
        if slot.execution is not None and slot.execution.status.is_active:
            return slot.execution
        stored = slot.store.list()
        for ex in stored:
            if ex.status.is_active:
                return ex
        if slot.execution is not None and (not stored or stored[0].id == slot.execution.id):
            return slot.execution
        return stored[0] if stored else None

    def list(self, project_id: str) -> builtins.list[OrchestrationExecution]:
        """Every orchestration of the project, newest first."""
        slot = self._resolve(project_id)
        items = slot.store.list()
        if slot.execution is not None:
            items = [slot.execution if ex.id == slot.execution.id else ex for ex in items]
        return items

    def active(self) -> builtins.list[OrchestrationExecution]:
        """Active orchestrations this host drives (the server's current_activity)."""
        return [
            s.execution for s in self._slots.values() if self._owns(s) and s.execution and s.execution.status.is_active
        ]

    async def wait_for_change(
        self, project_id: str, since_version: int, timeout: float, *, known_id: str | None = None
    ) -> OrchestrationExecution | None:
        """Return as soon as the project's current orchestration has ``version > since_version`` (or is another
        orchestration than ``known_id``), else after ``timeout`` seconds with the current state (the live channel)."""
        slot = self._resolve(project_id)
        self._ensure_observed(slot)  # another host may drive it (or start one): its file changes wake this wait
        with anyio.move_on_after(timeout):
            while True:
                changed = slot.changed
                ex = self.status(project_id)
                if ex is not None and (ex.version > since_version or (known_id is not None and ex.id != known_id)):
                    return ex
                await changed.wait()
        return self.status(project_id)

    def subscribe(self, callback: Callable[[OrchestrationExecution], Any]) -> Callable[[], None]:
        """Call ``callback(execution)`` after every saved change. Returns the function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def subscribe_notifications(self, callback: Callable[[OrchestrationExecution, Notify], Any]) -> Callable[[], None]:
        """Call ``callback(execution, notify)`` for what a person should see (needs attention, questions, stalls)."""
        self._notify_subscribers.append(callback)
        return lambda: self._notify_subscribers.remove(callback) if callback in self._notify_subscribers else None

    def preview(self, project_id: str, config: OrchestrationConfig | dict[str, Any] | None = None) -> Preview:
        """The batch plan and the checks the Start form shows (nothing is started)."""
        slot = self._resolve(project_id)
        config = self._effective_config(config)
        problems: list[str] = []
        warnings: list[str] = []
        feature_dir = find_feature_dir(slot.project)
        art = collect_artifacts(feature_dir)
        plan = plan_batches(art.parsed_tasks, config.batch_size_fallback) if art.parsed_tasks else None
        if feature_dir is None:
            problems.append("No feature folder (specs/NNNN-name/): open the phase first.")
        elif config.skip_design and not art.has_tasks:
            problems.append("Design is skipped but tasks.md has no tasks: untick 'Skip design' or write tasks.md.")
        if art.tasks_error:
            problems.append(f"tasks.md cannot be read: {art.tasks_error}")
        check = agent_preflight(config, self.settings)
        problems += check.problems
        warnings += check.warnings
        agent_found = check.found
        records = slot.store.list()  # read once: the active one and the history of the estimate
        active = next((e for e in records if e.status.is_active), None)
        if active is not None:
            problems.append(f"Orchestration already in progress: {active.id}. Cancel it first or wait for completion.")
        branch = target = None
        try:
            branch = gitops.current_branch(slot.project)
            target = config.target_branch or gitops.default_branch(slot.project)
        except gitops.GitError as exc:
            warnings.append(f"{exc.message} The merge step needs a git repository.")
        if branch and target and branch == target:
            warnings.append(f"The project is on {target}, the merge target: the merge step will have nothing to merge.")
        status = None
        with contextlib.suppress(SpecflowError):
            status = project_status(slot.project)
        with prompt_agent(config.agent):
            sources = prompt_sources(slot.project, self._agent_env_view())
        parsed = art.parsed_tasks
        snapshot = ProjectSnapshot(
            has_spec=art.has_spec,
            has_plan=art.has_plan,
            has_tasks=art.has_tasks,
            task_ids=[t.id for t in parsed.tasks] if parsed else [],
            done_task_ids=parsed.settled_ids if parsed else [],
        )
        estimate = estimate_plan(
            slot.project,
            plan,
            config,
            self.settings,
            snapshot=snapshot,
            records=records,
            merge_by_agent=any(s.step == "merge" and s.source != "builtin" for s in sources),
        )
        return Preview(
            batch_plan=plan,
            estimate=estimate,
            preflight=Preflight(
                ok=not problems,
                problems=problems,
                warnings=warnings,
                agent_command=check.command,
                agent_found=agent_found,
                feature_dir=feature_dir.relative_to(slot.project).as_posix() if feature_dir else None,
                has_tasks=art.has_tasks,
                branch=branch,
                target_branch=target,
                active_orchestration_id=active.id if active else None,
            ),
            project_status=status,
            prompt_sources=sources,
        )

    def _agent_env_view(self) -> dict[str, str]:
        """The environment a run sees, for where it looks for commands (CLAUDE_CONFIG_DIR, CODEX_HOME)."""
        return {**os.environ, **self.settings.agent_env}

    # ---- restart ---------------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Pick up every project's active orchestration after a (re)start: adopt live runs, apply the results of
        runs that ended meanwhile, resume the rest. Corrupt state files are set aside and rebuilt."""
        for project in self.scan_projects():
            slot = self._slot(project)
            try:
                await self._reconcile_project(slot)
            except SpecflowError as exc:
                log.warning("cannot reconcile %s: %s", project, exc)

    async def _reconcile_project(self, slot: _Slot) -> None:
        active = slot.store.active()  # sets corrupt files aside as it reads
        async with slot.lock:
            if active is None:
                if not self.settings.may_take_over:
                    return
                # Every file set aside whose orchestration has no record yet, including those a reader (a status
                # request, the CLI) set aside before this host started: _rebuild skips ids that have one.
                for path in reversed(slot.store.corrupt_files()):
                    if await self._rebuild_owned(slot, path):
                        return
                return
            if not self.settings.may_take_over or not await self._take_over(slot, active.id):
                slot.execution = active  # another engine drives it: observe it (and take over if it dies)
                self._ensure_observed(slot)

    async def _rebuild_owned(self, slot: _Slot, corrupt: Path) -> bool:
        """Rebuild a record set aside as corrupt, as its owner (unless a live engine still owns that id)."""

        def claim() -> tuple[OrchestrationExecution, OwnerRecord] | None:
            with slot.store.lock():
                rebuilt = self._rebuild(slot, corrupt)
                if rebuilt is None:
                    return None
                mine, _, _ = ownership.claim(
                    slot.store.folder, rebuilt.id, self.identity, lease_seconds=self.settings.lease_seconds
                )
                return (rebuilt, mine) if mine is not None else None

        claimed = await anyio.to_thread.run_sync(claim)
        if claimed is None:
            return False
        rebuilt, mine = claimed
        slot.execution, slot.owner, slot.fence = rebuilt, mine, None
        await self._save(slot, rebuilt)
        self._background(self._serve_inbox, slot, mine)
        return True

    async def _reconcile_owned(
        self,
        slot: _Slot,
        active: OrchestrationExecution,
        *,
        took_over_from: str | None = None,
        new_owner: str | None = None,
    ) -> None:
        """Pick up an orchestration this engine just came to own: adopt its live run, apply the result of a run
        that ended meanwhile, resume the rest (the machine's HostRestarted). Hold ``slot.lock``."""
        slot.execution = active
        if active.version == 0 and not active.decision_log:
            # The host died between claiming the project and saving the start: start it now.
            snapshot = await self._snapshot(slot, active)
            await self._apply_quietly(slot, Started(at=utcnow(), snapshot=snapshot))
            return
        run = active.current_run
        alive: AgentRun | None = None
        outcome: RunOutcome | None = None
        if run is not None and run.live and not run.builtin:
            folder = run_dir(slot.project, run.execution_id)
            alive = await anyio.to_thread.run_sync(attach_run, folder)
            if alive is None and (folder / "pid.json").exists():
                with contextlib.suppress(AgentRunError, OSError, ValueError):
                    outcome = to_machine_outcome(read_outcome(folder))
        for killed_id in list(active.killed_run_ids):
            self._finish_killed_run(slot, killed_id)
        event = HostRestarted(
            at=utcnow(),
            run_alive=alive is not None,
            outcome=outcome,
            took_over_from=took_over_from,
            new_owner=new_owner,
        )
        await self._apply_quietly(slot, event)
        if alive is not None:
            slot.runs[alive.execution_id] = alive
            self._background(self._watch_run, slot, alive)

    def _finish_killed_run(self, slot: _Slot, run_id: str) -> None:
        """A run the machine had asked to kill before the restart: kill it if it lives, then report its end."""
        folder = run_dir(slot.project, run_id)
        run = attach_run(folder)
        if run is not None:
            slot.runs[run_id] = run
            self._background(run.kill)
            self._background(self._watch_run, slot, run)
        else:
            try:
                outcome = to_machine_outcome(read_outcome(folder))
            except (AgentRunError, OSError, ValueError):
                outcome = RunOutcome(exit_ok=False, failure="cancelled", message="killed before the host restarted")
            self._background(
                self._feed_quietly, slot, RunFinished(at=utcnow(), run_execution_id=run_id, outcome=outcome)
            )

    def _rebuild(self, slot: _Slot, corrupt: Path) -> OrchestrationExecution | None:
        """A state file that could not be read: tell the machine what is on disk (``StateRebuilt``: the runs, the
        artifacts, the config guessed from the newest run); it rebuilds a needs_attention execution."""
        name = corrupt.name.split(".json.corrupt-")[0]
        if not name.startswith("orchestration-"):
            return None
        ex_id = name[len("orchestration-") :]
        if (slot.store.path_for(ex_id)).exists():
            return None
        now = utcnow()
        runs = sorted(p.name for p in (slot.project / WORKFLOWS).glob(f"{ex_id}-*") if p.is_dir())
        config = self._config_from_runs(slot, runs)
        feature_dir = find_feature_dir(slot.project)
        event = machine.StateRebuilt(
            at=now,
            snapshot=ProjectSnapshot.of_artifacts(collect_artifacts(feature_dir)),
            set_aside_as=corrupt.name,
            runs=runs,
            config=config,
            feature_dir=feature_dir.relative_to(slot.project).as_posix() if feature_dir else None,
        )
        # Its Persist is the caller's save; its Notify is kept in the record, where hosts announce it from.
        ex, _ = machine.transition(machine.new_execution(ex_id, slot.project_id, config, now), event)
        return ex

    def _config_from_runs(self, slot: _Slot, runs: builtins.list[str]) -> OrchestrationConfig:
        """The config of a rebuilt execution: the host's defaults, with the agent command and model its newest
        run was started with (the config itself was in the lost file; a retry must not switch to ``claude``)."""
        config = self._effective_config(None)
        for name in reversed(runs):
            if name.endswith("-diagnose"):
                continue  # the decision helper runs another model
            try:
                info = json.loads((run_dir(slot.project, name) / "argv.json").read_text(encoding="utf-8"))
                argv = [str(a) for a in info["argv"]]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            update: dict[str, Any] = {}
            if info.get("agent") == "codex":  # ``codex … exec --json … [-m MODEL]``
                update["agent"] = "codex"
                update["model"] = None
                if "exec" in argv and argv.index("exec") > 0:
                    update["agent_command"] = shlex.join(argv[: argv.index("exec")])
                if "-m" in argv[:-1]:
                    update["model"] = argv[argv.index("-m") + 1]
                return config.model_copy(update=update)
            if "-p" in argv and argv.index("-p") > 0:
                update["agent_command"] = shlex.join(argv[: argv.index("-p")])
            if "--model" in argv[:-1]:
                update["model"] = argv[argv.index("--model") + 1]
            return config.model_copy(update=update)
        return config

    # ---- the loop's core -------------------------------------------------------------------------------------

    def _background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` in the loop's task group; an error in it is logged and never ends the loop (one project's
        disk-full must not stop every other project)."""

        async def guarded() -> None:
            try:
                await fn(*args, **kwargs)
            except Exception:
                log.exception("background task %s failed", getattr(fn, "__name__", fn))

        self._require_loop().start_soon(guarded)

    async def _feed_quietly(self, slot: _Slot, event: Event) -> None:
        async with slot.lock:
            await self._apply_quietly(slot, event)

    async def _apply_quietly(self, slot: _Slot, event: Event, attempt: int = 0) -> None:
        """Apply an event from the loop itself: a refusal is logged, never raised into a background task.

        An event whose state could not be saved (disk full, read-only folder) is not lost: the state on disk and
        in memory stays the last good one, and the same event is applied again later, with backoff."""
        try:
            await self._apply(slot, event)
        except machine.IllegalTransition as exc:
            log.info("%s: %s ignored: %s", slot.project_id or ".", event.kind, exc.message)
        except SpecflowError as exc:
            log.warning("%s: %s failed: %s", slot.project_id or ".", event.kind, exc)
        except OSError as exc:
            delay = min(STORAGE_RETRY_MAX_SECONDS, 2.0**attempt)
            log.error(
                "%s: %s could not be saved (%s); trying again in %.0f s", slot.project_id or ".", event.kind, exc, delay
            )
            self._background(self._retry_event, slot, event, attempt + 1, delay)

    async def _retry_event(self, slot: _Slot, event: Event, attempt: int, delay: float) -> None:
        await anyio.sleep(delay)
        async with slot.lock:
            await self._apply_quietly(slot, event, attempt)

    async def _apply(
        self,
        slot: _Slot,
        first: Event,
        *,
        on_persist: Callable[[OrchestrationExecution], None] | None = None,
    ) -> OrchestrationExecution:
        """Step the machine with ``first`` and perform the actions, feeding follow-up events (ProjectRead after
        ReadProject, RunFinished for a run that could not start) before anything else. Hold ``slot.lock``.

        Only the owner acts: on a host that does not own the execution (any more) this raises NotOwner and
        the host becomes an observer; a save the fence refuses does the same. ``on_persist`` is called once, with
        the first state saved (how a command from another host is acknowledged before a long follow-up)."""
        assert slot.execution is not None
        if not self._owns(slot):
            raise ownership.NotOwner(f"This host does not own orchestration {slot.execution.id}.")
        queue: list[Event] = [first]
        try:
            while queue:
                event = queue.pop(0)
                nxt, actions = machine.transition(slot.execution, event)
                try:
                    for action in actions:
                        follow = await self._perform(slot, nxt, action)
                        if isinstance(action, Persist):
                            # Only a state that is on disk becomes the state this host reports and steps from.
                            slot.execution = nxt
                            if on_persist is not None:
                                self._call(on_persist, nxt)
                                on_persist = None
                        if follow is not None:
                            queue.append(follow)
                except _Abandoned:
                    break
        except ownership.NotOwner:
            self._demote(slot)
            raise
        await self._release_if_done(slot)
        return slot.execution

    async def _perform(self, slot: _Slot, ex: OrchestrationExecution, action: Action) -> Event | None:
        if isinstance(action, Persist):
            await self._save(slot, ex)
        elif isinstance(action, (SpawnStep, SpawnBatch, SpawnHealer)):
            return await self._spawn(slot, ex, action)
        elif isinstance(action, RunMerge):
            return await self._merge(slot, ex, action)
        elif isinstance(action, ReadProject):
            snapshot = await self._snapshot(slot, ex, verify_command=action.verify_command, read_git=action.read_git)
            return ProjectRead(at=utcnow(), snapshot=snapshot)
        elif isinstance(action, KillRun):
            self._kill(slot, action)
        elif isinstance(action, Diagnose):
            self._background(self._diagnose, slot, ex, action)
        elif isinstance(action, Notify):
            log.info("%s: %s: %s", slot.project_id or ".", action.event, action.message)
            for notify_cb in list(self._notify_subscribers):
                self._call(notify_cb, ex, action)
        return None

    async def _save(self, slot: _Slot, ex: OrchestrationExecution) -> None:
        def write() -> None:
            with slot.store.lock():
                self._check_fence(slot, ex.id)  # compare-and-swap: only the owner, only over its own last write
                path = slot.store.save(ex)
                slot.fence, slot.fenced_version = _signature(path), ex.version

        # fsync and rename in a worker thread: the event loop (and every other project, and the server's
        # requests) must not wait on the disk. The project's lock keeps the write-ahead order.
        await anyio.to_thread.run_sync(write)
        changed, slot.changed = slot.changed, anyio.Event()
        changed.set()
        for cb in list(self._subscribers):
            self._call(cb, ex)

    @staticmethod
    def _call(cb: Callable[..., Any], *args: Any) -> None:
        try:
            result = cb(*args)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)
        except Exception:  # a host's callback must never break the loop
            log.exception("subscriber failed")

    # ---- actions ---------------------------------------------------------------------------------------------

    def _feature_dir(self, slot: _Slot, ex: OrchestrationExecution) -> Path | None:
        if ex.feature_dir:
            candidate = slot.project / ex.feature_dir
            if candidate.is_dir():
                return candidate
        return find_feature_dir(slot.project)

    async def _snapshot(
        self, slot: _Slot, ex: OrchestrationExecution, *, verify_command: str | None = None, read_git: bool = True
    ) -> ProjectSnapshot:
        project = slot.project
        feature_dir = self._feature_dir(slot, ex)
        art = collect_artifacts(feature_dir)
        parsed = art.parsed_tasks
        plan = plan_batches(parsed, ex.config.batch_size_fallback) if parsed is not None else None
        verify_exit: int | None = None
        verify_tail = ""
        refusal = policy.verify_refusal(verify_command, self.settings) if verify_command else None
        if verify_command and refusal:
            verify_exit, verify_tail = gitops.EXIT_REFUSED, refusal
        elif verify_command:
            result = await self._interruptible(
                slot,
                lambda: gitops.run_verify_command_async(
                    project,
                    verify_command,
                    self.settings.verify_timeout_seconds,
                    env_allow=self.settings.env_allow,
                ),
            )
            verify_exit, verify_tail = result.exit_code, redact.redact(result.output_tail)

        # git costs a process (~5 ms) per question: asked only when the machine's next decision needs it (a merge
        # run is confirmed, a command re-reads the project), in a worker thread so the loop serves other projects.
        def read_merged(branch: str) -> bool:
            with contextlib.suppress(gitops.GitError):
                target = ex.config.target_branch or self._default_branch(slot, ex)
                if target and target != branch:
                    return gitops.is_merged(project, branch, target)
            return False

        branch = ex.feature_branch
        merged = bool(read_git and branch and await anyio.to_thread.run_sync(read_merged, branch))
        gate = user_gate(project, art)
        with prompt_agent(ex.config.agent):  # Codex looks for its prompts elsewhere (.codex/prompts)
            merge_command = has_project_command(project, "merge", self._agent_env_view())
        return ProjectSnapshot(
            has_spec=art.has_spec,
            has_plan=art.has_plan,
            has_tasks=art.has_tasks,
            task_ids=[t.id for t in parsed.tasks] if parsed else [],
            # settled = done or deferred: the one "all done" rule (deferred tasks never hold a phase back)
            done_task_ids=parsed.settled_ids if parsed else [],
            batch_plan=plan,
            verify_exit_code=verify_exit,
            verify_output_tail=verify_tail,
            merged=merged,
            merge_conflicts=list(slot.merge_conflicts),
            has_user_gate=gate,
            has_merge_command=merge_command,
        )

    @staticmethod
    def _default_branch(slot: _Slot, ex: OrchestrationExecution) -> str | None:
        """The repository's default branch, looked up once per orchestration (it does not move during one)."""
        cached = slot.default_branch.get(ex.id)
        if cached is None:
            cached = gitops.default_branch(slot.project)
            if cached:
                slot.default_branch = {ex.id: cached}
        return cached

    def _prompt(
        self, slot: _Slot, ex: OrchestrationExecution, action: SpawnStep | SpawnBatch | SpawnHealer
    ) -> StepPrompt:
        project, cfg = slot.project, ex.config
        feature_dir = self._feature_dir(slot, ex)
        lost = self._lost_session(slot, action)
        if isinstance(action, SpawnStep):
            step_name = action.step.value
            if step_name not in ("design", "analyze", "verify", "merge"):
                raise SpecflowError(f"No prompt for step {step_name!r}.")
            return build_step_prompt(
                project,
                step_name,  # type: ignore[arg-type]
                additional_context=action.additional_context,
                feature_dir=feature_dir,
                answers=action.answers,
                verify_command=cfg.verify_command,
                lost_session=lost,
            )
        if isinstance(action, SpawnBatch):
            return build_batch_prompt(
                project,
                section=action.section,
                task_ids=action.task_ids,
                additional_context=action.additional_context,
                feature_dir=feature_dir,
                answers=action.answers,
                lost_session=lost,
            )
        art = collect_artifacts(feature_dir)
        batch = ex.batches.items[action.batch_index]
        context = capture_failure_context(
            run_dir(project, action.failed_run_id), batch=batch, tasks=art.parsed_tasks or parse_tasks("")
        )
        if action.error and not context.error_message:
            context = context.model_copy(update={"error_message": action.error})
        return build_heal_prompt(
            context,
            additional_context=action.additional_context,
            feature_dir=feature_dir,
            project=project,
            answers=action.answers,
            lost_session=lost,
        )

    @staticmethod
    def _lost_session(slot: _Slot, action: SpawnStep | SpawnBatch | SpawnHealer) -> str | None:
        """A retry of a lost session: what that session did (its run's last messages, redacted), else None. A
        healer whose failed run is that run already shows its transcript: it gets only the notice."""
        if action.lost_run_id is None:
            return None
        if isinstance(action, SpawnHealer) and action.failed_run_id == action.lost_run_id:
            return "(see the failed run's last messages above)"
        return lost_session_context(run_dir(slot.project, action.lost_run_id))

    async def _spawn(
        self, slot: _Slot, ex: OrchestrationExecution, action: SpawnStep | SpawnBatch | SpawnHealer
    ) -> Event | None:
        cfg = ex.config
        if action.resume_session_id is None:
            mode = SessionMode.NEW
        else:
            mode = SessionMode.FORK if action.fork_session else SessionMode.RESUME
        timeout = (
            self.settings.healer_timeout_seconds
            if isinstance(action, SpawnHealer)
            else self.settings.run_timeout_seconds
        )
        try:
            cfg = policy.enforce_agent_command(cfg, self.settings)  # every run, whoever wrote the record
            with prompt_agent(cfg.agent):  # the project's own prompts for this agent (.claude/ or .codex/)
                prompt = self._prompt(slot, ex, action)
            opts = AgentOptions(
                command=cfg.agent_command,
                cwd=slot.project,
                prompt=redact.redact(prompt.text),  # written to the run's prompt.md: no secrets there either
                output_schema=prompt.json_schema,
                session_mode=mode,
                session_id=action.resume_session_id,
                model=cfg.model,
                fallback_model=cfg.fallback_model,
                max_budget_usd=action.max_budget_usd,
                env={**redact.allowed_environment(self.settings.env_allow), **self.settings.agent_env},
                timeout_seconds=timeout,
            )
            if cfg.agent != "claude":
                opts = agent_options(opts, cfg, self.settings)
            opts = policy.restrict_tools(opts, self.settings, slot.project, ex.id)  # no shell without execute
            run = await start_run(run_dir(slot.project, action.run_id), opts)
        except AgentRunError as exc:
            return self._not_started(action.run_id, exc.kind, exc)
        except SpecflowError as exc:
            return self._not_started(action.run_id, FailureKind.PROCESS_FAILED, exc)
        except OSError as exc:  # e.g. no space left for the run folder
            cause = SpecflowError(f"The run's folder could not be written: {exc}", hint="Free disk space, then retry.")
            return self._not_started(action.run_id, FailureKind.PROCESS_FAILED, cause)
        slot.runs[action.run_id] = run
        self._background(self._watch_run, slot, run)
        return None

    @staticmethod
    def _not_started(run_id: str, kind: FailureKind, exc: SpecflowError) -> RunFinished:
        return RunFinished(
            at=utcnow(),
            run_execution_id=run_id,
            outcome=RunOutcome(exit_ok=False, failure=kind.value, message=str(exc)),
        )

    async def _watch_run(self, slot: _Slot, run: AgentRun) -> None:
        """Wait for a run's end (its process's exit) and feed it to the machine; report stalls meanwhile."""
        stale = slot.execution.config.stale_after_seconds if slot.execution else None

        def on_stall() -> None:
            event = RunStalled(at=utcnow(), run_execution_id=run.execution_id, silent_for_seconds=stale or 0)
            self._background(self._feed_quietly, slot, event)

        try:
            result = to_machine_outcome(await run.wait(stale_after=stale, on_stall=on_stall))
        except Exception as exc:  # e.g. the run folder's disk is full (may arrive as an ExceptionGroup): the end
            # of the run is still an event; the machine decides what a run that cannot be read means.
            result = RunOutcome(
                exit_ok=False, failure="process_failed", message=f"The end of the run could not be recorded: {exc}"
            )
        slot.runs.pop(run.execution_id, None)
        finished = RunFinished(at=utcnow(), run_execution_id=run.execution_id, outcome=result)
        await self._feed_quietly(slot, finished)

    def _kill(self, slot: _Slot, action: KillRun) -> None:
        run = slot.runs.get(action.run_id) or attach_run(run_dir(slot.project, action.run_id))
        if run is None:
            return
        reason = FailureKind.STALLED if action.reason == "stalled" else FailureKind.CANCELLED
        self._background(run.kill, reason=reason)
        if action.run_id not in slot.runs:  # adopted from a previous host: someone must report its end
            slot.runs[action.run_id] = run
            self._background(self._watch_run, slot, run)

    @staticmethod
    async def _interruptible(slot: _Slot, call: Callable[[], Awaitable[T]]) -> T:
        """Await a long action (verify command, merge) that a cancel or go-back may interrupt: then _Abandoned."""
        with anyio.CancelScope() as scope:
            slot.busy = scope
            try:
                return await call()
            finally:
                slot.busy = None
        raise _Abandoned  # only reached when a command cancelled the scope

    async def _merge(self, slot: _Slot, ex: OrchestrationExecution, action: RunMerge) -> Event:
        project = slot.project
        feature = ex.feature_branch
        slot.merge_conflicts = []
        try:
            target = action.target_branch or gitops.default_branch(project)
            if not feature:
                raise gitops.GitError(
                    "The feature branch is unknown (the project was not a git repository at start).",
                    hint="Merge by hand, then go back to merge or abort.",
                )
            if not target:
                raise gitops.GitError(
                    "No target branch: the repository has no main or master and none is configured.",
                    hint="Set targetBranch in the configuration.",
                )
            commit_message = f"Merge {feature} (specflow_nb orchestration {ex.id})"
            result = await self._interruptible(
                slot,
                lambda: anyio.to_thread.run_sync(
                    lambda: gitops.merge_feature(project, feature, target, message=commit_message)
                ),
            )
            slot.merge_conflicts = list(result.conflict_files)
            ok, message = result.merged, result.message
        except gitops.GitError as exc:
            ok, message = False, str(exc)
        return RunFinished(
            at=utcnow(),
            run_execution_id=action.run_id,
            outcome=RunOutcome(exit_ok=ok, failure=None if ok else "merge_failed", message=message),
        )

    # ---- the diagnosis at needs_attention (issue 15.5) -------------------------------------------------------

    async def _diagnose(self, slot: _Slot, ex: OrchestrationExecution, action: Diagnose) -> None:
        """Run (or, after a restart, adopt) the read-only decision helper beside the stopped orchestration and feed
        its answer back. Not under the project's lock: a Retry meanwhile goes ahead, and the answer lands late."""
        event = await self._diagnosis_event(slot, ex, action)
        await self._feed_quietly(slot, event)

    def decision_model(self, config: OrchestrationConfig) -> str | None:
        """The decision helper's model: decisionModel (Codex: a Claude name there means the run's own model)."""
        if config.agent == "codex":
            return codex_model(config.decision_model) or codex_model(config.model)
        return config.decision_model or config.model

    async def _diagnosis_event(self, slot: _Slot, ex: OrchestrationExecution, action: Diagnose) -> DiagnosisFinished:
        from specflow_nb.agent.helper import DiagnosisOutput, adopt_helper, claude_helper, diagnosis_prompt

        folder = run_dir(slot.project, action.run_id)
        model = self.decision_model(ex.config)

        def finished(**kw: Any) -> DiagnosisFinished:
            return DiagnosisFinished(
                at=utcnow(), run_id=action.run_id, recovery_seq=action.recovery_seq, model=model, **kw
            )

        try:
            result = await adopt_helper(folder, DiagnosisOutput)
            if result is None:
                if not action.start:
                    return finished(failure="lost", message="the decision helper never started (its host stopped)")
                cfg = policy.enforce_agent_command(ex.config, self.settings)  # every run, whoever wrote the record
                feature = self._feature_dir(slot, ex)
                prompt = diagnosis_prompt(
                    issue=action.issue,
                    options=[o.value for o in action.options],
                    failed_run_folder=(WORKFLOWS / action.failed_run_id).as_posix() if action.failed_run_id else None,
                    issue_kind=action.issue_kind,
                    step=action.step.value if action.step else None,
                    remaining_task_ids=action.remaining_task_ids,
                    feature_dir=feature.relative_to(slot.project).as_posix() if feature else None,
                    additional_context=cfg.additional_context,
                )
                agent: dict[str, Any] = {}
                command = cfg.agent_command
                if cfg.agent == "codex":  # the Codex runner: the read-only tools make its sandbox read-only
                    command = codex_command(cfg, self.settings)
                    agent = {
                        "agent": "codex",
                        "prices": self.settings.codex_prices,
                        "extra_args": list(self.settings.codex_args),
                    }
                result = await claude_helper(
                    redact.redact(prompt),
                    slot.project,
                    DiagnosisOutput,
                    preset="decision",
                    command=command,
                    model=model,
                    max_budget_usd=action.max_budget_usd,
                    env={**redact.allowed_environment(self.settings.env_allow), **self.settings.agent_env},
                    run_dir=folder,
                    **agent,
                )
        except SpecflowError as exc:
            return finished(failure=FailureKind.PROCESS_FAILED.value, message=str(exc))
        except OSError as exc:
            return finished(failure=FailureKind.PROCESS_FAILED.value, message=f"the helper's folder: {exc}")
        cost = result.cost_usd if math.isfinite(result.cost_usd) and result.cost_usd > 0 else 0.0
        if result.outcome is not None and result.outcome.model:
            model = result.outcome.model
        if not result.ok or result.value is None:
            failure = result.failure.value if result.failure else "process_failed"
            return finished(failure=failure, message=redact.redact(result.failure_message or ""), cost_usd=cost)
        value = result.value
        return finished(
            diagnosis=redact.redact(value.diagnosis),
            suggestion=value.suggestion,
            fix=redact.redact(value.fix) if value.fix else None,
            cost_usd=cost,
        )
