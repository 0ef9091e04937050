"""Reconcile: pick up an orchestration this engine just came to own (after a restart, or taking it over from a
dead owner), and rebuild a record that was set aside as corrupt.

Apart from the ownership loop (``owning.py``, which decides *when* this engine owns something) because this is
*what* an owner does first: adopt the live run, apply the result of a run that ended meanwhile, report runs the
machine had asked to kill, resume the rest (the machine's ``HostRestarted``); or, for a corrupt record, rebuild a
needs_attention execution from the project's artifacts and run folders.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import shlex
from pathlib import Path
from typing import Any

import anyio

from specflow_nb import machine
from specflow_nb.agent.claude import AgentRun, AgentRunError, attach_run, read_outcome
from specflow_nb.engine_settings import EngineSettings, effective_config
from specflow_nb.engine_state import WORKFLOWS, Slot, TaskScope, run_dir
from specflow_nb.machine import HostRestarted, ProjectSnapshot, RunFinished, Started
from specflow_nb.models import (
    OrchestrationConfig,
    OrchestrationExecution,
    RunOutcome,
    utcnow,
)
from specflow_nb.performing import Performer, to_machine_outcome
from specflow_nb.project import collect_artifacts, find_feature_dir
from specflow_nb.stepping import Stepper


class Reconciler:
    """What an engine does with an orchestration it just came to own (see the module docstring)."""

    def __init__(self, settings: EngineSettings, scope: TaskScope, performer: Performer, stepper: Stepper) -> None:
        self.settings = settings
        self.scope = scope
        self.performer = performer
        self.stepper = stepper

    async def reconcile_owned(
        self,
        slot: Slot,
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
            snapshot = await self.performer.snapshot(slot, active)
            await self.stepper.apply_quietly(slot, Started(at=utcnow(), snapshot=snapshot))
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
            self.finish_killed_run(slot, killed_id)
        event = HostRestarted(
            at=utcnow(),
            run_alive=alive is not None,
            outcome=outcome,
            took_over_from=took_over_from,
            new_owner=new_owner,
        )
        await self.stepper.apply_quietly(slot, event)
        if alive is not None:
            slot.runs[alive.execution_id] = alive
            self.scope.background(self.performer.watch_run, slot, alive)

    def finish_killed_run(self, slot: Slot, run_id: str) -> None:
        """A run the machine had asked to kill before the restart: kill it if it lives, then report its end."""
        folder = run_dir(slot.project, run_id)
        run = attach_run(folder)
        if run is not None:
            slot.runs[run_id] = run
            self.scope.background(run.kill)
            self.scope.background(self.performer.watch_run, slot, run)
        else:
            try:
                outcome = to_machine_outcome(read_outcome(folder))
            except (AgentRunError, OSError, ValueError):
                outcome = RunOutcome(exit_ok=False, failure="cancelled", message="killed before the host restarted")
            self.scope.background(
                self.stepper.feed_quietly, slot, RunFinished(at=utcnow(), run_execution_id=run_id, outcome=outcome)
            )

    def _rebuild(self, slot: Slot, corrupt: Path) -> OrchestrationExecution | None:
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

    def _config_from_runs(self, slot: Slot, runs: builtins.list[str]) -> OrchestrationConfig:
        """The config of a rebuilt execution: the host's defaults, with the agent command and model its newest
        run was started with (the config itself was in the lost file; a retry must not switch to ``claude``)."""
        config = effective_config(self.settings, None)
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
