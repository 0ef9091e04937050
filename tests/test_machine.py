"""The orchestration rules, asserted transition by transition (h11's test_state.py style).

Every call goes through ``Harness.feed``, which checks the machine's invariants on each transition (input not
mutated, version + 1, updated_at = event.at, Persist first, spawns with budget left and the additional context) and
round-trips the execution through JSON between steps, as the store does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from specflow_nb.errors import ConfigError, OrchestrationConflict
from specflow_nb.machine import (
    GO_BACK_OFFERED,
    LEGAL_STATUSES,
    SETTLED_STATUSES,
    SPAWN_ACTIONS,
    STALL_KILL_AFTER,
    TERMINAL_STATUSES,
    AnswerCommand,
    CancelCommand,
    Diagnose,
    DiagnosisFinished,
    GoBackCommand,
    HostRestarted,
    IllegalTransition,
    KillRun,
    MergeCommand,
    Notify,
    PauseCommand,
    Persist,
    ProjectRead,
    ProjectSnapshot,
    ReadProject,
    RecoverCommand,
    ResumeCommand,
    RunFinished,
    RunMerge,
    RunStalled,
    SpawnBatch,
    SpawnHealer,
    SpawnStep,
    Started,
    StateRebuilt,
    UserCommand,
    allowed_commands,
    go_back_targets,
    new_execution,
    parse_command,
    transition,
)
from specflow_nb.models import (
    STEP_ORDER,
    BatchPlan,
    BatchStatus,
    BudgetConfig,
    CurrentRun,
    OrchestrationConfig,
    OrchestrationExecution,
    OrchestrationPhase,
    OrchestrationStatus,
    PlannedBatch,
    RecoveryContext,
    RecoveryOption,
    RunOutcome,
    StepState,
)

S = OrchestrationStatus
P = OrchestrationPhase
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)
CONTEXT = "Use type hints everywhere."


# --------------------------------------------------------------------------------------------------------------
# A project on "disk" (test-side): sections of tasks, each done or not, plus git/verify facts


@dataclass
class FakeProject:
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    has_spec: bool = True
    has_plan: bool = True
    verify_exit_code: int | None = None
    merged: bool = False
    conflicts: list[str] = field(default_factory=list)
    user_gate: bool = False
    merge_command: bool = False

    @property
    def task_ids(self) -> list[str]:
        return [t for _, ids in self.sections for t in ids]

    def plan(self) -> BatchPlan:
        batches = [
            PlannedBatch(index=i, section=name, task_ids=left)
            for i, (name, left) in enumerate(
                (name, [t for t in ids if t not in self.done])
                for name, ids in self.sections
                if any(t not in self.done for t in ids)
            )
        ]
        n = sum(len(b.task_ids) for b in batches)
        summary = (
            f"{len(batches)} batch(es) from tasks.md sections ({n} tasks)" if batches else "No incomplete tasks found"
        )
        return BatchPlan(batches=batches, total_incomplete=n, summary=summary)

    def snapshot(self) -> ProjectSnapshot:
        return ProjectSnapshot(
            has_spec=self.has_spec,
            has_plan=self.has_plan,
            has_tasks=bool(self.sections),
            task_ids=self.task_ids,
            done_task_ids=sorted(self.done),
            batch_plan=self.plan() if self.sections else None,
            verify_exit_code=self.verify_exit_code,
            merged=self.merged,
            merge_conflicts=list(self.conflicts),
            has_user_gate=self.user_gate,
            has_merge_command=self.merge_command,
        )

    def check(self, *ids: str) -> None:
        self.done.update(ids)


def three_sections() -> FakeProject:
    return FakeProject(
        sections=[
            ("Phase 1: Setup", ["T001", "T002"]),
            ("Phase 2: Core", ["T003", "T004"]),
            ("Phase 3: Polish", ["T005"]),
        ]
    )


def ok(cost: float = 0.5, session: str | None = "sess-1", output: dict[str, Any] | None = None) -> RunOutcome:
    return RunOutcome(exit_ok=True, cost_usd=cost, session_id=session, structured_output=output)


def bad(cost: float = 0.5, failure: str | None = "process_failed", message: str = "boom") -> RunOutcome:
    return RunOutcome(exit_ok=False, failure=failure, cost_usd=cost, session_id="sess-bad", message=message)


# --------------------------------------------------------------------------------------------------------------
# The harness


class Harness:
    def __init__(self, project: FakeProject | None = None, **config: Any) -> None:
        config.setdefault("additional_context", CONTEXT)
        # analyze has its own tests; elsewhere a designed project goes straight to its batches
        config.setdefault("skip_analyze", True)
        self.project = project if project is not None else FakeProject(has_spec=False, has_plan=False)
        self.ex = new_execution("o1", "proj", OrchestrationConfig(**config), T0)
        self.now = T0
        self.actions: list[Any] = []
        self.all_actions: list[Any] = []

    # -- plumbing
    def tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def feed(self, event: Any) -> list[Any]:
        before = self.ex
        frozen = before.model_dump_json()
        after, actions = transition(before, event)
        assert before.model_dump_json() == frozen, "transition() mutated its input"
        if actions:
            assert isinstance(actions[0], Persist) and actions[0].version == before.version + 1
            assert after.version == before.version + 1 and after.updated_at == event.at
            assert sum(isinstance(a, Persist) for a in actions) == 1
            if actions[0].may_join_next:  # saved with the next state only when nothing but a pure read follows
                assert isinstance(event, RunFinished) and kinds(actions[1:]) == ["read_project"]
                assert actions[1].verify_command is None and not actions[1].read_git
        else:
            assert after == before
        for a in actions:
            if isinstance(a, (SpawnStep, SpawnBatch, SpawnHealer)):
                assert a.max_budget_usd > 0
                assert a.additional_context == after.config.additional_context
        # the store's round trip: what is reloaded is what was saved
        reloaded = OrchestrationExecution.model_validate_json(after.model_dump_json())
        assert reloaded == after
        self.ex = reloaded
        self.actions = actions
        self.all_actions += actions
        return actions

    # -- events
    def start(self) -> list[Any]:
        return self.feed(Started(at=self.tick(), snapshot=self.project.snapshot()))

    def read(self) -> list[Any]:
        return self.feed(ProjectRead(at=self.tick(), snapshot=self.project.snapshot()))

    def finish(self, outcome: RunOutcome | None = None, run_id: str | None = None) -> list[Any]:
        assert self.ex.current_run is not None or run_id
        rid = run_id or self.ex.current_run.execution_id  # type: ignore[union-attr]
        return self.feed(RunFinished(at=self.tick(), run_execution_id=rid, outcome=outcome or ok()))

    def cmd(self, command: Any, actor: str = "alice") -> list[Any]:
        return self.feed(UserCommand(at=self.tick(), command=command, actor=actor))

    def stall(self, run_id: str | None = None) -> list[Any]:
        rid = run_id or self.run.execution_id
        return self.feed(RunStalled(at=self.tick(), run_execution_id=rid, silent_for_seconds=300))

    def restart(self, **kw: Any) -> list[Any]:
        return self.feed(HostRestarted(at=self.tick(), **kw))

    def rebuilt(self, *runs: str, **config: Any) -> list[Any]:
        """The record was corrupt: the host rebuilt this (fresh) execution from the disk and the runs it found."""
        config.setdefault("agent_command", "my-agent --flag")
        return self.feed(
            StateRebuilt(
                at=self.tick(),
                snapshot=self.project.snapshot(),
                set_aside_as="orchestration-o1.json.corrupt-1",
                runs=list(runs),
                config=OrchestrationConfig(**config),
                feature_dir="specs/001-todo",
            )
        )

    def diagnosed(self, action: Diagnose | None = None, **kw: Any) -> list[Any]:
        """The decision helper of ``action`` (default: the last Diagnose emitted) reports (default: an answer)."""
        action = action or [a for a in self.all_actions if isinstance(a, Diagnose)][-1]
        kw.setdefault("cost_usd", 0.02)
        if "failure" not in kw:
            kw.setdefault("diagnosis", "The run stopped half-way: T004 is unchecked.")
            kw.setdefault("suggestion", "retry")
        return self.feed(
            DiagnosisFinished(at=self.tick(), run_id=action.run_id, recovery_seq=action.recovery_seq, **kw)
        )

    # -- whole runs (the run ends, the project is re-read)
    def run_step(self, outcome: RunOutcome | None = None, effect: Callable[[], None] | None = None) -> list[Any]:
        self.finish(outcome)
        assert kinds(self.actions)[-1] == "read_project"
        if effect:
            effect()
        return self.read()

    def run_batch(self, outcome: RunOutcome | None = None, check: bool = True) -> list[Any]:
        run = self.ex.current_run
        assert run is not None and run.kind.value in ("batch", "healer")
        return self.run_step(outcome, (lambda: self.project.check(*run.task_ids)) if check else None)

    # -- views
    @property
    def rc(self) -> RecoveryContext:
        assert self.ex.recovery_context is not None
        return self.ex.recovery_context

    @property
    def run(self) -> CurrentRun:
        assert self.ex.current_run is not None
        return self.ex.current_run

    @property
    def decisions(self) -> list[str]:
        return [d.decision for d in self.ex.decision_log]

    def spawns(self) -> list[Any]:
        return [a for a in self.all_actions if isinstance(a, SPAWN_ACTIONS)]


def kinds(actions: list[Any]) -> list[str]:
    return [a.kind for a in actions]


def designed(h: Harness) -> None:
    h.project.has_spec = h.project.has_plan = True
    h.project.sections = three_sections().sections


# --------------------------------------------------------------------------------------------------------------
# States to start the table from (each reached through transition() only)


def st_fresh() -> Harness:
    return Harness(three_sections())


def st_batch_running() -> Harness:
    h = Harness(three_sections())
    h.start()
    return h


def st_awaiting_read() -> Harness:
    h = st_batch_running()
    h.finish(ok())
    h.project.check("T001", "T002")
    return h


def st_paused() -> Harness:
    h = st_batch_running()
    h.cmd(PauseCommand())
    h.run_batch()
    assert h.ex.status is S.PAUSED
    return h


def st_waiting_input() -> Harness:
    h = st_batch_running()
    h.finish(ok(output={"status": "needs_input", "questions": [{"id": "db", "question": "Which database?"}]}))
    return h


def st_needs_attention() -> Harness:
    h = Harness(three_sections(), auto_heal_enabled=False)
    h.start()
    h.run_batch(bad())
    assert h.ex.status is S.NEEDS_ATTENTION
    # the decision helper (decisionBudget 0.5 by default) answered: nothing is pending any more
    assert kinds(h.actions)[-1] == "diagnose"
    h.diagnosed()
    assert h.rc.diagnosis is not None and h.rc.diagnosis.status == "ready" and not h.ex.pending_diagnoses
    return h


def st_waiting_merge() -> Harness:
    h = Harness(three_sections(), skip_implement=True, skip_analyze=True)
    h.start()
    h.run_step(ok(output={"passed": True}))
    assert h.ex.status is S.WAITING_MERGE
    return h


def st_completed() -> Harness:
    h = st_waiting_merge()
    h.cmd(MergeCommand())
    h.read()
    h.project.merged = True
    h.run_step(ok(cost=0))
    assert h.ex.status is S.COMPLETED
    return h


def st_failed() -> Harness:
    h = st_needs_attention()
    h.cmd(RecoverCommand(option=RecoveryOption.ABORT))
    return h


def st_cancelled() -> Harness:
    h = st_batch_running()
    h.cmd(CancelCommand())
    return h


STATES: dict[str, Callable[[], Harness]] = {
    "fresh": st_fresh,
    "batch_running": st_batch_running,
    "awaiting_read": st_awaiting_read,
    "paused": st_paused,
    "waiting_input": st_waiting_input,
    "needs_attention": st_needs_attention,
    "waiting_merge": st_waiting_merge,
    "completed": st_completed,
    "failed": st_failed,
    "cancelled": st_cancelled,
}


def test_state_factories_reach_their_statuses():
    expected = {
        "fresh": S.RUNNING,
        "batch_running": S.RUNNING,
        "awaiting_read": S.RUNNING,
        "paused": S.PAUSED,
        "waiting_input": S.PAUSED,
        "needs_attention": S.NEEDS_ATTENTION,
        "waiting_merge": S.WAITING_MERGE,
        "completed": S.COMPLETED,
        "failed": S.FAILED,
        "cancelled": S.CANCELLED,
    }
    for name, make in STATES.items():
        assert make().ex.status is expected[name], name


# --------------------------------------------------------------------------------------------------------------
# The table: state × event → status, actions, decisions

EV: dict[str, Callable[[Harness], Any]] = {
    "pause": lambda h: h.cmd(PauseCommand()),
    "resume": lambda h: h.cmd(ResumeCommand()),
    "cancel": lambda h: h.cmd(CancelCommand()),
    "merge": lambda h: h.cmd(MergeCommand()),
    "retry": lambda h: h.cmd(RecoverCommand(option=RecoveryOption.RETRY)),
    "skip": lambda h: h.cmd(RecoverCommand(option=RecoveryOption.SKIP)),
    "abort": lambda h: h.cmd(RecoverCommand(option=RecoveryOption.ABORT)),
    "go_back_analyze": lambda h: h.cmd(GoBackCommand(step=P.ANALYZE)),
    "go_back_design": lambda h: h.cmd(GoBackCommand(step=P.DESIGN)),
    "answer": lambda h: h.cmd(AnswerCommand(answers={"db": "sqlite"})),
    "finish_ok": lambda h: h.finish(ok()),
    "read": lambda h: h.read(),
    "stall": lambda h: h.stall(),
    "restart_alive": lambda h: h.restart(run_alive=True),
    "restart_lost": lambda h: h.restart(),
    "rebuilt": lambda h: h.rebuilt("o1-001-batch1", "o1-004-heal1"),
}

TABLE = [
    # state            event             status             actions after Persist               decisions
    ("batch_running", "pause", S.RUNNING, [], ["pause_requested"]),
    ("batch_running", "cancel", S.CANCELLED, ["kill_run", "notify"], ["cancel"]),
    ("batch_running", "finish_ok", S.RUNNING, ["read_project"], []),
    ("batch_running", "stall", S.RUNNING, ["notify"], ["stalled"]),
    ("batch_running", "go_back_analyze", S.RUNNING, ["kill_run", "read_project"], ["go_back"]),
    ("batch_running", "restart_alive", S.RUNNING, [], ["reconcile_adopted"]),
    ("batch_running", "restart_lost", S.RUNNING, ["read_project"], ["reconcile_lost"]),
    ("awaiting_read", "read", S.RUNNING, ["spawn_batch"], ["batch_complete", "next_batch"]),
    ("awaiting_read", "pause", S.RUNNING, [], ["pause_requested"]),
    ("awaiting_read", "cancel", S.CANCELLED, ["notify"], ["cancel"]),
    ("awaiting_read", "restart_lost", S.RUNNING, ["read_project"], ["reconcile_finished"]),
    ("paused", "resume", S.RUNNING, ["read_project"], ["resume"]),
    ("paused", "cancel", S.CANCELLED, ["notify"], ["cancel"]),
    ("paused", "go_back_analyze", S.RUNNING, ["read_project"], ["go_back"]),
    ("paused", "restart_lost", S.PAUSED, None, []),
    ("waiting_input", "answer", S.RUNNING, ["read_project"], ["answers_received"]),
    ("waiting_input", "cancel", S.CANCELLED, ["notify"], ["cancel"]),
    ("needs_attention", "retry", S.RUNNING, ["read_project"], ["recovery_retry"]),
    ("needs_attention", "skip", S.RUNNING, ["read_project"], ["recovery_skip"]),
    ("needs_attention", "abort", S.FAILED, ["notify"], ["recovery_abort", "fail"]),
    ("needs_attention", "cancel", S.CANCELLED, ["notify"], ["cancel"]),
    ("needs_attention", "go_back_analyze", S.RUNNING, ["read_project"], ["go_back"]),
    ("needs_attention", "restart_lost", S.NEEDS_ATTENTION, None, []),
    ("waiting_merge", "merge", S.RUNNING, ["read_project"], ["merge_triggered"]),
    ("waiting_merge", "cancel", S.CANCELLED, ["notify"], ["cancel"]),
    ("waiting_merge", "go_back_analyze", S.RUNNING, ["read_project"], ["go_back"]),
    # the record was corrupt: the host rebuilt a fresh execution from the disk (the orchestrator's restart path)
    ("fresh", "rebuilt", S.NEEDS_ATTENTION, ["notify"], ["needs_attention"]),
]


@pytest.mark.parametrize(("state", "event", "status", "effects", "decisions"), TABLE)
def test_transition_table(state, event, status, effects, decisions):
    h = STATES[state]()
    logged = len(h.ex.decision_log)
    actions = EV[event](h)
    assert h.ex.status is status
    if effects is None:  # no change at all
        assert actions == []
        return
    assert kinds(actions) == ["persist", *effects]
    assert h.decisions[logged:] == decisions


ILLEGAL = [
    ("batch_running", "resume"),
    ("batch_running", "merge"),
    ("batch_running", "retry"),
    ("batch_running", "answer"),
    ("batch_running", "read"),
    ("awaiting_read", "finish_ok"),
    ("awaiting_read", "stall"),
    ("paused", "pause"),
    ("paused", "merge"),
    ("paused", "answer"),
    ("paused", "read"),
    ("waiting_input", "resume"),
    ("waiting_input", "read"),
    ("needs_attention", "pause"),
    ("needs_attention", "resume"),
    ("needs_attention", "merge"),
    ("needs_attention", "answer"),
    ("waiting_merge", "pause"),
    ("waiting_merge", "retry"),
    ("waiting_merge", "resume"),
    ("completed", "cancel"),
    ("completed", "merge"),
    ("completed", "go_back_analyze"),
    ("completed", "restart_lost"),
    ("failed", "resume"),
    ("failed", "retry"),
    ("cancelled", "cancel"),
    ("cancelled", "resume"),
    ("batch_running", "rebuilt"),  # only a fresh execution is rebuilt
    ("needs_attention", "rebuilt"),
]


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_events_raise_409_naming_state_and_event(state, event):
    h = STATES[state]()
    before = h.ex.model_dump_json()
    with pytest.raises(IllegalTransition) as info:
        EV[event](h)
    err = info.value
    assert isinstance(err, OrchestrationConflict) and err.http_status == 409
    name = {"retry": "recover", "skip": "recover", "abort": "recover", "go_back_analyze": "go_back"}.get(event, event)
    name = {"finish_ok": "run_finished", "read": "project_read", "stall": "run_stalled"}.get(name, name)
    name = {"restart_lost": "host_restarted", "rebuilt": "state_rebuilt"}.get(name, name)
    assert f"Cannot {name}" in err.message and h.ex.status.value in err.message
    allowed = sorted(s.value for s in LEGAL_STATUSES[name])
    assert err.details["allowedStatuses"] == allowed and all(a in (err.hint or "") for a in allowed)
    assert h.ex.model_dump_json() == before


def test_a_rebuilt_record_stops_with_what_the_disk_shows_and_retry_continues_without_redoing():
    """StateRebuilt (the orchestrator's _rebuild feeds it): the config guessed from the newest run, run ids after the
    runs found, design and analyze completed when the artifacts are, progress counted, and retry/abort offered."""
    h = st_fresh()
    h.project.check("T001", "T002")
    h.rebuilt("o1-001-batch1", "o1-002-batch2", "o1-007-heal2", "o1-003-diagnose")
    assert h.ex.config.agent_command == "my-agent --flag" and h.ex.feature_dir == "specs/001-todo"
    assert h.ex.run_seq == 7 and h.ex.current_phase is P.IMPLEMENT
    assert h.ex.step_status[P.DESIGN] is StepState.COMPLETED and h.ex.step_status[P.ANALYZE] is StepState.COMPLETED
    assert (h.ex.batches.tasks_done, h.ex.batches.tasks_total) == (2, 5)
    assert h.rc.kind == "state_rebuilt" and h.rc.options == [RecoveryOption.RETRY, RecoveryOption.ABORT]
    assert "set aside as orchestration-o1.json.corrupt-1" in h.rc.issue and "2 of 5 tasks done" in h.rc.issue
    assert "4 agent run folder(s) found" in h.rc.issue and h.rc.step is P.IMPLEMENT
    assert h.ex.decision_log[0].data is not None and h.ex.decision_log[0].data["runs"][0] == "o1-001-batch1"
    assert not any(isinstance(a, Diagnose) for a in h.actions)  # no failed run to read
    assert [n.event for n in h.ex.notifications] == ["needs_attention"]
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY))
    h.read()
    assert isinstance(h.actions[-1], SpawnBatch) and h.actions[-1].task_ids == ["T003", "T004"]
    assert h.actions[-1].run_id == "o1-008-batch1"  # never a run folder of the lost record
    aborted = st_fresh()
    aborted.project.has_spec = False  # design not complete: it starts over at design
    aborted.rebuilt()
    assert aborted.ex.current_phase is P.DESIGN and aborted.ex.run_seq == 0 and "0 agent run" in aborted.rc.issue
    assert aborted.ex.step_status[P.DESIGN] is StepState.PENDING
    aborted.cmd(RecoverCommand(option=RecoveryOption.ABORT))
    assert aborted.ex.status is S.FAILED


def test_allowed_commands_match_the_table():
    for name, make in STATES.items():
        h = make()
        for command in ("pause", "resume", "cancel", "merge", "go_back_design", "answer", "retry"):
            probe = make()
            try:
                EV[command](probe)
                legal = True
            except IllegalTransition:
                legal = False
            listed = {"go_back_design": "go_back", "retry": "recover"}.get(command, command) in allowed_commands(h.ex)
            assert legal == listed, (name, command)


def test_go_back_targets_are_the_steps_the_machine_accepts_offered_only_at_a_stop():
    """Hosts render the go-back steps from go_back_targets: each one is accepted, a later one refused."""
    for name, make in STATES.items():
        h = make()
        targets = go_back_targets(h.ex)
        if h.ex.status not in GO_BACK_OFFERED:
            assert targets == [], name  # running: going back would kill the live run; over: nothing to go back to
            continue
        current = h.ex.current_phase
        assert targets == list(STEP_ORDER[: STEP_ORDER.index(current) + 1]), name
        for s in STEP_ORDER:
            probe = make()
            if s in targets:
                probe.cmd(GoBackCommand(step=s))
                assert probe.ex.current_phase is s and probe.ex.status is S.RUNNING, (name, s)
            else:
                with pytest.raises(IllegalTransition):
                    probe.cmd(GoBackCommand(step=s))
    done = st_completed()
    done.ex.status = S.PAUSED  # a completed phase's steps are all behind it
    assert go_back_targets(done.ex) == list(STEP_ORDER)


def test_status_sets_hosts_render_from():
    assert TERMINAL_STATUSES == {s for s in S if s.is_terminal} == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert set(S) - {S.RUNNING} == SETTLED_STATUSES and GO_BACK_OFFERED <= SETTLED_STATUSES - TERMINAL_STATUSES
    for name, make in STATES.items():
        h = make()
        if h.ex.status in TERMINAL_STATUSES:
            assert allowed_commands(h.ex) == [], name
        if h.ex.status not in SETTLED_STATUSES:  # running: something happens without a person
            assert h.ex.current_run is not None or h.ex.status is S.RUNNING, name


# --------------------------------------------------------------------------------------------------------------
# Whole phase, transition() only


def test_full_phase_design_to_merge():
    h = Harness(FakeProject(has_spec=False, has_plan=False), verify_command="pytest -q", skip_analyze=False)
    acts = h.start()
    assert kinds(acts) == ["persist", "spawn_step"] and acts[1].step is P.DESIGN
    assert acts[1].run_id == "o1-001-design" and h.ex.executions.design == "o1-001-design"
    h.run_step(ok(cost=1.0), effect=lambda: designed(h))
    assert h.ex.current_phase is P.ANALYZE and h.actions[-1].step is P.ANALYZE
    h.run_step(ok(cost=0.5, output={"status": "completed"}))
    # implement: plan taken from the read that enters implement, one batch at a time in plan order
    assert [b.section for b in h.ex.batches.items] == ["Phase 1: Setup", "Phase 2: Core", "Phase 3: Polish"]
    for i in range(3):
        spawn = h.actions[-1]
        assert isinstance(spawn, SpawnBatch) and spawn.batch_index == i and spawn.batch_total == 3
        h.run_batch(ok(cost=1.0))
    assert [b.status for b in h.ex.batches.items] == [BatchStatus.COMPLETED] * 3
    assert h.ex.current_phase is P.VERIFY and isinstance(h.actions[-1], SpawnStep)
    acts = h.finish(ok(cost=0.25, output={"passed": True}))
    assert acts[-1] == ReadProject(reason="confirm the verify step", verify_command="pytest -q", read_git=False)
    h.project.verify_exit_code = 0
    h.read()
    assert h.ex.status is S.WAITING_MERGE and h.decisions[-1] == "waiting_merge"
    h.cmd(MergeCommand())
    acts = h.read()
    assert isinstance(acts[-1], RunMerge) and h.ex.current_run is not None and h.run.builtin
    h.project.merged = True
    h.run_step(RunOutcome(exit_ok=True))
    assert h.ex.status is S.COMPLETED and h.ex.current_phase is P.COMPLETE and h.ex.completed_at == h.now
    assert h.decisions[-1] == "complete" and kinds(h.actions) == ["persist", "notify"]
    assert h.ex.total_cost_usd == pytest.approx(1.0 + 0.5 + 3.0 + 0.25)
    assert h.decisions[:3] == ["start", "transition", "transition"] or h.decisions[0] == "start"
    # exactly one spawn per step/batch: the machine is the only spawner and never doubles a run
    assert [type(a).__name__ for a in h.spawns()] == ["SpawnStep"] * 2 + ["SpawnBatch"] * 3 + ["SpawnStep", "RunMerge"]
    assert len({a.run_id for a in h.spawns()}) == 7


def test_auto_merge_merges_without_waiting_and_project_merge_command_is_an_agent_step():
    p = three_sections()
    p.done = set(p.task_ids)
    p.merge_command = True
    h = Harness(p, auto_merge=True, skip_analyze=True)
    h.start()
    assert h.ex.current_phase is P.VERIFY
    acts = h.run_step(ok(output={"passed": True}))
    assert isinstance(acts[-1], SpawnStep) and acts[-1].step is P.MERGE
    h.project.merged = True
    h.run_step(ok())
    assert h.ex.status is S.COMPLETED
    assert "waiting_merge" not in h.decisions


def test_user_gate_stops_before_merge_even_with_auto_merge():
    p = three_sections()
    p.done = set(p.task_ids)
    p.user_gate = True
    h = Harness(p, auto_merge=True, skip_analyze=True)
    h.start()
    h.run_step(ok(output={"passed": True}))
    assert h.ex.status is S.WAITING_MERGE and "USER GATE" in h.ex.decision_log[-1].reason
    assert allowed_commands(h.ex) == ["cancel", "merge", "go_back"]


# --------------------------------------------------------------------------------------------------------------
# Skip flags and smart config


@pytest.mark.parametrize(
    ("config", "project_state", "first", "skipped"),
    [
        ({}, "empty", P.DESIGN, []),
        ({}, "designed", P.ANALYZE, ["design"]),  # smart: artifacts present
        ({}, "all_done", P.ANALYZE, ["design", "implement"]),  # smart: all tasks done
        ({"skip_design": True, "skip_analyze": True}, "designed", P.IMPLEMENT, ["design", "analyze"]),
        ({"skip_analyze": True, "skip_implement": True}, "designed", P.VERIFY, ["design", "analyze", "implement"]),
        (
            {"skip_analyze": True, "skip_verify": True},
            "all_done",
            None,  # straight to waiting_merge
            ["design", "analyze", "implement", "verify"],
        ),
    ],
)
def test_skip_flags_and_smart_config(config, project_state, first, skipped):
    p = FakeProject(has_spec=False, has_plan=False) if project_state == "empty" else three_sections()
    if project_state == "all_done":
        p.done = set(p.task_ids)
    h = Harness(p, **{"skip_analyze": False, **config})
    acts = h.start()
    assert sorted((d.data or {})["step"] for d in h.ex.decision_log if d.decision == "step_skipped") == sorted(skipped)
    if first is None:
        assert h.ex.status is S.WAITING_MERGE
    else:
        assert h.ex.current_phase is first and h.ex.step_status[first] is StepState.RUNNING
        assert kinds(acts)[-1] in ("spawn_step", "spawn_batch")
    smart = [d for d in h.ex.decision_log if d.decision == "step_skipped" and (d.data or {}).get("smart")]
    assert all("smart config" in d.reason for d in smart)


# --------------------------------------------------------------------------------------------------------------
# Dual confirmation, step by step


@pytest.mark.parametrize(
    ("step_", "outcome", "effect", "confirmed"),
    [
        (P.DESIGN, ok(), designed, True),
        (P.DESIGN, ok(), None, False),  # agent says ok, no artifacts
        (P.DESIGN, bad(), designed, False),  # artifacts, but the run failed
        (P.DESIGN, RunOutcome(exit_ok=True, is_error=True, message="Not logged in"), designed, False),
        (P.ANALYZE, ok(output={"status": "completed"}), None, True),
        (P.ANALYZE, ok(output={"status": "issues"}), None, False),
        (P.ANALYZE, ok(output=None), None, False),
        (P.VERIFY, ok(output={"passed": True}), None, True),
        (P.VERIFY, ok(output={"passed": False, "failures": ["test_x"]}), None, False),
        (P.VERIFY, bad(), None, False),
        (P.VERIFY, ok(output={"status": "needs_input", "passed": True}), None, False),  # no question: no verdict
    ],
)
def test_dual_confirmation_per_step(step_, outcome, effect, confirmed):
    p = FakeProject(has_spec=False, has_plan=False) if step_ is P.DESIGN else three_sections()
    if step_ is P.VERIFY:
        p.done = set(p.task_ids)
    h = Harness(p, skip_analyze=step_ is not P.ANALYZE, skip_implement=True)
    h.start()
    assert h.ex.current_run is not None and h.run.step is step_
    h.run_step(outcome, effect=(lambda: effect(h)) if effect else None)
    if confirmed:
        assert h.ex.step_status[step_] is StepState.COMPLETED and h.ex.current_phase is not step_
    else:
        assert h.ex.status is S.NEEDS_ATTENTION and h.ex.step_status[step_] is StepState.FAILED
        rc = h.rc
        assert rc is not None and rc.kind == "step_failed" and rc.step is step_
        assert rc.options == [RecoveryOption.RETRY, RecoveryOption.SKIP, RecoveryOption.ABORT]
        assert rc.failed_workflow_id == f"o1-001-{step_.value}"


def test_verify_fails_when_the_command_fails_although_the_agent_claims_success():
    p = three_sections()
    p.done = set(p.task_ids)
    h = Harness(p, skip_analyze=True, verify_command="pytest -q")
    h.start()
    h.finish(ok(output={"passed": True}))
    assert h.actions[-1].verify_command == "pytest -q"
    h.project.verify_exit_code = 1
    h.read()
    assert h.ex.status is S.NEEDS_ATTENTION
    assert "`pytest -q` exited 1 although the agent reported passed" in h.rc.issue
    # skip = proceed to merge anyway (the user takes responsibility)
    h.cmd(RecoverCommand(option=RecoveryOption.SKIP))
    h.read()
    assert h.ex.step_status[P.VERIFY] is StepState.SKIPPED and h.ex.status is S.WAITING_MERGE


def test_a_batch_completes_only_when_tasks_md_confirms_every_task():
    h = Harness(three_sections(), auto_heal_enabled=False)
    h.start()
    h.finish(ok())
    h.project.check("T001")  # T002 left unchecked although the agent ended well
    h.read()
    b = h.ex.batches.items[0]
    assert b.status is BatchStatus.FAILED and h.ex.status is S.NEEDS_ATTENTION
    assert "T002" in h.rc.issue and h.rc.remaining_task_ids == ["T002"]
    assert h.decisions[-2:] == ["batch_failed", "needs_attention"]


def test_batch_with_tasks_checked_but_failed_run_is_not_complete():
    h = Harness(three_sections(), auto_heal_enabled=False)
    h.start()
    h.run_batch(bad(), check=True)
    assert h.ex.batches.items[0].status is BatchStatus.FAILED


# --------------------------------------------------------------------------------------------------------------
# Batches: plan, order, pause


def test_batch_plan_is_taken_when_implement_starts_after_design_wrote_tasks():
    h = Harness(FakeProject(has_spec=False, has_plan=False), skip_analyze=True)
    h.start()
    assert h.ex.batches.items == []
    h.run_step(ok(), effect=lambda: designed(h))
    assert [b.task_ids for b in h.ex.batches.items] == [["T001", "T002"], ["T003", "T004"], ["T005"]]
    assert h.actions[-1].task_ids == ["T001", "T002"] and "batch_plan" in h.decisions


def test_already_checked_batch_is_completed_without_a_run():
    h = Harness(three_sections())
    h.start()
    h.project.check("T003", "T004")  # done by hand meanwhile
    h.run_batch()
    assert h.ex.batches.items[1].status is BatchStatus.COMPLETED
    assert h.actions[-1].batch_index == 2


def test_a_batch_spawn_carries_only_unchecked_tasks():
    h = Harness(three_sections(), auto_heal_enabled=False)
    h.start()
    h.finish(bad())
    h.project.check("T001")
    h.read()
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY))
    acts = h.read()
    assert acts[-1].task_ids == ["T002"] and acts[-1].batch_index == 0


def test_pause_between_batches():
    h = Harness(three_sections(), pause_between_batches=True)
    h.start()
    h.run_batch()
    assert h.ex.status is S.PAUSED and h.decisions[-1] == "pause"
    h.cmd(ResumeCommand())
    acts = h.read()
    assert acts[-1].batch_index == 1
    h.run_batch()
    h.cmd(ResumeCommand())
    h.read()
    h.run_batch()  # the last batch: no pause, straight to verify
    assert h.ex.status is S.RUNNING and h.ex.current_phase is P.VERIFY


def test_pause_finishes_the_batch_first_and_never_kills():
    h = Harness(three_sections())
    h.start()
    acts = h.cmd(PauseCommand())
    assert not any(isinstance(a, KillRun) for a in acts) and h.ex.status is S.RUNNING and h.ex.pause_requested
    h.run_batch()
    assert h.ex.status is S.PAUSED and h.ex.batches.items[0].status is BatchStatus.COMPLETED
    assert h.decisions[-2:] == ["batch_complete", "pause"]
    assert not any(isinstance(a, KillRun) for a in h.all_actions)
    h.cmd(ResumeCommand())
    assert h.read()[-1].batch_index == 1


def test_resume_while_a_pause_is_pending_withdraws_it():
    h = Harness(three_sections())
    h.start()
    h.cmd(PauseCommand())
    h.cmd(ResumeCommand())
    assert not h.ex.pause_requested
    h.run_batch()
    assert h.ex.status is S.RUNNING and h.actions[-1].batch_index == 1


def test_cancel_kills_the_run_now_and_its_cost_is_still_counted():
    h = Harness(three_sections())
    h.start()
    rid = h.run.execution_id
    acts = h.cmd(CancelCommand())
    assert KillRun(run_id=rid, reason="cancelled") in acts and h.ex.status is S.CANCELLED
    assert h.ex.completed_at is not None and h.ex.killed_run_ids == [rid]
    h.finish(bad(cost=0.7, failure="killed"), run_id=rid)
    assert h.ex.total_cost_usd == pytest.approx(0.7) and h.ex.killed_run_ids == []
    assert h.ex.status is S.CANCELLED and h.decisions[-1] == "killed_run_ended"


def test_empty_plan_with_unfinished_tasks_is_not_all_done():
    """MISSION §9: an empty batch list counted as all done."""
    p = FakeProject(sections=[("Phase 1", ["T001"])])
    h = Harness(p, skip_analyze=True)
    # tasks.md exists but the plan is empty (e.g. the only task is blocked)
    p.plan = lambda: BatchPlan()  # type: ignore[method-assign]
    h.start()
    assert h.ex.status is S.NEEDS_ATTENTION and h.ex.current_phase is P.IMPLEMENT
    assert "No incomplete tasks found" in h.rc.issue
    assert h.rc.kind == "no_tasks" and h.ex.step_status[P.IMPLEMENT] is not StepState.COMPLETED


def test_empty_plan_without_tasks_md_is_not_all_done():
    h = Harness(FakeProject(), skip_design=True, skip_analyze=False)
    h.start()
    h.run_step(ok(output={"status": "completed"}))
    assert h.ex.status is S.NEEDS_ATTENTION and "tasks.md has no tasks" in h.rc.issue


def test_empty_plan_with_every_task_done_completes_implement():
    p = three_sections()
    h = Harness(p, skip_analyze=True)
    h.start()
    p.done = set(p.task_ids)  # all done by hand during batch 1
    h.run_batch()
    assert h.ex.step_status[P.IMPLEMENT] is StepState.COMPLETED and h.ex.current_phase is P.VERIFY


# --------------------------------------------------------------------------------------------------------------
# Healing


def test_failed_batch_is_healed_and_stays_healed():
    h = Harness(three_sections(), max_heal_attempts=1)
    h.start()
    h.finish(bad(cost=1.0))
    acts = h.read()
    heal = acts[-1]
    assert isinstance(heal, SpawnHealer)
    assert heal.resume_session_id == "sess-bad" and heal.fork_session and heal.attempt == 1
    assert heal.task_ids == ["T001", "T002"] and heal.failed_run_id == "o1-001-batch1"
    assert heal.max_budget_usd == pytest.approx(2.0)  # healing budget, well under the total left
    # attempts are counted (and persisted: Persist comes first) before the healer starts
    assert h.ex.batches.items[0].heal_attempts == 1 and kinds(acts) == ["persist", "spawn_healer"]
    assert h.decisions[-2:] == ["batch_failed", "heal_started"]
    h.run_batch(ok(cost=0.4, output={"status": "fixed"}))
    b = h.ex.batches.items[0]
    assert b.status is BatchStatus.HEALED and h.decisions[-2] == "batch_healed"
    assert h.ex.healing_cost_usd == pytest.approx(0.4) and h.ex.executions.healers == ["o1-002-heal1"]
    # MISSION §9: healed never overwritten by completed, through the rest of the phase
    for _ in range(2):
        h.run_batch()
    assert [x.status for x in h.ex.batches.items] == [BatchStatus.HEALED, BatchStatus.COMPLETED, BatchStatus.COMPLETED]


@pytest.mark.parametrize(
    ("healer_outcome", "check"),
    [
        (ok(output={"status": "partial"}), True),  # tasks checked but the healer did not say fixed
        (ok(output={"status": "fixed"}), False),  # says fixed, tasks.md disagrees
        (bad(), True),
    ],
)
def test_heal_that_fails_goes_to_needs_attention_without_a_second_heal(healer_outcome, check):
    h = Harness(three_sections(), max_heal_attempts=1)
    h.start()
    h.run_batch(bad(), check=False)
    h.run_batch(healer_outcome, check=check)
    assert h.ex.status is S.NEEDS_ATTENTION and h.ex.batches.items[0].status is BatchStatus.FAILED
    assert sum(isinstance(a, SpawnHealer) for a in h.all_actions) == 1
    rc = h.rc
    assert rc.kind == "batch_failed" and rc.failed_workflow_id == "o1-002-heal1"
    assert "Batch 1 of 3 (Phase 1: Setup) failed" in rc.issue and "1 heal attempt(s) used" in rc.issue
    assert h.decisions[-2:] == ["heal_failed", "needs_attention"]


def test_heal_again_while_attempts_remain():
    h = Harness(three_sections(), max_heal_attempts=2)
    h.start()
    h.run_batch(bad(), check=False)
    h.finish(ok(session="sess-heal-1", output={"status": "partial"}))
    acts = h.read()
    assert isinstance(acts[-1], SpawnHealer) and acts[-1].attempt == 2
    assert acts[-1].resume_session_id == "sess-heal-1"  # the newest session of the batch, forked
    h.run_batch(ok(output={"status": "fixed"}))
    assert h.ex.batches.items[0].status is BatchStatus.HEALED and h.ex.batches.items[0].heal_attempts == 2


def test_auto_heal_off_or_zero_attempts_goes_straight_to_needs_attention():
    for cfg in ({"auto_heal_enabled": False}, {"max_heal_attempts": 0}):
        h = Harness(three_sections(), **cfg)
        h.start()
        h.run_batch(bad(), check=False)
        assert h.ex.status is S.NEEDS_ATTENTION and not any(isinstance(a, SpawnHealer) for a in h.all_actions)


def test_recover_skip_leaves_the_batch_failed_and_moves_on():
    h = st_needs_attention()
    h.cmd(RecoverCommand(option=RecoveryOption.SKIP))
    acts = h.read()
    assert h.ex.batches.items[0].status is BatchStatus.FAILED and acts[-1].batch_index == 1
    h.run_batch()
    h.run_batch()
    assert h.ex.current_phase is P.VERIFY and "1 failed and skipped" in h.ex.decision_log[-2].reason


def test_recover_abort_fails_and_a_failed_orchestration_is_terminal():
    h = st_failed()
    assert h.ex.status is S.FAILED and h.ex.status.is_terminal and not h.ex.status.is_active
    assert h.ex.error_message and h.ex.error_message.startswith("Aborted by the user")
    assert allowed_commands(h.ex) == []


def test_recover_option_not_offered_is_illegal():
    h = st_waiting_merge()
    h.cmd(MergeCommand())
    h.read()
    h.project.conflicts = ["todo/cli.py", "README.md"]
    h.run_step(RunOutcome(exit_ok=False, failure="process_failed", message="CONFLICT"))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "merge_conflict"
    assert "todo/cli.py, README.md" in h.rc.issue
    with pytest.raises(IllegalTransition, match="skip is not offered here"):
        h.cmd(RecoverCommand(option=RecoveryOption.SKIP))
    # retry after resolving: merges right away (no second waiting_merge)
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY))
    h.project.conflicts = []
    assert isinstance(h.read()[-1], RunMerge)
    h.project.merged = True
    h.run_step(RunOutcome(exit_ok=True))
    assert h.ex.status is S.COMPLETED


# --------------------------------------------------------------------------------------------------------------
# Budgets


def test_costs_add_up_from_every_run_failed_ones_too():
    h = Harness(three_sections(), max_heal_attempts=1)
    h.start()
    h.run_batch(bad(cost=1.25), check=False)
    h.run_batch(ok(cost=0.5, output={"status": "fixed"}))
    assert h.ex.total_cost_usd == pytest.approx(1.75)
    assert h.ex.batches.items[0].cost_usd == pytest.approx(1.25) and h.ex.healing_cost_usd == pytest.approx(0.5)


def test_each_batch_spawn_carries_the_per_batch_budget_capped_by_the_total_left():
    """MISSION §9: the per-batch budget was never passed to the CLI."""
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=3.0, max_total=5.0))
    acts = h.start()
    assert acts[-1].max_budget_usd == pytest.approx(3.0)
    h.run_batch(ok(cost=2.5))
    assert h.actions[-1].max_budget_usd == pytest.approx(2.5)  # total left < per-batch cap
    h.run_batch(ok(cost=2.5))
    # nothing left: no spawn, needs_attention with the budget message and how to continue
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget"
    assert "Raise budget.maxTotal" in h.rc.issue
    assert h.decisions[-2:] == ["budget_exceeded", "needs_attention"]
    assert not isinstance(h.actions[-1], SPAWN_ACTIONS)
    # raising the budget and retrying continues with the remaining batch
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY, budget=BudgetConfig(max_per_batch=3.0, max_total=10.0)))
    acts = h.read()
    assert isinstance(acts[-1], SpawnBatch) and acts[-1].batch_index == 2
    assert acts[-1].max_budget_usd == pytest.approx(3.0)


def test_a_batch_the_budget_stopped_before_it_ran_stays_pending_and_skip_moves_past_it():
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=3.0, max_total=5.0))
    h.start()
    h.run_batch(ok(cost=2.5))
    h.run_batch(ok(cost=2.5))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.batch_index == 2
    assert h.ex.batches.items[2].status is BatchStatus.PENDING  # it never ran: not "failed"
    h.cmd(RecoverCommand(option=RecoveryOption.SKIP))
    acts = h.read()
    assert h.ex.batches.items[2].status is BatchStatus.FAILED  # skipped
    assert not any(isinstance(a, SpawnBatch) for a in acts)
    assert h.ex.step_status[P.IMPLEMENT] is StepState.COMPLETED


def test_step_spawn_budget_is_min_of_per_batch_cap_and_total_left():
    h = Harness(FakeProject(has_spec=False, has_plan=False), budget=BudgetConfig(max_per_batch=4.0, max_total=3.0))
    assert h.start()[-1].max_budget_usd == pytest.approx(3.0)


def test_a_run_that_hits_its_budget_stops_without_healing():
    h = Harness(three_sections())
    h.start()
    acts = h.finish(bad(cost=5.0, failure="budget_exceeded", message="error_max_budget_usd"))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget"
    assert not any(isinstance(a, (SpawnHealer, ReadProject)) for a in acts)
    assert h.ex.total_cost_usd == pytest.approx(5.0) and h.ex.batches.items[0].status is BatchStatus.FAILED
    assert h.decisions[-2:] == ["budget_exceeded", "needs_attention"]
    assert (h.ex.decision_log[-2].data or {}).get("limit") == "maxPerBatch"  # the limit that bound it, logged
    total = Harness(three_sections(), budget=BudgetConfig(max_per_batch=5.0, max_total=2.0))
    total.start()
    total.finish(bad(cost=2.0, failure="budget_exceeded", message="error_max_budget_usd"))
    (stopped,) = [e for e in total.ex.decision_log if e.decision == "budget_exceeded"]
    assert (stopped.data or {}).get("limit") == "maxTotal"


def test_healer_budget_is_the_healing_budget_left_and_none_left_stops():
    h = Harness(three_sections(), max_heal_attempts=3, budget=BudgetConfig(healing_budget=1.0))
    h.start()
    h.run_batch(bad(), check=False)
    assert h.actions[-1].max_budget_usd == pytest.approx(1.0)
    h.run_batch(ok(cost=0.75, output={"status": "partial"}), check=False)
    assert h.actions[-1].max_budget_usd == pytest.approx(0.25)
    h.run_batch(ok(cost=0.25, output={"status": "partial"}), check=False)
    assert h.ex.status is S.NEEDS_ATTENTION and "healingBudget" in h.rc.issue


def test_budget_messages_say_the_way_forward_and_what_the_healing_budget_is():
    """Issue 15.1: the message names the panel's button and the CLI's flags; the healing budget's meaning is stated."""
    panel, cli = "Retry with a higher budget", "`specflow-nb orchestrate recover retry --set budget."
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=3.0, max_total=5.0))
    h.start()
    h.run_batch(ok(cost=2.5))
    h.run_batch(ok(cost=2.5))
    assert panel in h.rc.issue and f"{cli}maxTotal=…`" in h.rc.issue
    h = Harness(three_sections())
    h.start()
    h.finish(bad(cost=5.0, failure="budget_exceeded"))
    assert panel in h.rc.issue and "--set budget.maxPerBatch=… --set budget.maxTotal=…`" in h.rc.issue
    h = Harness(three_sections(), max_heal_attempts=3, budget=BudgetConfig(healing_budget=1.0))
    h.start()
    h.run_batch(bad(), check=False)
    h.run_batch(ok(cost=1.0, output={"status": "partial"}), check=False)
    assert h.rc.kind == "budget" and f"{cli}healingBudget=…`" in h.rc.issue
    assert "one amount for the whole orchestration (all healers of all batches together), not per batch" in h.rc.issue
    h.cmd(RecoverCommand(option=RecoveryOption.RETRY, budget=BudgetConfig(healing_budget=3.0)))
    assert "healingBudget $1.00 → $3.00 (for all healers together)" in h.ex.decision_log[-2].reason


