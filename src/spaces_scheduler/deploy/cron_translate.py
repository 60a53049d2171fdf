"""Turn our cron (cronie's rules, in a time zone) into what each platform takes.

Every translation here is exact or refused with a reason (`Untranslatable`);
nothing is approximated. The plan (`spaces_scheduler.plan`) stays the judge: the
tests compare each translation with the plan's own slots.

- GitHub Actions and Kubernetes take five plain fields, days of the week 0-6:
  a `7` (Sunday) is rewritten, cronsim's `L`, `W` and `#` are refused.
- systemd's `OnCalendar=` requires the day of the month AND the weekday to
  match, where cron takes either: such a cron becomes two `OnCalendar=` lines.
  systemd drops a wall time in a spring gap and fires a repeated hour once,
  where our DST rules shift the one and run both passes of the other: a
  schedule those rules would tell apart is refused, unless it can be written
  exactly in UTC.
- A Hugging Face scheduled Job has no time zone: it gets a UTC cron that fires
  at every instant a local slot can fall on (`utc_cover`).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from spaces_scheduler.plan import CronSpec, slots_between

MINUTE, HOUR, DAY, MONTH, WEEKDAY = range(5)
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
_SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_TERM = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\d+))?$")

# How far ahead translations are checked against the plan: two years hold at
# least two of every DST transition a zone has planned.
HORIZON = timedelta(days=2 * 366)


class Untranslatable(ValueError):
    """The cron cannot be written exactly for the platform; the text says why."""


@dataclass(frozen=True)
class Fields:
    """The values of the five fields of a cron, Sunday as 0."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_or_weekdays: bool  # cron's rule: both restricted, either may match


def expand(spec: CronSpec) -> Fields:
    """Return the value sets of a portable cron; Untranslatable if not portable."""
    _require_portable(spec)
    parts = spec.text.split()
    sets = [_field_values(part, index) for index, part in enumerate(parts)]
    either = not parts[DAY].startswith("*") and not parts[WEEKDAY].startswith("*")
    minutes, hours, days, months, weekdays = sets
    return Fields(minutes, hours, days, months, weekdays, days_or_weekdays=either)


def _require_portable(spec: CronSpec) -> None:
    if not spec.portable:
        raise Untranslatable(
            f"{spec.text!r} uses cronsim's L, W or #, which this platform's "
            "scheduler lacks; write the days out (e.g. 25-31 with a weekday) or "
            "run the daemon"
        )


def _field_values(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for term in text.upper().split(","):
        star, first, last, step = _TERM.match(term).groups()  # type: ignore[union-attr]
        start = low if star else _number(first, index)
        end = high if star or (step and last is None) else _number(last or first, index)
        values.update(range(start, end + 1, int(step or 1)))
    if index == WEEKDAY and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _number(word: str, index: int) -> int:
    if index == MONTH and word in _MONTHS:
        return _MONTHS.index(word) + 1
    if index == WEEKDAY and word in _DAYS:
        return _DAYS.index(word)
    return int(word)


def compress(values: frozenset[int], *, joiner: str = "-", width: int = 0) -> str:
    """Return `values` as a comma list of single values and runs `a-b`."""
    ordered = sorted(values)
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))

    items = []
    for first, last in runs:
        one, two = f"{first:0{width}d}", f"{last:0{width}d}"
        if first == last:
            items.append(one)
        elif last == first + 1:
            items.extend((one, two))
        else:
            items.append(f"{one}{joiner}{two}")
    return ",".join(items)


# ---------------------------------------------------------------------------
# Five plain fields (GitHub Actions, Kubernetes)


def plain_cron(spec: CronSpec) -> str:
    """Return the cron in five plain fields with weekdays 0-6.

    The text is kept as written (normalised) unless it names Sunday as 7, which
    GitHub documents as 0-6 and Kubernetes' parser rejects.
    """
    _require_portable(spec)
    parts = spec.text.split()
    if not _names_seven(parts[WEEKDAY]):
        return spec.text
    parts[WEEKDAY] = compress(_field_values(parts[WEEKDAY], WEEKDAY))
    return " ".join(parts)


def _names_seven(field: str) -> bool:
    """Whether a weekday field writes 7 as a value or a range end."""
    for term in field.split(","):
        bounds = term.split("/", 1)[0]
        if "7" in bounds.split("-"):
            return True
    return False


# ---------------------------------------------------------------------------
# systemd OnCalendar=


