"""Several daemons on one PostgreSQL store, next to one daemon on SQLite.

(a) dispatch lateness of 1,000 schedules due at one instant (fire time to the
    run's start, as in bench_dispatch) with one, two and three daemons, each
    in its own process, sharing a fresh schema of the local PostgreSQL server;
    next to the single daemon on a SQLite file;
(b) claim throughput of one daemon: claims per second, in herds (claim_many,
    as the daemon claims what came due together) and one at a time (claim, as
    runs spread by jitter are claimed), on both stores.

Everything runs on 127.0.0.1; PostgreSQL is the server at 127.0.0.1:5432
(user postgres, database test), in a schema created and dropped here.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from bench.bench_dispatch import herd_rows, ours, quantile
from bench.common import report

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def pg_schema() -> Iterator[str]:
    """Yield the URL of a fresh schema of the test database; drop it after."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {name}")  # type: ignore[arg-type]
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")  # type: ignore[arg-type]


def lateness(count: int = 1000) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        alone = ours(f"sqlite:///{folder}/state.db", count, lead=25.0)
    rows += herd_rows("one daemon, SQLite", alone, count)
    baseline = quantile(alone.lateness, 0.99)
    for daemons in (1, 2, 3):
        with pg_schema() as url:
            herd = ours(url, count, daemons=daemons, lead=25.0)
        name = f"{daemons} daemon{'s' if daemons > 1 else ''}, PostgreSQL"
        rows += herd_rows(name, herd, count)
        p99 = quantile(herd.lateness, 0.99) if herd.lateness else float("nan")
        rows.append(("  p99 / SQLite's", f"{p99 / baseline:.2f}x"))
    report(f"(a) {count:,} schedules due at one instant: lateness to the start", rows)


def claim_rate(url: str, *, herd: int = 2000, single: int = 500) -> tuple[float, float]:
    """Return claims per second in herds of `herd`, and one at a time."""
    from spaces_scheduler.store import RunKey, Trigger, open_store
    from spaces_scheduler.store.base import ClaimRequest

    store = open_store(url, config_path=None)
    lease = timedelta(minutes=2)
    try:
        slot = datetime.now(UTC).replace(microsecond=0)
        requests = [
            ClaimRequest(
                RunKey("rate", f"bench/s{n}", slot), "restart", Trigger.SCHEDULE, slot
            )
            for n in range(herd)
        ]
        started = time.perf_counter()
        store.claim_many(requests, owner="bench", lease=lease, now=slot)
        batched = herd / (time.perf_counter() - started)

        slot += timedelta(minutes=1)
        started = time.perf_counter()
        for n in range(single):
            store.claim(
                RunKey("rate", f"bench/one{n}", slot),
                owner="bench",
                action="restart",
                trigger=Trigger.SCHEDULE,
                due_at=slot,
                lease=lease,
                now=slot,
            )
        one_by_one = single / (time.perf_counter() - started)
    finally:
        store.close()
    return batched, one_by_one


def throughput() -> None:
    with tempfile.TemporaryDirectory() as folder:
        lite = claim_rate(f"sqlite:///{folder}/state.db")
    with pg_schema() as url:
        pg = claim_rate(url)
    report(
        "(b) claim throughput of one daemon (claims per second)",
        [
            ("PostgreSQL, herds of 2,000 (claim_many)", f"{pg[0]:,.0f}/s"),
            ("PostgreSQL, one at a time (claim)", f"{pg[1]:,.0f}/s"),
            ("SQLite, herds of 2,000 (claim_many)", f"{lite[0]:,.0f}/s"),
            ("SQLite, one at a time (claim)", f"{lite[1]:,.0f}/s"),
        ],
    )


def main() -> None:
    lateness()
    throughput()


if __name__ == "__main__":
    main()
