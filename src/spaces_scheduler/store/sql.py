"""The state store on SQLAlchemy Core: SQLite (the default) and PostgreSQL.

One implementation serves both backends. They differ only in how a connection is
set up (SQLite's pragmas and `BEGIN IMMEDIATE`) and in which dialect module builds
`INSERT ... ON CONFLICT`, which both spell the same way.

Every claim and release is one conditional write, never a read then a write, so
concurrent processes cannot both win: the run's unique key settles `claim()`
races, the lock row's `ON CONFLICT DO UPDATE ... WHERE` settles who holds a Space,
and `expire()` abandons only rows that are still claimed.

Limits: a SQLite store serves the processes of one machine (not a network file
system); several daemons need PostgreSQL. A connection lost in the middle of a
write raises `StoreError` and is not retried, because the write may have
committed and retrying a claim could act twice; the next call reconnects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Row,
    Table,
    and_,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from spaces_scheduler.errors import StoreError
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import schema
from spaces_scheduler.store.base import (
    Claim,
    ClaimRequest,
    DaemonRow,
    Refusal,
    RunKey,
    RunRecord,
    ScheduleRow,
    Store,
    Trigger,
)
from spaces_scheduler.store.engines import (
    WRITE,
    mask,
    parse_url,
    postgresql_engine,
    sqlite_engine,
)

log = logging.getLogger(__name__)

CLAIMED = "claimed"
DONE = "done"

# -- opening -----------------------------------------------------------------


def open_url(text: str, *, must_exist: bool = False) -> SqlStore:
    """Open (and migrate) the store at a `sqlite:` or `postgresql:` URL.

    With `must_exist`, a SQLite file or a PostgreSQL schema without the store's
    tables is an error instead of a new, empty store: commands that only read
    should not invent one.
    """
    url = parse_url(text)
    if url.get_backend_name() == "sqlite":
        return _open(sqlite_engine(url, must_exist=must_exist))
    engine = postgresql_engine(url)
    if must_exist:
        _check_has_store(engine)
    return _open(engine)


def _check_has_store(engine: Engine) -> None:
    """Raise StoreError when the database holds no store (no `meta` table)."""
    try:
        found = inspect(engine).has_table(schema.meta.name)
    except DBAPIError as exc:
        engine.dispose()
        label = mask(engine.url.render_as_string(hide_password=False))
        raise StoreError(f"The state store {label} failed: {exc.orig}") from None
    if not found:
        engine.dispose()
        label = mask(engine.url.render_as_string(hide_password=False))
        raise StoreError(
            f"No state store at {label}: nothing has run with it yet, or --state "
            "/ SPACES_SCHEDULER_STATE names the wrong database or schema."
        )


def open_sqlite(path: Path, *, must_exist: bool = False) -> SqlStore:
    """Open (and migrate) the SQLite store in the file `path`."""
    url = URL.create("sqlite", database=str(path))
    return _open(sqlite_engine(url, must_exist=must_exist))


def _open(engine: Engine) -> SqlStore:
    store = SqlStore(engine)
    try:
        store.migrate()
    except BaseException:
        engine.dispose()
        raise

    log.debug("opened the state store %s", store.label)
    return store


# -- the store -----------------------------------------------------------------


class SqlStore(Store):
    """The store on one SQLAlchemy engine; see the module docstring for limits.

    `engine` is public for tests and diagnostics; `label` is the URL with any
    password masked, for messages.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.label = mask(engine.url.render_as_string(hide_password=False))
        self._postgresql = engine.dialect.name == "postgresql"

    def migrate(self) -> int:
        """Bring the schema to the current version; return it."""
        try:
            with self._writing() as conn:
                return schema.migrate(conn)
        except schema.SchemaTooNewError as exc:
            raise StoreError(f"The state store {self.label} {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- schedules -------------------------------------------------------------

    def register_schedules(self, rows: Iterable[ScheduleRow], now: datetime) -> None:
        with self._writing() as conn:
            for row in rows:
                conn.execute(self._schedule_upsert(row, now))

    def first_seen(self) -> dict[str, datetime]:
        table = schema.schedules
        with self._reading() as conn:
            rows = conn.execute(select(table.c.name, table.c.first_seen))
            return {name: seen for name, seen in rows}

    # -- claims and outcomes ---------------------------------------------------

    def claim(
        self,
        key: RunKey,
        *,
        owner: str,
        action: str,
        trigger: Trigger,
        due_at: datetime,
        lease: timedelta,
        now: datetime,
    ) -> Claim | Refusal:
        until = now + lease
        row = _new_run(key, owner=owner, action=action, trigger=trigger, due_at=due_at)
        row |= {"claimed_at": now, "state": CLAIMED, "lease_until": until}

        with self._writing() as conn:
            run_id = self._insert_run(conn, row)
            if run_id is None:
                return Refusal.RECORDED
            if not self._take_lock(conn, key.space, run_id, owner, until, now=now):
                conn.rollback()  # drop the row just inserted: busy writes nothing
                return Refusal.BUSY

        return Claim(run_id=run_id, key=key, owner=owner, lease_until=until)

    def claim_many(
        self,
        requests: Sequence[ClaimRequest],
        *,
        owner: str,
        lease: timedelta,
        now: datetime,
    ) -> list[Claim | Refusal]:
        """Claim a herd in one transaction: one bulk insert, one bulk lock.

        Requests are taken in rounds of at most one per Space, so that two runs
        of one Space in a batch behave as two calls of `claim()` would.
        """
        answers: dict[int, Claim | Refusal] = {}
        pending = list(enumerate(requests))
        with self._writing() as conn:
            while pending:
                firsts, pending = _one_per_space(pending, answers)
                for start in range(0, len(firsts), _BATCH):
                    chunk = firsts[start : start + _BATCH]
                    answers.update(
                        self._claim_chunk(conn, chunk, owner, now + lease, now)
                    )
        return [answers[index] for index in range(len(requests))]

    def _claim_chunk(
        self,
        conn: Connection,
        chunk: Sequence[tuple[int, ClaimRequest]],
        owner: str,
        until: datetime,
        now: datetime,
    ) -> dict[int, Claim | Refusal]:
        runs, locks = schema.runs, schema.space_locks
        rows = [
            _new_run(
                r.key, owner=owner, action=r.action, trigger=r.trigger, due_at=r.due_at
            )
            | {"claimed_at": now, "state": CLAIMED, "lease_until": until}
            for _, r in chunk
        ]
        # One compiled statement, many parameter sets: SQLAlchemy sends them as
        # few multi-row INSERTs ("insertmanyvalues") without compiling each.
        inserted = self._dialect_insert(runs).on_conflict_do_nothing(
            index_elements=["schedule", "space", "slot"]
        )
        inserted = inserted.returning(runs.c.id, runs.c.space)
        run_ids = {space: run_id for run_id, space in conn.execute(inserted, rows)}

        # Point each Space's lock at its new run unless a live claim holds it.
        lock_rows = [
            {"space": space, "run_id": run_id, "owner": owner, "lease_until": until}
            for space, run_id in run_ids.items()
        ]
        taken: set[str] = set()
        if lock_rows:
            lock = self._dialect_insert(locks)
            lock = lock.on_conflict_do_update(
                index_elements=["space"],
                set_={
                    "run_id": lock.excluded.run_id,
                    "owner": lock.excluded.owner,
                    "lease_until": lock.excluded.lease_until,
                },
                where=or_(locks.c.run_id.is_(None), locks.c.lease_until < now),
            ).returning(locks.c.space)
            taken = {space for (space,) in conn.execute(lock, lock_rows)}

        # A busy Space writes nothing, as with claim(): drop its new row.
        busy = [run_ids[space] for space in run_ids if space not in taken]
        if busy:
            conn.execute(delete(runs).where(runs.c.id.in_(busy)))
        return {
            index: _answer(request, run_ids, taken, owner, until)
            for index, request in chunk
        }

    def _dialect_insert(self, table: Table) -> Any:
        return (postgresql if self._postgresql else sqlite).insert(table)

    def last_acted_many(self, spaces: Iterable[str]) -> dict[str, datetime]:
        runs = schema.runs
        wanted = list(dict.fromkeys(spaces))
        acted = or_(runs.c.outcome.is_(None), runs.c.outcome != OutcomeKind.SKIPPED)
        found: dict[str, datetime] = {}
        with self._reading() as conn:
            for start in range(0, len(wanted), _BATCH):
                stmt = (
                    select(runs.c.space, func.max(runs.c.claimed_at))
                    .where(runs.c.space.in_(wanted[start : start + _BATCH]), acted)
                    .group_by(runs.c.space)
                )
                found.update({space: moment for space, moment in conn.execute(stmt)})
        return found

    def renew(
        self, claims: Iterable[Claim], *, lease: timedelta, now: datetime
    ) -> list[Claim]:
        until = now + lease
        return [
            replace(claim, lease_until=until)
            for claim in claims
            if self._extend(claim, until)
        ]

    def finish(self, claim: Claim, outcome: Outcome, *, now: datetime) -> bool:
        runs = schema.runs
        held = and_(
            runs.c.id == claim.run_id,
            runs.c.owner == claim.owner,
            runs.c.state == CLAIMED,
        )
        stmt = update(runs).where(held).values(_done(outcome, now))

        with self._writing() as conn:
            if conn.execute(stmt).rowcount != 1:
                return False  # expired and recorded abandoned by someone
            _release_locks(conn, [claim.run_id])
        return True

    def record(
        self,
        key: RunKey,
        outcome: Outcome,
        *,
        owner: str,
        action: str,
        trigger: Trigger,
        due_at: datetime,
        now: datetime,
    ) -> bool:
        row = _new_run(key, owner=owner, action=action, trigger=trigger, due_at=due_at)
        row |= {"claimed_at": now, **_done(outcome, now)}
        with self._writing() as conn:
            return self._insert_run(conn, row) is not None

    def expire(self, now: datetime) -> list[RunRecord]:
        return self._abandon(schema.runs.c.lease_until < now, "lease expired", now)

    def release_owner(self, owner: str, now: datetime) -> list[RunRecord]:
        return self._abandon(schema.runs.c.owner == owner, "owner stopped", now)

    # -- reads -------------------------------------------------------------------

    def last_slots(self) -> dict[tuple[str, str], datetime]:
        runs = schema.runs
        newest = select(runs.c.schedule, runs.c.space, func.max(runs.c.slot))
        newest = newest.group_by(runs.c.schedule, runs.c.space)
        with self._reading() as conn:
            return {(sched, space): slot for sched, space, slot in conn.execute(newest)}

    def last_acted_at(self, space: str) -> datetime | None:
        runs = schema.runs
        acted = or_(runs.c.outcome.is_(None), runs.c.outcome != OutcomeKind.SKIPPED)
        stmt = select(func.max(runs.c.claimed_at)).where(runs.c.space == space, acted)
        with self._reading() as conn:
            found: datetime | None = conn.execute(stmt).scalar()
            return found

    def last_success(self, schedule: str, space: str) -> RunRecord | None:
        """Return the `ok` run of the newest slot of (schedule, Space)."""
        runs = schema.runs
        stmt = (
            select(runs)
            .where(runs.c.schedule == schedule, runs.c.space == space)
            .where(runs.c.outcome == OutcomeKind.OK)
            .order_by(runs.c.slot.desc())
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(stmt).first()
        return _record(row) if row is not None else None

    def runs(
        self,
        *,
        space: str | None = None,
        schedule: str | None = None,
        outcome: OutcomeKind | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        runs = schema.runs
        stmt = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if space is not None:
            stmt = stmt.where(runs.c.space == space)
        if schedule is not None:
            stmt = stmt.where(runs.c.schedule == schedule)
        if outcome is not None:
            stmt = stmt.where(runs.c.outcome == outcome)
        if before_id is not None:
            stmt = stmt.where(runs.c.id < before_id)

        with self._reading() as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def latest_runs(self) -> dict[tuple[str, str], RunRecord]:
        """Return the run of the newest slot of every (schedule, Space)."""
        runs = schema.runs
        newest = (
            select(runs.c.schedule, runs.c.space, func.max(runs.c.slot).label("slot"))
            .group_by(runs.c.schedule, runs.c.space)
            .subquery()
        )
        # The key is unique, so the join yields exactly one row per pair.
        on = and_(
            runs.c.schedule == newest.c.schedule,
            runs.c.space == newest.c.space,
            runs.c.slot == newest.c.slot,
        )
        with self._reading() as conn:
            rows = conn.execute(select(runs).join(newest, on))
            return {(r.schedule, r.space): _record(r) for r in rows}

    # -- upstream commits and stages ---------------------------------------

    def seen_commits(self, schedule: str, space: str) -> dict[str, str]:
        table = schema.seen_commits
        stmt = select(table.c.repo, table.c.sha).where(
            table.c.schedule == schedule, table.c.space == space
        )
        with self._reading() as conn:
            return {repo: sha for repo, sha in conn.execute(stmt)}

    def save_seen_commits(
        self, schedule: str, space: str, commits: Mapping[str, str], now: datetime
    ) -> None:
        table = schema.seen_commits
        pair = {"schedule": schedule, "space": space}
        with self._writing() as conn:
            for repo, sha in commits.items():
                seen = {"sha": sha, "seen_at": now}
                keys = ["schedule", "space", "repo"]
                row = {**pair, "repo": repo, **seen}
                conn.execute(self._upsert(table, row, keys=keys, update=seen))

    def save_stage(self, space: str, stage: str, now: datetime) -> None:
        seen = {"stage": stage, "seen_at": now}
        stmt = self._upsert(
            schema.space_stages, {"space": space, **seen}, keys=["space"], update=seen
        )
        with self._writing() as conn:
            conn.execute(stmt)

    def stages(self) -> dict[str, tuple[str, datetime]]:
        table = schema.space_stages
        stmt = select(table.c.space, table.c.stage, table.c.seen_at)
        with self._reading() as conn:
            return {space: (stage, at) for space, stage, at in conn.execute(stmt)}

    # -- daemons -------------------------------------------------------------------

    def heartbeat(self, owner: str, *, host: str, pid: int, now: datetime) -> None:
        alive = {"host": host, "pid": pid, "heartbeat_at": now}
        row = {"owner": owner, "started_at": now, **alive}
        stmt = self._upsert(schema.daemons, row, keys=["owner"], update=alive)
        with self._writing() as conn:
            conn.execute(stmt)

    def daemons(self) -> list[DaemonRow]:
        table = schema.daemons
        stmt = select(table).order_by(table.c.heartbeat_at.desc(), table.c.owner)
        with self._reading() as conn:
            return [DaemonRow(**row._mapping) for row in conn.execute(stmt)]

    # -- sharing the work among daemons ---------------------------------------

    def recorded(self, keys: Iterable[RunKey]) -> set[RunKey]:
        wanted = list(dict.fromkeys(keys))
        found: set[RunKey] = set()
        with self._reading() as conn:
            for start in range(0, len(wanted), _BATCH):
                found |= self._recorded_chunk(conn, wanted[start : start + _BATCH])
        return found

    def _recorded_chunk(self, conn: Connection, keys: Sequence[RunKey]) -> set[RunKey]:
        # Narrow by each column of the unique key, then match whole keys here:
        # the two dialects spell a row-value IN differently.
        runs = schema.runs
        stmt = select(runs.c.schedule, runs.c.space, runs.c.slot).where(
            runs.c.schedule.in_({key.schedule for key in keys}),
            runs.c.space.in_({key.space for key in keys}),
            runs.c.slot.in_({key.slot for key in keys}),
        )
        found = {RunKey(*row) for row in conn.execute(stmt)}
        return found & set(keys)

    def finish_many(
        self, finished: Sequence[tuple[Claim, Outcome]], *, now: datetime
    ) -> list[bool]:
        """Record the outcomes in one transaction: one conditional update each."""
        with self._writing() as conn:
            answers = [_finish_row(conn, c, outcome, now) for c, outcome in finished]
            done = [finished[i][0].run_id for i, ok in enumerate(answers) if ok]
            for start in range(0, len(done), _BATCH):
                _release_locks(conn, done[start : start + _BATCH])
        return answers

    def forget_daemon(self, owner: str) -> None:
        table = schema.daemons
        with self._writing() as conn:
            conn.execute(delete(table).where(table.c.owner == owner))

    # -- steps -------------------------------------------------------------------

    def _schedule_upsert(self, row: ScheduleRow, now: datetime) -> Insert:
        table = schema.schedules
        current = {"cron": row.cron, "timezone": row.timezone, "action": row.action}
        new = {"name": row.name, **current, "first_seen": now, "updated_at": now}

        # `updated_at` moves only when the definition changed.
        changed = or_(*(table.c[k] != v for k, v in current.items()))
        update = {**current, "updated_at": now}
        return self._upsert(table, new, keys=["name"], update=update, where=changed)

    def _insert_run(self, conn: Connection, row: Mapping[str, Any]) -> int | None:
        """Insert a run; return its id, or None when its key already has a row."""
        keys = ["schedule", "space", "slot"]
        stmt = self._upsert(schema.runs, row, keys=keys).returning(schema.runs.c.id)
        run_id: int | None = conn.execute(stmt).scalar()
        return run_id

    def _take_lock(
        self,
        conn: Connection,
        space: str,
        run_id: int,
        owner: str,
        until: datetime,
        *,
        now: datetime,
    ) -> bool:
        """Point the Space's lock at `run_id` unless a live claim holds it."""
        locks = schema.space_locks
        holder = {"run_id": run_id, "owner": owner, "lease_until": until}
        # An expired holder counts as free: expire() records it abandoned later.
        free = or_(locks.c.run_id.is_(None), locks.c.lease_until < now)
        stmt = self._upsert(
            locks, {"space": space, **holder}, keys=["space"], update=holder, where=free
        )
        return conn.execute(stmt.returning(locks.c.space)).first() is not None

    def _extend(self, claim: Claim, until: datetime) -> bool:
        """Extend one claim's lease if its run is claimed and holds its Space."""
        runs, locks = schema.runs, schema.space_locks
        held = and_(
            runs.c.id == claim.run_id,
            runs.c.owner == claim.owner,
            runs.c.state == CLAIMED,
        )
        ours = and_(locks.c.space == claim.key.space, locks.c.run_id == claim.run_id)
        extend_run = update(runs).where(held).values(lease_until=until)
        extend_lock = update(locks).where(ours).values(lease_until=until)

        # Runs before locks, the order every write takes, so no two deadlock.
        with self._writing() as conn:
            if conn.execute(extend_run).rowcount != 1:
                return False
            if conn.execute(extend_lock).rowcount != 1:
                conn.rollback()  # its lease passed and another claim took the Space
                return False
        return True

    def _abandon(
        self, which: ColumnElement[bool], reason: str, now: datetime
    ) -> list[RunRecord]:
        """Record the claimed runs matching `which` as abandoned; return them."""
        runs = schema.runs
        # Lock the rows in id order, skipping any another caller is abandoning,
        # renewing or finishing: each claim then ends exactly once. SQLite has no
        # row locks (its writes are serialized) and renders no FOR UPDATE.
        doomed = (
            select(runs.c.id)
            .where(runs.c.state == CLAIMED, which)
            .order_by(runs.c.id)
            .with_for_update(skip_locked=True)
        )
        ended = _done(Outcome(OutcomeKind.ABANDONED, reason=reason), now)
        stmt = (
            update(runs)
            .where(runs.c.id.in_(doomed), runs.c.state == CLAIMED)
            .values(ended)
            .returning(*runs.c)
        )

        with self._writing() as conn:
            rows = conn.execute(stmt).all()
            _release_locks(conn, [row.id for row in rows])
        return sorted((_record(row) for row in rows), key=lambda run: run.id)

    def _upsert(
        self,
        table: Table,
        row: Mapping[str, Any],
        *,
        keys: Sequence[str],
        update: Mapping[str, Any] | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> Insert:
        """Build `INSERT ... ON CONFLICT (keys) DO UPDATE SET update WHERE where`.

        Without `update`, the conflict does nothing.
        """
        # Both dialects spell ON CONFLICT the same, in two distinct classes.
        if self._postgresql:
            pg = postgresql.insert(table).values(row)
            if update is None:
                return pg.on_conflict_do_nothing(index_elements=keys)
            return pg.on_conflict_do_update(
                index_elements=keys, set_=update, where=where
            )

        lite = sqlite.insert(table).values(row)
        if update is None:
            return lite.on_conflict_do_nothing(index_elements=keys)
        return lite.on_conflict_do_update(index_elements=keys, set_=update, where=where)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """Run one short write transaction, committed when the block ends well."""
        with self._translated(), self.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            yield conn
            conn.commit()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Raise driver and pool errors as `StoreError`: their one boundary."""
        try:
            yield
        except (DBAPIError, PoolTimeoutError) as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> StoreError:
        """Say in one line what failed, without the password."""
        cause = exc.orig if isinstance(exc, DBAPIError) else None
        reason = _first_line(cause or exc)

        password = self.engine.url.password
        if password:  # in case a driver ever echoes its connection string
            reason = reason.replace(str(password), "***")
        return StoreError(f"The state store {self.label} failed: {reason}")


# -- rows ----------------------------------------------------------------------


def _new_run(
    key: RunKey, *, owner: str, action: str, trigger: Trigger, due_at: datetime
) -> dict[str, Any]:
    return {
        "schedule": key.schedule,
        "space": key.space,
        "slot": key.slot,
        "action": action,
        "trigger": trigger.value,
        "owner": owner,
        "due_at": due_at,
    }


def _done(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """Return the columns of a finished run with `outcome`."""
    return {
        "state": DONE,
        "outcome": outcome.kind.value,
        "reason": outcome.reason,
        "summary": outcome.summary,
        "stages": json.dumps(list(outcome.stages)),
        "requests": outcome.requests,
        "duration": outcome.duration,
        "log_tail": json.dumps(list(outcome.log_tail)),
        "escalated": outcome.escalated,
        "finished_at": now,
        "lease_until": None,
    }


def _record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        key=RunKey(schedule=row.schedule, space=row.space, slot=row.slot),
        action=row.action,
        trigger=Trigger(row.trigger),
        owner=row.owner,
        due_at=row.due_at,
        claimed_at=row.claimed_at,
        finished_at=row.finished_at,
        outcome=OutcomeKind(row.outcome) if row.outcome is not None else None,
        reason=row.reason,
        summary=row.summary,
        stages=tuple(json.loads(row.stages)),
        requests=row.requests,
        duration=float(row.duration),  # SQLite RETURNING gives 0 for 0.0
        log_tail=tuple(json.loads(row.log_tail)),
    )


def _finish_row(
    conn: Connection, claim: Claim, outcome: Outcome, now: datetime
) -> bool:
    """Write the outcome of a claim still held; return whether it was."""
    runs = schema.runs
    held = and_(
        runs.c.id == claim.run_id,
        runs.c.owner == claim.owner,
        runs.c.state == CLAIMED,
    )
    stmt = update(runs).where(held).values(_done(outcome, now))
    return bool(conn.execute(stmt).rowcount == 1)


def _release_locks(conn: Connection, run_ids: Sequence[int]) -> None:
    """Free the Space locks still held by `run_ids` (not those taken over since)."""
    if run_ids:
        locks = schema.space_locks
        free = {"run_id": None, "owner": None, "lease_until": None}
        conn.execute(update(locks).where(locks.c.run_id.in_(run_ids)).values(free))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    line = lines[0].rstrip(".")
    return f"{line}."


# Rows per bulk statement: well under SQLite's limit on bound variables.
_BATCH = 400


def _one_per_space(
    pending: Sequence[tuple[int, ClaimRequest]],
    answers: dict[int, Claim | Refusal],
) -> tuple[list[tuple[int, ClaimRequest]], list[tuple[int, ClaimRequest]]]:
    """Split off the first request of each Space; later ones wait or are busy."""
    claimed = {a.key.space for a in answers.values() if isinstance(a, Claim)}
    firsts: list[tuple[int, ClaimRequest]] = []
    later: list[tuple[int, ClaimRequest]] = []
    seen: set[str] = set()
    for index, request in pending:
        space = request.key.space
        if space in claimed:
            later.append((index, request))
        elif space in seen:
            later.append((index, request))
        else:
            seen.add(space)
            firsts.append((index, request))

    # Requests of a Space claimed in an earlier round are busy at once.
    busy = [(i, r) for i, r in later if r.key.space in claimed]
    for index, _ in busy:
        answers[index] = Refusal.BUSY
    return firsts, [(i, r) for i, r in later if r.key.space not in claimed]


def _answer(
    request: ClaimRequest,
    run_ids: Mapping[str, int],
    taken: set[str],
    owner: str,
    until: datetime,
) -> Claim | Refusal:
    space = request.key.space
    if space not in run_ids:
        return Refusal.RECORDED
    if space not in taken:
        return Refusal.BUSY
    return Claim(run_id=run_ids[space], key=request.key, owner=owner, lease_until=until)
