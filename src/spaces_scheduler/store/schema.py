"""Tables of the SQL store, and the migrations that build them in order.

The schema's version is the number of migration steps applied, kept in the `meta`
table. `migrate()` applies the missing steps in the caller's transaction, so a
failed step leaves the schema as it was (both SQLite and PostgreSQL have
transactional DDL).

Each step is frozen once released: a later change to a table is a new step, and the
current table objects below then get their own definition instead of reusing the
step's builder.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so a later migration can drop or alter them by name.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VERSION_KEY = "schema_version"

# One key for PostgreSQL's advisory lock: two processes opening a fresh database at
# once must not both create the tables.
_MIGRATION_LOCK = zlib.crc32(b"spaces_scheduler.schema")


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and return them aware in UTC, on every backend.

    SQLite has no time zone type: it keeps naive UTC text in a fixed-width format
    (microseconds always written), which sorts and compares like the instants.
    A naive datetime is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"the store takes aware datetimes only, not {value!r}")

        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _build_v1(metadata: MetaData) -> None:
    """Define the tables of schema version 1 in `metadata`."""
    Table(
        "meta",
        metadata,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
    )
    runs = Table(
        "runs",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("schedule", Text, nullable=False),
        Column("space", Text, nullable=False),
        Column("slot", UTCDateTime, nullable=False),
        Column("action", Text, nullable=False),
        Column("trigger", Text, nullable=False),
        Column("owner", Text, nullable=False),
        Column("due_at", UTCDateTime, nullable=False),
        Column("claimed_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("lease_until", UTCDateTime),
        Column("state", Text, nullable=False),
        Column("outcome", Text),
        Column("reason", Text, nullable=False, server_default=""),
        Column("summary", Text, nullable=False, server_default=""),
        Column("stages", Text, nullable=False, server_default="[]"),  # JSON list
        Column("requests", Integer, nullable=False, server_default="0"),
        Column("duration", Float, nullable=False, server_default="0"),
        Column("log_tail", Text, nullable=False, server_default="[]"),  # JSON list
        Column("escalated", Boolean, nullable=False, server_default=text("false")),
        # The key of a run: what makes every slot run at most once.
        UniqueConstraint("schedule", "space", "slot"),
        # A claimed row always has a lease, so expire() can always reach it.
        CheckConstraint(
            "(state = 'claimed' AND outcome IS NULL AND lease_until IS NOT NULL)"
            " OR (state = 'done' AND outcome IS NOT NULL)",
            name="state",
        ),
        # Ids never reused, so paging by id stays stable if old runs are pruned.
        sqlite_autoincrement=True,
    )
    Index("ix_runs_space_id", runs.c.space, runs.c.id)
    Index("ix_runs_schedule_id", runs.c.schedule, runs.c.id)
    Index(
        "ix_runs_claimed_lease",
        runs.c.lease_until,
        sqlite_where=runs.c.state == "claimed",
        postgresql_where=runs.c.state == "claimed",
    )

    Table(
        "space_locks",
        metadata,
        Column("space", Text, primary_key=True),
        Column("run_id", Integer, ForeignKey("runs.id")),
        Column("owner", Text),
        Column("lease_until", UTCDateTime),
    )
    Table(
        "schedules",
        metadata,
        Column("name", Text, primary_key=True),
        Column("cron", Text, nullable=False),
        Column("timezone", Text, nullable=False),
        Column("action", Text, nullable=False),
        Column("first_seen", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "seen_commits",
        metadata,
        Column("schedule", Text, primary_key=True),
        Column("space", Text, primary_key=True),
        Column("repo", Text, primary_key=True),
        Column("sha", Text, nullable=False),
        Column("seen_at", UTCDateTime, nullable=False),
    )
    Table(
        "space_stages",
        metadata,
        Column("space", Text, primary_key=True),
        Column("stage", Text, nullable=False),
        Column("seen_at", UTCDateTime, nullable=False),
    )
    Table(
        "daemons",
        metadata,
        Column("owner", Text, primary_key=True),
        Column("host", Text, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("heartbeat_at", UTCDateTime, nullable=False),
    )


def _create_v1(conn: Connection) -> None:
    frozen = MetaData(naming_convention=NAMING)
    _build_v1(frozen)

    # `meta` exists already: migrate() creates it first to read the version.
    tables = [t for t in frozen.sorted_tables if t.name != "meta"]
    frozen.create_all(conn, tables=tables, checkfirst=False)


Migration = Callable[[Connection], None]

# Applied in order; the schema version is the number applied. Append, never edit.
MIGRATIONS: tuple[Migration, ...] = (_create_v1,)
SCHEMA_VERSION = len(MIGRATIONS)

# The current tables, which the store's queries use.
metadata = MetaData(naming_convention=NAMING)
_build_v1(metadata)
meta = metadata.tables["meta"]
runs = metadata.tables["runs"]
space_locks = metadata.tables["space_locks"]
schedules = metadata.tables["schedules"]
seen_commits = metadata.tables["seen_commits"]
space_stages = metadata.tables["space_stages"]
daemons = metadata.tables["daemons"]


class SchemaTooNewError(Exception):
    """The database was migrated by a newer spaces-scheduler."""

    def __init__(self, found: int) -> None:
        self.found = found
        super().__init__(
            f"has schema version {found}, newer than the {SCHEMA_VERSION} this"
            " spaces-scheduler knows: upgrade spaces-scheduler to use it."
        )


def migrate(conn: Connection) -> int:
    """Apply the missing migration steps in `conn`'s transaction; return the version.

    Raises `SchemaTooNewError` when the database is ahead of this code.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
    conn.execute(CreateTable(meta, if_not_exists=True))

    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(found)
    for step in MIGRATIONS[found:]:
        step(conn)

    if found < SCHEMA_VERSION:
        _write_version(conn, found=found)
    return SCHEMA_VERSION


def schema_version(conn: Connection) -> int:
    """Return the version recorded in `meta`, 0 for a fresh database."""
    found = conn.execute(
        select(meta.c.value).where(meta.c.key == VERSION_KEY)
    ).scalar_one_or_none()
    return int(found) if found is not None else 0


def _write_version(conn: Connection, *, found: int) -> None:
    value = {"value": str(SCHEMA_VERSION)}
    if found == 0:
        conn.execute(meta.insert().values(key=VERSION_KEY, **value))
    else:
        conn.execute(meta.update().where(meta.c.key == VERSION_KEY).values(**value))