def test_resume_can_raise_the_budget():
    h = st_paused()
    h.cmd(ResumeCommand(budget=BudgetConfig(max_total=80.0)))
    assert h.ex.config.budget.max_total == 80.0 and "budget changed" in h.ex.decision_log[-2].reason


def test_a_budget_change_keeps_the_limits_it_does_not_give():
    """The machine merges a command's limits over the current ones: ``{"maxTotal": 20}`` from any host (REST, panel,
    CLI) raises the total and keeps a custom per-batch cap (before, the omitted limits went back to defaults)."""
    h = Harness(three_sections(), budget=BudgetConfig(max_per_batch=3.0, max_total=5.0, healing_budget=0.7))
    h.start()
    h.run_batch(ok(cost=2.5))
    h.run_batch(ok(cost=2.5))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "budget"
    h.cmd(RecoverCommand.model_validate({"option": "retry", "budget": {"maxTotal": 20}}))
    assert h.ex.config.budget == BudgetConfig(max_per_batch=3.0, max_total=20.0, healing_budget=0.7)
    assert "maxPerBatch $3.00 → $3.00" in h.ex.decision_log[-2].reason
    acts = h.read()
    assert isinstance(acts[-1], SpawnBatch) and acts[-1].max_budget_usd == pytest.approx(3.0)  # the cap kept
    paused = st_paused()
    before = paused.ex.config.budget
    paused.cmd(ResumeCommand.model_validate({"budget": {"healingBudget": 4}}))
    assert paused.ex.config.budget == before.model_copy(update={"healing_budget": 4.0})
    same = st_paused()
    same.cmd(ResumeCommand.model_validate({"budget": {}}))  # nothing given: nothing changed, nothing logged
    assert not any("budget changed" in e.reason for e in same.ex.decision_log)