def on_calendar(spec: CronSpec, zone: str, *, now: datetime) -> list[str]:
    """Return the `OnCalendar=` values that fire exactly at the plan's slots.

    Raise Untranslatable when DST would make systemd and the plan disagree and
    no exact UTC form exists.
    """
    fields = expand(spec)
    lines = _calendar_lines(fields, zone)
    if zone == "UTC" or not _dst_disagreement(spec, zone, now=now):
        return lines

    utc = _utc_equivalent(fields, zone, now=now)
    if utc is None:
        raise Untranslatable(_dst_reason(spec, zone, now=now))
    return _calendar_lines(utc, "UTC")


def _calendar_lines(fields: Fields, zone: str) -> list[str]:
    time = f"{_component(fields.hours, 0, 23)}:{_component(fields.minutes, 0, 59)}:00"
    months = _component(fields.months, 1, 12)
    days = _component(fields.days, 1, 31)
    weekdays = _weekdays(fields.weekdays)
    if fields.days_or_weekdays:
        # cron fires when either the day or the weekday matches; systemd needs
        # both on one line, so each gets a line of its own.
        return [
            f"*-{months}-{days} {time} {zone}",
            f"{weekdays} *-{months}-* {time} {zone}",
        ]
    prefix = f"{weekdays} " if len(fields.weekdays) < 7 else ""
    return [f"{prefix}*-{months}-{days} {time} {zone}"]


def _component(values: frozenset[int], low: int, high: int) -> str:
    if values == frozenset(range(low, high + 1)):
        return "*"
    return compress(values, joiner="..", width=2)


def _weekdays(values: frozenset[int]) -> str:
    # Runs from Monday, so that Mon..Fri reads as people write it.
    order = [1, 2, 3, 4, 5, 6, 0]
    items: list[list[int]] = []
    for day in order:
        if day not in values:
            continue
        if items and order.index(items[-1][-1]) == order.index(day) - 1:
            items[-1].append(day)
        else:
            items.append([day])
    return ",".join(_weekday_run(run) for run in items)


def _weekday_run(run: list[int]) -> str:
    names = [_SYSTEMD_DAYS[day] for day in run]
    if len(names) <= 2:
        return ",".join(names)
    return f"{names[0]}..{names[-1]}"


def systemd_slots(
    spec: CronSpec, zone: str, start: datetime, end: datetime
) -> list[datetime]:
    """Return when systemd fires a wall-time calendar in `zone`, as observed.

    systemd 252 drops a wall time that a spring gap skips and fires a repeated
    hour once, on its first pass (`systemd-analyze calendar` shows both).
    """
    tz = ZoneInfo(zone)
    wall = start.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    found = []
    for naive in CronSim(spec.text, wall):
        moment = naive.replace(tzinfo=tz)
        utc = moment.astimezone(UTC)
        if utc > end:
            break
        if utc.astimezone(tz).replace(tzinfo=None) != naive or utc <= start:
            continue  # in a gap, or before the window
        found.append(utc)
    return found


