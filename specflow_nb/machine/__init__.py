"""The orchestration rules as a pure function: ``transition(execution, event) -> (execution', actions)``.

Rule 1: everything that affects the orchestration's transitions lives here. The orchestrator feeds events and
performs the actions it gets back; it decides nothing. No I/O, no clock (time arrives in ``event.at``), no
randomness (run ids are derived: ``{execution.id}-{run_seq:03d}-{label}``).

Layout (h11's split: events, commands and actions apart from the rules; the rules split by concern)
-----------------------------------------------------------------------------------------------
``base`` (the frozen base), ``decisions`` (the ``Decision`` enum and the fixed messages), ``commands`` (what users
send, ``parse_command``), ``events`` (what the orchestrator feeds in, ``ProjectSnapshot``), ``actions`` (what it
performs), ``table`` (``LEGAL_STATUSES``, ``IllegalTransition``, ``allowed_commands``, ``go_back_targets``), ``tx``
(a transition in progress), and the rules: ``forward`` (start, the walk, batches), ``outcomes`` (runs, dual
confirmation, questions, stalls), ``recovery`` (user commands), ``healing``, ``budget``, ``spawning``, ``stopping``,
``diagnosis``, ``reconcile`` (restart, takeover, rebuild). ``transition`` dispatches events to them. Every public
name is importable from ``specflow_nb.machine``.

Theory of operation
-------------------
An orchestration walks the steps design → analyze → implement (one agent run per batch) → verify → merge. At most
one agent run is in flight (``execution.current_run``); while one is, the status is ``running``. A step or batch
completes only under *dual confirmation*: its run finished well (``RunFinished`` with exit ok and ``is_error`` false)
AND the project, re-read from disk afterwards (``ReadProject`` action → ``ProjectRead`` event), confirms the work:
design wrote spec.md, plan.md and a tasks.md with a task; analyze's structured output says ``completed``; every task
of the batch is checked in tasks.md; verify's output says ``passed`` and the configured verifyCommand exited 0; git
shows the merge. So a run's life is: Spawn… → ``RunFinished`` (cost added, outcome kept) → ``ReadProject`` →
``ProjectRead`` (confirmed → next; not → heal or needs_attention).

``ProjectRead`` with no run pending is "look at the project and do the next thing" (``_advance``): resume, merge,
recover and go-back all re-read the project first, so user edits made meanwhile count. The orchestrator must perform
a ``ReadProject`` action and feed its ``ProjectRead`` before any other event of that execution.

Statuses: ``running`` (a run in flight or a read pending), ``paused`` (by request, between batches, or waiting for
answers), ``waiting_merge`` (verify passed; autoMerge off or the phase has a USER GATE), ``needs_attention`` (a human
must choose retry/skip/abort from ``recovery_context``), and the terminal ``completed``/``failed``/``cancelled``.
Which event is legal in which status is the table ``LEGAL_STATUSES``; an event outside it, or one failing a guard
(e.g. a ``RunFinished`` for a run that is not current), raises ``IllegalTransition`` (HTTP 409) naming both.

Invariants (each has a test):
- ``transition`` never mutates its input; every change bumps ``version`` by one and sets ``updated_at = event.at``; an
  event that changes nothing returns no actions.
- Write-ahead: whenever there are actions, the first is ``Persist`` (save the returned execution), so every spawn,
  kill or merge is on disk before it happens; ``complete`` is persisted like any other change.
- The machine is the only source of Spawn actions; a spawn never carries ``max_budget_usd <= 0`` (nothing left →
  needs_attention "budget reached"). Steps get ``min(maxPerBatch, total left)``, batches ``min(maxPerBatch - batch
  spent, total left)``, healers ``min(healingBudget - healing spent, total left)``. Every run's ``cost_usd`` (failed
  ones too) is added to ``total_cost_usd``. A run that ends with failure ``budget_exceeded`` stops in
  needs_attention (no healing). Budget exhaustion is detected from RunFinished and before each spawn; there is no
  separate "budget exceeded" event.
- One batch at a time, in plan order; the plan is taken from the ``ProjectRead`` that enters implement. An empty plan
  completes implement only when tasks.md has tasks and all are done; otherwise needs_attention (MISSION §9).
  A batch is spawned only with its tasks not yet checked; a batch whose tasks are all checked is completed without a
  run, so a completed batch never runs again.
- Healing: a failed batch (bad run or tasks left) with autoHeal on and ``heal_attempts < maxHealAttempts`` counts the
  attempt, then spawns a healer resuming + forking the batch's newest session, limited to the remaining tasks. Healed
  only when the healer said ``fixed`` and tasks.md confirms; ``healed`` is never overwritten.
- ``additional_context`` rides on every Spawn action, whatever the step.

Decisions made here (documented for hosts):
- One fsynced write per agent transition: a run's end whose only follow-up is a pure project read (no verify
  command, no git) may be saved together with the next transition's state (``Persist.may_join_next``, decided by
  ``transition.may_join_next``); nothing is spawned, killed or merged in between. A crash there loses nothing:
  the record still shows the run in flight and a restart applies the outcome its run folder holds
  (``reconcile_finished``).
- pause = finish the current run (step or batch, healer included), then pause: status stays ``running`` with
  ``pause_requested`` until then; it never kills. ``resume`` in ``running`` withdraws a pending pause request.
- cancel kills the live run now; go_back kills it too. Killed runs' later ``RunFinished`` still adds their cost.
- Questions: a run that ends well with structured output ``{"status": "needs_input", "questions": [...]}`` puts the
  orchestration in ``paused`` with ``waiting_for_input`` and ``questions``; only ``answer`` (or cancel/go_back)
  leaves it: the project is re-read first, then the same run kind resumes (not forks) the same session with the
  answers, limited to the tasks still unchecked (a batch with none left completes without a run).
- Verify and merge (an agent merge step) ask questions like every step (structured output ``status:
  "needs_input"``): a needs_input verify is neither passed nor failed; it waits for answers, then resumes its
  session with them, and the verifyCommand runs on the final pass only. ``needs_input`` without a question is not
  confirmed (needs_attention, retry).
- Lost sessions: a run that resumed or forked a session (answer, healer, reconcile after a restart) and ended with
  failure ``invalid_session`` logs ``session_lost`` (level warning) and is respawned ONCE as a new session: same
  kind and step or batch, the tasks still unchecked (none left: the batch is done), the same answers, the heal
  attempt not counted again, and ``lost_run_id`` naming the run whose stream holds what the lost session did (the
  orchestrator puts its last messages, ≤ 3,000 characters, redacted, in the prompt). The retry resumes nothing, so
  any failure of it goes the normal way (healing for a batch, else needs_attention). A lost session is never
  recorded as a batch's newest session.
- USER GATE: a phase with a user gate always stops in ``waiting_merge`` after verify (even with autoMerge); the
  ``merge`` command is the user's "gate passed".
- Merge: the built-in git merge is a ``RunMerge`` action unless the project has its own merge command (an agent
  step run). The orchestrator reports either with ``RunFinished``.
- Recovery: ``retry`` re-runs the failed batch/step (a batch only with its unchecked tasks; heal attempts are not
  reset, so a retried batch that fails again goes to needs_attention unless attempts remain); ``skip`` leaves a
  batch ``failed`` and moves on, or marks a step ``skipped`` and moves on (a failed verify skipped proceeds to
  merge); merge problems offer only retry/abort; budget stops offer retry/abort (and skip for a batch). ``resume``
  and ``recover`` may carry a new ``budget`` (how a user raises ``maxTotal`` after the budget stop).
- Stalls: each ``RunStalled`` logs ``stalled`` and notifies; the second for the same run kills it
  (``KillRun(reason="stalled")``) and its ``RunFinished`` then goes the normal failure way (healing for a batch).
- Restart (``HostRestarted``, per active execution): a live run is adopted (``reconcile_adopted``); a dead run's
  found outcome is applied as ``RunFinished`` (``reconcile_finished``); a dead run without one is marked lost and the
  project re-read: work confirmed on disk completes it, otherwise the run is respawned resuming its session
  (``reconcile_resumed``). A lost healer whose tasks are all checked counts as ``healed``.
- Commands that travel through an owner's inbox carry an id: a ``UserCommand`` whose ``command_id`` is in
  ``applied_command_ids`` changes nothing (applied at most once); an applied one is added (the last 200 kept).
- Every ``Notify`` is also kept in the record (``notifications``, numbered by ``notification_seq``, the last 50):
  hosts announce from there, so a client that skipped versions still hears of each event once.
- Takeover: ``HostRestarted`` with ``took_over_from`` logs ``takeover`` (who, and why the previous owner is gone),
  in every active status, then reconciles as after a restart.
- go_back {step}: legal in every active status; resets that step and the later ones (and the batch plan when the
  step is implement or earlier), then runs the step even if the config skips it.
- What a start will run (``planned_steps``, for the estimate before start): the steps the skip flags and smart
  config leave, merge always (an agent step with the project's merge command, else the built-in git merge).

Diagnosis when a person must decide (issue 15.5; the functions under "diagnosis" below):
- Entering needs_attention with a failed run to read and ``decisionBudget > 0`` numbers the recovery context
  (``seq``) and asks a read-only helper for a diagnosis: a ``Diagnose`` action (after Persist, like every action)
  naming the failed run, the context's seq and ``max_budget_usd = min(decisionBudget, maxTotal left)``; the context
  holds ``diagnosis`` (status pending) and ``pending_diagnoses`` the helper's run id. ``decisionBudget`` 0 asks for
  none. A stop without a failed run (a budget stop before a spawn, no tasks) has nothing to read: none. A budget
  stop gets one only while money is left of maxTotal (a per-batch stop usually has; a maxTotal stop has none: the
  log says so).
- ``DiagnosisFinished`` (legal in every status, only for a pending helper) adds its cost to ``total_cost_usd`` and
  ``decision_cost_usd``, always. It is kept (status ready, or failed with the helper's error) only when the
  orchestration still needs attention for that same context (same seq); otherwise the person already chose: it is
  logged as late and ignored. A suggested option the context does not offer is dropped (the text stays).
- The helper never holds ``current_run``: it runs beside the stopped orchestration, and Retry/Skip/Abort do not
  wait for it.
- Restart (``HostRestarted``) with diagnoses pending: each is asked again with the same run id (the orchestrator
  adopts the helper if it still runs, or reads its result if it ended meanwhile); only the current context's one is
  started anew when it never started, a stale one is then reported as lost. Logged as ``diagnosis``.
"""