# --------------------------------------------------------------------------------------------------------------
# Questions


def test_questions_pause_for_input_and_answers_resume_the_same_session():
    h = st_waiting_input()
    assert h.ex.status is S.PAUSED and h.ex.waiting_for_input and h.ex.current_run is None
    assert [(q.id, q.question) for q in h.ex.questions] == [("db", "Which database?")]
    assert h.decisions[-1] == "waiting_input" and isinstance(h.actions[-1], Notify)
    with pytest.raises(ConfigError, match="Which database"):
        h.cmd(AnswerCommand(answers={"other": "x"}))
    acts = h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    assert isinstance(acts[-1], ReadProject)  # edits made while it waited count: the project is re-read first
    acts = h.read()
    spawn = acts[-1]
    assert isinstance(spawn, SpawnBatch) and spawn.resume_session_id == "sess-1" and not spawn.fork_session
    assert spawn.answers == {"db": "sqlite"} and spawn.task_ids == ["T001", "T002"]
    assert not h.ex.waiting_for_input and h.ex.questions == [] and h.ex.status is S.RUNNING
    h.run_batch()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED


def test_step_questions_accept_plain_strings_and_answers_by_text():
    h = Harness(FakeProject(has_spec=False, has_plan=False))
    h.start()
    h.finish(ok(session="s-design", output={"status": "needs_input", "questions": ["Which auth?"]}))
    assert isinstance(h.cmd(AnswerCommand(answers={"Which auth?": "OAuth"}))[-1], ReadProject)
    acts = h.read()
    assert isinstance(acts[-1], SpawnStep) and acts[-1].step is P.DESIGN and acts[-1].resume_session_id == "s-design"


