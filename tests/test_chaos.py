"""Three daemons on one PostgreSQL store, one at a time killed and restarted.

Three real `spaces-scheduler run` processes share a PostgreSQL schema of their
own and restart 200 Spaces every minute (each at its own jitter) against the
simulated Hub. For about two and a half minutes
(`SPACES_SCHEDULER_CHAOS_SECONDS` asks for longer) a random daemon is killed
with SIGKILL every 8-20 s and started again a few seconds later. Then, from
the simulator's request log and the store:

- no restart was sent twice for one (schedule, Space, slot);
- every slot since the schedule was first seen has exactly one row: it ran, or
  is recorded with a reason (abandoned with its lease, skipped busy, ...);
- after each kill, every run that came due was claimed, and its restart sent,
  within the lease plus one tick of the daemons' loop.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import test_store
from daemons import (
    Daemon,
    actions,
    config_text,
    match_actions,
    register_early,
    start_daemon,
    world,
)
from spaces_scheduler.hubsim import HubSim
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.plan import jitter_offset, parse_cron, slots_between
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import RunRecord

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

postgres_server = test_store.postgres_server

SPACES = [f"chaos/space-{n:03d}" for n in range(200)]
LEASE = timedelta(seconds=6)
TICK = LEASE / 3  # the daemons expire dead claims and look at peers this often
SECONDS = float(os.environ.get("SPACES_SCHEDULER_CHAOS_SECONDS", "150"))
BETWEEN_KILLS = (8.0, 20.0)
DOWN_FOR = (1.0, 4.0)


@pytest.fixture
def schema_url(postgres_server: str) -> Iterator[str]:
    """Yield the URL of a fresh schema of the test database, dropped afterwards."""
    name = f"chaos_{uuid.uuid4().hex[:10]}"
    test_store.admin_execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{postgres_server}?options=-csearch_path%3D{name}"
    finally:
        test_store.admin_execute(f"DROP SCHEMA {name} CASCADE")


@pytest.mark.timeout(SECONDS + 180)
def test_three_daemons_killed_in_turn_run_every_slot_at_most_once(
    tmp_path: Path,
    schema_url: str,
    start_sim: Callable[[dict[str, object]], HubSim],
) -> None:
    seed = int(os.environ.get("SPACES_SCHEDULER_CHAOS_SEED", time.time_ns() % 10**6))
    chance = random.Random(seed)
    sim = start_sim(world(SPACES, build_seconds=0.3))
    config = config_text(SPACES, lease=f"{LEASE.seconds}s", jitter="59s")
    first_seen = register_early(config, schema_url)
    log = tmp_path / "daemons.log"

    def start() -> Daemon:
        return start_daemon(
            tmp_path, config, state=schema_url, hub_url=sim.url, log=log
        )

    slots: list[Daemon] = [start() for _ in range(3)]
    kills: list[datetime] = []
    everyone = list(slots)
    ends = time.monotonic() + SECONDS
    while time.monotonic() < ends - 25:
        time.sleep(chance.uniform(*BETWEEN_KILLS))
        victim = chance.randrange(3)
        slots[victim].kill()
        assert slots[victim].killed_at is not None
        kills.append(slots[victim].killed_at)
        time.sleep(chance.uniform(*DOWN_FOR))
        slots[victim] = start()
        everyone.append(slots[victim])
    time.sleep(max(0.0, ends - time.monotonic()))

    for daemon in slots:
        assert daemon.stop() == 0, log.read_text()[-3000:]
    ended = datetime.now(UTC)
    store = open_store(schema_url, config_path=None)
    try:
        store.expire(ended + LEASE)  # what the last kill left, as a survivor would
        runs = store.runs(limit=1_000_000)
    finally:
        store.close()
    context = f"seed {seed}; {len(kills)} kills; daemon log in {log}"

    owned = _check_each_slot_acted_at_most_once(runs, sim.requests(), context)
    _check_every_slot_has_one_row(runs, first_seen, ended - 2 * TICK, context)
    _check_service_resumes_quickly_after_kills(runs, owned, kills, context)
    assert len(kills) >= 3, context
    assert len({run.owner for run in runs if run.outcome is OutcomeKind.OK}) >= 3


def _check_each_slot_acted_at_most_once(
    runs: list[RunRecord], requests: list[dict[str, object]], context: str
) -> dict[int, list[datetime]]:
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
    return owned


def _check_every_slot_has_one_row(
    runs: list[RunRecord], first_seen: datetime, until: datetime, context: str
) -> None:
    spec = parse_cron("* * * * *")
    slots = slots_between(spec, "UTC", first_seen, until, limit=1000)
    rows = {(run.key.space, run.key.slot): run for run in runs}
    jitter = timedelta(seconds=59)
    expected = {
        (space, slot.utc)
        for space in SPACES
        for slot in slots
        if slot.utc + jitter_offset("refresh", space, jitter) <= until
    }

    missing = sorted(expected - rows.keys())
    assert not missing, f"slots with no row: {missing[:5]} ({context})"
    assert len(rows) == len(runs), "a key recorded twice"
    unexplained = [
        run.key
        for run in runs
        if run.outcome not in (OutcomeKind.OK, None) and not run.reason
    ]
    assert not unexplained, f"recorded without a reason: {unexplained[:5]}"
    assert all(run.outcome is not None for run in runs), "left claimed"


def _check_service_resumes_quickly_after_kills(
    runs: list[RunRecord],
    owned: dict[int, list[datetime]],
    kills: list[datetime],
    context: str,
) -> None:
    """Every run due in the minute after a kill acted (or was skipped) in time."""
    bound = LEASE + TICK
    worst = timedelta(0)
    for killed_at in kills:
        after = [r for r in runs if killed_at <= r.due_at < killed_at + 60 * SECOND]
        for run in after:
            sent = owned.get(run.id)
            acted = sent[0] if sent else run.claimed_at  # a skip acts on nothing
            worst = max(worst, acted - run.due_at)
    assert worst < bound, f"a run waited {worst} after a kill ({context})"


SECOND = timedelta(seconds=1)