from specflow_nb.machine.actions import (
    SPAWN_ACTIONS,
    Action,
    Diagnose,
    KillRun,
    Notify,
    Persist,
    ReadProject,
    RunMerge,
    SpawnBatch,
    SpawnHealer,
    SpawnStep,
)
from specflow_nb.machine.base import Frozen
from specflow_nb.machine.budget import healer_budget
from specflow_nb.machine.commands import (
    COMMAND_ADAPTER,
    AnswerCommand,
    CancelCommand,
    Command,
    GoBackCommand,
    MergeCommand,
    PauseCommand,
    RecoverCommand,
    ResumeCommand,
    parse_command,
)
from specflow_nb.machine.decisions import UNHEALABLE_FAILURES, Decision
from specflow_nb.machine.events import (
    DiagnosisFinished,
    Event,
    HostRestarted,
    ProjectRead,
    ProjectSnapshot,
    RunFinished,
    RunStalled,
    Started,
    StateRebuilt,
    UserCommand,
    all_tasks_done,
    design_complete,
)
from specflow_nb.machine.forward import LOG_PLAN_IDS, planned_steps
from specflow_nb.machine.healing import heal_confirmed
from specflow_nb.machine.outcomes import STALL_KILL_AFTER
from specflow_nb.machine.table import (
    GO_BACK_OFFERED,
    LEGAL_STATUSES,
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    IllegalTransition,
    allowed_commands,
    event_name,
    go_back_targets,
)
from specflow_nb.machine.transition import APPLIED_IDS_KEPT, NOTIFICATIONS_KEPT, new_execution, transition