def test_answers_resume_only_the_tasks_still_unchecked():
    h = st_waiting_input()  # batch 1 (T001, T002) asked a question
    h.project.check("T001")  # checked by hand while it waited
    h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    spawn = h.read()[-1]
    assert isinstance(spawn, SpawnBatch) and spawn.task_ids == ["T002"] and spawn.answers == {"db": "sqlite"}
    # every task checked meanwhile: the batch completes without a run, and the next batch starts fresh
    h = st_waiting_input()
    h.project.check("T001", "T002")
    h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    acts = h.read()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED
    nxt = [a for a in acts if isinstance(a, SpawnBatch)]
    assert nxt and nxt[0].batch_index == 1 and nxt[0].answers is None and nxt[0].resume_session_id is None


def test_verify_question_waits_then_resumes_and_the_verify_command_runs_on_the_final_pass():
    p = three_sections()
    p.done = set(p.task_ids)
    h = Harness(p, skip_implement=True, verify_command="pytest -q")
    h.start()
    asks = {"status": "needs_input", "passed": False, "questions": [{"id": "cfg", "question": "Accept no config?"}]}
    acts = h.finish(ok(session="s-verify", output=asks))
    # neither passed nor failed: waiting for answers, the verify command not run on this pass
    assert h.ex.status is S.PAUSED and h.ex.waiting_for_input and h.ex.questions[0].id == "cfg"
    assert h.ex.step_status[P.VERIFY] is StepState.RUNNING and not any(isinstance(a, ReadProject) for a in acts)
    assert h.decisions[-1] == "waiting_input"
    acts = h.cmd(AnswerCommand(answers={"cfg": "yes"}))
    assert isinstance(acts[-1], ReadProject) and acts[-1].verify_command is None
    spawn = h.read()[-1]
    assert isinstance(spawn, SpawnStep) and spawn.step is P.VERIFY and spawn.resume_session_id == "s-verify"
    assert spawn.answers == {"cfg": "yes"} and not spawn.fork_session and spawn.lost_run_id is None
    h.finish(ok(session="s-verify", output={"status": "completed", "passed": True}))
    assert h.actions[-1].verify_command == "pytest -q"  # the final pass runs it
    h.project.verify_exit_code = 0
    h.read()
    assert h.ex.step_status[P.VERIFY] is StepState.COMPLETED and h.ex.status is S.WAITING_MERGE


