"""Batch claims: `claim_many()` answers as `claim()` would, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import test_store
from spaces_scheduler.outcome import Outcome
from spaces_scheduler.store import Claim, Refusal, RunKey, Trigger
from spaces_scheduler.store.base import ClaimRequest
from spaces_scheduler.store.sql import SqlStore
from test_store import LEASE, OK, SECOND, T0, Database, claim, held

SKIP = Outcome.skipped("min-interval")

database = test_store.database
postgres_server = test_store.postgres_server
store = test_store.store


def request(
    space: str, *, schedule: str = "nightly", slot: datetime = T0
) -> ClaimRequest:
    return ClaimRequest(
        RunKey(schedule, space, slot), "restart", Trigger.SCHEDULE, slot
    )


def claim_many(
    store: SqlStore, requests: list[ClaimRequest], now: datetime = T0
) -> list[Claim | Refusal]:
    return store.claim_many(requests, owner="daemon-1", lease=LEASE, now=now)


def test_a_herd_is_claimed_in_one_call(store: SqlStore) -> None:
    requests = [request(f"acme/space-{n}") for n in range(1000)]

    answers = claim_many(store, requests)

    assert all(isinstance(a, Claim) for a in answers)
    assert len({a.run_id for a in answers if isinstance(a, Claim)}) == 1000
    assert [a.key for a in answers if isinstance(a, Claim)] == [r.key for r in requests]


def test_recorded_keys_are_refused(store: SqlStore) -> None:
    held(claim(store, space="acme/a"))

    answers = claim_many(store, [request("acme/a"), request("acme/b")])

    assert answers[0] is Refusal.RECORDED
    assert isinstance(answers[1], Claim)


def test_a_space_held_elsewhere_is_busy_and_writes_nothing(store: SqlStore) -> None:
    held(claim(store, schedule="other", space="acme/a"))

    answers = claim_many(store, [request("acme/a")])

    assert answers == [Refusal.BUSY]
    # The busy request left no row: the same key may be claimed later.
    assert store.last_slots() == {("other", "acme/a"): T0}


def test_two_runs_of_one_space_in_a_batch_claim_once(store: SqlStore) -> None:
    answers = claim_many(
        store, [request("acme/a", schedule="one"), request("acme/a", schedule="two")]
    )

    assert isinstance(answers[0], Claim)
    assert answers[1] is Refusal.BUSY


def test_after_a_recorded_key_the_next_run_of_its_space_claims(
    store: SqlStore,
) -> None:
    test_store.record(store, SKIP, space="acme/a")

    answers = claim_many(
        store, [request("acme/a", schedule="nightly"), request("acme/a", schedule="b")]
    )

    assert answers[0] is Refusal.RECORDED
    assert isinstance(answers[1], Claim)


def test_an_expired_lock_is_taken(store: SqlStore) -> None:
    held(claim(store, schedule="old", space="acme/a", lease=SECOND))

    answers = claim_many(store, [request("acme/a")], now=T0 + 2 * SECOND)

    assert isinstance(answers[0], Claim)


def test_batch_claims_finish_like_single_ones(store: SqlStore) -> None:
    (answer,) = claim_many(store, [request("acme/a")])
    assert isinstance(answer, Claim)

    assert store.finish(answer, OK, now=T0 + SECOND)
    assert store.last_acted_many(["acme/a", "acme/none"]) == {"acme/a": T0}


def test_last_acted_many_ignores_skips(database: Database) -> None:
    store = database.open()
    test_store.record(store, SKIP, space="acme/skipped")
    held(claim(store, space="acme/live", now=T0 + timedelta(minutes=1)))

    found = store.last_acted_many(["acme/skipped", "acme/live"])

    assert found == {"acme/live": T0 + timedelta(minutes=1)}
