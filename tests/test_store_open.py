"""`open_store()`: where the state lives, which URLs it takes, how SQLite is set up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import test_store
from spaces_scheduler.errors import StoreError
from spaces_scheduler.store import STATE_ENV, open_store
from spaces_scheduler.store.sql import SqlStore, mask
from test_store import PG_URL, SRC_PATH

postgres_server = test_store.postgres_server


def opened(url: str | None, *, config_path: Path | None = None) -> SqlStore:
    store = open_store(url, config_path=config_path)
    assert isinstance(store, SqlStore)
    store.close()
    return store


def test_default_state_lives_beside_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "spaces.toml"
    config.parent.mkdir()

    store = opened(None, config_path=config)

    expected = tmp_path / "conf" / ".spaces-scheduler" / "state.db"
    assert store.engine.url.database == str(expected)
    assert expected.is_file()


def test_default_state_without_config_lives_in_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    opened(None)
    assert (tmp_path / ".spaces-scheduler" / "state.db").is_file()


def test_the_environment_names_the_state_unless_a_url_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_ENV, f"sqlite:///{tmp_path}/env/state.db")
    opened(None, config_path=tmp_path / "spaces.toml")
    assert (tmp_path / "env" / "state.db").is_file()

    opened(f"sqlite:///{tmp_path}/flag/deep/state.db")
    assert (tmp_path / "flag" / "deep" / "state.db").is_file()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "is not a URL"),
        ("mysql://root:hunter2@db.example/state", "unsupported database"),
        ("sqlite://", "names no file"),
        ("sqlite:///:memory:", "names no file"),
    ],
)
def test_a_bad_url_is_one_readable_line_without_password(url: str, words: str) -> None:
    with pytest.raises(StoreError, match=words) as caught:
        open_store(url, config_path=None)

    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.endswith(".")


def test_mask_hides_passwords_only() -> None:
    assert mask("postgresql://me:pw@h:5/db") == "postgresql://me:***@h:5/db"
    assert mask("postgresql://me@h/db") == "postgresql://me@h/db"
    assert mask("postgresql://me:p@ss@h/db") == "postgresql://me:***@h/db"
    assert mask("postgresql://h/db?user=me&password=pw&x=1") == (
        "postgresql://h/db?user=me&password=***&x=1"
    )
    assert mask("sqlite:////tmp/a:b@c") == "sqlite:////tmp/a:b@c"


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is no SQLite file, just some bytes " * 100)

    with pytest.raises(StoreError, match="not a database"):
        open_store(f"sqlite:///{path}", config_path=None)


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=None)
    assert isinstance(store, SqlStore)

    with store.engine.connect() as conn:
        pragma = conn.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar() == 15000
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgresql_urls_use_psycopg(scheme: str, postgres_server: str) -> None:
    store = opened(PG_URL.replace("postgresql", scheme, 1))
    assert store.engine.url.drivername == "postgresql+psycopg"
    assert store.engine.pool.size() == 2


def test_importing_the_store_package_leaves_sqlalchemy_unloaded() -> None:
    probe = "import sys, spaces_scheduler.store; print('sqlalchemy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC_PATH)},
    )
    assert out.stdout.strip() == "False"
