"""Cost windows: the state each Space should hold over time, and reconciliation.

A `[[window]]` declares a state for its hours (`inside`) and one for the rest of
the week (`outside`); either may be absent, and then the window leaves the Space
alone at those times. The daemon reconciles at start-up and at every boundary:
each Space's runtime is read once, and the Space is acted on only where it
differs from the desired state. A Space already in it costs that one read and is
recorded `skipped: in-state`.

What "in the state" means:

- `pause`: the stage is PAUSED.
- `{ hardware = FLAVOR }`: the Space runs on FLAVOR, i.e. `hardware.current` and
  `hardware.requested` are FLAVOR and the Space is not PAUSED. A PAUSED Space is
  given FLAVOR and restarted: office hours are expected to bring the Space up,
  and a paused Space would stay down all day. A SLEEPING Space on FLAVOR is in
  the state: the Hub wakes it on the next visit, and waking it now would bill
  hours nobody uses.
- `{ sleep_time = DURATION }`: `gcTimeout` is DURATION (`never`: no timeout).

Reconciliation runs go through the same claims as scheduled runs: each is a
`DueRun` of a synthetic schedule named `window:<name>` with `Trigger.WINDOW`, so
it is recorded, shown in history, and never made twice for one boundary, even
by several daemons on one store. They ignore `min_interval` (a pause skipped
because a schedule restarted the Space minutes earlier would bill a whole night)
and wait for a Space the Hub shows building (`if_busy = "wait"`). A change the
Hub refuses (no payment method, quota, ZeroGPU, a sleep time on cpu-basic)
fails the run with the Hub's reason.

Boundaries are the instants at which `Window.contains()` changes its answer, in
the window's zone: the starts and ends of each day's hours, placed with both
readings of a repeated autumn hour, and the zone's offset changes (a window
starting at 02:30 on the spring-forward night starts when the clock jumps).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.config import RunPolicy, Schedule, Window
from spaces_scheduler.dispatch import DueRun
from spaces_scheduler.errors import HubError
from spaces_scheduler.hub import Runtime
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.plan import WeeklyHours
from spaces_scheduler.runner import RunOptions, execute
from spaces_scheduler.store.base import Trigger

if TYPE_CHECKING:
    from spaces_scheduler.hub import HubCalls, HubClient

log = logging.getLogger(__name__)

PREFIX = "window:"
MINUTE = timedelta(minutes=1)
# Every boundary of a weekly pattern comes within a week; two days more cover
# a DST shift and a window that runs past midnight.
HORIZON_DAYS = 9

Executor = Callable[[DueRun], Outcome]


# -- boundaries -----------------------------------------------------------------


def next_boundary(hours: WeeklyHours, after: datetime) -> datetime | None:
    """Return the first instant after `after` at which `hours` turns in or out."""
    for moment in sorted(m for m in _candidates(hours, after) if m > after):
        if hours.contains(moment) != hours.contains(moment - MINUTE):
            return moment
    return None  # inside (or outside) all week


def _candidates(hours: WeeklyHours, after: datetime) -> set[datetime]:
    """Return every instant where the window may change: wall-clock edges, DST."""
    zone = ZoneInfo(hours.zone)
    first_day = after.astimezone(zone).date() - timedelta(days=1)
    length = timedelta(minutes=(hours.end - hours.start) % 1440 or 1440)

    found = set(_offset_changes(zone, after, after + timedelta(days=HORIZON_DAYS)))
    for offset in range(HORIZON_DAYS + 1):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in hours.days:
            continue
        start = _wall(day, hours.start)
        for naive in (start, start + length):
            # Both readings of a repeated hour; a time in a gap reads as after it.
            for fold in (0, 1):
                aware = naive.replace(tzinfo=zone, fold=fold)
                found.add(aware.astimezone(UTC))
    return found


def _wall(day: date, minutes: int) -> datetime:
    return datetime.combine(day, clock_time()) + timedelta(minutes=minutes)


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Return the instants (to the minute) in [start, end) where `zone` shifts."""
    changes = []
    probe = start.astimezone(UTC).replace(second=0, microsecond=0)
    while probe < end:
        later = probe + timedelta(hours=1)
        if probe.astimezone(zone).utcoffset() != later.astimezone(zone).utcoffset():
            changes.append(_first_minute_of(zone, probe, later))
        probe = later
    return changes


