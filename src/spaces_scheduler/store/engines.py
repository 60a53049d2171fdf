"""Opening the state store's database: URLs, engines and connection set-up.

SQLite gets pragmas on each connection and `BEGIN IMMEDIATE` for writes, so
writers queue instead of failing on a lock upgrade; PostgreSQL gets a small
pool that reconnects by itself. URLs are shown only with their password masked.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from spaces_scheduler.errors import StoreError

# An execution option telling the SQLite `begin` hook that a write follows.
WRITE = "spaces_scheduler_write"

_SQLITE_PRAGMAS = (
    # Writers queue for up to this long instead of failing at once.
    "PRAGMA busy_timeout = 15000",
    # Readers (status, the dashboard) never wait for a writer, nor it for them.
    "PRAGMA journal_mode = WAL",
    # A committed claim survives a power cut, not only a killed process.
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)
_SQLITE_MIN = (3, 35, 0)  # UPDATE ... RETURNING

_POSTGRESQL_NAMES = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_NAMES = ("sqlite", "sqlite+pysqlite")
_URL_FORMS = "use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"


def mask(text: str) -> str:
    """Return the URL `text` with any password replaced by `***`.

    Masks up to the last `@`, so a password with a stray `@` is hidden whole, and
    also a `password=` query parameter, which psycopg accepts too.
    """
    text = re.sub(r"(://[^:/@]*):.*@", r"\1:***@", text)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", text)


def parse_url(text: str) -> URL:
    try:
        url = make_url(text)
    except ArgumentError:
        raise StoreError(
            f"The state URL {mask(text)!r} is not a URL: {_URL_FORMS}."
        ) from None

    if url.drivername in _POSTGRESQL_NAMES:
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_NAMES:
        return url
    raise StoreError(
        f"The state URL {mask(text)!r} names an unsupported database: {_URL_FORMS}."
    )


def sqlite_engine(url: URL, *, must_exist: bool = False) -> Engine:
    if sqlite3.sqlite_version_info < _SQLITE_MIN:
        raise StoreError(
            f"SQLite {sqlite3.sqlite_version} is too old for the state store: it"
            " needs 3.35 or later; use a newer Python or a PostgreSQL store."
        )
    if url.database in (None, "", ":memory:"):
        raise StoreError(
            f"The state URL '{url}' names no file: the state must outlive the"
            " process; use sqlite:///PATH."
        )

    if must_exist and not Path(url.database).exists():
        raise StoreError(
            f"No state store at {url.database}: nothing has run with this config "
            "yet, or --state / SPACES_SCHEDULER_STATE names the wrong file."
        )
    try:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Cannot create the folder of the state file {url.database}: {exc}."
        ) from exc

    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Leave transactions to the `begin` hook below instead of the driver's guesses.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A write takes the database lock as it begins: a deferred transaction that
    # reads first and writes later can fail at once, without waiting, when another
    # writer committed in between.
    immediate = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def postgresql_engine(url: URL) -> Engine:
    defaults = {"connect_timeout": 10, "application_name": "spaces-scheduler"}
    connect_args = {k: v for k, v in defaults.items() if k not in url.query}
    try:
        return create_engine(
            url,
            pool_size=2,
            max_overflow=4,
            pool_pre_ping=True,  # reconnect by itself after a server restart
            pool_recycle=1800,
            connect_args=connect_args,
        )
    except ImportError:
        raise StoreError(
            "A PostgreSQL state store needs psycopg:"
            " pip install 'spaces-scheduler[postgres]'."
        ) from None