def _dst_windows(zone: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """Return two-day windows around each offset change in the next HORIZON."""
    tz = ZoneInfo(zone)
    windows = []
    moment = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    offset = moment.astimezone(tz).utcoffset()
    while moment < now + HORIZON:
        moment += timedelta(hours=1)
        changed = moment.astimezone(tz).utcoffset()
        if changed != offset:
            windows.append((moment - timedelta(days=1), moment + timedelta(days=1)))
            offset = changed
    return windows


def _disagreements(
    spec: CronSpec, zone: str, *, now: datetime
) -> list[tuple[datetime, str]]:
    """Return the instants where the plan and systemd differ near DST changes."""
    found = []
    for start, end in _dst_windows(zone, now):
        plan = {slot.utc for slot in slots_between(spec, zone, start, end)}
        timer = set(systemd_slots(spec, zone, start, end))
        found += [
            (moment, "spaces-scheduler runs it and systemd would not")
            for moment in plan - timer
        ]
        found += [
            (moment, "systemd would fire and spaces-scheduler not")
            for moment in timer - plan
        ]
    return sorted(found)


def _dst_disagreement(spec: CronSpec, zone: str, *, now: datetime) -> bool:
    return bool(_disagreements(spec, zone, now=now))


def _dst_reason(spec: CronSpec, zone: str, *, now: datetime) -> str:
    moment, what = _disagreements(spec, zone, now=now)[0]
    local = moment.astimezone(ZoneInfo(zone))
    return (
        f"{spec.text!r} in {zone} meets a DST change: at {local:%Y-%m-%d %H:%M %Z} "
        f"{what}; systemd drops a wall time in a spring gap and "
        "fires a repeated hour once, where spaces-scheduler moves the one past "
        "the gap and runs both passes of the other (fixed times run the first "
        "pass only); pick a time outside the change, write the schedule in "
        "UTC, or run the daemon (--mode daemon)"
    )


def _utc_equivalent(fields: Fields, zone: str, *, now: datetime) -> Fields | None:
    """Return the same instants as a UTC calendar, when one exists.

    That is so for a schedule that fires every hour on every day (only minutes
    restricted) in a zone whose offsets all share their minutes.
    """
    every_day = fields.weekdays == frozenset(range(7)) and len(fields.days) == 31
    if fields.hours != frozenset(range(24)) or not every_day:
        return None
    if len(fields.months) != 12:
        return None
    shifts = {_minutes_of(offset) for offset in _offsets(zone, now=now)}
    if len(shifts) != 1:
        return None

    (shift,) = shifts
    minutes = frozenset((minute - shift) % 60 for minute in fields.minutes)
    return Fields(
        minutes,
        fields.hours,
        fields.days,
        fields.months,
        fields.weekdays,
        days_or_weekdays=False,
    )


def _minutes_of(offset: timedelta) -> int:
    return int(offset.total_seconds() // 60) % 60


def _offsets(zone: str, *, now: datetime) -> set[timedelta]:
    """Return every UTC offset `zone` uses from `now` to HORIZON ahead."""
    tz = ZoneInfo(zone)
    found = set()
    moment = now.astimezone(UTC)
    while moment < now + HORIZON:
        found.add(moment.astimezone(tz).utcoffset() or timedelta(0))
        moment += timedelta(hours=6)
    return found


# ---------------------------------------------------------------------------
# Hugging Face scheduled Jobs: UTC only


def utc_cover(spec: CronSpec, zone: str, *, now: datetime) -> str:
    """Return a UTC cron that fires at every instant a slot of `spec` can fall on.

    A zone's slots fall on UTC minutes shifted by its offsets; a slot that DST
    moves past a spring gap falls on the gap's end. Hours and days are left to
    `run --once`, which acts only when a local slot is due.
    """
    fields = expand(spec)
    if zone == "UTC":
        return plain_cron(spec)

    minutes = set()
    for offset in _offsets(zone, now=now):
        minutes |= {(m - _offset_minutes(offset)) % 60 for m in fields.minutes}
    if spec.fixed_time:
        minutes |= {end.minute for end in _gap_ends(spec, zone, now=now)}
    return f"{compress(frozenset(minutes))} * * * *"


def _offset_minutes(offset: timedelta) -> int:
    return int(offset.total_seconds() // 60)


def _gap_ends(spec: CronSpec, zone: str, *, now: datetime) -> set[datetime]:
    ends = set()
    for start, end in _dst_windows(zone, now):
        for slot in slots_between(spec, zone, start, end):
            if slot.shifted:
                ends.add(slot.utc)
    return ends


def cover_problems(
    spec: CronSpec, zone: str, cover: str, *, grace: timedelta, now: datetime
) -> list[str]:
    """Return why a stateless `run --once` on `cover` would miss or repeat a slot.

    Without state, a run starting at instant t acts on the newest slot at or
    before t when it is at most `grace` old. Checked near every DST change and
    over the first two days.
    """
    windows = [(now, now + timedelta(days=2)), *_dst_windows(zone, now)]
    cover_spec = CronSpec(text=cover, fixed_time=False, portable=True)
    problems = []
    for start, end in windows:
        slots = [s.utc for s in slots_between(spec, zone, start, end)]
        fires = slots_between(cover_spec, "UTC", start, end + grace)
        problems += _matching_problems(slots, [f.utc for f in fires], grace, zone)
    return sorted(set(problems))


def _matching_problems(
    slots: list[datetime], fires: list[datetime], grace: timedelta, zone: str
) -> list[str]:
    problems = []
    for index, slot in enumerate(slots):
        # A fire acts on the newest slot it has passed: once the next slot has
        # come, the fires are that slot's.
        until = slot + grace
        if index + 1 < len(slots):
            until = min(until, slots[index + 1] - timedelta(microseconds=1))
        low = bisect.bisect_left(fires, slot)
        hits = fires[low : bisect.bisect_right(fires, until)]
        local = slot.astimezone(ZoneInfo(zone))
        if not hits:
            problems.append(f"the slot {local:%Y-%m-%d %H:%M %Z} would be missed")
        elif len(hits) > 1:
            problems.append(
                f"the slot {local:%Y-%m-%d %H:%M %Z} would run {len(hits)} times"
            )
    return problems
