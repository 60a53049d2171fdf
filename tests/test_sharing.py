"""Several daemons on one store: the herd spreads, a dead peer's share is taken
within seconds, and a store that fails stops the claims without stopping the loop.

The daemons here are real `Daemon` + `Dispatcher` pairs stepped with an explicit
clock; their executor records runs instead of calling a Hub. The store-level
tests run on both backends, as the rest of the store's contract does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

import test_store
from spaces_scheduler.config import Config, parse_config
from spaces_scheduler.daemon import Daemon
from spaces_scheduler.dispatch import Dispatcher, DueRun, Finished
from spaces_scheduler.errors import StoreError
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.sharing import ALIVE, HANDOVER, Sharing, preferred
from spaces_scheduler.store import Claim, Refusal, RunKey, Store, Trigger
from spaces_scheduler.store.base import DaemonRow
from spaces_scheduler.store.sql import SqlStore
from test_store import OK, SECOND, T0, Database, claim, held, record

database = test_store.database
postgres_server = test_store.postgres_server
store = test_store.store

MINUTE = timedelta(minutes=1)
SPACES = [f"acme/space-{n:02d}" for n in range(60)]
CONFIG = f"""
[defaults]
jitter = "0s"
min_interval = "0s"

[[schedule]]
name = "refresh"
cron = "*/5 * * * *"
spaces = {SPACES!r}
action = "restart"
""".replace("'", '"')


# -- the store: recorded keys and forgotten daemons ----------------------------------


def test_recorded_names_the_keys_that_have_a_row(store: SqlStore) -> None:
    held(claim(store, space="acme/a"))
    record(store, OK, space="acme/b", slot=T0 + MINUTE)
    record(store, Outcome.skipped("busy"), schedule="other", space="acme/c")

    asked = [
        RunKey("nightly", "acme/a", T0),
        RunKey("nightly", "acme/b", T0 + MINUTE),
        RunKey("other", "acme/c", T0),
        RunKey("nightly", "acme/b", T0),  # the Space and slot exist, not together
        RunKey("nightly", "acme/c", T0),  # the Space's row has another schedule
        RunKey("nightly", "acme/z", T0),
    ]

    assert store.recorded(asked) == set(asked[:3])
    assert store.recorded([]) == set()


def test_recorded_answers_for_a_herd(store: SqlStore) -> None:
    keys = [RunKey("nightly", f"acme/{n}", T0) for n in range(1000)]
    for key in keys[::3]:
        record(store, OK, space=key.space)

    assert store.recorded(keys) == set(keys[::3])


def test_finish_many_answers_as_finish_would_and_frees_the_spaces(
    store: SqlStore,
) -> None:
    mine = held(claim(store, space="acme/a"))
    theirs = held(claim(store, space="acme/b", owner="daemon-2"))
    expired = held(claim(store, space="acme/c", lease=SECOND))
    store.expire(T0 + 2 * SECOND)
    stolen = replace(theirs, owner="daemon-1")

    answers = store.finish_many(
        [(mine, OK), (stolen, OK), (expired, OK)], now=T0 + 3 * SECOND
    )

    assert answers == [True, False, False]
    words = {run.key.space: run.outcome for run in store.runs()}
    assert words == {
        "acme/a": OutcomeKind.OK,
        "acme/b": None,
        "acme/c": OutcomeKind.ABANDONED,
    }
    later = T0 + 3 * SECOND
    assert isinstance(claim(store, space="acme/a", slot=later, now=later), Claim)
    assert claim(store, space="acme/b", slot=later, now=later) is Refusal.BUSY
    assert store.finish_many([], now=later) == []


def test_forget_daemon_deletes_only_its_heartbeat(store: SqlStore) -> None:
    store.heartbeat("d1", host="vm1", pid=10, now=T0)
    store.heartbeat("d2", host="vm2", pid=20, now=T0)
    held(claim(store, owner="d1"))

    store.forget_daemon("d1")
    store.forget_daemon("never-seen")

    assert [row.owner for row in store.daemons()] == ["d2"]
    assert store.runs()[0].owner == "d1", "runs keep their owner"


# -- choosing the preferred daemon ---------------------------------------------------


def test_preferred_spreads_a_herd_evenly_and_agrees_everywhere() -> None:
    owners = ["vm1:10:aa", "vm2:11:bb", "vm3:12:cc"]
    chosen = Counter(preferred(owners, "refresh", f"acme/{n}") for n in range(3000))

    assert set(chosen) == set(owners)
    assert all(900 <= count <= 1100 for count in chosen.values()), chosen
    assert preferred(list(reversed(owners)), "refresh", "acme/7") == preferred(
        owners, "refresh", "acme/7"
    )


def test_when_a_daemon_leaves_only_its_share_moves() -> None:
    owners = ["vm1:10:aa", "vm2:11:bb", "vm3:12:cc"]
    pairs = [("refresh", f"acme/{n}") for n in range(1000)]
    before = {pair: preferred(owners, *pair) for pair in pairs}
    after = {pair: preferred(owners[:2], *pair) for pair in pairs}

    moved = [pair for pair in pairs if before[pair] != after[pair]]
    assert moved and all(before[pair] == owners[2] for pair in moved)


def test_sharing_counts_only_fresh_heartbeats_and_itself() -> None:
    sharing = Sharing("me")
    rows = [
        DaemonRow("fresh", "elsewhere", 1, T0, T0 - ALIVE),
        DaemonRow("stale", "elsewhere", 2, T0, T0 - ALIVE - SECOND),
    ]

    sharing.see(rows, T0)

    assert sharing.peers == ("fresh", "me")


def test_a_dead_predecessor_on_this_host_is_not_waited_for() -> None:
    sharing = Sharing("me")
    host = socket.gethostname()
    rows = [
        DaemonRow("predecessor", host, _finished_pid(), T0, T0),
        DaemonRow("neighbour", host, os.getpid(), T0, T0),
    ]

    sharing.see(rows, T0)

    assert sharing.peers == ("me", "neighbour")


def _finished_pid() -> int:
    """Return the pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# -- daemons sharing one store ------------------------------------------------------


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Fleet:
    """Daemons on one store and one clock, whose runs are recorded, not sent."""

    config: Config
    open_store: Callable[[], Store]
    clock: Clock = field(default_factory=Clock)
    daemons: list[Daemon] = field(default_factory=list)
    ran: list[tuple[str, DueRun]] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, owner: str, *, store: Store | None = None) -> Daemon:
        def execute(run: DueRun) -> Outcome:
            with self.lock:
                self.ran.append((owner, run))
            return OK

        dispatcher = Dispatcher(
            store or self.open_store(),
            execute,
            owner=owner,
            clock=self.clock,
            on_finished=self.finished.append,
        )
        daemon = Daemon(
            self.config,
            dispatcher,
            spaces_of=lambda schedule: list(schedule.spaces),
            clock=self.clock,
        )
        daemon.load(self.clock())
        self.daemons.append(daemon)
        return daemon

    def step(self, at: datetime, daemons: list[Daemon] | None = None) -> None:
        self.clock.now = at
        for daemon in daemons if daemons is not None else self.daemons:
            daemon.step(at)
        for daemon in self.daemons:
            assert daemon.dispatcher.wait(10)

    def meet(self) -> None:
        """Step every daemon twice before 09:05, so that each has seen the others."""
        self.step(T0 + 4 * MINUTE + 30 * SECOND)
        self.step(T0 + 4 * MINUTE + 50 * SECOND)

    def runs_by_owner(self) -> Counter[str]:
        return Counter(owner for owner, _ in self.ran)


