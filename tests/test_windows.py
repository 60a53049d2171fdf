"""Cost windows: boundaries in the window's zone (DST included), and the daemon's
reconciliation at start-up and at boundaries against the simulated Hub."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.config import parse_config
from spaces_scheduler.daemon import Daemon
from spaces_scheduler.dispatch import Dispatcher, DueRun, Finished
from spaces_scheduler.hub import HubClient, RequestBudget, Runtime
from spaces_scheduler.outcome import Outcome
from spaces_scheduler.plan import WeeklyHours
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import Store, Trigger
from spaces_scheduler.windows import in_state, next_boundary, window_executor

from support import ALICE_TOKEN, alice_world, fast

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
BERLIN = "Europe/Berlin"


def boundaries(hours: WeeklyHours, start: datetime, end: datetime) -> list[datetime]:
    found, moment = [], next_boundary(hours, start)
    while moment is not None and moment <= end:
        found.append(moment)
        moment = next_boundary(hours, moment)
    return found


def flips(hours: WeeklyHours, start: datetime, end: datetime) -> list[datetime]:
    """Return, minute by minute, where `contains()` changes: the slow truth."""
    found, moment = [], start + MINUTE
    while moment <= end:
        if hours.contains(moment) != hours.contains(moment - MINUTE):
            found.append(moment)
        moment += MINUTE
    return found


def test_office_hours_in_berlin_turn_at_local_eight_and_seven() -> None:
    hours = WeeklyHours.parse("mon-fri", "08:00-19:00", BERLIN)

    found = boundaries(hours, MONDAY, MONDAY + timedelta(days=7))

    # Winter time: Berlin is UTC+1.
    assert found[:2] == [MONDAY.replace(hour=7), MONDAY.replace(hour=18)]
    assert len(found) == 10
    assert found[-1] == datetime(2026, 3, 6, 18, tzinfo=UTC)


def test_a_window_that_is_always_inside_never_turns() -> None:
    hours = WeeklyHours.parse("mon-sun", "00:00-24:00", "UTC")

    assert next_boundary(hours, MONDAY) is None


@pytest.mark.parametrize(
    ("days", "hours_text", "start"),
    [
        # Spring forward (29 March): 02:30 does not exist that night.
        ("mon-sun", "02:30-05:00", datetime(2026, 3, 26, tzinfo=UTC)),
        # Fall back (25 October): 02:00-03:00 happens twice.
        ("mon-sun", "00:00-02:30", datetime(2026, 10, 22, tzinfo=UTC)),
        ("sat,sun", "22:00-06:00", datetime(2026, 10, 22, tzinfo=UTC)),
        ("fri", "01:15-03:45", datetime(2026, 3, 25, tzinfo=UTC)),
    ],
)
def test_boundaries_are_exactly_where_contains_changes_across_dst(
    days: str, hours_text: str, start: datetime
) -> None:
    hours = WeeklyHours.parse(days, hours_text, BERLIN)
    end = start + timedelta(days=6)

    assert boundaries(hours, start, end) == flips(hours, start, end)


def test_spring_forward_starts_the_window_when_the_clock_jumps() -> None:
    hours = WeeklyHours.parse("sun", "02:30-05:00", BERLIN)

    found = next_boundary(hours, datetime(2026, 3, 28, tzinfo=UTC))

    # 02:00 CET becomes 03:00 CEST at 01:00 UTC, already past 02:30.
    assert found == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def runtime(stage: str, hardware: str = "t4-small", **keys: Any) -> Runtime:
    requested = keys.pop("requested", hardware)
    return Runtime(stage=stage, hardware=hardware, requested_hardware=requested, **keys)


def test_what_counts_as_being_in_the_state() -> None:
    t4 = Action(ActionKind.HARDWARE, hardware="t4-small")
    pause = Action(ActionKind.PAUSE)
    hour = Action(ActionKind.SLEEP_TIME, sleep_seconds=3600)
    never = Action(ActionKind.SLEEP_TIME, sleep_seconds=-1)

    assert in_state(t4, runtime("RUNNING"))
    assert in_state(t4, runtime("SLEEPING"))
    assert not in_state(t4, runtime("PAUSED"))
    assert not in_state(t4, runtime("RUNNING", requested="cpu-basic"))
    assert not in_state(t4, runtime("RUNNING", hardware="cpu-basic"))
    assert in_state(pause, runtime("PAUSED"))
    assert not in_state(pause, runtime("SLEEPING"))
    assert in_state(hour, runtime("RUNNING", sleep_time=3600))
    assert in_state(never, runtime("RUNNING", sleep_time=None))
    assert not in_state(never, runtime("RUNNING", sleep_time=3600))


# -- the daemon against the simulated Hub ------------------------------------------

NIGHTS = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"

[[window]]
name = "nights"
spaces = ["alice/demo", "alice/idle"]
timezone = "UTC"
hours = "17:00-09:00"
inside = "pause"
"""

OFFICE = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"

