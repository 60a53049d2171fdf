"""plan.py against a brute-force reference, over random expressions and zones.

The reference shares nothing with plan.py or cronsim: it draws the field sets
first and renders the expression from them, then walks UTC minute by minute,
converts each minute to wall time with zoneinfo, matches the fields with Vixie's
day-of-month OR day-of-week rule, and applies DESIGN.md's DST rules itself. To
keep two-year walks fast it skips whole UTC hours whose wall date and hours
cannot match; inside an hour with one offset, only the minutes in the minute
field are looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaces_scheduler.plan import next_slots, parse_cron, slots_between

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
CAP = 300

INTERESTING_ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata: winter is the "summer" time
    "America/New_York",
    "America/Santiago",  # transitions at midnight
    "America/Havana",  # transitions at midnight
    "America/St_Johns",  # -03:30
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",  # no DST, +05:30
    "Asia/Tehran",  # DST until 2022
    "Africa/Casablanca",  # DST suspended for Ramadan
    "Antarctica/Troll",  # two-hour shift
    "Pacific/Apia",  # DST until 2021
]
ALL_ZONES = sorted(available_timezones() - {"Factory", "localtime"})


@dataclass(frozen=True)
class Fields:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday; 7 already folded into 0
    either_day: bool  # both day fields restricted: Vixie's OR rule
    fixed_time: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        if self.either_day:
            return by_date or by_weekday
        return by_date and by_weekday

    def matches(self, wall: datetime) -> bool:
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and self.day_matches(wall.date())
        )


@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int) -> tuple[str, frozenset[int]]:
    """Draw one field as text and as the set of values it selects."""
    terms = draw(st.lists(cron_term(low, high), min_size=1, max_size=3))
    text = ",".join(term for term, _ in terms)
    values = frozenset().union(*(values for _, values in terms))
    return text, values


@st.composite
def cron_term(draw: st.DrawFn, low: int, high: int) -> tuple[str, frozenset[int]]:
    kind = draw(st.sampled_from(["star", "step", "value", "range", "range-step"]))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    n = draw(st.integers(1, max(1, (high - low) // 2)))
    if kind == "star":
        return "*", frozenset(range(low, high + 1))
    if kind == "step":
        return f"*/{n}", frozenset(range(low, high + 1, n))
    if kind == "value":
        return str(a), frozenset({a})
    if kind == "range":
        return f"{a}-{b}", frozenset(range(a, b + 1))
    return f"{a}-{b}/{n}", frozenset(range(a, b + 1, n))


# Hours and minutes near where clocks change, so that gaps and folds come up often.
near_change_hours = st.sampled_from(
    [
        ("1", {1}),
        ("2", {2}),
        ("3", {3}),
        ("0", {0}),
        ("1-3", {1, 2, 3}),
        ("2,3", {2, 3}),
    ]
)
near_change_minutes = st.sampled_from(
    [("0", {0}), ("30", {30}), ("0,30", {0, 30}), ("*/15", {0, 15, 30, 45})]
)


@st.composite
def cron_fields(
    draw: st.DrawFn, hour_field: tuple[str, set[int]] | None = None
) -> Fields:
    minute, minutes = draw(st.one_of(cron_field(0, 59), near_change_minutes))
    if hour_field is None:
        hour_field = draw(st.one_of(cron_field(0, 23), near_change_hours))
    hour, hours = hour_field
    dom, days = draw(st.one_of(st.just(("*", set(range(1, 32)))), cron_field(1, 31)))
    month, months = draw(
        st.one_of(st.just(("*", set(range(1, 13)))), cron_field(1, 12))
    )
    dow, weekdays = draw(st.one_of(st.just(("*", set(range(7)))), cron_field(0, 7)))
    return Fields(
        text=f"{minute} {hour} {dom} {month} {dow}",
        minutes=frozenset(minutes),
        hours=frozenset(hours),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(day % 7 for day in weekdays),
        either_day=not dom.startswith("*") and not dow.startswith("*"),
        fixed_time=not minute.startswith("*") and not hour.startswith("*"),
    )


def fires_ever(fields: Fields) -> bool:
    """Whether any date in a 28-year cycle matches (the rest is every day)."""
    day = date(2000, 1, 1)
    while day < date(2029, 1, 1):
        if fields.day_matches(day):
            return True
        day += timedelta(days=1)
    return False


def reference_slots(
    fields: Fields, zone: ZoneInfo, after: datetime, end: datetime
) -> list[tuple[datetime, bool]]:
    """Return up to CAP (utc, shifted) slots with after < utc <= end."""
    found: list[tuple[datetime, bool]] = []
    hour = after.replace(minute=0, second=0, microsecond=0)
    previous = offset(zone, hour - MINUTE)
    while hour <= end and len(found) < CAP:
        first, last = offset(zone, hour), offset(zone, hour + 59 * MINUTE)
        if first == last == previous:
            candidates = list(steady_hour(fields, zone, hour, first))
        else:
            candidates = list(changing_hour(fields, zone, hour))
        found += [(u, s) for u, s in candidates if after < u <= end]
        previous = last
        hour += HOUR
    return found[:CAP]


def steady_hour(
    fields: Fields, zone: ZoneInfo, hour: datetime, shift: timedelta
) -> list[tuple[datetime, bool]]:
    """Slots of a UTC hour with one offset throughout (no gap, no fold starts)."""
    wall = hour.replace(tzinfo=None) + shift
    ends = (wall, wall + 59 * MINUTE)
    if not any(fields.day_matches(w.date()) and w.hour in fields.hours for w in ends):
        return []

    slots = []
    for minute in sorted((m - wall.minute) % 60 for m in fields.minutes):
        moment = hour + minute * MINUTE
        local = moment.astimezone(zone)
        if fields.matches(local.replace(tzinfo=None)) and not second_pass(
            fields, local
        ):
            slots.append((moment, False))
    return slots


def changing_hour(
    fields: Fields, zone: ZoneInfo, hour: datetime
) -> list[tuple[datetime, bool]]:
    """Walk an hour that holds a transition one minute at a time."""
    slots = []
    for index in range(60):
        moment = hour + index * MINUTE
        local = moment.astimezone(zone)
        regular = fields.matches(local.replace(tzinfo=None))
        regular = regular and not second_pass(fields, local)
        if regular:
            slots.append((moment, False))
        elif fields.fixed_time and gap_matches(fields, zone, moment):
            slots.append((moment, True))
    return slots


def second_pass(fields: Fields, local: datetime) -> bool:
    """A fixed-time schedule runs on the first pass of a repeated hour only."""
    return fields.fixed_time and local.fold == 1


def gap_matches(fields: Fields, zone: ZoneInfo, moment: datetime) -> bool:
    """Whether a wall time skipped just before `moment` matches the fields."""
    before, now = offset(zone, moment - MINUTE), offset(zone, moment)
    if now <= before:
        return False
    wall = moment.replace(tzinfo=None) + before
    missing = int((now - before) / MINUTE)
    return any(fields.matches(wall + k * MINUTE) for k in range(missing))


def offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    result = moment.astimezone(zone).utcoffset()
    assert result is not None
    return result


zones = st.one_of(st.sampled_from(INTERESTING_ZONES), st.sampled_from(ALL_ZONES))
instants = st.datetimes(
    min_value=datetime(2001, 1, 1),
    max_value=datetime(2035, 1, 1),
    timezones=st.just(UTC),
)
horizons = st.one_of(
    st.integers(1, 3 * 24 * 60), st.integers(1, 2 * 366 * 24 * 60)
).map(lambda minutes: minutes * MINUTE)


@cache
def transitions(zone: str, year: int) -> list[datetime]:
    """Return the UTC hours of `year` at whose end the zone's offset changes."""
    tz = ZoneInfo(zone)
    hour = datetime(year, 1, 1, tzinfo=UTC)
    found = []
    while hour.year == year:
        if offset(tz, hour) != offset(tz, hour + HOUR):
            found.append(hour)
        hour += HOUR
    return found


