"""When schedules fire: cron in a time zone, DST rules, jitter and catch-up.

Pure code: no I/O and no clock. Every function takes the instants it reasons about,
so the daemon, `run --once`, `next` and the tests share one set of rules.

Cron fields are evaluated by cronsim on naive wall-clock times, where it is plain
calendar arithmetic. The DST rules of DESIGN.md (cronie's) are applied here, on top:

- a fixed-time schedule (neither minute nor hour starts with `*`) whose wall time
  falls in a spring gap runs once, at the first instant after the gap (`shifted`);
  in a repeated autumn hour it runs on the first pass only;
- a wildcard schedule skips the missing wall times and runs on both passes of a
  repeated hour, in the order the instants occur.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
COALESCED = "coalesced"
MISFIRED = "misfired"

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
)
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
_TERM = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w*))?$")
_NTH_WEEKDAY = re.compile(r"^(\w+)#(\w*)$")
_LAST_WEEKDAY = re.compile(r"^(\w+)L$")
_JENKINS_HASH = re.compile(r"^H(\(.*\))?(/\w*)?$")

# cronsim gives up after 50 years without a match; from 2000 that spans a whole
# 28-year cycle of weekdays and leap years, so no match there means never.
_NEVER_PROBE = datetime(1999, 12, 31, 23, 59)
# Offsets are probed this far apart to find transitions. Since 1970 tzdata has
# none closer than six days apart, so one probe per quarter day cannot miss one.
_PROBE = 6 * 3600
_GIVE_UP = timedelta(days=366 * 60)


@dataclass(frozen=True)
class CronSpec:
    """A checked cron expression.

    `text` is normalised (blanks collapsed, nicknames expanded); `fixed_time` is
    cronie's rule for DST (neither minute nor hour starts with `*`); `portable` is
    False when it uses cronsim's `L`, `W` or `#`, which other crons lack.
    """

    text: str
    fixed_time: bool
    portable: bool


@dataclass(frozen=True, slots=True)
class Slot:
    """One fire time of a schedule, before jitter.

    `shifted` is True when DST moved it: its wall time fell in a spring gap and it
    runs at the first instant after the gap. Compare slots by `utc`: Python calls
    a `local` in a repeated hour unequal to every instant of another zone.
    """

    utc: datetime
    local: datetime
    shifted: bool = False


@dataclass(frozen=True)
class CatchUp:
    """Which passed slot runs, and why each of the others does not."""

    run: Slot | None
    skipped: tuple[tuple[Slot, str], ...] = ()


# ---------------------------------------------------------------------------
# Parsing


def normalise_cron(text: str) -> str:
    """Return `text` with blanks collapsed and a nickname expanded."""
    compact = " ".join(text.split())
    return NICKNAMES.get(compact.lower(), compact)


@lru_cache(maxsize=4096)
def parse_cron(text: str) -> CronSpec:
    """Return the checked form of a five-field cron expression or a nickname.

    Raise ValueError with a one-line reason (no final period) when it is refused.
    """
    normal = normalise_cron(text)
    if not normal:
        raise ValueError("is empty; write five fields: minute hour day month weekday")
    if normal.startswith("@"):
        raise ValueError(_nickname_problem(normal))

    fields = normal.split()
    if len(fields) != 5:
        raise ValueError(_field_count_problem(len(fields)))

    portable = True
    for (name, low, high), field in zip(_FIELDS, fields, strict=True):
        for term in field.upper().split(","):
            portable &= _check_term(name, low, high, term)

    _check_can_fire(normal)
    fixed = not fields[0].startswith("*") and not fields[1].startswith("*")
    return CronSpec(text=normal, fixed_time=fixed, portable=portable)


def _nickname_problem(word: str) -> str:
    if word.lower() == "@reboot":
        return "@reboot is not supported: a schedule needs times; use @daily or cron"
    known = ", ".join(NICKNAMES)
    return f"{word} is not a cron nickname; use {known} or five cron fields"


def _field_count_problem(count: int) -> str:
    five = "use five fields: minute hour day-of-month month day-of-week"
    if count in (6, 7):
        return f"has {count} fields (seconds or years are not cron); {five}"
    return f"has {count} field{'s' if count != 1 else ''}; {five}"


def _check_term(name: str, low: int, high: int, term: str) -> bool:
    """Check one comma-separated term of a field; return whether it is portable."""
    if not term:
        raise ValueError(f"{name} field has an empty item between commas")
    if "?" in term:
        raise ValueError(f"{name} {term!r}: '?' is Quartz syntax, not cron; write *")
    if _JENKINS_HASH.match(term):
        raise ValueError(
            f"{name} {term!r}: 'H' (a Jenkins hash) is not cron; "
            "write a fixed value and let jitter spread the load"
        )

    special = _check_special(name, low, high, term)
    if special:
        return False

    match = _TERM.match(term)
    if not match:
        raise ValueError(f"{name} {term!r} is not a value, a range a-b or a step a/n")
    star, first, last, step = match.groups()
    if not star:
        _check_range(name, low, high, first, last)
    if step is not None:
        _check_step(name, step)
    return True


def _check_special(name: str, low: int, high: int, term: str) -> bool:
    """Check cronsim's non-portable forms (L, LW, nL, n#k); False if not one."""
    if name == "day-of-month" and term in ("L", "LW"):
        return True
    if name != "day-of-week":
        return False

    last = _LAST_WEEKDAY.match(term)
    if last and last.group(1).isdigit():
        _value(name, low, high, last.group(1))
        return True
    nth = _NTH_WEEKDAY.match(term)
    if nth:
        _value(name, low, high, nth.group(1))
        if nth.group(2) not in ("1", "2", "3", "4", "5"):
            raise ValueError(f"{name} {term!r}: the week after # must be 1 to 5")
        return True
    return False