def test_an_agent_merge_step_asks_and_resumes_with_the_answers():
    p = three_sections()
    p.done = set(p.task_ids)
    p.merge_command = True
    h = Harness(p, skip_implement=True, auto_merge=True)
    h.start()
    h.run_step(ok(output={"passed": True}))
    assert h.run.step is P.MERGE and not h.run.builtin
    h.finish(ok(session="s-merge", output={"status": "needs_input", "questions": ["Squash the commits?"]}))
    assert h.ex.waiting_for_input and h.ex.step_status[P.MERGE] is StepState.RUNNING
    h.cmd(AnswerCommand(answers={"Squash the commits?": "no"}))
    spawn = h.read()[-1]
    assert isinstance(spawn, SpawnStep) and spawn.step is P.MERGE and spawn.resume_session_id == "s-merge"
    h.project.merged = True
    h.run_step(ok(output={"status": "merged"}))
    assert h.ex.status is S.COMPLETED


@pytest.mark.parametrize("merge_step", [False, True])
def test_needs_input_without_a_question_is_neither_passed_nor_failed(merge_step: bool):
    p = three_sections()
    p.done = set(p.task_ids)
    p.merge_command = merge_step
    p.merged = merge_step  # even a merged repository does not confirm a merge run that said it needs input
    h = Harness(p, skip_implement=True, auto_merge=True)
    h.start()
    if merge_step:
        h.run_step(ok(output={"passed": True}))
    h.run_step(ok(output={"status": "needs_input", "passed": True, "questions": []}))
    step_ = P.MERGE if merge_step else P.VERIFY
    assert h.ex.status is S.NEEDS_ATTENTION and h.ex.step_status[step_] is StepState.FAILED
    assert f"The {step_.value} run said it needs input but asked no question" in h.rc.issue


