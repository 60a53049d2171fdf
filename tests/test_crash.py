"""The daemon killed with SIGKILL at random points, then restarted, loses nothing.

A real `spaces-scheduler run` on a SQLite store restarts 300 Spaces every
minute against the simulated Hub, each Space at its own jitter within the
minute and each build taking a second, so that runs are always in flight when
the kill comes. After 30 kills (`SPACES_SCHEDULER_CRASH_CYCLES` asks for more)
one last daemon runs until the dead claims' lease passes and stops cleanly.
Then, from the store, the printed lines and the simulator's request log:

- every run line a daemon printed is in the store with that outcome;
- no restart was sent twice for one (schedule, Space, slot), and every run
  recorded `ok` sent exactly one;
- every run a kill interrupted is recorded `abandoned`, none is left claimed;
- every slot since the schedule was first seen has exactly one row: what came
  due while the daemon was down was caught up at the restart.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemons import (
    Daemon,
    actions,
    config_text,
    match_actions,
    printed_outcomes,
    register_early,
    start_daemon,
    stored_outcomes,
    world,
)
from spaces_scheduler.hubsim import HubSim
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.plan import jitter_offset, parse_cron, slots_between
from spaces_scheduler.sharing import HANDOVER
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import RunRecord, Store

SPACES = [f"crash/space-{n:03d}" for n in range(300)]
LEASE = timedelta(seconds=3)
SECOND = timedelta(seconds=1)
CYCLES = int(os.environ.get("SPACES_SCHEDULER_CRASH_CYCLES", "30"))
# How long each daemon lives before its SIGKILL: from mid-start-up to well
# into its runs (the first claims come about 0.5 s after the start).
LIFE = (0.6, 2.2)
# The last daemon lives long enough to run the slots that came due while it
# started, those its dead predecessors were preferred for included.
FINAL_LIFE = 5.0


@pytest.mark.timeout(60 + 4 * CYCLES)
def test_kills_at_random_points_lose_nothing_and_run_nothing_twice(
    tmp_path: Path, start_sim: Callable[[dict[str, object]], HubSim]
) -> None:
    seed = int(os.environ.get("SPACES_SCHEDULER_CRASH_SEED", time.time_ns() % 10**6))
    chance = random.Random(seed)
    sim = start_sim(world(SPACES, build_seconds=0.3))
    url = sim.url
    config = config_text(SPACES, lease=f"{LEASE.seconds}s", jitter="59s")
    state = f"sqlite:///{tmp_path}/state.db"
    first_seen = register_early(config, state)
    log = tmp_path / "daemons.log"

    def start() -> Daemon:
        return start_daemon(tmp_path, config, state=state, hub_url=url, log=log)

    killed = []
    for _ in range(CYCLES):
        daemon = start()
        time.sleep(chance.uniform(*LIFE))
        daemon.kill()
        killed.append(daemon)

    last = start()
    dead = tuple(daemon.owner_prefix for daemon in killed)
    _wait_for_expiry(state, dead, timeout=4 * LEASE.total_seconds())
    time.sleep(FINAL_LIFE)  # what came due at its start has been run
    assert last.stop() == 0, log.read_text()[-3000:]
    ended = datetime.now(UTC)

    store = open_store(state, config_path=None)
    try:
        runs = store.runs(limit=1_000_000)
    finally:
        store.close()
    context = f"seed {seed}; daemon log in {log}"

    _check_printed_lines_are_recorded([*killed, last], runs, context)
    _check_each_slot_acted_at_most_once(runs, sim.requests(), context)
    _check_interrupted_runs_are_abandoned(killed, runs, context)
    # A run another (dead) daemon was preferred for waits the hand-over delay.
    _check_every_slot_has_one_row(runs, first_seen, ended - HANDOVER - 2 * SECOND)


def _wait_for_expiry(state: str, dead: tuple[str, ...], *, timeout: float) -> None:
    """Wait until the killed daemons hold no claim: their leases passed."""
    store = open_store(state, config_path=None)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not [run for run in _claimed(store) if run.owner.startswith(dead)]:
                return
            time.sleep(0.25)
    finally:
        store.close()
    raise AssertionError("claims of killed daemons were never recorded abandoned")


def _claimed(store: Store) -> list[RunRecord]:
    return [run for run in store.runs(limit=1_000_000) if run.outcome is None]


def _check_printed_lines_are_recorded(
    daemons: list[Daemon], runs: list[RunRecord], context: str
) -> None:
    printed = printed_outcomes(line for d in daemons for line in d.lines)
    missing = printed - stored_outcomes(runs)
    assert printed, f"no daemon printed a run line ({context})"
    assert not missing, f"printed but not recorded: {dict(missing)} ({context})"


def _check_each_slot_acted_at_most_once(
    runs: list[RunRecord], requests: list[dict[str, object]], context: str
) -> None:
    owned, orphans = match_actions(runs, actions(requests))
    by_id = {run.id: run for run in runs}
    twice = {by_id[i].key: times for i, times in owned.items() if len(times) > 1}
    silent_ok = [
        run.key
        for run in runs
        if run.outcome is OutcomeKind.OK and len(owned.get(run.id, [])) != 1
    ]
    assert not orphans, f"restarts sent with no claim: {orphans[:5]} ({context})"
    assert not twice, f"restarted twice for one slot: {list(twice)[:5]} ({context})"
    assert not silent_ok, f"ok without one restart: {silent_ok[:5]} ({context})"


def _check_interrupted_runs_are_abandoned(
    killed: list[Daemon], runs: list[RunRecord], context: str
) -> None:
    prefixes = tuple(daemon.owner_prefix for daemon in killed)
    of_killed = [run for run in runs if run.owner.startswith(prefixes)]
    outcomes = Counter(run.outcome for run in of_killed)
    abandoned = [run for run in of_killed if run.outcome is OutcomeKind.ABANDONED]

    assert None not in outcomes, f"left claimed: {outcomes} ({context})"
    assert outcomes[OutcomeKind.OK] > 0, f"the killed daemons ran nothing ({context})"
    # Each kill leaves the runs it interrupted; with runs always in flight,
    # most kills do.
    assert len(abandoned) >= len(killed) // 3, f"{outcomes} ({context})"
    assert all(run.reason == "lease expired" for run in abandoned), context
    for run in abandoned:
        killer = next(d for d in killed if run.owner.startswith(d.owner_prefix))
        assert killer.killed_at is not None and run.claimed_at < killer.killed_at


def _check_every_slot_has_one_row(
    runs: list[RunRecord], first_seen: datetime, until: datetime
) -> None:
    spec = parse_cron("* * * * *")
    slots = slots_between(spec, "UTC", first_seen, until, limit=1000)
    rows = Counter((run.key.space, run.key.slot) for run in runs)
    jitter = timedelta(seconds=59)
    expected = {
        (space, slot.utc)
        for space in SPACES
        for slot in slots
        if slot.utc + jitter_offset("refresh", space, jitter) <= until
    }

    assert expected - rows.keys() == set(), "slots with no row"
    assert [key for key, count in rows.items() if count > 1] == []