@st.composite
def cases(draw: st.DrawFn) -> tuple[Fields, str, datetime]:
    """Draw fields, a zone and a start; most starts come a day or two before a
    change of the zone's offset, often with the hours on either side of it."""
    zone = draw(zones)
    start = draw(instants)
    changes = transitions(zone, start.year)
    if not changes or draw(st.integers(0, 3)) == 0:
        return draw(cron_fields()), zone, start

    change = draw(st.sampled_from(changes)) + HOUR
    start = change - draw(st.integers(0, 48 * 60 * 60)) * timedelta(seconds=1)
    around = {(change + k * MINUTE).astimezone(ZoneInfo(zone)).hour for k in (-1, 0)}
    hours = draw(
        st.one_of(st.none(), st.sets(st.sampled_from(sorted(around)), min_size=1))
    )
    if hours is None:
        return draw(cron_fields()), zone, start
    text = ",".join(str(hour) for hour in sorted(hours))
    return draw(cron_fields(hour_field=(text, hours))), zone, start


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=cases(), horizon=horizons)
def test_slots_match_the_brute_force_reference(
    case: tuple[Fields, str, datetime], horizon: timedelta
) -> None:
    fields, zone, start = case
    if not fires_ever(fields):
        return
    spec = parse_cron(fields.text)
    assert spec.fixed_time == fields.fixed_time
    end = start + horizon

    expected = reference_slots(fields, ZoneInfo(zone), start, end)
    if len(expected) < CAP:
        got = slots_between(spec, zone, start, end)
    else:
        got = next_slots(spec, zone, start, CAP)
    assert [(slot.utc, slot.shifted) for slot in got] == expected
    for slot in got:
        # Not `local == utc`: Python calls an ambiguous wall time unequal to
        # every instant of another zone (PEP 495).
        assert slot.local.timestamp() == slot.utc.timestamp()
        assert slot.local.tzinfo == ZoneInfo(zone)
        assert slot.local.utcoffset() == offset(ZoneInfo(zone), slot.utc)


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_next_slot_after_a_slot_is_the_following_one(
    case: tuple[Fields, str, datetime],
) -> None:
    fields, zone, start = case
    if not fires_ever(fields):
        return
    spec = parse_cron(fields.text)

    slots = next_slots(spec, zone, start, 6)
    for current, following in zip(slots, slots[1:], strict=False):
        assert next_slots(spec, zone, current.utc, 1) == [following]
        assert next_slots(spec, zone, current.local, 1) == [following]
