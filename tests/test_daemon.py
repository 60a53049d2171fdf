"""The daemon's step with an explicit clock, and a stand-in for the Hub runs.

The runs themselves are tested against the simulated Hub elsewhere; here the
executor only records what it was asked to do, so each test states exactly the
scheduling semantics of DESIGN.md: slots, jitter, misfires, overlap, leases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spaces_scheduler.config import Config, parse_config
from spaces_scheduler.daemon import Daemon
from spaces_scheduler.dispatch import Dispatcher, DueRun, Finished
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import ScheduleRow, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)
OK = Outcome(OutcomeKind.OK, summary="RUNNING after 1.0s")


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    """A daemon on a SQLite store whose runs are recorded, not sent."""

    config: Config
    store: Store
    clock: Clock
    ran: list[DueRun] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    gate: threading.Event | None = None
    daemon: Daemon | None = None

    def execute(self, run: DueRun) -> Outcome:
        self.ran.append(run)
        if self.gate is not None:
            self.gate.wait(10)
        return OK

    def start(self, *, registered_at: datetime = T0) -> Daemon:
        rows = [
            ScheduleRow(s.name, s.cron, s.policy.timezone, str(s.action))
            for s in self.config.schedules
        ]
        self.store.register_schedules(rows, registered_at)
        dispatcher = Dispatcher(
            self.store,
            self.execute,
            owner="daemon-test",
            clock=self.clock,
            on_finished=self.finished.append,
        )
        self.daemon = Daemon(
            self.config,
            dispatcher,
            spaces_of=lambda schedule: list(schedule.spaces),
            clock=self.clock,
        )
        self.daemon.load(self.clock())
        self.settle()
        return self.daemon

    def step(self, at: datetime) -> None:
        assert self.daemon is not None
        self.clock.now = at
        self.daemon.step(at)
        self.settle()

    def settle(self) -> None:
        assert self.daemon is not None
        assert self.daemon.dispatcher.wait(10)

    def outcomes(self) -> list[tuple[str, str, datetime, str]]:
        rows = self.store.runs(limit=1000)
        return sorted(
            (r.key.schedule, r.key.space, r.key.slot, _word(r.outcome, r.reason))
            for r in rows
        )


def _word(outcome: OutcomeKind | None, reason: str) -> str:
    if outcome is OutcomeKind.SKIPPED:
        return f"skipped: {reason}"
    return outcome.value if outcome else "claimed"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[[str], Harness]]:
    stores: list[Store] = []

    def make(text: str) -> Harness:
        path = tmp_path / "spaces.toml"
        path.write_text(text)
        store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=path)
        stores.append(store)
        return Harness(parse_config(text, path), store, Clock())

    yield make
    for store in stores:
        store.close()


EVERY_5 = """
[defaults]
jitter = "0s"
min_interval = "0s"
misfire_grace = "10m"