def _check_range(name: str, low: int, high: int, first: str, last: str | None) -> None:
    start = _value(name, low, high, first)
    if last is None:
        return
    end = _value(name, low, high, last)
    if end < start:
        raise ValueError(
            f"{name} range {first}-{last} runs backwards; "
            f"split it, as in {first}-{high},{low}-{last}"
        )


def _check_step(name: str, step: str) -> None:
    if not step.isdigit() or int(step) == 0:
        raise ValueError(f"{name} step /{step} must be a whole number of 1 or more")


def _value(name: str, low: int, high: int, word: str) -> int:
    """Return the number a field value names (digits, JAN..DEC or SUN..SAT)."""
    if name == "month" and word in _MONTHS:
        return _MONTHS.index(word) + 1
    if name == "day-of-week" and word in _DAYS:
        return _DAYS.index(word)
    if not word.isdigit():
        names = {"month": " or JAN-DEC", "day-of-week": " or SUN-SAT"}.get(name, "")
        raise ValueError(f"{name} {word!r} is not a number{names}")

    number = int(word)
    if not low <= number <= high:
        raise ValueError(f"{name} {number} is out of range {low}-{high}")
    return number


def _check_can_fire(text: str) -> None:
    never = "can never fire: no date matches its day-of-month, month and weekday"
    try:
        next(CronSim(text, _NEVER_PROBE))
    except CronSimError as error:
        # Past our own checks, cronsim only refuses a day that no month has.
        if "day-of-month" not in str(error):
            raise ValueError(f"is not valid cron ({error})") from error
        raise ValueError(never) from error
    except StopIteration:
        raise ValueError(never) from None


# ---------------------------------------------------------------------------
# Slots


def next_slots(spec: CronSpec, zone: str, after: datetime, n: int) -> list[Slot]:
    """Return the next `n` slots strictly after `after`, oldest first."""
    if n <= 0:
        return []
    return list(islice(_slots_after(spec, ZoneInfo(zone), _as_utc(after)), n))


