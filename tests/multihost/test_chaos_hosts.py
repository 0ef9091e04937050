"""Chaos among three hosts on one project: two Jupyter servers and a terminal engine (``watch --local``), SIGKILLed
at random moments while commands arrive through random hosts.

Asserted for every trial:

* the phase completes, every task checked;
* every agent run was started once per attempt: the demo agent's log has exactly one process per run folder that
  holds a started run (``leader.json``), so no attempt ran twice and nothing ran outside an attempt;
* the decision log on disk before each kill, and every state a host acknowledged a command with, is a prefix of the
  final log (nothing acknowledged is lost, history is never rewritten);
* every record parses, none was set aside, there is one orchestration, and it had one owner at a time (the owner
  record's epoch counts the takeovers the log reports).

3 trials in CI; ``SPECFLOW_LONG=1`` runs 20. ``SPECFLOW_CHAOS_SEED`` picks another seed.
"""

from __future__ import annotations

import os
import random
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import LiveServer, corrupt_files, read_states, run_log, state_files, tasks_file
from specflow_nb.tasks import parse_tasks

from .conftest import DEMO_AGENT, Hosts, decisions

LONG = os.environ.get("SPECFLOW_LONG", "") not in ("", "0")
SEED = int(os.environ.get("SPECFLOW_CHAOS_SEED", "20261130"))
TRIALS = 20 if LONG else 3
KILLS = 3 if LONG else 2
FAST = {"skipDesign": True, "skipAnalyze": True, "skipVerify": True, "autoMerge": True}


def key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (entry["timestamp"], entry["decision"], entry["reason"])


class Trial:
    def __init__(self, tmp: Path, rng: random.Random) -> None:
        self.hosts = Hosts(tmp, sections=4, per=2)
        self.rng = rng
        self.prefixes: list[list[tuple[str, str, str]]] = []
        self.acked: list[list[tuple[str, str, str]]] = []
        self.kills: list[str] = []
        self.term: Any = None

    # -- the three hosts

    def servers(self) -> list[LiveServer]:
        return [s for s in self.hosts.servers if s.alive()]

    def terminal(self) -> None:
        """(Re)start the terminal engine while the phase runs (it leaves by itself once the phase rests)."""
        if self.term is not None and self.term.poll() is None:
            return
        states = read_states(self.hosts.project)
        if states and states[0]["status"] != "running":
            return
        self.term = self.hosts.cli_background("orchestrate", "watch", "--local", "--json", "--follow")

    def kill_one(self) -> None:
        victims: list[Any] = [*self.servers()]
        if self.term is not None and self.term.poll() is None:
            victims.append(self.term)
        victim = self.rng.choice(victims)
        if isinstance(victim, LiveServer):
            self.kills.append(victim.base.name)
            victim.kill()
            time.sleep(self.rng.uniform(0.0, 1.0))
            victim.start()
        else:
            self.kills.append("terminal")
            os.killpg(victim.pid, 9)
            victim.wait(timeout=10)
            self.term = None
            time.sleep(self.rng.uniform(0.0, 1.0))
            self.terminal()

    def command(self, action: str) -> bool:
        """Send a command through a random live server; remember the state it acknowledged."""
        srv = self.rng.choice(self.servers())
        try:
            r = self.hosts.post(srv, f"workflow/orchestrate/{action}", {})
        except Exception:  # the server was just killed: nothing acknowledged
            return False
        if r.status_code == 200:
            self.acked.append([key(e) for e in r.json()["orchestration"]["decisionLog"]])
            return True
        assert r.status_code == 409, r.text  # refused (wrong state, or no owner answered in time): never a 5xx
        return False

    def snapshot(self) -> None:
        states = read_states(self.hosts.project)  # every record parses at every moment
        if states:
            self.prefixes.append([key(e) for e in states[0]["decisionLog"]])

    # -- one trial

    def run(self) -> dict[str, Any]:
        h = self.hosts
        h.server("a")
        h.server("b")
        agent = shlex.join(DEMO_AGENT)
        r = h.post(self.rng.choice(self.servers()), "workflow/orchestrate", {"config": {**FAST, "agentCommand": agent}})
        assert r.status_code == 201, r.text
        self.terminal()
        for _ in range(self.rng.randint(1, KILLS)):
            time.sleep(self.rng.uniform(0.2, 2.5))
            self.snapshot()
            if self.rng.random() < 0.5 and self.command("pause"):
                time.sleep(self.rng.uniform(0.0, 1.0))
            self.kill_one()
        deadline = time.monotonic() + 180
        while True:
            state = read_states(h.project)[0]
            if state["status"] == "completed" and not state["killedRunIds"]:
                return state
            assert state["status"] in ("running", "paused"), (state["status"], state.get("errorMessage"))
            assert time.monotonic() < deadline, f"phase not done; last {state['status']} v{state['version']}"
            if state["status"] == "paused" and not state["pauseRequested"]:
                self.command("resume")
            self.terminal()
            time.sleep(0.3)


@pytest.mark.timeout(3600 if LONG else 600)
def test_random_kills_among_three_hosts_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    for trial_no in range(TRIALS):
        trial = Trial(tmp_path / f"t{trial_no}", rng)
        try:
            final = trial.run()
        finally:
            trial.hosts.stop()
        h = trial.hosts
        where = f"trial {trial_no} (seed {SEED}, kills {trial.kills})"
        parsed = parse_tasks(tasks_file(h.project).read_text(encoding="utf-8"))
        assert all(t.done for t in parsed.tasks), where
        # One agent process per started attempt (run folder): none twice, none outside an attempt.
        folders = [p for p in (h.project / ".specflow" / "workflows").iterdir() if (p / "leader.json").exists()]
        assert len(run_log(h.log)) == len(folders), (where, len(run_log(h.log)), [p.name for p in folders])
        # Nothing on disk before a kill, and nothing acknowledged, is missing from the final log.
        final_log = [key(e) for e in final["decisionLog"]]
        for prefix in trial.prefixes + trial.acked:
            assert final_log[: len(prefix)] == prefix, (where, len(prefix), len(final_log))
        # Every record parses; none set aside; one orchestration; one owner at a time.
        assert corrupt_files(h.project) == [] and len(state_files(h.project)) == 1, where
        owner = h.owner()
        assert owner is not None and owner.epoch == 1 + decisions(final).count("takeover"), (where, owner)
        for srv in h.servers:
            log = srv.log.read_text(errors="replace")
            assert "Traceback" not in log and " 500 " not in log, (where, log[-3000:])