# --------------------------------------------------------------------------------------------------------------
# Lost sessions (invalid_session on a run that resumed one): retried once as a new session


def lost(message: str = "No conversation found with session ID: sess-1") -> RunOutcome:
    return RunOutcome(exit_ok=False, failure="invalid_session", session_id="sess-1", message=message)


def test_an_answer_whose_session_is_lost_is_retried_once_as_a_new_session_with_the_answers():
    h = st_waiting_input()  # batch 1 (run o1-001-batch1, session sess-1) asked a question
    h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    resumed = h.read()[-1]
    assert isinstance(resumed, SpawnBatch) and resumed.resume_session_id == "sess-1"
    assert h.run.resumed_session_id == "sess-1" and h.run.resumed_from_run == "o1-001-batch1"
    h.finish(lost(), run_id=resumed.run_id)
    h.project.check("T001")  # re-read before the retry: only what is still unchecked
    acts = h.read()
    retry = acts[-1]
    assert isinstance(retry, SpawnBatch) and retry.run_id != resumed.run_id and retry.batch_index == 0
    assert retry.resume_session_id is None and not retry.fork_session
    assert retry.answers == {"db": "sqlite"} and retry.task_ids == ["T002"]
    assert retry.lost_run_id == "o1-001-batch1"  # the run whose stream holds what the lost session did
    entry = h.ex.decision_log[-1]
    assert entry.decision == "session_lost" and entry.data is not None
    assert entry.data["level"] == "warning" and entry.data["lostSession"] == "sess-1"
    assert entry.data["lostRun"] == "o1-001-batch1" and "No conversation found" in entry.reason
    assert "next_batch" not in h.decisions[-2:] and h.ex.batches.items[0].session_id is None
    assert any(isinstance(a, Notify) and a.event == "session_lost" for a in acts)
    h.run_batch(ok(session="sess-new"))
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED and h.ex.status is S.RUNNING


@pytest.mark.parametrize("second", [lost(), bad()])
def test_a_failed_retry_of_a_lost_session_goes_the_normal_way(second: RunOutcome):
    h = st_waiting_input()
    h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    h.read()
    h.run_batch(lost(), check=False)
    assert h.decisions[-1] == "session_lost" and h.run.resumed_session_id is None
    h.run_batch(second, check=False)  # the retry resumed nothing: healing, not another retry
    assert h.decisions.count("session_lost") == 1
    assert h.decisions[-2:] == ["batch_failed", "heal_started"]
    healer = h.actions[-1]
    assert isinstance(healer, SpawnHealer) and healer.resume_session_id != "sess-1"  # the lost one is never forked


def test_a_lost_step_session_is_retried_and_a_second_failure_needs_attention():
    p = three_sections()
    p.done = set(p.task_ids)
    h = Harness(p, skip_implement=True)
    h.start()
    h.finish(ok(session="s-verify", output={"status": "needs_input", "passed": False, "questions": ["Accept?"]}))
    asked = h.ex.question_run.execution_id  # type: ignore[union-attr]
    h.cmd(AnswerCommand(answers={"Accept?": "yes"}))
    h.read()
    h.run_step(lost("No conversation found with session ID: s-verify"))
    retry = h.actions[-1]
    assert isinstance(retry, SpawnStep) and retry.step is P.VERIFY and retry.resume_session_id is None
    assert retry.answers == {"Accept?": "yes"} and retry.lost_run_id == asked
    h.run_step(lost("Session ID x is already in use"))
    assert h.ex.status is S.NEEDS_ATTENTION and h.rc.kind == "step_failed"
    assert "invalid_session" in h.rc.issue and h.decisions.count("session_lost") == 1


def test_a_healer_whose_forked_session_is_lost_runs_again_as_a_new_session_same_attempt():
    h = Harness(three_sections(), max_heal_attempts=1)
    h.start()
    h.run_batch(bad(), check=False)  # batch run o1-001-batch1 (session sess-bad) failed; healer forks it
    assert h.run.resumed_session_id == "sess-bad" and h.run.resumed_from_run == "o1-001-batch1"
    h.run_batch(lost(), check=False)
    healer = h.actions[-1]
    assert isinstance(healer, SpawnHealer) and healer.resume_session_id is None and not healer.fork_session
    assert healer.failed_run_id == "o1-001-batch1" and healer.lost_run_id == "o1-001-batch1"
    assert h.ex.batches.items[0].heal_attempts == 1 and h.decisions[-1] == "session_lost"
    h.run_batch(ok(output={"status": "fixed"}))
    assert h.ex.batches.items[0].status is BatchStatus.HEALED


def test_a_session_lost_on_a_resume_after_a_restart_is_retried_with_the_lost_runs_stream():
    h = st_batch_running()
    h.ex = h.ex.model_copy(update={"current_run": h.run.model_copy(update={"session_id": "sess-live"})})
    h.restart()
    resumed = h.read()[-1]
    assert isinstance(resumed, SpawnBatch) and resumed.resume_session_id == "sess-live"
    h.run_batch(lost(), check=False)
    retry = h.actions[-1]
    assert isinstance(retry, SpawnBatch) and retry.resume_session_id is None and retry.answers is None
    assert retry.lost_run_id == "o1-001-batch1"  # the run lost in the restart: what the session did is there


def test_a_lost_session_with_every_task_checked_completes_the_batch_without_a_run():
    h = st_waiting_input()
    h.cmd(AnswerCommand(answers={"db": "sqlite"}))
    h.read()
    h.finish(lost())
    h.project.check("T001", "T002")
    acts = h.read()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED
    assert [a.batch_index for a in acts if isinstance(a, SpawnBatch)] == [1]


