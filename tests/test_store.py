"""The store's contract, run on every backend: SQLite always, PostgreSQL when a
server answers on 127.0.0.1:5432 (CI sets SPACES_SCHEDULER_REQUIRE_POSTGRES so a
missing server fails there instead of skipping).

The fixtures here serve the other `test_store_*.py` files too, which import them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from spaces_scheduler.errors import StoreError
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import (
    Claim,
    Refusal,
    RunKey,
    ScheduleRow,
    Trigger,
    schema,
)
from spaces_scheduler.store.sql import SqlStore, open_url

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SRC_PATH = Path(__file__).resolve().parent.parent / "src"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
SECOND = timedelta(seconds=1)


# -- fixtures ----------------------------------------------------------------------


@dataclass
class Database:
    """One fresh database (a SQLite file, or a PostgreSQL schema) to open stores on."""

    url: str
    backend: str
    opened: list[SqlStore] = field(default_factory=list)

    def open(self) -> SqlStore:
        store = open_url(self.url)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            # No operation may leave a pooled connection checked out.
            assert store.engine.pool.checkedout() == 0
            store.close()


def admin_execute(sql: str) -> None:
    """Run `sql` on the test database with autocommit, outside any store."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=2) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Return the server's URL, or skip (fail in CI) when none answers."""
    try:
        admin_execute("SELECT 1")
    except Exception as exc:  # any failure means no usable server
        reason = f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc})"
        if os.environ.get("SPACES_SCHEDULER_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PG_URL


def postgres_database(server: str) -> Iterator[Database]:
    """Yield a Database in a new schema of `server`, dropped afterwards."""
    name = f"store_test_{uuid.uuid4().hex[:10]}"
    admin_execute(f"CREATE SCHEMA {name}")
    query = f"options=-csearch_path%3D{name}&application_name={name}"
    database = Database(f"{server}?{query}", "postgresql")
    try:
        yield database
    finally:
        database.close_all()
        admin_execute(f"DROP SCHEMA {name} CASCADE")


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        sqlite = Database(f"sqlite:///{tmp_path}/state/state.db", "sqlite")
        yield sqlite
        sqlite.close_all()
        return
    yield from postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def store(database: Database) -> SqlStore:
    return database.open()


def claim(
    store: SqlStore,
    *,
    schedule: str = "nightly",
    space: str = "acme/demo",
    slot: datetime = T0,
    owner: str = "daemon-1",
    now: datetime = T0,
    lease: timedelta = LEASE,
) -> Claim | Refusal:
    return store.claim(
        RunKey(schedule, space, slot),
        owner=owner,
        action="restart",
        trigger=Trigger.SCHEDULE,
        due_at=slot,
        lease=lease,
        now=now,
    )


def held(result: Claim | Refusal) -> Claim:
    assert isinstance(result, Claim), result
    return result


def record(
    store: SqlStore,
    outcome: Outcome,
    *,
    schedule: str = "nightly",
    space: str = "acme/demo",
    slot: datetime = T0,
    now: datetime = T0,
) -> bool:
    return store.record(
        RunKey(schedule, space, slot),
        outcome,
        owner="daemon-1",
        action="restart",
        trigger=Trigger.SCHEDULE,
        due_at=slot,
        now=now,
    )


OK = Outcome(OutcomeKind.OK, summary="RUNNING after 41.2s")


# -- claims ------------------------------------------------------------------------


def test_claim_inserts_a_claimed_run_with_its_lease(store: SqlStore) -> None:
    got = held(claim(store, now=T0 + SECOND))

    assert got.lease_until == T0 + SECOND + LEASE
    assert got.key == RunKey("nightly", "acme/demo", T0)
    [run] = store.runs()
    assert (run.id, run.outcome, run.finished_at) == (got.run_id, None, None)
    assert run.claimed_at == T0 + SECOND
    assert run.lateness == 1.0


def test_claim_of_a_key_with_a_row_is_refused_as_recorded(store: SqlStore) -> None:
    first = held(claim(store))
    assert claim(store, owner="daemon-2") is Refusal.RECORDED

    store.finish(first, OK, now=T0)
    assert claim(store, now=T0 + timedelta(days=1)) is Refusal.RECORDED

    assert record(store, Outcome.skipped("busy"), slot=T0 + SECOND)
    assert claim(store, slot=T0 + SECOND) is Refusal.RECORDED


def test_claim_on_a_space_held_by_a_live_claim_is_busy(store: SqlStore) -> None:
    held(claim(store))

    refused = claim(store, schedule="other", now=T0 + LEASE)  # lease ends at T0+LEASE

    assert refused is Refusal.BUSY
    assert len(store.runs()) == 1, "a busy claim writes nothing"
    assert held(claim(store, schedule="other", space="acme/other"))


def test_recorded_wins_over_busy(store: SqlStore) -> None:
    held(claim(store))
    assert claim(store, owner="daemon-2") is Refusal.RECORDED


def test_claim_takes_a_space_whose_lock_lease_expired(store: SqlStore) -> None:
    stale = held(claim(store))
    later = T0 + LEASE + SECOND

    fresh = held(claim(store, schedule="other", now=later))

    [abandoned] = store.expire(later)
    assert abandoned.id == stale.run_id
    assert claim(store, schedule="third", now=later) is Refusal.BUSY
    assert store.finish(fresh, OK, now=later)
    assert held(claim(store, schedule="third", now=later))


def test_a_finished_claim_frees_its_space(store: SqlStore) -> None:
    first = held(claim(store))
    assert store.finish(first, OK, now=T0 + SECOND)
    assert held(claim(store, schedule="other", now=T0 + SECOND))


# -- leases ------------------------------------------------------------------------


def test_expire_abandons_a_claim_only_after_its_lease(store: SqlStore) -> None:
    got = held(claim(store))

    assert store.expire(got.lease_until - SECOND) == []
    assert store.expire(got.lease_until) == []
    [abandoned] = store.expire(got.lease_until + SECOND)

    assert abandoned.id == got.run_id
    assert abandoned.outcome is OutcomeKind.ABANDONED
    assert abandoned.reason == "lease expired"
    assert abandoned.finished_at == got.lease_until + SECOND
    assert store.expire(got.lease_until + timedelta(hours=1)) == []
    assert store.runs()[0].outcome is OutcomeKind.ABANDONED


def test_expire_frees_the_space(store: SqlStore) -> None:
    got = held(claim(store, lease=timedelta(hours=1)))
    store.expire(got.lease_until + SECOND)
    assert held(claim(store, schedule="other", now=T0 + SECOND))


def test_renew_extends_the_lease(store: SqlStore) -> None:
    got = held(claim(store))
    now = T0 + timedelta(minutes=4)

    [renewed] = store.renew([got], lease=LEASE, now=now)

    assert renewed.lease_until == now + LEASE
    assert store.expire(got.lease_until + SECOND) == []
    assert claim(store, schedule="other", now=got.lease_until + SECOND) is Refusal.BUSY
    assert len(store.expire(renewed.lease_until + SECOND)) == 1


def test_renew_leaves_out_claims_expired_by_someone_else(store: SqlStore) -> None:
    lost = held(claim(store))
    kept = held(claim(store, space="acme/other", lease=timedelta(hours=1)))
    store.expire(lost.lease_until + SECOND)

    renewed = store.renew([lost, kept], lease=LEASE, now=lost.lease_until + SECOND)

    assert [c.run_id for c in renewed] == [kept.run_id]


def test_renew_leaves_out_a_claim_whose_space_was_taken(store: SqlStore) -> None:
    stale = held(claim(store))
    later = stale.lease_until + SECOND
    held(claim(store, schedule="other", now=later))

    assert store.renew([stale], lease=LEASE, now=later) == []
    assert [r.id for r in store.expire(later)] == [stale.run_id]


def test_finish_records_every_field_of_the_outcome(store: SqlStore) -> None:
    got = held(claim(store))
    outcome = Outcome(
        OutcomeKind.FAILED,
        reason="BUILD_ERROR: pip failed",
        summary="after 2m",
        stages=("BUILDING", "BUILD_ERROR"),
        duration=120.5,
        requests=7,
        log_tail=("line 1", "ERROR: no matching distribution — ü"),
    )

    assert store.finish(got, outcome, now=T0 + timedelta(minutes=2))

    [run] = store.runs()
    assert run.outcome is OutcomeKind.FAILED
    assert (run.reason, run.summary) == (outcome.reason, outcome.summary)
    assert (run.stages, run.log_tail) == (outcome.stages, outcome.log_tail)
    assert (run.duration, run.requests) == (120.5, 7)
    assert run.finished_at == T0 + timedelta(minutes=2)
    assert (run.action, run.trigger, run.owner) == ("restart", "schedule", "daemon-1")


def test_finish_after_expire_returns_false_and_writes_nothing(store: SqlStore) -> None:
    got = held(claim(store))
    store.expire(got.lease_until + SECOND)

    assert not store.finish(got, OK, now=got.lease_until + 2 * SECOND)

    [run] = store.runs()
    assert run.outcome is OutcomeKind.ABANDONED
    assert run.finished_at == got.lease_until + SECOND


def test_finish_is_refused_to_another_owner_and_a_second_time(store: SqlStore) -> None:
    got = held(claim(store))

    assert not store.finish(Claim(got.run_id, got.key, "thief", T0), OK, now=T0)
    assert store.finish(got, OK, now=T0)
    assert not store.finish(got, Outcome(OutcomeKind.FAILED), now=T0)
    assert store.runs()[0].outcome is OutcomeKind.OK


def test_a_late_finish_keeps_the_new_holder_of_the_space(store: SqlStore) -> None:
    stale = held(claim(store))
    later = stale.lease_until + SECOND
    fresh = held(claim(store, schedule="other", now=later))

    assert store.finish(stale, OK, now=later)

    assert claim(store, schedule="third", now=later) is Refusal.BUSY
    assert store.renew([fresh], lease=LEASE, now=later) != []


def test_release_owner_abandons_only_its_claims(store: SqlStore) -> None:
    mine = [held(claim(store, space=f"acme/{n}")) for n in range(3)]
    theirs = held(claim(store, space="acme/x", owner="daemon-2"))
    store.finish(mine[0], OK, now=T0)

    released = store.release_owner("daemon-1", T0 + SECOND)

    assert [r.id for r in released] == [c.run_id for c in mine[1:]]
    assert {r.reason for r in released} == {"owner stopped"}
    assert store.release_owner("daemon-1", T0 + SECOND) == []
    assert held(claim(store, schedule="b", space="acme/1", owner="d3", now=T0))
    assert store.renew([theirs], lease=LEASE, now=T0 + SECOND) != []


# -- record --------------------------------------------------------------------


def test_record_inserts_a_finished_run_without_the_space(store: SqlStore) -> None:
    assert record(store, Outcome.skipped("coalesced"), now=T0 + SECOND)

    [run] = store.runs()
    assert (run.outcome, run.reason) == (OutcomeKind.SKIPPED, "coalesced")
    assert run.claimed_at == run.finished_at == T0 + SECOND
    assert held(claim(store, schedule="other"))
    assert store.expire(T0 + timedelta(days=1)) != []  # only the claim, not the skip


def test_record_on_an_existing_key_returns_false(store: SqlStore) -> None:
    held(claim(store))
    assert not record(store, Outcome.skipped("busy"))
    assert record(store, Outcome.skipped("busy"), slot=T0 + SECOND)
    assert not record(store, OK, slot=T0 + SECOND)
    assert [r.outcome for r in store.runs()] == [OutcomeKind.SKIPPED, None]


# -- reads ---------------------------------------------------------------------


def test_last_slots_gives_the_newest_slot_of_each_pair(store: SqlStore) -> None:
    record(store, OK, slot=T0 + timedelta(hours=2))
    record(store, OK, slot=T0)
    held(claim(store, space="acme/other", slot=T0 + timedelta(hours=1)))
    record(store, Outcome.skipped("coalesced"), schedule="b", slot=T0)

    assert store.last_slots() == {
        ("nightly", "acme/demo"): T0 + timedelta(hours=2),
        ("nightly", "acme/other"): T0 + timedelta(hours=1),
        ("b", "acme/demo"): T0,
    }


def test_last_acted_at_counts_actions_and_live_claims(store: SqlStore) -> None:
    assert store.last_acted_at("acme/demo") is None
    record(store, OK, slot=T0, now=T0)
    record(store, Outcome.skipped("unchanged"), slot=T0 + SECOND, now=T0 + 9 * SECOND)
    assert store.last_acted_at("acme/demo") == T0

    record(store, Outcome(OutcomeKind.FAILED), slot=T0 + 2 * SECOND, now=T0 + SECOND)
    assert store.last_acted_at("acme/demo") == T0 + SECOND

    got = held(claim(store, slot=T0 + 3 * SECOND, now=T0 + 5 * SECOND))
    assert store.last_acted_at("acme/demo") == T0 + 5 * SECOND
    store.expire(got.lease_until + SECOND)
    assert store.last_acted_at("acme/demo") == T0 + 5 * SECOND
    assert store.last_acted_at("acme/other") is None


def test_last_success_is_the_newest_ok_run_of_the_pair(store: SqlStore) -> None:
    assert store.last_success("nightly", "acme/demo") is None
    record(store, OK, slot=T0)
    record(store, OK, slot=T0 + 2 * SECOND)
    record(store, Outcome(OutcomeKind.FAILED), slot=T0 + 3 * SECOND)
    record(store, OK, space="acme/other", slot=T0 + 4 * SECOND)

    found = store.last_success("nightly", "acme/demo")

    assert found is not None and found.key.slot == T0 + 2 * SECOND


def test_runs_filter_and_page_newest_first(store: SqlStore) -> None:
    for n in range(6):
        outcome = OK if n % 2 else Outcome.skipped("busy")
        space = "acme/a" if n < 4 else "acme/b"
        record(store, outcome, space=space, slot=T0 + n * SECOND)

    everything = store.runs()
    assert [r.key.slot for r in everything] == [
        T0 + n * SECOND for n in range(5, -1, -1)
    ]
    assert len(store.runs(space="acme/a")) == 4
    assert len(store.runs(schedule="nightly", outcome=OutcomeKind.OK)) == 3
    assert store.runs(schedule="missing") == []

    page = store.runs(limit=2)
    rest = store.runs(limit=10, before_id=page[-1].id)
    assert [r.id for r in page + rest] == [r.id for r in everything]


def test_latest_runs_gives_the_run_of_the_newest_slot(store: SqlStore) -> None:
    record(store, OK, slot=T0 + SECOND)
    record(store, Outcome.skipped("coalesced"), slot=T0)  # recorded later, older slot
    got = held(claim(store, space="acme/other"))

    latest = store.latest_runs()

    assert latest[("nightly", "acme/demo")].key.slot == T0 + SECOND
    assert latest[("nightly", "acme/other")].id == got.run_id
    assert len(latest) == 2


# -- schedules, commits, stages, daemons -------------------------------------------


def test_register_schedules_keeps_first_seen(store: SqlStore) -> None:
    rows = [ScheduleRow("a", "0 * * * *", "UTC", "restart")]
    store.register_schedules(rows, T0)
    store.register_schedules(
        [ScheduleRow("a", "*/5 * * * *", "UTC", "pause")], T0 + SECOND
    )
    store.register_schedules(
        [ScheduleRow("b", "@daily", "Europe/Berlin", "rebuild")], T0
    )

    assert store.first_seen() == {"a": T0, "b": T0}


def test_seen_commits_are_kept_per_pair_and_overwritten(store: SqlStore) -> None:
    assert store.seen_commits("nightly", "acme/demo") == {}
    store.save_seen_commits("nightly", "acme/demo", {"datasets/x": "a1", "y": "b1"}, T0)
    store.save_seen_commits("nightly", "acme/demo", {"datasets/x": "a2"}, T0)
    store.save_seen_commits("other", "acme/demo", {"datasets/x": "zz"}, T0)

    assert store.seen_commits("nightly", "acme/demo") == {"datasets/x": "a2", "y": "b1"}


def test_stages_remember_the_last_seen(store: SqlStore) -> None:
    store.save_stage("acme/demo", "BUILDING", T0)
    store.save_stage("acme/demo", "RUNNING", T0 + SECOND)
    store.save_stage("acme/other", "PAUSED", T0)

    assert store.stages() == {
        "acme/demo": ("RUNNING", T0 + SECOND),
        "acme/other": ("PAUSED", T0),
    }


def test_heartbeats_list_daemons_newest_first(store: SqlStore) -> None:
    store.heartbeat("d1", host="vm1", pid=10, now=T0)
    store.heartbeat("d2", host="vm2", pid=20, now=T0 + SECOND)
    store.heartbeat("d1", host="vm1", pid=11, now=T0 + 2 * SECOND)

    first, second = store.daemons()

    assert (first.owner, first.pid, first.started_at) == ("d1", 11, T0)
    assert first.heartbeat_at == T0 + 2 * SECOND
    assert (second.owner, second.host) == ("d2", "vm2")


# -- time ----------------------------------------------------------------------


def test_times_round_trip_as_aware_utc(store: SqlStore) -> None:
    berlin = timezone(timedelta(hours=2))
    slot = datetime(2025, 6, 1, 14, 30, 15, 123456, tzinfo=berlin)
    record(store, OK, slot=slot, now=slot)

    [run] = store.runs()

    assert run.key.slot == slot and run.key.slot.tzinfo is UTC
    assert run.key.slot.hour == 12 and run.key.slot.microsecond == 123456
    assert store.last_slots()[("nightly", "acme/demo")].tzinfo is UTC
    assert record(store, OK, slot=slot.astimezone(UTC)) is False, "same instant"


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(Exception, match="aware datetimes"):
        record(store, OK, slot=datetime(2025, 1, 1))


# -- schema ----------------------------------------------------------------------


def test_opening_twice_migrates_once_and_records_the_version(
    database: Database,
) -> None:
    first = database.open()
    record(first, OK)
    second = database.open()

    assert len(second.runs()) == 1
    with second.engine.connect() as conn:
        assert schema.schema_version(conn) == schema.SCHEMA_VERSION == 1


def test_a_schema_newer_than_the_code_is_refused(database: Database) -> None:
    store = database.open()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))

    with pytest.raises(StoreError, match="schema version 99.*upgrade"):
        open_url(database.url)
