"""Performing the machine's actions: the fenced save, spawning a run with its prompt, watching it, kills, the
built-in merge, the project snapshot (with the verify command), the decision helper's run.

Apart from the stepping (``stepping.py``) because this is all the I/O of a transition and none of its order: the
stepper calls :meth:`Performer.perform` for each action ``machine.transition`` returned, in order, and feeds back the
event a performed action produced (``ProjectRead`` after ``ReadProject``, ``RunFinished`` for a run that could not
start). A run's end arrives later, through ``feed`` (the stepper's ``feed_quietly``), from the task that waits for
its process's exit. Nothing here decides: whatever happens becomes an event for the machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

from specflow_nb import gitops, policy, redact, spares
from specflow_nb.agent import launching
from specflow_nb.agent.claude import (
    AgentOptions,
    AgentOutcome,
    AgentRun,
    AgentRunError,
    FailureKind,
    SessionMode,
    attach_run,
)
from specflow_nb.agent.codex import agent_options
from specflow_nb.agent.launching import Launched
from specflow_nb.agent.process import started_run
from specflow_nb.agent.prompts import (
    OutputModel,
    StepPrompt,
    build_batch_prompt,
    build_heal_prompt,
    build_step_prompt,
    has_project_command,
    json_schema,
    prompt_agent,
)
from specflow_nb.diagnosing import Diagnoser
from specflow_nb.engine_settings import EngineSettings, agent_env_view
from specflow_nb.engine_state import Slot, TaskScope, feature_folder, run_dir
from specflow_nb.errors import SpecflowError
from specflow_nb.fenced import write_ahead_or_now, write_behind, write_fenced
from specflow_nb.healing import capture_failure_context, lost_session_context
from specflow_nb.machine import (
    Action,
    Diagnose,
    Event,
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
)
from specflow_nb.models import OrchestrationExecution, RunOutcome, utcnow
from specflow_nb.project import collect_artifacts, user_gate
from specflow_nb.tasks import parse_tasks, plan_batches

log = logging.getLogger("specflow_nb.orchestrator")
T = TypeVar("T")
Feed = Callable[[Slot, Event], Awaitable[None]]


@functools.lru_cache(maxsize=32)
def _schema_text(model: OutputModel) -> str:
    return json.dumps(json_schema(model))


def output_schema(prompt: StepPrompt) -> dict[str, Any]:
    """The prompt's output schema, generated once per output model (pydantic's schema generation costs about a
    millisecond, on every transition's spawn otherwise); a fresh copy each time, so no run can change another's."""
    loaded: dict[str, Any] = json.loads(_schema_text(prompt.output_model))
    return loaded


def _start(folder: Path, opts: AgentOptions, run_id: str, spare: Path | None = None) -> Launched | RunFinished:
    """A run's folder (from a spare made ahead, when there is one), then its process (blocking: in a worker
    thread); a run that cannot start becomes its RunFinished."""
    try:
        return launching.start(folder, opts, spare)
    except AgentRunError as exc:
        return Performer._not_started(run_id, exc.kind, exc)
    except SpecflowError as exc:
        return Performer._not_started(run_id, FailureKind.PROCESS_FAILED, exc)
    except OSError as exc:  # e.g. no space left for the run folder
        cause = SpecflowError(f"The run's folder could not be written: {exc}", hint="Free disk space, then retry.")
        return Performer._not_started(run_id, FailureKind.PROCESS_FAILED, cause)


class Abandoned(Exception):
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


class Performer:
    """Performs one action for the stepper (see the module docstring). ``feed`` applies a later event."""

    def __init__(self, settings: EngineSettings, scope: TaskScope, feed: Feed) -> None:
        self.settings = settings
        self.scope = scope
        self.feed = feed
        self.diagnoser = Diagnoser(settings)
        #: Files made ahead for each project's next save and run (:mod:`specflow_nb.spares`).
        self.spares = spares.Shelf()
        #: Runs whose outcome.json is still to be written (by the save that records their end, after its write).
        self._outcomes: dict[Path, list[AgentRun]] = {}

    def _write_outcomes(self, project: Path) -> None:
        """Write the outcome.json of the runs whose end the state just saved records (blocking: worker thread)."""
        for run in self._outcomes.pop(project, []):
            with contextlib.suppress(OSError):
                run.cache_outcome()

    async def perform(self, slot: Slot, ex: OrchestrationExecution, action: Action) -> Event | None:
        if isinstance(action, Persist):
            await self.save(slot, ex)
        elif isinstance(action, (SpawnStep, SpawnBatch, SpawnHealer)):
            return await self.spawn(slot, ex, action)
        elif isinstance(action, RunMerge):
            return await self.merge(slot, ex, action)
        elif isinstance(action, ReadProject):
            snapshot = await self.snapshot(slot, ex, verify_command=action.verify_command, read_git=action.read_git)
            return ProjectRead(at=utcnow(), snapshot=snapshot)
        elif isinstance(action, KillRun):
            self.kill(slot, action)
        elif isinstance(action, Diagnose):
            self.scope.background(self.diagnoser.diagnose, slot, ex, action, self.feed)
        elif isinstance(action, Notify):
            log.info("%s: %s: %s", slot.label, action.event, action.message)
            self.scope.notify(ex, action)
        return None

    async def save(
        self, slot: Slot, ex: OrchestrationExecution, *, joined: list[OrchestrationExecution] | None = None
    ) -> None:
        """Save ``ex`` (fenced), then announce it. ``joined``: earlier states whose changes ``ex`` carries (their
        Persist joined this one, ``Persist.may_join_next``); they are announced first, so a subscriber still sees
        every version in order."""
        # fsync and rename in a worker thread: the event loop (and every other project, and the server's
        # requests) must not wait on the disk. The project's lock keeps the write-ahead order.
        spare = self.spares.take_record(slot.project)

        def write() -> None:
            write_fenced(slot, ex, spare)
            self._write_outcomes(slot.project)
            if not ex.status.is_active:  # ended: no transition will take its spares
                self.spares.drop(slot.project)

        await anyio.to_thread.run_sync(write)
        self._announce(slot, ex, joined)
        self.restock(slot, ex)

    def restock(self, slot: Slot, ex: OrchestrationExecution) -> None:
        """While a run is in flight, make the files its end's transition will need (a worker thread, beside the
        agent): that transition then creates none."""
        run = ex.current_run
        if run is not None and run.live and not run.builtin and self.spares.wants(slot.project):
            generation = self.spares.generation(slot.project)
            self.scope.background(
                anyio.to_thread.run_sync, self.spares.restock, slot.project, launching.make_spare, generation
            )

    def _announce(
        self, slot: Slot, ex: OrchestrationExecution, joined: list[OrchestrationExecution] | None = None
    ) -> None:
        for earlier in joined or ():
            self.scope.changed(slot, earlier)
        self.scope.changed(slot, ex)

    async def snapshot(
        self, slot: Slot, ex: OrchestrationExecution, *, verify_command: str | None = None, read_git: bool = True
    ) -> ProjectSnapshot:
        project = slot.project
        feature_dir = feature_folder(slot, ex)
        art = collect_artifacts(feature_dir)
        parsed = art.parsed_tasks
        plan = plan_batches(parsed, ex.config.batch_size_fallback) if parsed is not None else None
        verify_exit: int | None = None
        verify_tail = ""
        refusal = policy.verify_refusal(verify_command, self.settings) if verify_command else None
        if verify_command and refusal:
            verify_exit, verify_tail = gitops.EXIT_REFUSED, refusal
        elif verify_command:
            result = await self.interruptible(
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
            merge_command = has_project_command(project, "merge", agent_env_view(self.settings))
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
    def _default_branch(slot: Slot, ex: OrchestrationExecution) -> str | None:
        """The repository's default branch, looked up once per orchestration (it does not move during one)."""
        cached = slot.default_branch.get(ex.id)
        if cached is None:
            cached = gitops.default_branch(slot.project)
            if cached:
                slot.default_branch = {ex.id: cached}
        return cached

    def _prompt(
        self, slot: Slot, ex: OrchestrationExecution, action: SpawnStep | SpawnBatch | SpawnHealer
    ) -> StepPrompt:
        project, cfg = slot.project, ex.config
        feature_dir = feature_folder(slot, ex)
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
    def _lost_session(slot: Slot, action: SpawnStep | SpawnBatch | SpawnHealer) -> str | None:
        """A retry of a lost session: what that session did (its run's last messages, redacted), else None. A
        healer whose failed run is that run already shows its transcript: it gets only the notice."""
        if action.lost_run_id is None:
            return None
        if isinstance(action, SpawnHealer) and action.failed_run_id == action.lost_run_id:
            return "(see the failed run's last messages above)"
        return lost_session_context(run_dir(slot.project, action.lost_run_id))

    async def spawn(
        self, slot: Slot, ex: OrchestrationExecution, action: SpawnStep | SpawnBatch | SpawnHealer
    ) -> Event | None:
        opts = self.run_options(slot, ex, action)
        if isinstance(opts, RunFinished):
            return opts
        folder, spare = run_dir(slot.project, action.run_id), self.spares.take_run(slot.project)
        result = await anyio.to_thread.run_sync(_start, folder, opts, action.run_id, spare)
        self.restock(slot, ex)
        return self._started(slot, action, opts, result)

    async def save_then_spawn(
        self,
        slot: Slot,
        ex: OrchestrationExecution,
        action: SpawnStep | SpawnBatch | SpawnHealer,
        *,
        joined: list[OrchestrationExecution],
        on_saved: Callable[[], None],
    ) -> Event | None:
        """A Persist and the spawn after it, in one trip to a worker thread: the state made durable (fenced, in the
        record's journal: :mod:`specflow_nb.fenced`), the run's folder and process, the record file. A failed save
        raises as :meth:`save` does. ``on_saved``: once saved, before announced."""
        opts = self.run_options(slot, ex, action)  # the prompt and options: on the loop, before the trip
        record_spare, run_spare = self.spares.take_record(slot.project), self.spares.take_run(slot.project)

        def work() -> Launched | RunFinished | None:
            try:  # write-ahead: nothing of the run unless its state is on disk
                ahead = write_ahead_or_now(slot, ex, record_spare)
            except BaseException:
                spares.discard(run_spare)
                raise
            try:
                if isinstance(opts, RunFinished):
                    spares.discard(run_spare)
                    return None
                return _start(run_dir(slot.project, action.run_id), opts, action.run_id, run_spare)
            finally:  # after the next run has started: off the transition's path
                write_behind(slot, ex, record_spare, ahead=ahead)
                self._write_outcomes(slot.project)

        result = await anyio.to_thread.run_sync(work)
        on_saved()
        self._announce(slot, ex, joined)
        self.restock(slot, ex)
        if result is None:
            return opts if isinstance(opts, RunFinished) else None
        assert not isinstance(opts, RunFinished)
        return self._started(slot, action, opts, result)

    def run_options(
        self, slot: Slot, ex: OrchestrationExecution, action: SpawnStep | SpawnBatch | SpawnHealer
    ) -> AgentOptions | RunFinished:
        """The run's options (prompt, budget, tools, environment); a run that cannot start becomes its
        RunFinished."""
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
                output_schema=output_schema(prompt),
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
            return policy.restrict_tools(opts, self.settings, slot.project, ex.id)  # no shell without execute
        except AgentRunError as exc:
            return self._not_started(action.run_id, exc.kind, exc)
        except SpecflowError as exc:
            return self._not_started(action.run_id, FailureKind.PROCESS_FAILED, exc)

    def _started(
        self,
        slot: Slot,
        action: SpawnStep | SpawnBatch | SpawnHealer,
        opts: AgentOptions,
        result: Launched | RunFinished,
    ) -> Event | None:
        """A run's process started (watched from now on), or the RunFinished of one that could not start."""
        if isinstance(result, RunFinished):
            return result
        run = started_run(run_dir(slot.project, action.run_id), result, opts)
        slot.runs[action.run_id] = run
        self.scope.background(self.watch_run, slot, run)
        return None

    @staticmethod
    def _not_started(run_id: str, kind: FailureKind, exc: SpecflowError) -> RunFinished:
        return RunFinished(
            at=utcnow(),
            run_execution_id=run_id,
            outcome=RunOutcome(exit_ok=False, failure=kind.value, message=str(exc)),
        )

    async def watch_run(self, slot: Slot, run: AgentRun) -> None:
        """Wait for a run's end (its process's exit) and feed it to the machine; report stalls meanwhile."""
        stale = slot.execution.config.stale_after_seconds if slot.execution else None

        def on_stall() -> None:
            event = RunStalled(at=utcnow(), run_execution_id=run.execution_id, silent_for_seconds=stale or 0)
            self.scope.background(self.feed, slot, event)

        try:
            await self._watch_run(slot, run, stale, on_stall)
        finally:  # the transition that followed the run's end is done: its recorder writes exit.json and exits
            run.release_exit()

    async def _watch_run(self, slot: Slot, run: AgentRun, stale: float | None, on_stall: Callable[[], None]) -> None:
        try:
            # outcome.json is a cache of what the run's files say (a reader without it classifies them the same
            # way, a restart too): written by the save that records the run's end, after its write (and after the
            # next run's start), so it is there before that state is announced, and off the transition's path.
            # hold_exit: the run's recorder writes exit.json and exits once the transition is done (release_exit),
            # not during it.
            ended = await run.wait(stale_after=stale, on_stall=on_stall, cache_outcome=False, hold_exit=True)
            result = to_machine_outcome(ended)
            self._outcomes.setdefault(slot.project, []).append(run)
        except Exception as exc:  # e.g. the run folder's disk is full (may arrive as an ExceptionGroup): the end
            # of the run is still an event; the machine decides what a run that cannot be read means.
            result = RunOutcome(
                exit_ok=False, failure="process_failed", message=f"The end of the run could not be recorded: {exc}"
            )
        slot.runs.pop(run.execution_id, None)
        finished = RunFinished(at=utcnow(), run_execution_id=run.execution_id, outcome=result)
        try:
            await self.feed(slot, finished)
        finally:
            pending = self._outcomes.get(slot.project, [])
            if run in pending:  # no save recorded it (refused, or the engine is stopping): written now
                pending.remove(run)
                with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(run.cache_outcome)

    def kill(self, slot: Slot, action: KillRun) -> None:
        run = slot.runs.get(action.run_id) or attach_run(run_dir(slot.project, action.run_id))
        if run is None:
            return
        reason = FailureKind.STALLED if action.reason == "stalled" else FailureKind.CANCELLED
        self.scope.background(run.kill, reason=reason)
        if action.run_id not in slot.runs:  # adopted from a previous host: someone must report its end
            slot.runs[action.run_id] = run
            self.scope.background(self.watch_run, slot, run)

    @staticmethod
    async def interruptible(slot: Slot, call: Callable[[], Awaitable[T]]) -> T:
        """Await a long action (verify command, merge) that a cancel or go-back may interrupt: then _Abandoned."""
        with anyio.CancelScope() as scope:
            slot.busy = scope
            try:
                return await call()
            finally:
                slot.busy = None
        raise Abandoned  # only reached when a command cancelled the scope

    async def merge(self, slot: Slot, ex: OrchestrationExecution, action: RunMerge) -> Event:
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
            result = await self.interruptible(
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