def slots_between(
    spec: CronSpec,
    zone: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 10_000,
) -> list[Slot]:
    """Return the slots with `start < slot.utc <= end`, oldest first.

    When more than `limit` slots qualify, the oldest are left out: the newest
    slot, the one catch-up runs, is always in the list.
    """
    start, end = _as_utc(start), _as_utc(end)
    if end <= start or limit <= 0:
        return []

    # Look back from `end` in growing windows, so that a long downtime of a
    # dense schedule costs about `limit` slots of work, not all of them.
    tz = ZoneInfo(zone)
    span = timedelta(hours=1)
    while True:
        low = max(start, end - span)
        newest: deque[Slot] = deque(maxlen=limit)
        for slot in _slots_after(spec, tz, low):
            if slot.utc > end:
                break
            newest.append(slot)
        if low == start or len(newest) == limit:
            return list(newest)
        span *= 8


def newest_slot_at_or_before(
    spec: CronSpec,
    zone: str,
    now: datetime,
    *,
    horizon: timedelta = timedelta(days=400),
) -> Slot | None:
    """Return the newest slot at or before `now`, or None if none since `horizon`."""
    tz = ZoneInfo(zone)
    now = _as_utc(now)
    best = _first_after(spec, tz, now - horizon)
    if best is None or best.utc > now:
        return None

    # Bisect on whole seconds (every slot is on one): there is a slot at `low`
    # (`best`) and none in (high, now].
    low, high = int(best.utc.timestamp()), int(now.timestamp())
    while low < high:
        middle = datetime.fromtimestamp((low + high) // 2, UTC)
        probe = _first_after(spec, tz, middle)
        if probe is None or probe.utc > now:
            high = int(middle.timestamp())
        else:
            best, low = probe, int(probe.utc.timestamp())
    return best


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; pass an aware time")
    return moment.astimezone(UTC)


def _first_after(spec: CronSpec, zone: ZoneInfo, after: datetime) -> Slot | None:
    return next(_slots_after(spec, zone, after), None)


def _slots_after(spec: CronSpec, zone: ZoneInfo, after: datetime) -> Iterator[Slot]:
    """Yield the slots strictly after the UTC instant `after`, in time order."""
    if spec.fixed_time:
        return _fixed_slots(spec.text, zone, after)
    return _wildcard_slots(spec.text, zone, after)


def _fixed_slots(text: str, zone: ZoneInfo, after: datetime) -> Iterator[Slot]:
    """Walk wall times: first pass of a repeated hour, gap times moved past it."""
    wall = after.astimezone(zone).replace(tzinfo=None)
    held: Slot | None = None
    for naive in CronSim(text, wall):
        slot = _place_fixed(naive, zone)
        # `after` in a repeated hour's second pass: its wall time comes again.
        if slot.utc <= after:
            continue

        # Several gap times, or a gap time and the gap's end, run once.
        if held is not None and slot.utc == held.utc:
            held = Slot(held.utc, held.local, held.shifted and slot.shifted)
            continue
        if held is not None:
            yield held
            held = None
        if slot.shifted:
            held = slot
        else:
            yield slot
    if held is not None:
        yield held


def _place_fixed(naive: datetime, zone: ZoneInfo) -> Slot:
    # fold=0 is the first pass of a repeated hour, as cronie runs it.
    utc = naive.replace(tzinfo=zone).astimezone(UTC)
    local = utc.astimezone(zone)
    if local.replace(tzinfo=None) == naive:
        return Slot(utc, local)

    # A wall time in a spring gap runs at the first instant after the gap.
    late = int(utc.timestamp())
    early = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    moved = datetime.fromtimestamp(_first_change(zone, early, late), UTC)
    return Slot(moved, moved.astimezone(zone), shifted=True)


def _wildcard_slots(text: str, zone: ZoneInfo, after: datetime) -> Iterator[Slot]:
    """Walk spans of one UTC offset; in each, wall time maps to UTC one to one."""
    start, inclusive = after, False
    while start - after < _GIVE_UP:
        offset = start.astimezone(zone).utcoffset() or timedelta(0)
        end = _next_boundary(zone, start)
        wall = start.replace(tzinfo=None) + offset
        if inclusive:
            wall -= timedelta(seconds=1)

        for naive in CronSim(text, wall):
            utc = (naive - offset).replace(tzinfo=UTC)
            if utc >= end:
                break
            yield Slot(utc, utc.astimezone(zone))
        start, inclusive = end, True


def _next_boundary(zone: ZoneInfo, start: datetime) -> datetime:
    """Return the next offset change after `start`, or a harmless stand-in."""
    moment = start.timestamp()
    for year in (start.year, start.year + 1):
        changes = _transitions(zone.key, year)
        index = bisect.bisect_right(changes, moment)
        if index < len(changes):
            return datetime.fromtimestamp(changes[index], UTC)
    # No change within reach: a boundary with one offset on both sides.
    return datetime(start.year + 2, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1024)
def _transitions(key: str, year: int) -> tuple[int, ...]:
    """Return the instants in (1 Jan `year`, 1 Jan `year` + 1] the offset changes at."""
    zone = ZoneInfo(key)
    low = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    high = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())

    changes = []
    offset = _offset(zone, low)
    for probe in range(low, high, _PROBE):
        upper = min(probe + _PROBE, high)
        if _offset(zone, upper) != offset:
            changes.append(_first_change(zone, probe, upper))
            offset = _offset(zone, upper)
    return tuple(changes)