__all__ = [
    "APPLIED_IDS_KEPT",
    "COMMAND_ADAPTER",
    "GO_BACK_OFFERED",
    "LEGAL_STATUSES",
    "LOG_PLAN_IDS",
    "NOTIFICATIONS_KEPT",
    "SETTLED_STATUSES",
    "SPAWN_ACTIONS",
    "STALL_KILL_AFTER",
    "TERMINAL_STATUSES",
    "UNHEALABLE_FAILURES",
    "Action",
    "AnswerCommand",
    "CancelCommand",
    "Command",
    "Decision",
    "Diagnose",
    "DiagnosisFinished",
    "Event",
    "Frozen",
    "GoBackCommand",
    "HostRestarted",
    "IllegalTransition",
    "KillRun",
    "MergeCommand",
    "Notify",
    "PauseCommand",
    "Persist",
    "ProjectRead",
    "ProjectSnapshot",
    "ReadProject",
    "RecoverCommand",
    "ResumeCommand",
    "RunFinished",
    "RunMerge",
    "RunStalled",
    "SpawnBatch",
    "SpawnHealer",
    "SpawnStep",
    "Started",
    "StateRebuilt",
    "UserCommand",
    "all_tasks_done",
    "allowed_commands",
    "design_complete",
    "event_name",
    "go_back_targets",
    "heal_confirmed",
    "healer_budget",
    "new_execution",
    "parse_command",
    "planned_steps",
    "transition",
]
