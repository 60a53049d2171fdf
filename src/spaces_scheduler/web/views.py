"""What the pages and the API show, as plain rows built from the config and store.

Nothing here talks to the Hub: a Space's stage is the last one a run saw.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from spaces_scheduler.plan import jitter_offset, next_slots, parse_cron
from spaces_scheduler.reports import iso_utc, run_row
from spaces_scheduler.store.base import RunRecord

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule
    from spaces_scheduler.web.ledger import LedgerView

SORT_KEYS = (
    "space",
    "stage",
    "outcome",
    "last",
    "next",
    "failures",
    "duration",
    "late",
)
OUTCOMES = ("ok", "skipped", "failed", "timed-out", "abandoned", "running", "never")


@dataclass(frozen=True)
class Filters:
    """The query of the Space list: filters and sort order, all optional."""

    schedule: str = ""
    outcome: str = ""
    owner: str = ""
    sort: str = "space"
    descending: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        sort = query.get("sort", "space")
        descending = sort.startswith("-")
        sort = sort.lstrip("-")
        return cls(
            schedule=query.get("schedule", "").strip(),
            outcome=query.get("outcome", "").strip(),
            owner=query.get("owner", "").strip(),
            sort=sort if sort in SORT_KEYS else "space",
            descending=descending,
        )

    def matches_run(self, schedule: str, space: str) -> bool:
        if self.schedule and schedule != self.schedule:
            return False
        return not self.owner or space.partition("/")[0] == self.owner


def covers(schedule_spaces: Iterable[str], space: str) -> bool:
    """Whether a schedule's `spaces` (names or owner/patterns) include `space`."""
    owner, _, name = space.partition("/")
    for entry in schedule_spaces:
        if entry == space:
            return True
        entry_owner, _, pattern = entry.partition("/")
        if "*" in pattern and entry_owner == owner:
            if fnmatch.fnmatchcase(name, pattern):
                return True
    return False


class Coverage:
    """Which schedules name each Space, indexed once for a whole page."""

    def __init__(self, schedules: Iterable[Schedule]) -> None:
        self.literal: dict[str, list[Schedule]] = {}
        self.patterns: list[tuple[str, Schedule]] = []
        for schedule in schedules:
            for entry in dict.fromkeys(schedule.spaces):
                if "*" in entry:
                    self.patterns.append((entry, schedule))
                else:
                    self.literal.setdefault(entry, []).append(schedule)

    def of(self, space: str) -> list[Schedule]:
        found = list(self.literal.get(space, ()))
        for entry, schedule in self.patterns:
            if schedule not in found and covers((entry,), space):
                found.append(schedule)
        return found


class NextFires:
    """The next slot of every schedule, computed once per request."""

    def __init__(self, config: Config, now: datetime) -> None:
        self.now = now
        self.slots: dict[str, datetime] = {}
        for schedule in config.schedules:
            spec = parse_cron(schedule.cron)
            upcoming = next_slots(spec, schedule.policy.timezone, now, 1)
            if upcoming:
                self.slots[schedule.name] = upcoming[0].utc

    def of_space(self, schedule: Schedule, space: str) -> datetime | None:
        """Return the next due instant of (schedule, Space), jitter included.

        The jitter can push the due instant of the next slot past now + period;
        the slot after is not looked at, as the difference is at most `jitter`.
        """
        slot = self.slots.get(schedule.name)
        if slot is None:
            return None
        return slot + jitter_offset(schedule.name, space, schedule.policy.jitter)


def known_spaces(config: Config, latest: Mapping[tuple[str, str], Any]) -> list[str]:
    """Return every Space named by the config or seen in the store, sorted."""
    names = [s for sched in config.schedules for s in sched.spaces if "*" not in s]
    names += [s for window in config.windows for s in window.spaces if "*" not in s]
    names += [space for _, space in latest]
    return sorted(set(names))


def space_rows(
    config: Config,
    ledger: LedgerView,
    stages: Mapping[str, tuple[str, datetime]],
    *,
    now: datetime,
    filters: Filters,
) -> list[dict[str, Any]]:
    """Return one row per Space, filtered and sorted as `filters` asks."""
    fires = NextFires(config, now)
    by_space: dict[str, list[RunRecord]] = {}
    for (_, space), record in ledger.latest.items():
        by_space.setdefault(space, []).append(record)

    coverage = Coverage(config.schedules)
    rows = []
    for space in known_spaces(config, ledger.latest):
        schedules = coverage.of(space)
        if not _kept(filters, space, schedules, by_space.get(space, [])):
            continue
        runs = by_space.get(space, [])
        rows.append(space_row(space, schedules, runs, stages, ledger, fires))

    if filters.outcome:
        rows = [row for row in rows if row["outcome"] == filters.outcome]
    return sort_rows(rows, filters)


