"""The state store: runs, claims, Space locks, schedules, commits and stages seen.

`open_store()` picks the backend from a URL. SQLAlchemy is imported only when a
store is opened, so the commands that need no state start fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from spaces_scheduler.store.base import (
    Claim,
    DaemonRow,
    Refusal,
    RunKey,
    RunRecord,
    ScheduleRow,
    Store,
    Trigger,
)

__all__ = [
    "Claim",
    "DaemonRow",
    "Refusal",
    "RunKey",
    "RunRecord",
    "STATE_ENV",
    "ScheduleRow",
    "Store",
    "Trigger",
    "default_state_path",
    "open_store",
]

STATE_ENV = "SPACES_SCHEDULER_STATE"


def open_store(
    url: str | None, *, config_path: Path | None, must_exist: bool = False
) -> Store:
    """Open the store at `url`, creating and migrating its schema as needed.

    Without `url`, `$SPACES_SCHEDULER_STATE` names it, else the SQLite file
    `.spaces-scheduler/state.db` beside the config file (or in the current folder
    when there is none). Raises `StoreError` with one readable line, which never
    shows a password, when the URL is wrong or the database cannot be reached,
    and with `must_exist` when a SQLite file is missing (read-only commands).
    """
    # Imported here: SQLAlchemy alone takes longer to import than a fast command.
    from spaces_scheduler.store import sql

    chosen = url or os.environ.get(STATE_ENV)
    if chosen:
        return sql.open_url(chosen, must_exist=must_exist)
    return sql.open_sqlite(default_state_path(config_path), must_exist=must_exist)


def default_state_path(config_path: Path | None) -> Path:
    """Return the default SQLite file: beside the config file, else in the cwd."""
    folder = config_path.parent if config_path is not None else Path()
    return (folder / ".spaces-scheduler" / "state.db").resolve()