def test_a_new_session_that_fails_with_invalid_session_is_not_retried():
    h = st_batch_running()
    h.run_batch(lost("Session ID x is already in use"), check=False)
    assert "session_lost" not in h.decisions and h.decisions[-2:] == ["batch_failed", "heal_started"]


# --------------------------------------------------------------------------------------------------------------
# go back


def test_go_back_resets_later_steps_and_replans():
    h = Harness(three_sections(), skip_analyze=True)
    h.start()
    h.run_batch()
    acts = h.cmd(GoBackCommand(step=P.ANALYZE))
    assert kinds(acts) == ["persist", "kill_run", "read_project"]
    assert h.ex.batches.items == [] and h.ex.current_phase is P.ANALYZE
    assert all(h.ex.step_status[s] is StepState.PENDING for s in (P.ANALYZE, P.IMPLEMENT, P.VERIFY, P.MERGE))
    acts = h.read()
    # runs analyze although skipAnalyze is set: the user asked for it
    assert isinstance(acts[-1], SpawnStep) and acts[-1].step is P.ANALYZE
    h.run_step(ok(output={"status": "completed"}))
    # the plan is recomputed from tasks.md: batch 1 is done, so it is not run again
    assert [b.section for b in h.ex.batches.items] == ["Phase 2: Core", "Phase 3: Polish"]


def test_go_back_cannot_go_forward():
    h = st_batch_running()
    with pytest.raises(IllegalTransition, match="verify comes after the current step implement"):
        h.cmd(GoBackCommand(step=P.VERIFY))


def test_a_pending_pause_is_satisfied_by_waiting_merge():
    p = three_sections()
    p.done = set(p.task_ids)
    h = Harness(p)
    h.start()
    h.cmd(PauseCommand())
    h.run_step(ok(output={"passed": True}))
    assert h.ex.status is S.WAITING_MERGE and not h.ex.pause_requested
    h.cmd(MergeCommand())
    assert isinstance(h.read()[-1], RunMerge)


def test_go_back_to_complete_is_rejected_by_the_command_model():
    with pytest.raises(ConfigError, match="go_back needs a step"):
        parse_command({"action": "go_back", "step": "complete"})


def test_parse_command_shapes():
    assert parse_command({"action": "recover", "option": "retry"}) == RecoverCommand(option=RecoveryOption.RETRY)
    answer = parse_command({"action": "answer", "answers": {"q1": "yes"}, "projectId": "p"})
    assert isinstance(answer, AnswerCommand) and answer.answers == {"q1": "yes"}
    with pytest.raises(ConfigError):
        parse_command({"action": "explode"})
    with pytest.raises(ConfigError):
        parse_command({"action": "answer", "answers": {}})


# --------------------------------------------------------------------------------------------------------------
# Stalls


def test_stall_notifies_then_kills_and_the_batch_is_healed_like_a_failure():
    h = Harness(three_sections())
    h.start()
    acts = h.stall()
    assert kinds(acts) == ["persist", "notify"] and h.run.stall_count == 1
    for _ in range(STALL_KILL_AFTER - 1):
        acts = h.stall()
    rid = h.run.execution_id
    assert KillRun(run_id=rid, reason="stalled") in acts
    h.finish(bad(failure="timeout"))
    h.read()
    assert "stalled and was killed" in h.ex.decision_log[-2].reason
    assert isinstance(h.actions[-1], SpawnHealer)


# --------------------------------------------------------------------------------------------------------------
# Host restarts


def test_restart_adopts_a_live_run_and_keeps_waiting():
    h = st_batch_running()
    rid = h.run.execution_id
    h.restart(run_alive=True)
    assert h.run.execution_id == rid and h.decisions[-1] == "reconcile_adopted"
    h.run_batch()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED


def test_restart_with_a_found_outcome_applies_it():
    h = st_batch_running()
    acts = h.restart(outcome=ok(cost=0.9))
    assert kinds(acts)[-1] == "read_project" and h.ex.total_cost_usd == pytest.approx(0.9)
    h.project.check("T001", "T002")
    h.read()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED


def test_restart_with_a_dead_run_whose_tasks_are_checked_completes_the_batch_without_rerunning_it():
    h = st_batch_running()
    h.restart()
    h.project.check("T001", "T002")
    acts = h.read()
    assert h.ex.batches.items[0].status is BatchStatus.COMPLETED
    assert acts[-1].batch_index == 1  # the next batch, never batch 0 again
    assert sum(1 for a in h.spawns() if getattr(a, "batch_index", None) == 0) == 1


def test_restart_with_a_dead_run_resumes_its_session_with_the_unchecked_tasks():
    h = st_batch_running()
    # write-ahead: the session id is known once the run reported it; simulate a run that had one
    h.ex = h.ex.model_copy(update={"current_run": h.run.model_copy(update={"session_id": "sess-live"})})
    h.restart()
    h.project.check("T001")
    acts = h.read()
    spawn = acts[-1]
    assert isinstance(spawn, SpawnBatch) and spawn.batch_index == 0 and spawn.task_ids == ["T002"]
    assert spawn.resume_session_id == "sess-live" and not spawn.fork_session
    assert h.decisions[-1] == "reconcile_resumed"


def test_restart_between_persist_and_spawn_respawns_as_new_session():
    """The state says a run was started but no process ever existed (crash after Persist, before the spawn)."""
    h = st_batch_running()
    h.restart()
    acts = h.read()
    assert (
        isinstance(acts[-1], SpawnBatch)
        and acts[-1].resume_session_id is None
        and acts[-1].task_ids == ["T001", "T002"]
    )
    assert acts[-1].run_id != h.ex.executions.implement[0]


def test_restart_with_lost_design_run_confirmed_by_artifacts():
    h = Harness(FakeProject(has_spec=False, has_plan=False))
    h.start()
    h.restart()
    designed(h)
    h.read()
    assert h.ex.step_status[P.DESIGN] is StepState.COMPLETED and h.ex.current_phase is P.IMPLEMENT
    assert any("design → " in d.reason and "confirmed on disk after a restart" in d.reason for d in h.ex.decision_log)


def test_restart_while_awaiting_the_read_rereads():
    h = Harness(FakeProject(has_spec=False, has_plan=False), verify_command="true")
    h.start()
    h.finish(ok())
    acts = h.restart(run_alive=True)  # run_alive is irrelevant: its outcome is already known
    assert kinds(acts) == ["persist", "read_project"] and h.decisions[-1] == "reconcile_finished"


def test_restart_lost_healer_with_tasks_checked_counts_as_healed():
    h = Harness(three_sections())
    h.start()
    h.run_batch(bad(), check=False)
    h.restart()
    h.project.check("T001", "T002")
    h.read()
    assert h.ex.batches.items[0].status is BatchStatus.HEALED


def test_restart_lost_healer_with_tasks_left_runs_again_without_counting_an_attempt():
    h = Harness(three_sections())
    h.start()
    h.run_batch(bad(), check=False)  # the batch fails; attempt 1 of 1 is counted, a healer is spawned
    batch = h.ex.batches.items[0]
    assert batch.heal_attempts == 1
    first_healer = h.ex.current_run.execution_id
    h.restart()  # the healer is gone without a result
    acts = h.read()
    assert h.ex.status is S.RUNNING
    healer = acts[-1]
    assert isinstance(healer, SpawnHealer) and healer.run_id != first_healer
    assert healer.failed_run_id == batch.workflow_execution_id and healer.task_ids == ["T001", "T002"]
    assert h.ex.batches.items[0].heal_attempts == 1  # the lost run was not a failed attempt
    assert h.decisions[-1] == "reconcile_resumed"


@pytest.mark.parametrize("failure", ["not_installed", "auth_failed", "permission_refused"])
def test_an_environment_failure_is_not_healed(failure: str) -> None:
    h = Harness(three_sections())
    h.start()
    h.run_batch(bad(cost=0.0, failure=failure), check=False)
    assert h.ex.status is S.NEEDS_ATTENTION
    assert not any(isinstance(a, SpawnHealer) for a in h.actions)
    assert h.ex.batches.items[0].heal_attempts == 0  # no attempt wasted
    assert "then retry" in h.rc.issue


def test_restart_with_nothing_in_flight_rereads_and_continues():
    h = st_awaiting_read()
    h.read()  # batch 0 confirmed, batch 1 spawned
    h.ex = h.ex.model_copy(update={"current_run": None})  # e.g. a state saved mid-advance by an older version
    acts = h.restart()
    assert kinds(acts) == ["persist", "read_project"]


# --------------------------------------------------------------------------------------------------------------
# MISSION §9 regressions (those not covered above by name)


def test_decision_log_survives_json_round_trips_between_steps():
    h = Harness(three_sections(), skip_analyze=True)
    h.start()
    seen = [d.model_dump() for d in h.ex.decision_log]
    for _ in range(3):
        h.run_batch()
        now = [d.model_dump() for d in h.ex.decision_log]
        assert now[: len(seen)] == seen and len(now) > len(seen)
        seen = now
    assert all(d.timestamp <= h.now for d in h.ex.decision_log)
    assert [d.timestamp for d in h.ex.decision_log] == sorted(d.timestamp for d in h.ex.decision_log)


def test_complete_is_persisted():
    h = st_completed()
    assert kinds(h.actions)[0] == "persist" and h.actions[0].version == h.ex.version
    assert h.ex.status is S.COMPLETED and h.decisions[-1] == "complete"


def test_additional_context_reaches_every_step_batch_and_healer():
    h = Harness(FakeProject(has_spec=False, has_plan=False), auto_merge=True, skip_analyze=False)
    h.project.merge_command = True
    h.start()
    h.run_step(ok(), effect=lambda: designed(h))
    h.run_step(ok(output={"status": "completed"}))
    h.run_batch(bad(), check=False)
    h.run_batch(ok(output={"status": "fixed"}))
    h.run_batch()
    h.run_batch()
    h.run_step(ok(output={"passed": True}))
    h.project.merged = True
    h.run_step(ok())
    assert h.ex.status is S.COMPLETED
    spawned = {(type(a).__name__, getattr(a, "step", None)) for a in h.spawns()}
    assert spawned == {
        ("SpawnStep", P.DESIGN),
        ("SpawnStep", P.ANALYZE),
        ("SpawnBatch", None),
        ("SpawnHealer", None),
        ("SpawnStep", P.VERIFY),
        ("SpawnStep", P.MERGE),
    }
    assert all(a.additional_context == CONTEXT for a in h.spawns())