@pytest.fixture
def fleet(database: Database, tmp_path: Path) -> Iterator[Fleet]:
    config = parse_config(CONFIG, tmp_path / "spaces.toml")
    made = Fleet(config, database.open)
    yield made
    for daemon in made.daemons:
        daemon.dispatcher.shutdown(grace=1)


def keys_ran(fleet: Fleet) -> list[RunKey]:
    return [run.key for _, run in fleet.ran]


def test_three_daemons_share_a_herd_and_run_each_slot_once(fleet: Fleet) -> None:
    for name in ("d1", "d2", "d3"):
        fleet.start(name)
    fleet.meet()

    fleet.step(T0 + 5 * MINUTE)
    fleet.step(T0 + 5 * MINUTE + HANDOVER)

    keys = keys_ran(fleet)
    assert len(keys) == len(set(keys)) == len(SPACES)
    shares = fleet.runs_by_owner()
    assert set(shares) == {"d1", "d2", "d3"}
    assert all(10 <= count <= 30 for count in shares.values()), shares


def test_a_dead_daemons_share_is_taken_after_the_hand_over_delay(
    fleet: Fleet,
) -> None:
    d1, d2, d3 = (fleet.start(name) for name in ("d1", "d2", "d3"))
    fleet.meet()  # d3 then dies

    fleet.step(T0 + 5 * MINUTE, [d1, d2])
    early = fleet.runs_by_owner()
    fleet.step(T0 + 5 * MINUTE + HANDOVER, [d1, d2])

    assert set(early) == {"d1", "d2"} and sum(early.values()) < len(SPACES)
    keys = keys_ran(fleet)
    assert len(keys) == len(set(keys)) == len(SPACES)
    assert all(run.due_at == T0 + 5 * MINUTE for _, run in fleet.ran)
    late = [run for _, run in fleet.ran[sum(early.values()) :]]
    assert {preferred(["d1", "d2", "d3"], "refresh", r.space) for r in late} == {"d3"}


def test_a_daemon_that_stopped_cleanly_is_not_waited_for(fleet: Fleet) -> None:
    d1, d2 = fleet.start("d1"), fleet.start("d2")
    fleet.step(T0 + 4 * MINUTE + 30 * SECOND)  # both heartbeat
    d2.store.forget_daemon("d2")  # as its clean stop does

    fleet.step(T0 + 4 * MINUTE + 50 * SECOND, [d1])  # d1 looks at its peers
    fleet.step(T0 + 5 * MINUTE, [d1])

    assert fleet.runs_by_owner() == {"d1": len(SPACES)}


