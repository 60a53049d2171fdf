"""Concurrent callers on one database, each through its own Store (own pool).

Threads stand in for processes: each store has its own connections, which is all
the database sees of a process. A barrier starts each round's callers together.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import TypeVar

import test_store
from spaces_scheduler.store import Claim, Refusal, schema
from spaces_scheduler.store.sql import SqlStore, open_url
from test_store import LEASE, OK, SECOND, T0, Database, claim

# The contract suite's fixtures, run here on every backend too.
database = test_store.database
postgres_server = test_store.postgres_server

T = TypeVar("T")
ROUNDS = 50


def together(stores: list[SqlStore], call: Callable[[SqlStore], T]) -> list[T]:
    """Call `call(store)` for every store at once, one thread each."""
    barrier = threading.Barrier(len(stores))

    def run(store: SqlStore) -> T:
        barrier.wait(timeout=10)
        return call(store)

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(run, stores))


def claim_as_itself(
    store: SqlStore, *, space: str, own_key: bool = False
) -> Claim | Refusal:
    """Claim as the store's own owner (and schedule, with `own_key`)."""
    me = f"owner-{id(store)}"
    return claim(store, space=space, owner=me, schedule=me if own_key else "nightly")


def test_racing_claims_of_one_key_give_exactly_one_claim(database: Database) -> None:
    stores = [database.open(), database.open()]

    for n in range(ROUNDS):
        space = f"acme/{n}"
        results = together(stores, partial(claim_as_itself, space=space))

        kinds = Counter(type(r).__name__ for r in results)
        assert kinds == {"Claim": 1, "Refusal": 1}, (n, results)
        assert Refusal.RECORDED in results

    assert len(stores[0].runs(limit=1000)) == ROUNDS


def test_racing_claims_of_one_space_give_exactly_one_claim(database: Database) -> None:
    stores = [database.open(), database.open()]

    for n in range(ROUNDS):
        space = f"acme/{n}"
        results = together(stores, partial(claim_as_itself, space=space, own_key=True))

        assert sorted(map(str, results))[-1] == "busy", (n, results)
        assert sum(isinstance(r, Claim) for r in results) == 1

    assert len(stores[0].runs(limit=1000)) == ROUNDS


def test_racing_expires_abandon_each_claim_once(database: Database) -> None:
    stores = [database.open() for _ in range(4)]
    claims = [claim(stores[0], space=f"acme/{n}") for n in range(60)]
    later = T0 + LEASE + SECOND

    results = together(stores, lambda s: s.expire(later))

    ended = Counter(run.id for runs in results for run in runs)
    assert set(ended.values()) == {1}
    assert sorted(ended) == sorted(c.run_id for c in claims if isinstance(c, Claim))


def test_finish_racing_expire_ends_each_claim_once(database: Database) -> None:
    finisher, expirer = database.open(), database.open()
    claims = [claim(finisher, space=f"acme/{n}") for n in range(60)]
    later = T0 + LEASE + SECOND

    def end(store: SqlStore) -> list[int]:
        if store is expirer:
            return [run.id for run in store.expire(later)]
        return [c.run_id for c in claims if store.finish(claim_of(c), OK, now=later)]

    finished, expired = together([finisher, expirer], end)

    assert not set(finished) & set(expired)
    assert len(finished) + len(expired) == len(claims)


def test_racing_first_opens_migrate_once(database: Database) -> None:
    urls = [database.url] * 4

    stores = together_urls(urls)

    database.opened.extend(stores)
    with stores[0].engine.connect() as conn:
        assert schema.schema_version(conn) == schema.SCHEMA_VERSION


def together_urls(urls: list[str]) -> list[SqlStore]:
    barrier = threading.Barrier(len(urls))

    def run(url: str) -> SqlStore:
        barrier.wait(timeout=10)
        return open_url(url)

    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(run, urls))


def claim_of(result: Claim | Refusal) -> Claim:
    assert isinstance(result, Claim)
    return result


def test_a_renewed_claim_outlives_a_concurrent_expire(database: Database) -> None:
    owner, reaper = database.open(), database.open()
    claims = [claim_of(claim(owner, space=f"acme/{n}")) for n in range(30)]
    now = T0 + LEASE - SECOND

    def act(store: SqlStore) -> int:
        if store is reaper:
            return len(store.expire(now))
        return len(store.renew(claims, lease=timedelta(hours=1), now=now))

    renewed, expired = together([owner, reaper], act)

    assert (renewed, expired) == (30, 0)
