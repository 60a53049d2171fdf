"""`spaces-scheduler run`: the daemon.

The loop is `while not stopping: step(); sleep until the next due instant`. The
step is a public method that tests call with an explicit `now`; signals only set
flags and wake the loop. The daemon keeps one heap entry per (schedule, Space):
its next due instant (slot + the pair's jitter). Nothing polls: when no run is
due, the process sleeps until the first one is, or until a signal, a webhook or
a periodic chore (expiring dead claims, the heartbeat) wakes it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from spaces_scheduler.dispatch import Dispatcher, DueRun, schedule_rows, utc_now
from spaces_scheduler.errors import StoreError
from spaces_scheduler.outcome import Outcome
from spaces_scheduler.plan import (
    CronSpec,
    daemon_catch_up,
    jitter_offset,
    next_slots,
    parse_cron,
    slots_between,
)
from spaces_scheduler.sharing import Sharing
from spaces_scheduler.store.base import Claim

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule
    from spaces_scheduler.windows import Windows

log = logging.getLogger(__name__)

HEARTBEAT = timedelta(seconds=15)
# How long before its instant a run is claimed: long enough to write the
# claims of a herd of 10,000 (about half a second on SQLite) before it is due.
ARM_AHEAD = timedelta(seconds=2)
ARM_HERD = 100  # runs due within ARM_AHEAD that make a herd
EXPIRE_EVERY = timedelta(seconds=30)
REFRESH_PATTERNS = timedelta(minutes=10)
SHUTDOWN_GRACE = 30.0
# A long outage of a minute schedule would otherwise record tens of thousands
# of skipped slots per Space; older ones are passed over.
BACKFILL = timedelta(days=7)
BACKFILL_SLOTS = 1000
# Next slots remembered per (cron, zone, slot); a cache, cleared when this full.
NEXT_SLOTS_KEPT = 10_000
# While the store cannot be reached, the loop retries after these pauses.
STORE_RETRY = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Pair:
    """One Space of one schedule, with what its slots need."""

    schedule: Schedule
    space: str
    spec: CronSpec
    offset: timedelta

    def due(self, slot: datetime) -> DueRun:
        return DueRun(self.schedule, self.space, slot, slot + self.offset)


class Daemon:
    """Keeps every (schedule, Space) on time."""

    def __init__(
        self,
        config: Config,
        dispatcher: Dispatcher,
        *,
        spaces_of: Callable[[Schedule], list[str]],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.spaces_of = spaces_of
        self.clock = clock
        self._heap: list[tuple[datetime, int, int, datetime]] = []
        # Claimed runs waiting for their instant: (due_at, tie, run, claim).
        self._armed: list[tuple[datetime, int, DueRun, Claim]] = []
        # No look-ahead before this instant: what lies ahead is no herd.
        self._look_ahead_from = datetime.min.replace(tzinfo=UTC)
        self._pairs: list[Pair] = []
        self._counter = itertools.count()
        self._wake = threading.Event()
        self._stopping = False
        self._reload_asked = False
        self._next_chores = datetime.min.replace(tzinfo=clock().tzinfo)
        # Other periodic work (the missed-run check of alerts), run with the
        # chores; each is given the loop's `now`.
        self.chores: list[Callable[[datetime], None]] = []
        self.last_step: datetime | None = None
        self._next_refresh = self._next_chores
        self.started_at = clock()
        # Cost windows, built from the config by load(), and webhook runs.
        self._windows: Windows | None = None
        self._windows_of: Config | None = None
        self._next_boundary: datetime | None = None
        self._triggered: list[DueRun] = []
        self._trigger_lock = threading.Lock()
        # The `/webhooks/hub` handler the web server mounts; set by the host.
        self.webhook_endpoint: Callable[..., Any] | None = None
        self.sharing = Sharing(dispatcher.owner)
        self._next_slots: dict[tuple[CronSpec, str, datetime], datetime | None] = {}
        # Expire at least every third of a lease, so a short lease is honoured.
        self._chore_every = min(HEARTBEAT, EXPIRE_EVERY, dispatcher.lease / 3)
        self._needs_load = True
        self._store_failures = 0

    # -- loading ------------------------------------------------------------------

    def load(self, now: datetime) -> None:
        """Build the heap from the config and the store, catching up once."""
        rows = schedule_rows(self.config.schedules)
        self.store.register_schedules(rows, now)
        self._chores(now)  # expire dead claims, and see the peers before sharing

        first_seen = self.store.first_seen()
        last_slots = self.store.last_slots()
        self._heap = []
        self.sharing.clear()
        self._pairs = self._make_pairs()
        catch_up = []
        for index, pair in enumerate(self._pairs):
            known = last_slots.get((pair.schedule.name, pair.space))
            since = _since(pair, known, first_seen.get(pair.schedule.name, now), now)
            catch_up.extend(self._catch_up(index, pair, since, now))

        self._arm(catch_up, now)
        self._launch_due(now)
        self.dispatcher.prestart(len(self._pairs))
        self._next_refresh = now + REFRESH_PATTERNS
        self._load_windows(now)
        self._needs_load = False

    def _make_pairs(self) -> list[Pair]:
        pairs = []
        for schedule in self.config.schedules:
            spec = parse_cron(schedule.cron)
            jitter = schedule.policy.jitter
            for space in self.spaces_of(schedule):
                offset = jitter_offset(schedule.name, space, jitter)
                pairs.append(Pair(schedule, space, spec, offset))
        return pairs

    def _catch_up(
        self, index: int, pair: Pair, since: datetime, now: datetime
    ) -> list[DueRun]:
        """Record the slots missed since `since`; return the one to run, if any."""
        zone = pair.schedule.policy.timezone
        passed = slots_between(pair.spec, zone, since, now, limit=100_000)
        missed = [s for s in passed if s.utc + pair.offset <= now][-BACKFILL_SLOTS:]

        # A slot whose jitter has not elapsed yet is not missed: it is next.
        last = missed[-1].utc if missed else since
        self._push_next(index, pair, after=last)

        decision = daemon_catch_up(
            missed,
            now=now,
            grace=pair.schedule.policy.misfire_grace,
            jitter=pair.offset,
        )
        for slot, reason in decision.skipped:
            self.dispatcher.skip(pair.due(slot.utc), Outcome.skipped(reason))
        return [pair.due(decision.run.utc)] if decision.run is not None else []

    def _push_next(self, index: int, pair: Pair, *, after: datetime) -> None:
        slot = self._next_slot(pair.spec, pair.schedule.policy.timezone, after)
        if slot is not None:
            entry = (slot + pair.offset, next(self._counter), index, slot)
            heapq.heappush(self._heap, entry)

    def _next_slot(self, spec: CronSpec, zone: str, after: datetime) -> datetime | None:
        """Return the next slot after `after`, computed once for all the Spaces
        of a schedule (and all schedules of one cron) whose slot came together."""
        key = (spec, zone, after)
        if key not in self._next_slots:
            if len(self._next_slots) > NEXT_SLOTS_KEPT:
                self._next_slots.clear()
            upcoming = next_slots(spec, zone, after, 1)
            self._next_slots[key] = upcoming[0].utc if upcoming else None
        return self._next_slots[key]

    # -- the step -----------------------------------------------------------------

    def step(self, now: datetime | None = None) -> datetime | None:
        """Do what is due at `now`; return when the next thing is due."""
        now = now or self.clock()
        self.last_step = now
        if now >= self._next_chores:
            self._chores(now)
        if now >= self._next_refresh and self._has_patterns():
            self.load(now)

        popped = self._pop_due(now)
        self._arm([self._pairs[i].due(slot) for i, slot in popped], now)
        self._launch_due(now)
        # The herd first: the next slots (a cron evaluation each) can wait.
        for index, slot in popped:
            self._push_next(index, self._pairs[index], after=slot)
        self.dispatcher.dispatch(self._window_runs(now) + self._take_triggered())
        return self.next_wake()

    def _pop_due(self, now: datetime) -> list[tuple[int, datetime]]:
        """Pop the pairs due now, and those due within ARM_AHEAD if a herd.

        Only a herd is claimed ahead: a claim made early is lost with its
        process if that dies before the instant, so a few runs are claimed at
        their instant, when writing their claims takes no time to speak of.
        """
        horizon = now + ARM_AHEAD if now >= self._look_ahead_from else now
        entries = []
        while self._heap and self._heap[0][0] <= horizon:
            entries.append(heapq.heappop(self._heap))

        upcoming = [entry for entry in entries if entry[0] > now]
        if upcoming and len(upcoming) < ARM_HERD:
            for entry in upcoming:
                heapq.heappush(self._heap, entry)
            self._look_ahead_from = min(entry[0] for entry in upcoming)
            entries = [entry for entry in entries if entry[0] <= now]
        return [(index, slot) for _, _, index, slot in entries]

    def _arm(self, due: list[DueRun], now: datetime) -> None:
        """Claim the runs this daemon is preferred for, and the others' once due.

        Runs due within ARM_AHEAD are claimed now and started at their instant,
        so that a herd's claims are written before it is due, not after.
        """
        mine, theirs = self.sharing.split(due)
        self.sharing.hold(theirs, now)

        handed = self.sharing.handed_over(now)
        if handed:
            taken = self.store.recorded(run.key for run in handed)
            mine += [run for run in handed if run.key not in taken]
        for run, claim in self.dispatcher.arm(mine):
            heapq.heappush(self._armed, (run.due_at, next(self._counter), run, claim))

    def _launch_due(self, now: datetime) -> None:
        """Start the armed runs whose instant has come."""
        ready = []
        while self._armed and self._armed[0][0] <= now:
            _, _, run, claim = heapq.heappop(self._armed)
            ready.append((run, claim))
        if ready:
            self.dispatcher.launch(ready)

    def next_wake(self) -> datetime | None:
        times = [self._next_chores]
        if self._heap:
            top = self._heap[0][0]
            ahead = top > self._look_ahead_from
            times.append(top - ARM_AHEAD if ahead else top)
        if self._armed:
            times.append(self._armed[0][0])
        if self._next_boundary is not None:
            times.append(self._next_boundary)
        handover = self.sharing.next_hand_over()
        if handover is not None:
            times.append(handover)
        if self._has_patterns():
            times.append(self._next_refresh)
        return min(times)

    def _chores(self, now: datetime) -> None:
        """Record dead claims as abandoned and say this daemon is alive."""
        for row in self.store.expire(now):
            log.warning(
                "%s: the run of %s for %s was abandoned (its process stopped)",
                row.key.space,
                row.key.schedule,
                row.key.slot.isoformat(),
            )
        self.store.heartbeat(
            self.dispatcher.owner, host=socket.gethostname(), pid=os.getpid(), now=now
        )
        self.sharing.see(self.store.daemons(), now)
        self._next_chores = now + self._chore_every
        for chore in self.chores:
            try:
                chore(now)
            except Exception:  # an alert or a check must not stop the loop
                log.exception("a periodic chore failed")

    def _has_patterns(self) -> bool:
        return any("*" in space for s in self.config.schedules for space in s.spaces)

    # -- the loop -------------------------------------------------------------------

    def run_forever(self, *, reload: Callable[[], Config] | None = None) -> None:
        """Run until SIGTERM or SIGINT; reload the config on SIGHUP."""
        self._install_signals()
        while not self._stopping:
            if self._reload_asked and reload is not None:
                self._reload(reload)
            self._sleep_until(self.step_or_retry())

        self._stop_cleanly()

    def _stop_cleanly(self) -> None:
        """Let runs end, record the rest abandoned, and leave the peers' view."""
        try:
            abandoned = self.dispatcher.shutdown(grace=SHUTDOWN_GRACE)
            self.store.forget_daemon(self.dispatcher.owner)
        except StoreError as exc:
            # The claims left behind expire after their lease, as a kill's would.
            log.error("could not record the stop in the state store: %s", exc)
            return
        for name in abandoned:
            log.warning("stopped during the run of %s: recorded abandoned", name)

    def step_or_retry(self) -> datetime | None:
        """Step, or after a store failure, say when to try again.

        A store that cannot be reached claims nothing, so nothing is acted on
        meanwhile; once it answers, the plan is rebuilt from what it recorded,
        and the slots missed in between are caught up as after downtime.
        """
        try:
            if self._needs_load:
                self.load(self.clock())
            wake = self.step()
        except StoreError as exc:
            self._needs_load = True
            pause = STORE_RETRY[min(self._store_failures, len(STORE_RETRY) - 1)]
            self._store_failures += 1
            log.error("the state store failed; retrying in %.0fs: %s", pause, exc)
            return self.clock() + timedelta(seconds=pause)

        if self._store_failures:
            log.info("the state store answers again")
            self._store_failures = 0
        return wake

    def _sleep_until(self, wake: datetime | None) -> None:
        seconds = 3600.0
        if wake is not None:
            seconds = max(0.0, (wake - self.clock()).total_seconds())
        log.debug("sleeping %.3fs", seconds)
        self._wake.wait(seconds)
        self._wake.clear()

    def _reload(self, reload: Callable[[], Config]) -> None:
        self._reload_asked = False
        try:
            self.config = reload()
        except Exception as exc:  # a bad edit must not stop the daemon
            problems = getattr(exc, "problems", None) or [str(exc)]
            for problem in problems:  # one readable line each
                log.error("config not reloaded, the old one stays: %s", problem)
            return
        log.info("config reloaded: %d schedules", len(self.config.schedules))
        self._needs_load = True

    # -- windows and webhook runs -------------------------------------------------

    def trigger(self, runs: list[DueRun]) -> None:
        """Dispatch `runs` at once (a webhook's); safe to call from any thread.

        The loop thread stays the only one that dispatches: the runs wait in a
        list that the next step takes.
        """
        with self._trigger_lock:
            self._triggered.extend(runs)
        self.wake()

    def _take_triggered(self) -> list[DueRun]:
        with self._trigger_lock:
            runs, self._triggered = self._triggered, []
        return runs

    def _load_windows(self, now: datetime) -> None:
        """Reconcile every window at start-up and after a reload."""
        if self._windows_of is self.config:
            return  # a refresh of the Space patterns: the windows stand
        self._windows_of = self.config
        self._windows, self._next_boundary = None, None
        if not self.config.windows:
            return

        from spaces_scheduler.windows import Windows

        self._windows = Windows(
            self.config.windows,
            defaults=self.config.defaults,
            spaces_of=self.spaces_of,
        )
        runs = self._windows.runs(now, slot=now.replace(microsecond=0))
        self.dispatcher.dispatch(runs)
        self._next_boundary = self._windows.next_boundary(now)

    def _window_runs(self, now: datetime) -> list[DueRun]:
        """Return the reconciliation runs of the boundary that passed, if any."""
        windows, boundary = self._windows, self._next_boundary
        if windows is None or boundary is None or now < boundary:
            return []

        # After a long sleep only the newest boundary matters: the state of now.
        following = windows.next_boundary(boundary)
        while following is not None and following <= now:
            boundary, following = following, windows.next_boundary(following)
        self._next_boundary = following
        return windows.runs(now, slot=boundary)

    def wake(self) -> None:
        """Wake the loop now (a webhook, a manual run, a signal)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._reload_asked = True
            self._wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)


def _since(
    pair: Pair, known: datetime | None, first_seen: datetime, now: datetime
) -> datetime:
    """Return after when slots of the pair count as missed."""
    if known is not None:
        return max(known, now - BACKFILL)
    # A Space new to the schedule (or a new schedule) has missed nothing from
    # before it joined; within the grace its newest slot still runs once.
    grace = pair.schedule.policy.misfire_grace + pair.offset
    return max(first_seen, now - grace)