# -- a store that fails ---------------------------------------------------------------


class FlakyStore:
    """A store that raises StoreError on every call while `down` is set."""

    def __init__(self, inner: Store, *, only: tuple[str, ...] = ()) -> None:
        self.inner = inner
        self.down = False
        self.only = only
        self.failed: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down and (not self.only or name in self.only):
                self.failed[name] += 1
                raise StoreError("The state store test failed: connection refused.")
            return method(*args, **kwargs)

        return call


def test_the_loop_survives_a_store_outage_and_catches_up(fleet: Fleet) -> None:
    flaky = FlakyStore(fleet.open_store())
    daemon = fleet.start("d1", store=cast(Store, flaky))

    flaky.down = True
    fleet.clock.now = T0 + 5 * MINUTE
    retry_at = daemon.step_or_retry()
    fleet.clock.now = T0 + 6 * MINUTE
    second_retry = daemon.step_or_retry()

    assert retry_at == T0 + 5 * MINUTE + SECOND
    assert second_retry == T0 + 6 * MINUTE + 2 * SECOND
    assert fleet.ran == [], "nothing acted while nothing could be recorded"

    flaky.down = False
    fleet.clock.now = T0 + 7 * MINUTE
    daemon.step_or_retry()
    assert daemon.dispatcher.wait(10)

    # The 09:05 slot was missed during the outage; within the grace it runs once.
    assert set(keys_ran(fleet)) == set(
        RunKey("refresh", space, T0 + 5 * MINUTE) for space in SPACES
    )
    assert {f.outcome.kind for f in fleet.finished} == {OutcomeKind.OK}


def test_an_outcome_is_recorded_once_the_store_answers_again(
    database: Database,
) -> None:
    flaky = FlakyStore(database.open(), only=("finish", "finish_many"))
    gate = threading.Event()
    finished: list[Finished] = []

    def execute(run: DueRun) -> Outcome:
        gate.wait(10)
        return OK

    dispatcher = Dispatcher(
        cast(Store, flaky), execute, owner="d1", on_finished=finished.append
    )
    config = parse_config(CONFIG, Path("spaces.toml"))
    run = DueRun(config.schedules[0], "acme/a", T0, T0)

    future = dispatcher.dispatch_one(run)
    flaky.down = True
    gate.set()
    threading.Timer(1.2, lambda: setattr(flaky, "down", False)).start()
    assert future is not None
    future.result(timeout=10)
    assert dispatcher.wait(10)
    dispatcher.shutdown(grace=0)

    assert flaky.failed["finish_many"] == 1 and flaky.failed["finish"] >= 1
    assert [f.outcome.kind for f in finished] == [OutcomeKind.OK]
    assert [r.outcome for r in database.opened[0].runs()] == [OutcomeKind.OK]


def test_an_outcome_that_cannot_be_recorded_within_the_lease_is_not_reported(
    database: Database,
) -> None:
    flaky = FlakyStore(database.open(), only=("finish", "finish_many"))
    finished: list[Finished] = []
    dispatcher = Dispatcher(
        cast(Store, flaky),
        lambda run: OK,
        owner="d1",
        lease=timedelta(seconds=1),
        on_finished=finished.append,
    )
    config = parse_config(CONFIG, Path("spaces.toml"))
    flaky.down = True

    future = dispatcher.dispatch_one(DueRun(config.schedules[0], "acme/a", T0, T0))
    assert future is not None
    future.result(timeout=10)
    assert dispatcher.wait(10)
    dispatcher.shutdown(grace=0)

    assert finished == []
    assert dispatcher.in_flight == 0
    assert flaky.failed["finish"] >= 2, "retried once at least"


# -- status ----------------------------------------------------------------------------


def test_status_shows_which_daemon_ran_what_and_which_are_alive(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from spaces_scheduler.cli import main
    from spaces_scheduler.dispatch import utc_now

    config = tmp_path / "spaces.toml"
    config.write_text(CONFIG)
    url = f"sqlite:///{tmp_path}/state.db"
    shared = test_store.open_url(url)
    now = utc_now()
    shared.heartbeat("vm1:10:aa", host="vm1", pid=10, now=now)
    shared.heartbeat("vm2:11:bb", host="vm2", pid=11, now=now - 10 * MINUTE)
    key = RunKey("refresh", "acme/space-00", now)
    shared.record(
        key,
        OK,
        owner="vm1:10:aa",
        action="restart",
        trigger=Trigger.SCHEDULE,
        due_at=now,
        now=now,
    )
    shared.close()

    def status(*flags: str) -> str:
        args = ["status", *flags, "--config", str(config), "--state", url]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        return result.output

    text = status()
    assert "acme/space-00" in text and "by vm1:10:aa" in text
    assert "daemon vm1:10:aa  alive" in text
    assert "daemon vm2:11:bb  silent  last heartbeat 10m" in text

    rows = json.loads(status("--daemons", "--json"))
    assert [(row["owner"], row["alive"]) for row in rows] == [
        ("vm1:10:aa", True),
        ("vm2:11:bb", False),
    ]
