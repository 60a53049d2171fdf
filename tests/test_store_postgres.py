"""PostgreSQL only: a server that goes away and comes back, and no connection left
behind. The outage is a TCP proxy on 127.0.0.1 that the test cuts and restores."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import test_store
from spaces_scheduler.errors import StoreError
from spaces_scheduler.store import Claim
from spaces_scheduler.store.sql import open_url
from test_store import OK, Database, claim, record

pytestmark = pytest.mark.postgres
postgres_server = test_store.postgres_server


class Proxy:
    """Forward 127.0.0.1:<port> to the test server until `cut()`, again after `up()`."""

    def __init__(self) -> None:
        self.port = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def up(self) -> None:
        if self._sockets:
            return  # up already
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._stop.clear()
        self._sockets.append(listener)
        self._spawn(self._accept, listener)

    def cut(self) -> None:
        """Close the listener and every forwarded connection, like a dead server."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        self._threads.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(("127.0.0.1", 5432))
            self._sockets += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        source.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            target.sendall(data)
        target.close()

    def _spawn(self, target: object, *args: socket.socket) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()


@pytest.fixture
def proxied(postgres_server: str) -> Iterator[tuple[Proxy, Database]]:
    proxy = Proxy()
    proxy.up()
    via_proxy = postgres_server.replace(":5432/", f":{proxy.port}/")
    databases = test_store.postgres_database(postgres_server)
    database = next(databases)
    database.url = database.url.replace(postgres_server, via_proxy)
    yield proxy, database
    proxy.up()  # so the teardown can close the stores cleanly
    next(databases, None)
    proxy.cut()


def test_a_lost_server_raises_store_error_and_the_store_recovers(
    proxied: tuple[Proxy, Database],
) -> None:
    proxy, database = proxied
    store = database.open()
    assert record(store, OK)

    proxy.cut()
    with pytest.raises(StoreError, match="failed") as caught:
        store.runs()
    with pytest.raises(StoreError):
        claim(store, space="acme/other")
    assert "\n" not in str(caught.value)
    assert store.engine.pool.checkedout() == 0

    proxy.up()
    assert len(store.runs()) == 1
    assert isinstance(claim(store, space="acme/other"), Claim)


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_an_unreachable_server_fails_open_without_the_password(
    proxied: tuple[Proxy, Database], where: str
) -> None:
    proxy, database = proxied
    proxy.cut()
    if where == "userinfo":
        url = database.url.replace("postgres@", "postgres:hunter2@")
    else:
        url = database.url + "&password=hunter2"

    with pytest.raises(StoreError, match="Connection refused") as caught:
        open_url(url)

    message = str(caught.value)
    assert "hunter2" not in message and "***" in message
    assert "\n" not in message


@pytest.fixture
def database(postgres_server: str) -> Iterator[Database]:
    yield from test_store.postgres_database(postgres_server)


def test_closing_the_store_leaves_no_connection_on_the_server(
    database: Database,
) -> None:
    store = database.open()
    for _ in range(5):
        store.runs()
        claim(store)
    name = database.url.rsplit("application_name=", 1)[1]
    assert connections(name) >= 1

    store.close()

    deadline = time.monotonic() + 5
    while connections(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections(name) == 0


def connections(application_name: str) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    with psycopg.connect(test_store.PG_URL, autocommit=True) as conn:
        row = conn.execute(query, (application_name,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
def test_a_reading_command_does_not_create_a_store_in_an_empty_schema(
    postgres_server: str,
) -> None:
    from spaces_scheduler.store import open_store

    name = f"store_empty_{uuid.uuid4().hex[:8]}"
    test_store.admin_execute(f"CREATE SCHEMA {name}")
    url = f"{postgres_server}?options=-csearch_path%3D{name}"
    try:
        with pytest.raises(StoreError, match="No state store at"):
            open_store(url, config_path=None, must_exist=True)
        store = open_store(url, config_path=None)  # a writer creates it
        store.close()
        open_store(url, config_path=None, must_exist=True).close()
    finally:
        test_store.admin_execute(f"DROP SCHEMA {name} CASCADE")