[[schedule]]
name = "refresh"
cron = "*/5 * * * *"
spaces = ["acme/a", "acme/b"]
action = "restart"
"""


def test_runs_each_space_once_per_slot(harness: Callable[[str], Harness]) -> None:
    h = harness(EVERY_5)
    h.start()

    h.step(T0 + 4 * MINUTE)
    assert h.ran == []

    h.step(T0 + 5 * MINUTE)
    h.step(T0 + 5 * MINUTE + timedelta(seconds=30))

    assert sorted(r.space for r in h.ran) == ["acme/a", "acme/b"]
    assert {r.slot for r in h.ran} == {T0 + 5 * MINUTE}
    assert all(f.lateness == 0 for f in h.finished)


def test_next_wake_is_the_next_due_instant(harness: Callable[[str], Harness]) -> None:
    h = harness(EVERY_5)
    daemon = h.start()

    wake = daemon.step(T0 + timedelta(seconds=1))

    # Nothing is due until 09:05; the chores come first, every 15 s.
    assert wake is not None and wake <= T0 + 5 * MINUTE
    h.step(T0 + 5 * MINUTE)
    assert daemon.next_wake() is not None


def test_a_new_schedule_has_missed_nothing(harness: Callable[[str], Harness]) -> None:
    h = harness(EVERY_5)

    h.start(registered_at=T0 + 12 * MINUTE)

    assert h.ran == []
    assert h.store.runs() == []


def test_after_downtime_the_newest_missed_slot_runs_once(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5)
    h.start()
    h.step(T0 + 5 * MINUTE)
    h.ran.clear()

    # Down from 09:06 until 09:27: slots 09:10 to 09:25 passed.
    h.clock.now = T0 + 27 * MINUTE
    h.start()

    assert sorted((r.space, r.slot) for r in h.ran) == [
        ("acme/a", T0 + 25 * MINUTE),
        ("acme/b", T0 + 25 * MINUTE),
    ]
    coalesced = [o for o in h.outcomes() if o[3] == "skipped: coalesced"]
    assert len(coalesced) == 2 * 3  # 09:10, 09:15, 09:20 for both Spaces


def test_after_downtime_past_the_grace_everything_misfires(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5.replace('misfire_grace = "10m"', 'misfire_grace = "2m"'))
    h.start()
    h.step(T0 + 5 * MINUTE)
    h.ran.clear()

    # The newest missed slot, 09:35, is 3 minutes late: past the 2m grace.
    h.clock.now = T0 + 38 * MINUTE
    h.start()

    assert h.ran == []
    misfired = [o for o in h.outcomes() if o[3] == "skipped: misfired"]
    assert len(misfired) == 2 * 6  # 09:10 to 09:35


def test_jitter_delays_each_space_by_its_own_offset(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5.replace('jitter = "0s"', 'jitter = "4m"'))
    h.start()

    h.step(T0 + 5 * MINUTE)
    early = len(h.ran)
    h.step(T0 + 9 * MINUTE)

    assert early < 2  # neither offset is 0 for these names
    assert len(h.ran) == 2
    offsets = {f.run.space: f.run.due_at - f.run.slot for f in h.finished}
    assert all(timedelta(0) <= o < timedelta(minutes=4) for o in offsets.values())
    assert offsets["acme/a"] != offsets["acme/b"]


def test_a_slot_due_while_our_run_is_in_flight_is_skipped_busy(
    harness: Callable[[str], Harness],
) -> None:
    text = EVERY_5.replace('"*/5 * * * *"', '"* * * * *"')
    h = harness(text.replace('["acme/a", "acme/b"]', '["acme/a"]'))
    h.gate = threading.Event()
    daemon = h.start()

    h.clock.now = T0 + MINUTE
    daemon.step(T0 + MINUTE)  # starts the 09:01 run, which hangs on the gate
    h.clock.now = T0 + 2 * MINUTE
    daemon.step(T0 + 2 * MINUTE)
    h.gate.set()
    h.settle()

    assert [o[2:] for o in h.outcomes()] == [
        (T0 + MINUTE, "ok"),
        (T0 + 2 * MINUTE, "skipped: busy"),
    ]


def test_min_interval_skips_a_space_acted_on_lately(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(
        """
[defaults]
jitter = "0s"
min_interval = "15m"

[[schedule]]
name = "hourly"
cron = "0 * * * *"
spaces = ["acme/a"]
action = "restart"

[[schedule]]
name = "quarter-past"
cron = "10 * * * *"
spaces = ["acme/a"]
action = "rebuild"
"""
    )
    h.start(registered_at=T0 - MINUTE)

    h.step(T0)
    h.step(T0 + 10 * MINUTE)

    assert [r.schedule.name for r in h.ran] == ["hourly"]
    skipped = [o for o in h.outcomes() if o[0] == "quarter-past"]
    assert skipped == [
        ("quarter-past", "acme/a", T0 + 10 * MINUTE, "skipped: min-interval")
    ]


def test_two_schedules_on_one_space_at_once_run_one(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(
        """
[defaults]
jitter = "0s"
min_interval = "0s"

[[schedule]]
name = "one"
cron = "*/5 * * * *"
spaces = ["acme/a"]
action = "restart"

