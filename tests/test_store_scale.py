"""The reads a daemon makes every tick stay fast with 100,000 runs over 10,000
(schedule, Space) pairs. Measured on this machine: about 0.04 s for
`last_slots()` and 0.2 s for `latest_runs()` on either backend; the bounds below
leave room for a slow CI machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import test_store
from spaces_scheduler.store import schema
from test_store import T0, Database

database = test_store.database
postgres_server = test_store.postgres_server

PAIRS = 10_000
SLOTS = 10


def fill(database: Database) -> None:
    """Insert PAIRS x SLOTS finished runs straight into the table."""
    store = database.open()
    rows = [
        {
            "schedule": f"schedule-{pair % 100}",
            "space": f"org/space-{pair // 100}",
            "slot": T0 + timedelta(minutes=30 * slot),
            "action": "restart",
            "trigger": "schedule",
            "owner": "daemon-1",
            "due_at": T0,
            "claimed_at": T0,
            "finished_at": T0,
            "state": "done",
            "outcome": "ok",
        }
        for slot in range(SLOTS)
        for pair in range(PAIRS)
    ]
    with store.engine.begin() as conn:
        conn.execute(schema.runs.insert(), rows)
        conn.exec_driver_sql("ANALYZE")


def timed(read: Callable[[], object]) -> float:
    started = time.perf_counter()
    read()
    return time.perf_counter() - started


def test_newest_slot_reads_are_fast_with_100k_runs(database: Database) -> None:
    fill(database)
    store = database.open()
    newest = T0 + timedelta(minutes=30 * (SLOTS - 1))

    slots = store.last_slots()
    latest = store.latest_runs()

    assert len(slots) == len(latest) == PAIRS
    assert set(slots.values()) == {newest}
    assert {run.key.slot for run in latest.values()} == {newest}
    assert timed(store.last_slots) < 1.0
    assert timed(store.latest_runs) < 2.0
    assert timed(lambda: store.expire(T0)) < 0.2  # claimed rows have their index