def test_persist_precedes_every_spawn_kill_and_merge():
    h = Harness(FakeProject(has_spec=False, has_plan=False), verify_command="pytest", skip_analyze=False)
    h.start()
    h.run_step(ok(), effect=lambda: designed(h))
    h.cmd(PauseCommand())
    h.run_step(ok(output={"status": "completed"}))
    h.cmd(ResumeCommand())
    h.read()
    h.cmd(CancelCommand())
    # the harness checks Persist-first on every transition; here also that each effectful list had one
    groups: list[list[Any]] = []
    for a in h.all_actions:
        if isinstance(a, Persist):
            groups.append([])
        else:
            assert groups, "an action came before any Persist"
            groups[-1].append(a)
    assert any(isinstance(a, KillRun) for g in groups for a in g)


def test_only_a_run_end_followed_by_a_pure_read_may_join_the_next_persist():
    """One fsynced write per agent-exit-to-next-agent transition: a batch's or step's end (its outcome kept in its
    run folder for a restart) joins the next Persist; a read that runs the verify command or asks git, a killed
    run's end, a question, a start or a command is saved on its own."""
    h = Harness(FakeProject(has_spec=False, has_plan=False), verify_command="pytest", auto_merge=True)
    assert not h.start()[0].may_join_next
    assert h.finish(ok())[0].may_join_next  # design ended: a pure read follows
    designed(h)
    assert not h.read()[0].may_join_next  # the read's own transition spawns: saved before the spawn
    assert h.run_batch()[0].may_join_next is False  # (run_batch returns the read's actions)
    joined = [a for a in h.all_actions if isinstance(a, Persist) and a.may_join_next]
    assert len(joined) == 2  # design's end and batch 1's end
    while h.ex.current_run is not None and h.run.kind.value == "batch":
        h.run_batch()
    assert h.run.step is P.VERIFY
    assert not h.finish(ok(output={"status": "passed"}))[0].may_join_next  # the verify command runs in the read
    h.project.verify_exit_code = 0
    h.read()
    if h.ex.current_run is not None and h.run.step is P.MERGE:
        assert not h.finish(ok())[0].may_join_next  # a merge is confirmed by git
    h2 = st_batch_running()
    run_id = h2.run.execution_id
    h2.cmd(CancelCommand())
    assert not h2.finish(ok(), run_id=run_id)[0].may_join_next  # a killed run's end: its cost, saved now
    h3 = st_batch_running()
    out = ok(output={"status": "needs_input", "questions": [{"question": "Which DB?"}]})
    assert not h3.finish(out)[0].may_join_next  # a question pauses: nothing follows to join


def test_run_ids_are_deterministic_and_unique():
    a, b = Harness(three_sections()), Harness(three_sections())
    for h in (a, b):
        h.start()
        h.run_batch(bad(), check=False)
        h.run_batch(ok(output={"status": "fixed"}))
    assert [x.run_id for x in a.spawns()] == [x.run_id for x in b.spawns()]
    assert [x.run_id for x in a.spawns()] == ["o1-001-batch1", "o1-002-heal1", "o1-003-batch2"]


def test_run_finished_for_a_run_that_is_not_current_is_illegal():
    h = st_batch_running()
    with pytest.raises(IllegalTransition, match="is not the run in flight"):
        h.finish(ok(), run_id="o1-999-batch9")


def test_started_twice_is_illegal():
    h = st_batch_running()
    with pytest.raises(IllegalTransition, match="already started"):
        h.start()


def test_a_new_execution_after_a_failed_one_starts_normally():
    """MISSION §9: a failed run blocked every later start (the machine side: terminal means inactive)."""
    old = st_failed()
    assert not old.ex.status.is_active
    h = Harness(three_sections())
    assert kinds(h.start()) == ["persist", "spawn_batch"]


# --------------------------------------------------------------------------------------------------------------
# Properties: random event sequences never break the invariants

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MOVES = [
    *["work_done"] * 6,  # weighted toward progress so walks reach merge and completion
    *["heal_done"] * 2,
    *["merge"] * 2,
    "finish_ok",
    "finish_bad",
    "finish_fixed",
    "finish_budget",
    "finish_question",
    "finish_lost",
    "check_current",
    "read",
    "pause",
    "resume",
    "cancel",
    "merge",
    "retry",
    "skip",
    "abort",
    "go_back_design",
    "go_back_implement",
    "answer",
    "stall",
    "restart_alive",
    "restart_lost",
    "merged",
    *["diagnosed"] * 2,  # the decision helper of the oldest pending diagnosis answers
]


def _move(h: Harness, move: str) -> None:
    run = h.ex.current_run
    # the current run, else the newest spawned one (stale or killed: the machine must cope)
    rid = run.execution_id if run else (h.spawns()[-1].run_id if h.spawns() else "o1-000-none")
    if move == "finish_ok":
        h.finish(ok(cost=0.4, output={"status": "completed", "passed": True}), run_id=rid)
    elif move == "finish_bad":
        h.finish(bad(cost=0.3), run_id=rid)
    elif move == "finish_fixed":
        h.finish(ok(cost=0.2, output={"status": "fixed"}), run_id=rid)
    elif move == "finish_budget":
        h.finish(bad(cost=1.0, failure="budget_exceeded"), run_id=rid)
    elif move == "finish_question":
        h.finish(ok(output={"status": "needs_input", "questions": [{"id": "q", "question": "Which?"}]}), run_id=rid)
    elif move == "finish_lost":
        h.finish(RunOutcome(exit_ok=False, failure="invalid_session", session_id="sess-1"), run_id=rid)
    elif move == "check_current":
        if run is None:
            raise IllegalTransition(h.ex, "check")
        h.project.check(*run.task_ids)
        designed(h) if run.step is P.DESIGN else None
    elif move == "merged":
        h.project.merged = True
    elif move in ("work_done", "heal_done"):
        # the run does its work: tasks checked / artifacts written / merge done, then ends well and is confirmed
        if run is None or not run.live:
            raise IllegalTransition(h.ex, "work_done")
        h.project.check(*run.task_ids)
        if run.step is P.DESIGN:
            designed(h)
        h.project.merged = run.step is P.MERGE
        output = {"status": "fixed" if move == "heal_done" else "completed", "passed": True}
        h.finish(ok(cost=0.4, output=output))
        h.read()
    elif move == "answer":
        h.cmd(AnswerCommand(answers={"q": "that one"}))
    elif move in ("go_back_design", "go_back_implement"):
        h.cmd(GoBackCommand(step=P.DESIGN if move == "go_back_design" else P.IMPLEMENT))
    elif move == "restart_alive":
        h.restart(run_alive=True)
    elif move == "diagnosed":
        if not h.ex.pending_diagnoses:
            raise IllegalTransition(h.ex, "diagnosis_finished")
        pending = h.ex.pending_diagnoses[0]
        h.diagnosed(next(a for a in h.all_actions if isinstance(a, Diagnose) and a.run_id == pending))
    elif move == "stall":
        h.stall(run_id=rid)
    else:
        EV[move](h)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(MOVES), min_size=1, max_size=60), st.booleans(), st.integers(0, 2))
def test_random_event_sequences_keep_the_invariants(moves, designed_first, heal_attempts):
    project = three_sections() if designed_first else FakeProject(has_spec=False, has_plan=False)
    h = Harness(project, max_heal_attempts=heal_attempts, budget=BudgetConfig(max_per_batch=2.0, max_total=6.0))
    h.start()
    healed: set[str] = set()
    spawned_batches: dict[str, int] = {}
    for move in moves:
        before_version = h.ex.version
        was_terminal = h.ex.status.is_terminal
        try:
            _move(h, move)
        except (IllegalTransition, ConfigError):
            continue
        ex = h.ex
        if move in ("merged", "check_current"):
            continue
        expected_bumps = {2} if move in ("work_done", "heal_done") else {0, 1}  # work_done = finish + read
        assert ex.version - before_version in expected_bumps
        # a live run only while running; nothing runs once terminal
        if ex.current_run is not None and ex.current_run.live:
            assert ex.status is S.RUNNING
        if ex.status.is_terminal:
            assert ex.current_run is None or not ex.current_run.live
        if was_terminal:
            assert not any(isinstance(a, SPAWN_ACTIONS) for a in h.actions)
        # at most one spawn per transition, and then the run is current
        spawns = [a for a in h.actions if isinstance(a, SPAWN_ACTIONS)]
        assert len(spawns) <= 1
        # a retry of a lost session resumes nothing (so it is never retried again)
        assert all(getattr(a, "lost_run_id", None) is None or a.resume_session_id is None for a in spawns)
        if spawns:
            assert ex.current_run is not None and ex.current_run.execution_id == spawns[0].run_id
        # healed stays healed (until go_back replans); completed batches are not run again
        if move.startswith("go_back"):
            healed.clear()
            spawned_batches.clear()
            continue
        for b in ex.batches.items:
            key = f"{b.section}"
            if key in healed:
                assert b.status is BatchStatus.HEALED
            if b.status is BatchStatus.HEALED:
                healed.add(key)
        for a in spawns:
            if isinstance(a, SpawnBatch):
                item = ex.batches.items[a.batch_index]
                assert set(a.task_ids) <= set(item.task_ids) and not (set(a.task_ids) & h.project.done)
        assert ex.total_cost_usd >= 0 and ex.healing_cost_usd <= ex.total_cost_usd + 1e-9
        # diagnoses: asked within the decision budget, each pending once, none left dangling, their cost counted
        assert ex.decision_cost_usd <= ex.total_cost_usd + 1e-9
        assert len(set(ex.pending_diagnoses)) == len(ex.pending_diagnoses)
        for a in h.actions:
            if isinstance(a, Diagnose) and a.start:
                assert 0 < a.max_budget_usd <= ex.config.budget.decision_budget
                assert a.run_id in ex.pending_diagnoses
        d = ex.recovery_context.diagnosis if ex.recovery_context else None
        if d is not None and d.status == "pending":
            assert d.run_id in ex.pending_diagnoses
        # decision log only grows
        assert [d.decision for d in ex.decision_log[: len(h.decisions)]] == h.decisions
