"""The weekly hours of windows: days, hours past midnight, containment, overlap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spaces_scheduler.plan import WeeklyHours, first_overlap, parse_days, parse_hours

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon-wed,fri", {0, 1, 2, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("SUN", {6}),
        ("mon - tue", {0, 1}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "weekdays", "mon-", "monday", "mon,,tue"])
def test_parse_days_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a list of days"):
        parse_days(text)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("08:00-19:00", (480, 1140)),
        ("22:00-06:00", (1320, 360)),
        ("00:00-24:00", (0, 1440)),
        ("9:30-10:00", (570, 600)),
    ],
)
def test_parse_hours(text: str, span: tuple[int, int]) -> None:
    assert parse_hours(text) == span


@pytest.mark.parametrize(
    "text", ["8-19", "08:00", "24:00-01:00", "08:60-09:00", "08:00-08:00"]
)
def test_parse_hours_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hours(text)


def test_spans_run_past_midnight_and_the_week_end() -> None:
    nights = WeeklyHours.parse("sat,sun", "22:00-06:00", "UTC")
    assert nights.spans() == [
        (5 * 1440 + 1320, 6 * 1440 + 360),
        (6 * 1440 + 1320, 7 * 1440 + 360),
    ]
    assert nights.contains(datetime(2026, 5, 4, 5, 59, tzinfo=UTC))  # Monday morning
    assert not nights.contains(datetime(2026, 5, 4, 6, 0, tzinfo=UTC))


def test_whole_day() -> None:
    day = WeeklyHours.parse("tue", "00:00-24:00", "UTC")
    assert day.contains(datetime(2026, 5, 5, 0, 0, tzinfo=UTC))
    assert day.contains(datetime(2026, 5, 5, 23, 59, tzinfo=UTC))
    assert not day.contains(datetime(2026, 5, 6, 0, 0, tzinfo=UTC))


def test_contains_reads_wall_time_in_the_zone() -> None:
    office = WeeklyHours.parse("mon-fri", "08:00-19:00", "Europe/Berlin")
    assert office.contains(datetime(2026, 3, 27, 7, 0, tzinfo=UTC))  # 08:00 CET
    assert not office.contains(datetime(2026, 3, 30, 5, 30, tzinfo=UTC))  # 07:30 CEST
    assert office.contains(datetime(2026, 3, 30, 6, 0, tzinfo=UTC))  # 08:00 CEST


def test_first_overlap_same_zone() -> None:
    day = WeeklyHours.parse("mon-fri", "08:00-19:00", "UTC")
    evening = WeeklyHours.parse("wed", "18:00-20:00", "UTC")
    assert first_overlap(day, evening, now=NOW) == (2, 18 * 60)
    night = WeeklyHours.parse("mon-fri", "19:00-08:00", "UTC")
    assert first_overlap(day, night, now=NOW) is None


def test_first_overlap_across_zones() -> None:
    tokyo = WeeklyHours.parse("mon", "08:00-09:00", "Asia/Tokyo")
    utc_sunday = WeeklyHours.parse("sun", "23:30-23:45", "UTC")  # Mon 08:30 in Tokyo
    assert first_overlap(tokyo, utc_sunday, now=NOW) == (0, 8 * 60 + 30)
    assert first_overlap(utc_sunday, tokyo, now=NOW) == (6, 23 * 60 + 30)