[[schedule]]
name = "two"
cron = "*/5 * * * *"
spaces = ["acme/a"]
action = "restart"
"""
    )
    h.start()

    h.step(T0 + 5 * MINUTE)

    assert len(h.ran) == 1
    words = sorted(o[3] for o in h.outcomes())
    assert words == ["ok", "skipped: busy"]


def test_a_dead_claim_is_recorded_abandoned_and_never_rerun(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5)
    h.start()
    from spaces_scheduler.store.base import RunKey, Trigger

    # Another daemon claimed 09:05 for acme/a and died.
    h.store.claim(
        RunKey("refresh", "acme/a", T0 + 5 * MINUTE),
        owner="dead-daemon",
        action="restart",
        trigger=Trigger.SCHEDULE,
        due_at=T0 + 5 * MINUTE,
        lease=timedelta(minutes=2),
        now=T0 + 5 * MINUTE,
    )

    h.step(T0 + 5 * MINUTE)
    h.step(T0 + 8 * MINUTE)  # the lease passed; the chores expire it

    assert [r.space for r in h.ran] == ["acme/b"]
    rows = [o for o in h.outcomes() if o[1] == "acme/a"]
    assert rows == [("refresh", "acme/a", T0 + 5 * MINUTE, "abandoned")]

    h.step(T0 + 10 * MINUTE)  # the next slot acts
    assert sorted(r.space for r in h.ran) == ["acme/a", "acme/b", "acme/b"]


def test_shutdown_records_runs_in_flight_as_abandoned(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5)
    h.gate = threading.Event()
    daemon = h.start()
    h.clock.now = T0 + 5 * MINUTE
    daemon.step(T0 + 5 * MINUTE)

    abandoned = daemon.dispatcher.shutdown(grace=0.2)
    h.gate.set()

    assert sorted(abandoned) == ["acme/a (refresh)", "acme/b (refresh)"]
    assert {o[3] for o in h.outcomes()} == {"abandoned"}


def test_reload_keeps_state_and_runs_nothing_twice(
    harness: Callable[[str], Harness], tmp_path: Path
) -> None:
    h = harness(EVERY_5)
    daemon = h.start()
    h.step(T0 + 5 * MINUTE)

    bigger = EVERY_5.replace('["acme/a", "acme/b"]', '["acme/a", "acme/b", "acme/c"]')
    daemon.config = parse_config(bigger, tmp_path / "spaces.toml")
    h.clock.now = T0 + 6 * MINUTE
    daemon.load(h.clock.now)
    h.settle()
    h.step(T0 + 10 * MINUTE)

    # acme/c joined at 09:06: like a missed slot, its newest slot within the
    # grace (09:05) runs once at the reload; no one else's runs again.
    slots = sorted((r.space, r.slot.minute) for r in h.ran)
    assert slots == [
        ("acme/a", 5),
        ("acme/a", 10),
        ("acme/b", 5),
        ("acme/b", 10),
        ("acme/c", 5),
        ("acme/c", 10),
    ]


def test_one_failing_run_does_not_stop_the_others(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5)

    def explode(run: DueRun) -> Outcome:
        if run.space == "acme/a":
            raise RuntimeError("boom")
        return OK

    h.execute = explode  # type: ignore[method-assign]
    h.start()
    h.step(T0 + 5 * MINUTE)

    words = {o[1]: o[3] for o in h.outcomes()}
    assert words == {"acme/a": "failed", "acme/b": "ok"}


HERD = [f"acme/space-{n:03d}" for n in range(120)]


def test_a_herd_is_claimed_before_its_instant_and_started_at_it(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(EVERY_5.replace('["acme/a", "acme/b"]', repr(HERD).replace("'", '"')))
    h.start()

    h.step(T0 + 5 * MINUTE - timedelta(seconds=1))

    # Claimed a moment ahead, so that the instant itself only starts them.
    assert h.ran == []
    assert {o[3] for o in h.outcomes()} == {"claimed"}
    assert len(h.outcomes()) == len(HERD)

    h.step(T0 + 5 * MINUTE)

    assert sorted(r.space for r in h.ran) == HERD
    assert all(f.lateness == 0 for f in h.finished)


def test_a_few_runs_are_claimed_at_their_instant(
    harness: Callable[[str], Harness],
) -> None:
    # A claim made early is lost with a process that dies before the instant.
    h = harness(EVERY_5)
    daemon = h.start()

    h.step(T0 + 5 * MINUTE - timedelta(seconds=1))

    assert h.outcomes() == []
    assert daemon.next_wake() == T0 + 5 * MINUTE
    h.step(T0 + 5 * MINUTE)
    assert sorted(r.space for r in h.ran) == ["acme/a", "acme/b"]