def _first_minute_of(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """Return the first minute in (low, high] with `high`'s offset."""
    target = high.astimezone(zone).utcoffset()
    while high - low > MINUTE:
        middle = low + (high - low) // 2
        middle = middle.replace(second=0, microsecond=0)
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high


# -- desired state ------------------------------------------------------------------


def window_schedule(window: Window, action: Action, defaults: RunPolicy) -> Schedule:
    """Return the synthetic schedule whose runs reconcile `window` to `action`."""
    policy = dataclasses.replace(
        defaults,
        timezone=window.timezone,
        min_interval=timedelta(0),
        jitter=timedelta(0),
        if_busy="wait",
    )
    return Schedule(
        name=PREFIX + window.name,
        cron="",
        spaces=window.spaces,
        action=action,
        policy=policy,
    )


class Windows:
    """Every window of a config: its boundaries and its reconciliation runs."""

    def __init__(
        self,
        windows: Sequence[Window],
        *,
        defaults: RunPolicy,
        spaces_of: Callable[[Schedule], list[str]],
    ) -> None:
        self.windows = tuple(windows)
        self.defaults = defaults
        self.spaces_of = spaces_of
        self._hours = {w.name: w.weekly_hours for w in self.windows}

    def next_boundary(self, after: datetime) -> datetime | None:
        """Return the next instant after `after` at which any window turns."""
        found = [next_boundary(self._hours[w.name], after) for w in self.windows]
        instants = [moment for moment in found if moment is not None]
        return min(instants) if instants else None

    def desired(self, window: Window, moment: datetime) -> Action | None:
        """Return the state `window` asks for at `moment`; None leaves it alone."""
        inside = self._hours[window.name].contains(moment)
        return window.inside if inside else window.outside

    def runs(self, now: datetime, *, slot: datetime) -> list[DueRun]:
        """Return one reconciliation run per Space of every window, at `slot`."""
        runs: list[DueRun] = []
        for window in self.windows:
            action = self.desired(window, now)
            if action is None:
                continue
            schedule = window_schedule(window, action, self.defaults)
            runs.extend(
                DueRun(schedule, space, slot, now, trigger=Trigger.WINDOW)
                for space in self.spaces_of(schedule)
            )
        return runs


# -- reconciliation -------------------------------------------------------------


def in_state(action: Action, runtime: Runtime) -> bool:
    """Return whether `runtime` already is the state `action` declares."""
    if action.kind is ActionKind.PAUSE:
        return runtime.stage == "PAUSED"
    if action.kind is ActionKind.HARDWARE:
        flavor = action.hardware
        requested = runtime.requested_hardware in (None, flavor)
        return runtime.hardware == flavor and requested and runtime.stage != "PAUSED"
    if action.kind is ActionKind.SLEEP_TIME:
        # The Hub reads "never sleep" (-1) back as no timeout at all.
        wanted = None if action.sleep_seconds == -1 else action.sleep_seconds
        return runtime.sleep_time == wanted
    return False


def describe(action: Action, runtime: Runtime) -> str:
    """Return what a person reads of the state a Space was found in."""
    if action.kind is ActionKind.HARDWARE:
        return f"already {runtime.stage} on {runtime.hardware}"
    if action.kind is ActionKind.SLEEP_TIME:
        after = runtime.sleep_time
        return (
            "already never sleeps"
            if after is None
            else f"already sleeps after {after}s"
        )
    return f"already {runtime.stage}"


def window_executor(
    client: HubClient, *, poll_first: float, otherwise: Executor
) -> Executor:
    """Return an executor that reconciles window runs and passes on the others."""

    def run(due: DueRun) -> Outcome:
        if due.trigger is not Trigger.WINDOW:
            return otherwise(due)
        return reconcile(client, due, poll_first=poll_first)

    return run


def reconcile(client: HubClient, due: DueRun, *, poll_first: float) -> Outcome:
    """Read the Space's runtime once; act only where it differs from the state."""
    policy = due.schedule.policy
    options = RunOptions.of(policy, poll_first=poll_first)
    calls = client.calls(deadline=time.monotonic() + policy.wait.total_seconds())
    try:
        runtime = calls.runtime(due.space)
    except HubError as exc:
        return Outcome(OutcomeKind.FAILED, reason=str(exc), requests=calls.requests)

    action = due.schedule.action
    if in_state(action, runtime):
        outcome = Outcome.skipped("in-state", summary=describe(action, runtime))
        return dataclasses.replace(
            outcome, stages=(runtime.stage,), requests=calls.requests
        )
    if action.kind is ActionKind.HARDWARE and runtime.stage == "PAUSED":
        return _start_on(calls, due.space, action, options, runtime)
    return execute(calls, due.space, action, options, before=runtime)


def _start_on(
    calls: HubCalls, space: str, action: Action, options: RunOptions, paused: Runtime
) -> Outcome:
    """Bring a PAUSED Space up on the window's flavor: set it, then restart."""
    flavor = str(action.hardware)
    if paused.requested_hardware != flavor:
        # The Hub records the flavor of a paused Space without starting it.
        first = execute(calls, space, action, options, before=paused)
        if first.kind is not OutcomeKind.OK:
            return first

    restart = Action(ActionKind.RESTART)
    started = execute(calls, space, restart, options)
    if started.kind is not OutcomeKind.OK:
        return started
    return _check_flavor(calls, space, flavor, started)


def _check_flavor(
    calls: HubCalls, space: str, flavor: str, started: Outcome
) -> Outcome:
    try:
        final = calls.runtime(space)
    except HubError as exc:
        return Outcome(OutcomeKind.FAILED, reason=str(exc), requests=calls.requests)
    if final.hardware != flavor:
        reason = f"restarted from PAUSED but the Space runs on {final.hardware}"
        return dataclasses.replace(
            started, kind=OutcomeKind.FAILED, reason=reason, requests=calls.requests
        )
    summary = f"was PAUSED; RUNNING on {flavor}"
    return dataclasses.replace(started, summary=summary, requests=calls.requests)
