"""A digest of the store's run history, kept in memory and refreshed incrementally.

The dashboard's timeline and `/metrics` need every run of the last days (and all
time, for counters): reading 100,000 rows per request would take seconds. The
ledger reads the history once, then on each refresh only the rows above its
watermark: the id below which every run is finished and counted.

Two things keep the watermark honest:

- a run still claimed stays above it, so its outcome is counted once it lands;
- rows claimed in the last `SETTLE` seconds stay above it too, because on
  PostgreSQL a transaction can commit a lower id after a higher one is visible.

Rows above the watermark that were counted are remembered by id, so nothing is
counted twice. Counters only grow, as Prometheus expects, even if old rows are
pruned from the store later.
"""

from __future__ import annotations

import bisect
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.store.base import RunRecord, Store

PAGE = 5000
FIRST_PAGE = 50
SETTLE = timedelta(seconds=60)
KEEP_POINTS = timedelta(days=14)
DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
LATENESS_BUCKETS = (0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)
ACTED = frozenset({OutcomeKind.OK, OutcomeKind.FAILED, OutcomeKind.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class Point:
    """One finished run, as the timeline draws it."""

    id: int
    at: float  # claimed_at, epoch seconds
    schedule: str
    space: str
    outcome: OutcomeKind
    duration: float
    to_running: float | None  # seconds to RUNNING, for runs that reached it


@dataclass
class Histogram:
    """Cumulative-ready bucket counts, sum and count of observations."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[int]:
        running, out = 0, []
        for value in self.counts:
            running += value
            out.append(running)
        return out


@dataclass
class _Streak:
    """Failures of one Space since its last `ok`, in any arrival order."""

    last_ok: int = 0
    failures: set[int] = field(default_factory=set)

    def add(self, run_id: int, outcome: OutcomeKind) -> None:
        if outcome is OutcomeKind.OK and run_id > self.last_ok:
            self.last_ok = run_id
            self.failures = {i for i in self.failures if i > run_id}
        elif outcome.is_failure and run_id > self.last_ok:
            self.failures.add(run_id)

    @property
    def length(self) -> int:
        return len(self.failures)


@dataclass(frozen=True)
class LedgerView:
    """What one refresh saw; shared read-only by the request that asked."""

    latest: dict[tuple[str, str], RunRecord]
    points: list[Point]  # oldest first by claim time
    totals: dict[tuple[str, str, str], int]
    durations: dict[tuple[str, str], Histogram]
    lateness: dict[str, Histogram]
    streaks: dict[str, int]
    in_flight: int


class RunLedger:
    """Keeps a `LedgerView` of `store`'s runs fresh; safe to share across threads."""

    def __init__(
        self,
        store: Store,
        *,
        page: int = PAGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        min_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.page = page
        self.clock = clock
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._watermark = 0
        self._counted: set[int] = set()
        self._latest: dict[tuple[str, str], RunRecord] = {}
        self._points: list[Point] = []
        self._sorted = True
        self._totals: Counter[tuple[str, str, str]] = Counter()
        self._durations: dict[tuple[str, str], Histogram] = {}
        self._lateness: dict[str, Histogram] = {}
        self._streaks: dict[str, _Streak] = {}
        self._view: LedgerView | None = None
        self._fresh_until = 0.0

    def view(self) -> LedgerView:
        """Return the digest, reading the rows written since the last refresh.

        Refreshes closer together than `min_interval` share one read, so a burst
        of requests costs one query.
        """
        with self._lock:
            if self._view is not None and time.monotonic() < self._fresh_until:
                return self._view
            self._view = self._refresh()
            self._fresh_until = time.monotonic() + self.min_interval
            return self._view

    def _refresh(self) -> LedgerView:
        now = self.clock()
        pending, settled = self._read_new(now)

        # Everything at or below the watermark is finished and counted.
        limit = settled if settled is not None else self._watermark
        if pending:
            limit = min(limit, min(pending) - 1)
        self._watermark = max(self._watermark, limit)
        self._counted = {i for i in self._counted if i > self._watermark}

        self._prune(now)
        return self._snapshot(pending)

    def _read_new(self, now: datetime) -> tuple[dict[int, RunRecord], int | None]:
        """Read the rows above the watermark and count the finished ones.

        Return the runs still claimed, and the newest id claimed long enough
        ago that no lower id can still appear.
        """
        pending: dict[int, RunRecord] = {}
        settled: int | None = None
        before: int | None = None
        # Usually a handful of rows are new: start small, grow while all are.
        limit = FIRST_PAGE
        while True:
            rows = self.store.runs(before_id=before, limit=limit)
            for record in rows:
                if record.id <= self._watermark:
                    break
                if settled is None and now - record.claimed_at >= SETTLE:
                    settled = record.id
                if record.outcome is None:
                    pending[record.id] = record
                elif record.id not in self._counted:
                    self._ingest(record)
            if len(rows) < limit or rows[-1].id <= self._watermark:
                break
            before = rows[-1].id
            limit = min(limit * 4, self.page)
        return pending, settled

    def _ingest(self, record: RunRecord) -> None:
        assert record.outcome is not None
        self._counted.add(record.id)
        schedule = sys.intern(record.key.schedule)
        space = sys.intern(record.key.space)
        action = sys.intern(record.action)

        known = self._latest.get((schedule, space))
        if known is None or known.key.slot <= record.key.slot:
            self._latest[(schedule, space)] = record

        self._totals[(schedule, action, record.outcome.value)] += 1
        if record.outcome in ACTED:
            self._histogram_of(schedule, action).observe(record.duration)
            lateness = self._lateness.setdefault(schedule, Histogram(LATENESS_BUCKETS))
            lateness.observe(record.lateness)
        self._streaks.setdefault(space, _Streak()).add(record.id, record.outcome)

        reached = record.outcome is OutcomeKind.OK and record.stages[-1:] == (
            "RUNNING",
        )
        point = Point(
            id=record.id,
            at=record.claimed_at.timestamp(),
            schedule=schedule,
            space=space,
            outcome=record.outcome,
            duration=record.duration,
            to_running=record.duration if reached else None,
        )
        if self._points and self._points[-1].at > point.at:
            self._sorted = False
        self._points.append(point)

    def _histogram_of(self, schedule: str, action: str) -> Histogram:
        return self._durations.setdefault(
            (schedule, action), Histogram(DURATION_BUCKETS)
        )

    def _prune(self, now: datetime) -> None:
        if not self._sorted:
            self._points.sort(key=lambda point: point.at)
            self._sorted = True
        oldest = (now - KEEP_POINTS).timestamp()
        cut = bisect.bisect_left(self._points, oldest, key=lambda point: point.at)
        if cut:
            del self._points[:cut]

    def _snapshot(self, pending: dict[int, RunRecord]) -> LedgerView:
        latest = dict(self._latest)
        # A run in flight is the newest of its pair when its slot is newest.
        for record in sorted(pending.values(), key=lambda r: r.id):
            pair = (record.key.schedule, record.key.space)
            known = latest.get(pair)
            if known is None or known.key.slot <= record.key.slot:
                latest[pair] = record
        return LedgerView(
            latest=latest,
            points=list(self._points),
            totals=dict(self._totals),
            durations={k: _copy(h) for k, h in self._durations.items()},
            lateness={k: _copy(h) for k, h in self._lateness.items()},
            streaks={s: v.length for s, v in self._streaks.items()},
            in_flight=len(pending),
        )


def _copy(histogram: Histogram) -> Histogram:
    return Histogram(
        histogram.bounds, list(histogram.counts), histogram.total, histogram.count
    )