def _first_change(zone: ZoneInfo, low: int, high: int) -> int:
    """Return the first second in (low, high] whose offset differs from low's."""
    before = _offset(zone, low)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(zone, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _offset(zone: ZoneInfo, moment: int) -> timedelta | None:
    return datetime.fromtimestamp(moment, zone).utcoffset()


# ---------------------------------------------------------------------------
# Jitter and catch-up


def jitter_offset(schedule: str, space: str, jitter: timedelta) -> timedelta:
    """Return the fixed offset in [0, jitter) of (schedule, Space), in whole seconds.

    The hash must never change: every machine and every release must agree, or a
    Space's runs would move.
    """
    total = jitter // timedelta(microseconds=1)
    if total <= 0:
        return timedelta(0)

    key = f"{len(schedule)}:{schedule}{space}".encode()
    draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    microseconds = draw * total >> 64
    return timedelta(seconds=microseconds // 1_000_000)


def daemon_catch_up(
    slots: list[Slot],
    *,
    now: datetime,
    grace: timedelta,
    jitter: timedelta,
) -> CatchUp:
    """Decide which of the passed, unrecorded slots of one Space the daemon runs.

    `jitter` is the Space's own offset (`jitter_offset`). The newest slot runs if
    it is late by at most `grace`; the older ones are coalesced into it. When the
    newest is too late, every slot is recorded as misfired.
    """
    if not slots:
        return CatchUp(None)

    ordered = sorted(slots, key=lambda slot: slot.utc)
    newest = ordered[-1]
    if now - (newest.utc + jitter) <= grace:
        return CatchUp(newest, tuple((slot, COALESCED) for slot in ordered[:-1]))
    return CatchUp(None, tuple((slot, MISFIRED) for slot in ordered))


def one_shot_catch_up(slots: list[Slot]) -> CatchUp:
    """Decide for `run --once`: the newest slot runs however late, the rest coalesce.

    GitHub and other external schedulers deliver hours late or drop runs, so
    `misfire_grace` does not apply here.
    """
    if not slots:
        return CatchUp(None)

    ordered = sorted(slots, key=lambda slot: slot.utc)
    return CatchUp(ordered[-1], tuple((slot, COALESCED) for slot in ordered[:-1]))


# ---------------------------------------------------------------------------
# Windows

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_DAY = 1440
_WEEK = 7 * _DAY


@dataclass(frozen=True)
class WeeklyHours:
    """The times a window is inside: on `days` (0 = Monday), from `start` to `end`.

    `start` and `end` are minutes after midnight, wall time in `zone`. An `end`
    at or before `start` runs into the next morning: Friday 22:00-06:00 ends on
    Saturday.
    """

    days: frozenset[int]
    start: int
    end: int
    zone: str

    @classmethod
    def parse(cls, days: str, hours: str, zone: str) -> WeeklyHours:
        """Return the times of `days` and `hours`; raise ValueError if malformed."""
        start, end = parse_hours(hours)
        return cls(parse_days(days), start, end, zone)

    def spans(self) -> list[tuple[int, int]]:
        """Return [start, end) spans in minutes from Monday 00:00.

        Sunday's span may run past the week's end, into Monday.
        """
        length = (self.end - self.start) % _DAY or _DAY
        return [
            (day * _DAY + self.start, day * _DAY + self.start + length)
            for day in sorted(self.days)
        ]

    def contains(self, moment: datetime) -> bool:
        """Return whether the aware instant `moment` is inside."""
        local = _as_utc(moment).astimezone(ZoneInfo(self.zone))
        minute = local.weekday() * _DAY + local.hour * 60 + local.minute
        return any(
            start <= probe < end
            for start, end in self.spans()
            for probe in (minute, minute + _WEEK)
        )


def parse_days(text: str) -> frozenset[int]:
    """Return the weekdays (0 = Monday) of `mon-fri`, `sat,sun`, `fri-mon`, ...

    Raise ValueError for anything else.
    """
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            raise ValueError(f"{text!r} is not a list of days")

        start = DAY_NAMES.index(first)
        stop = DAY_NAMES.index(last) if dash else start
        days.update((start + k) % 7 for k in range((stop - start) % 7 + 1))
    return frozenset(days)


def parse_hours(text: str) -> tuple[int, int]:
    """Return the minutes after midnight at which `HH:MM-HH:MM` starts and ends.

    The end may be 24:00 (00:00-24:00 is the whole day), or earlier than the
    start for a span past midnight.
    Raise ValueError for anything else.
    """
    match = _HOURS.match(text.replace(" ", ""))
    if not match:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")

    hour, minute, end_hour, end_minute = (int(part) for part in match.groups())
    start, end = hour * 60 + minute, end_hour * 60 + end_minute
    if hour > 23 or minute > 59 or end_minute > 59 or end > _DAY:
        raise ValueError(f"{text!r} holds a time that is not on the clock")
    if start == end:
        raise ValueError(f"{text!r} starts when it ends")
    return start, end


def first_overlap(
    first: WeeklyHours, second: WeeklyHours, *, now: datetime
) -> tuple[int, int] | None:
    """Return the first (weekday, minute) of `first`'s week when both are inside.

    Zones are compared with every pair of UTC offsets they have together in the
    two years after `now`; None when the two never overlap.
    """
    spans = first.spans()
    for shift in _offset_differences(first.zone, second.zone, now=now):
        moved = [(start - shift, end - shift) for start, end in second.spans()]
        found = _overlap_start(spans, moved)
        if found is not None:
            return divmod(found % _WEEK, _DAY)
    return None


def _overlap_start(
    first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> int | None:
    # Spans can reach past either end of the week after a shift: comparing each
    # pair one week back, in place and one week on makes the wrap exact.
    starts = [
        max(a_start, b_start + week)
        for a_start, a_end in first
        for b_start, b_end in second
        for week in (-_WEEK, 0, _WEEK)
        if max(a_start, b_start + week) < min(a_end, b_end + week)
    ]
    return min(starts, default=None)


def _offset_differences(first: str, second: str, *, now: datetime) -> list[int]:
    """Return by how many minutes `second`'s wall clock runs ahead of `first`'s."""
    if first == second:
        return [0]

    behind, ahead = ZoneInfo(first), ZoneInfo(second)
    start = _as_utc(now).replace(minute=0, second=0, microsecond=0)
    found = set()
    for hours in range(0, 2 * 366 * 24, 6):
        moment = start + timedelta(hours=hours)
        gap = _utc_offset(moment, ahead) - _utc_offset(moment, behind)
        found.add(gap // timedelta(minutes=1))
    return sorted(found)


def _utc_offset(moment: datetime, zone: ZoneInfo) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta(0)