[[window]]
name = "office"
spaces = ["alice/demo"]
timezone = "UTC"
days = "mon-fri"
hours = "09:00-17:00"
inside = { hardware = "t4-small" }
outside = "pause"
"""


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    sim: Any
    store: Store
    clock: Clock
    daemon: Daemon
    finished: list[Finished] = field(default_factory=list)

    def step(self, at: datetime) -> datetime | None:
        self.clock.now = at
        wake = self.daemon.step(at)
        assert self.daemon.dispatcher.wait(20)
        return wake

    def lines(self) -> list[tuple[str, str, str]]:
        return sorted(
            (f.run.schedule.name, f.run.space, f.outcome.line()) for f in self.finished
        )

    def requests(self, space: str) -> list[tuple[str, str]]:
        return [
            (r["method"], r["path"].rsplit("/", 1)[-1])
            for r in self.sim.requests()
            if f"/{space}/" in r["path"]
        ]


def not_a_schedule(due: DueRun) -> Outcome:
    raise AssertionError(f"only window runs are expected, not {due}")


@pytest.fixture
def rig(tmp_path: Path, start_sim: Any) -> Iterator[Any]:
    stores: list[Store] = []

    def make(text: str, now: datetime, *spaces: dict[str, object]) -> Rig:
        sim = start_sim(alice_world(*spaces))
        path = tmp_path / "spaces.toml"
        path.write_text(text)
        config = parse_config(text, path)
        store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=path)
        stores.append(store)

        client = HubClient(
            token=ALICE_TOKEN, endpoint=sim.url, budget=RequestBudget(1000)
        )
        executor = window_executor(client, poll_first=0.05, otherwise=not_a_schedule)
        clock = Clock(now)
        finished: list[Finished] = []
        dispatcher = Dispatcher(
            store, executor, owner="test", clock=clock, on_finished=finished.append
        )
        daemon = Daemon(
            config, dispatcher, spaces_of=lambda s: list(s.spaces), clock=clock
        )
        built = Rig(sim, store, clock, daemon, finished)
        daemon.load(now)
        assert dispatcher.wait(20)
        return built

    yield make
    for store in stores:
        store.close()


def test_a_window_pauses_at_its_boundary_and_a_paused_space_costs_one_read(
    rig: Any,
) -> None:
    before = MONDAY.replace(hour=16, minute=59)
    r = rig(
        NIGHTS,
        before,
        fast("alice/demo", hardware="t4-small"),
        fast("alice/idle", stage="PAUSED"),
    )
    started = list(r.finished)
    wake = r.daemon.next_wake()
    while wake < MONDAY.replace(hour=17):  # chores (the heartbeat) come first
        wake = r.step(wake)

    r.step(wake)

    assert started == []  # outside a window with no `outside`: left alone
    assert wake == MONDAY.replace(hour=17)
    assert r.lines() == [
        ("window:nights", "alice/demo", "ok  PAUSED"),
        ("window:nights", "alice/idle", "skipped: in-state  already PAUSED"),
    ]
    assert r.sim.space_state("alice/demo")["stage"] == "PAUSED"
    assert r.requests("alice/idle") == [("GET", "runtime")]
    rows = r.store.runs(space="alice/demo")
    assert [(row.key.schedule, row.trigger, row.key.slot) for row in rows] == [
        ("window:nights", Trigger.WINDOW, MONDAY.replace(hour=17))
    ]
    assert r.daemon.next_wake() <= MONDAY.replace(hour=17, minute=1)


def test_a_boundary_reconciles_once_even_when_stepped_twice(rig: Any) -> None:
    r = rig(NIGHTS, MONDAY.replace(hour=16), fast("alice/demo"), fast("alice/idle"))

    r.step(MONDAY.replace(hour=17))
    r.step(MONDAY.replace(hour=17, second=30))

    assert len(r.store.runs(space="alice/demo")) == 1


def test_start_up_reconciles_and_office_hours_bring_a_paused_space_up(
    rig: Any,
) -> None:
    r = rig(
        OFFICE,
        MONDAY.replace(hour=8),
        fast("alice/demo", stage="PAUSED", hardware="cpu-basic"),
    )
    at_start = r.lines()

    r.step(MONDAY.replace(hour=9))
    state = r.sim.space_state("alice/demo")

    assert at_start == [
        ("window:office", "alice/demo", "skipped: in-state  already PAUSED")
    ]
    line = r.finished[-1].outcome.line()
    assert line.startswith("ok") and "was PAUSED; RUNNING on t4-small" in line
    assert (state["stage"], state["hardware"]) == ("RUNNING", "t4-small")


def test_a_hardware_change_refused_for_payment_fails_with_the_hubs_reason(
    rig: Any, start_sim: Any
) -> None:
    message = "A payment method is required to upgrade hardware."
    world_fault = {
        "path": "/api/spaces/alice/demo/hardware",
        "status": 402,
        "message": message,
        "times": 0,
    }
    r = rig(OFFICE, MONDAY.replace(hour=8), fast("alice/demo", hardware="cpu-basic"))
    r.sim.add_fault(world_fault)
    r.finished.clear()

    r.step(MONDAY.replace(hour=9))

    ((name, space, line),) = r.lines()
    assert line.startswith("failed")
    assert "402" in line and message.rstrip(".") in line
    assert r.sim.space_state("alice/demo")["hardware"] == "cpu-basic"


def test_a_sleep_time_on_cpu_basic_fails_with_the_hubs_reason(rig: Any) -> None:
    text = NIGHTS.replace('inside = "pause"', 'inside = { sleep_time = "1h" }')
    r = rig(text, MONDAY.replace(hour=18), fast("alice/demo"), fast("alice/idle"))

    lines = r.lines()

    assert len(lines) == 2
    assert all(line.startswith("failed") and "400" in line for _, _, line in lines)
    assert "cpu-basic" in lines[0][2]