def _kept(
    filters: Filters, space: str, schedules: list[Schedule], runs: list[RunRecord]
) -> bool:
    if filters.owner and space.partition("/")[0] != filters.owner:
        return False
    if not filters.schedule:
        return True
    named = {s.name for s in schedules} | {r.key.schedule for r in runs}
    return filters.schedule in named


def space_row(
    space: str,
    schedules: list[Schedule],
    runs: list[RunRecord],
    stages: Mapping[str, tuple[str, datetime]],
    ledger: LedgerView,
    fires: NextFires,
) -> dict[str, Any]:
    last = max(runs, key=lambda r: r.claimed_at, default=None)
    stage, seen = stages.get(space, (None, None))

    upcoming = [(fires.of_space(s, space), s.name) for s in schedules]
    dated = [(when, name) for when, name in upcoming if when is not None]
    next_due, next_schedule = min(dated, default=(None, None))

    outcome = "never"
    if last is not None:
        outcome = last.outcome.value if last.outcome else "running"
    return {
        "space": space,
        "owner": space.partition("/")[0],
        "stage": stage,
        "stage_seen": iso_utc(seen) if seen else None,
        "outcome": outcome,
        "last_run": run_row(last) if last else None,
        "next_run": iso_utc(next_due) if next_due else None,
        "next_schedule": next_schedule,
        "schedules": [s.name for s in schedules],
        "consecutive_failures": ledger.streaks.get(space, 0),
    }


def sort_rows(rows: list[dict[str, Any]], filters: Filters) -> list[dict[str, Any]]:
    """Sort rows by `filters.sort`; rows without a value go last either way."""
    key = filters.sort

    def value(row: dict[str, Any]) -> Any:
        last = row["last_run"] or {}
        return {
            "space": row["space"],
            "stage": row["stage"],
            "outcome": row["outcome"],
            "last": last.get("claimed_at"),
            "next": row["next_run"],
            "failures": row["consecutive_failures"],
            "duration": last.get("duration"),
            "late": last.get("lateness"),
        }[key]

    present = [row for row in rows if value(row) is not None]
    missing = [row for row in rows if value(row) is None]
    present.sort(key=lambda row: (value(row), row["space"]), reverse=filters.descending)
    return present + missing


def schedule_rows(config: Config, *, now: datetime) -> list[dict[str, Any]]:
    """Return every schedule with its policy and next slot."""
    fires = NextFires(config, now)
    rows = []
    for schedule in config.schedules:
        nxt = fires.slots.get(schedule.name)
        rows.append(
            {
                "name": schedule.name,
                "cron": schedule.cron,
                "timezone": schedule.policy.timezone,
                "action": str(schedule.action),
                "spaces": list(schedule.spaces),
                "jitter": schedule.policy.jitter.total_seconds(),
                "misfire_grace": schedule.policy.misfire_grace.total_seconds(),
                "next_slot": iso_utc(nxt) if nxt else None,
                "seconds_until_next": _until(nxt, now),
            }
        )
    return rows


def window_rows(config: Config, space: str | None = None) -> list[dict[str, Any]]:
    """Return the windows (over `space` when given) as plain text fields."""
    rows = []
    for window in config.windows:
        if space is not None and not covers(window.spaces, space):
            continue
        rows.append(
            {
                "name": window.name,
                "spaces": list(window.spaces),
                "timezone": str(getattr(window, "timezone", "")),
                "days": str(getattr(window, "days", "")),
                "hours": str(getattr(window, "hours", "")),
                "inside": _state_text(getattr(window, "inside", None)),
                "outside": _state_text(getattr(window, "outside", None)),
            }
        )
    return rows


def _state_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {v}" for k, v in value.items())
    return str(value)


def _until(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    return round((moment - now).total_seconds(), 3)


def next_fire_rows(
    config: Config, *, now: datetime, count: int
) -> list[dict[str, Any]]:
    """Return the next `count` slots of every schedule (as `next --json`)."""
    from spaces_scheduler.reports import next_rows

    return next_rows(config, after=now, count=count)


def human_ago(moment: str | None, now: datetime) -> str:
    """Return "3m ago" / "in 5m" for an ISO instant, for table cells."""
    if not moment:
        return ""
    when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    delta = when - now
    text = human_span(abs(delta))
    return f"in {text}" if delta > timedelta(0) else f"{text} ago"


def human_span(delta: timedelta | float) -> str:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else delta
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds:.1f}s" if seconds else "0s"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            small = {86400: (3600, "h"), 3600: (60, "m"), 60: (1, "s")}[size]
            part = rest // small[0]
            return (
                f"{whole}{unit}{part}{small[1]}"
                if part and whole < 10
                else f"{whole}{unit}"
            )
    return f"{seconds:.0f}s"
