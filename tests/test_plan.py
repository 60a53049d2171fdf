"""Cron parsing, slots across DST, jitter and catch-up decisions."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from spaces_scheduler.plan import (
    CatchUp,
    Slot,
    daemon_catch_up,
    jitter_offset,
    newest_slot_at_or_before,
    next_slots,
    normalise_cron,
    one_shot_catch_up,
    parse_cron,
    slots_between,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def fires(expression: str, zone: str, after: str, n: int) -> list[str]:
    """Return the next `n` slots as `UTC = local [shifted]` strings."""
    slots = next_slots(parse_cron(expression), zone, at(after), n)
    return [
        f"{slot.utc:%m-%d %H:%MZ} = {slot.local:%m-%d %H:%M%z}"
        + (" shifted" if slot.shifted else "")
        for slot in slots
    ]


def utc_times(expression: str, after: str, n: int) -> list[str]:
    slots = next_slots(parse_cron(expression), "UTC", at(after), n)
    return [f"{slot.utc:%a %m-%d %H:%M}" for slot in slots]


# ---------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("nickname", "expanded"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        (" @Daily ", "0 0 * * *"),
    ],
)
def test_nicknames_expand_to_five_fields(nickname: str, expanded: str) -> None:
    assert normalise_cron(nickname) == expanded
    assert parse_cron(nickname).text == expanded


def test_normalising_collapses_blanks() -> None:
    assert normalise_cron("  */30\t*  * *   * ") == "*/30 * * * *"
    assert parse_cron("0  9 * *\t1-5").text == "0 9 * * 1-5"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("@reboot", "@reboot is not supported"),
        ("@fortnightly", "@fortnightly is not a cron nickname"),
        ("0 0 * * * *", "has 6 fields (seconds or years are not cron)"),
        ("0 0 0 * * * 2030", "has 7 fields"),
        ("0 * * *", "has 4 fields; use five fields"),
        ("", "is empty"),
        ("0 0 ? * MON", "day-of-month '?': '?' is Quartz syntax, not cron; write *"),
        ("H * * * *", "minute 'H': 'H' (a Jenkins hash) is not cron"),
        ("H/15 * * * *", "'H' (a Jenkins hash) is not cron"),
        ("0 0 31 2 *", "can never fire"),
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("61 * * * *", "minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 1 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * * FRY", "day-of-week 'FRY' is not a number or SUN-SAT"),
        ("0 0 * JANUARY *", "month 'JANUARY' is not a number or JAN-DEC"),
        (
            "30-10 * * * *",
            "minute range 30-10 runs backwards; split it, as in 30-59,0-10",
        ),
        ("*/0 * * * *", "minute step /0 must be a whole number of 1 or more"),
        ("1,,2 * * * *", "minute field has an empty item between commas"),
        ("0 0 * * 5#6", "day-of-week '5#6': the week after # must be 1 to 5"),
        ("0 0 L-2 * *", "day-of-month 'L' is not a number"),
        ("0 0 1/2/3 * *", "day-of-month '1/2/3' is not a value, a range a-b or a step"),
    ],
)
def test_refused_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^") as caught:
        parse_cron(expression)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and not message.endswith(".")


@pytest.mark.parametrize(
    ("expression", "first"),
    [
        ("0 0 29 2 *", "2028-02-29T00:00Z"),  # leap years only
        ("0 0 * 2 MON#5", "2044-02-29T00:00Z"),  # a fifth Monday in February
    ],
)
def test_rare_but_possible_expressions_are_accepted(
    expression: str, first: str
) -> None:
    slots = next_slots(parse_cron(expression), "UTC", at("2026-01-01T00:00Z"), 1)
    assert [slot.utc for slot in slots] == [at(first)]


def test_portable_is_false_only_for_cronsims_extensions() -> None:
    assert not parse_cron("0 0 L * *").portable
    assert not parse_cron("0 0 LW * *").portable
    assert not parse_cron("0 0 * * 5L").portable
    assert not parse_cron("0 0 * * FRI#2").portable
    # Month and day names that contain L or W are portable.
    assert parse_cron("0 0 * JUL WED").portable
    assert parse_cron("*/5 1-5 1,15 */2 0-6").portable


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [
        ("30 2 * * *", True),
        ("0-59 2 * * *", True),  # cronie looks at the first character only
        ("0 * * * *", False),
        ("*/15 * * * *", False),
        ("30 */2 * * *", False),
        ("@daily", True),
        ("@hourly", False),
    ],
)
def test_fixed_time_follows_cronies_star_rule(expression: str, fixed: bool) -> None:
    assert parse_cron(expression).fixed_time is fixed


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # 2026-02-13 is a Friday; Fridays and every 13th both fire.
    assert utc_times("0 0 13 * 5", "2026-02-01T00:00Z", 4) == [
        "Fri 02-06 00:00",
        "Fri 02-13 00:00",
        "Fri 02-20 00:00",
        "Fri 02-27 00:00",
    ]
    assert utc_times("0 0 13 * 5", "2026-03-01T00:00Z", 3) == [
        "Fri 03-06 00:00",
        "Fri 03-13 00:00",
        "Fri 03-20 00:00",
    ]
    assert utc_times("0 0 13 * *", "2026-02-01T00:00Z", 2) == [
        "Fri 02-13 00:00",
        "Fri 03-13 00:00",
    ]


def test_day_of_month_and_day_of_week_when_one_starts_with_a_star() -> None:
    # */2 starts with a star: odd days that are also Fridays.
    assert utc_times("0 0 */2 * 5", "2026-02-01T00:00Z", 3) == [
        "Fri 02-13 00:00",
        "Fri 02-27 00:00",
        "Fri 03-13 00:00",
    ]


def test_sunday_is_both_0_and_7() -> None:
    sundays = utc_times("0 12 * * 0", "2026-03-01T00:00Z", 3)
    assert sundays == ["Sun 03-01 12:00", "Sun 03-08 12:00", "Sun 03-15 12:00"]
    assert utc_times("0 12 * * 7", "2026-03-01T00:00Z", 3) == sundays
    assert utc_times("0 12 * * SUN", "2026-03-01T00:00Z", 3) == sundays
    assert utc_times("0 12 * * 5-7", "2026-03-05T00:00Z", 3) == [
        "Fri 03-06 12:00",
        "Sat 03-07 12:00",
        "Sun 03-08 12:00",
    ]


@pytest.mark.parametrize(
    ("minute_field", "minutes"),
    [
        ("*/20", ["00", "20", "40", "00"]),
        ("5/20", ["05", "25", "45", "05"]),
        ("10-30/10", ["10", "20", "30", "10"]),
        ("50-59/5,1", ["01", "50", "55", "01"]),
    ],
)
def test_steps(minute_field: str, minutes: list[str]) -> None:
    times = utc_times(f"{minute_field} * * * *", "2026-02-28T23:59Z", 4)
    assert [time[-2:] for time in times] == minutes


def test_names_and_lower_case_are_accepted() -> None:
    assert utc_times("0 9 * jan-mar mon-fri", "2026-03-27T00:00Z", 2) == [
        "Fri 03-27 09:00",
        "Mon 03-30 09:00",
    ]


# ---------------------------------------------------------------------------
# Slots and DST
#
# The 2026 transitions used below, in UTC:
#   Europe/Berlin       03-29 01:00 (02:00 CET -> 03:00 CEST)
#                       10-25 01:00 (03:00 CEST -> 02:00 CET)
#   America/New_York    03-08 07:00 (02:00 EST -> 03:00 EDT)
#                       11-01 06:00 (02:00 EDT -> 01:00 EST)
#   Australia/Sydney    04-04 16:00 (05 Apr 03:00 AEDT -> 02:00 AEST)
#                       10-03 16:00 (04 Oct 02:00 AEST -> 03:00 AEDT)
#   Australia/Lord_Howe 04-04 15:00 (05 Apr 02:00 +11 -> 01:30 +10:30)
#                       10-03 15:30 (04 Oct 02:00 +10:30 -> 02:30 +11)
#   Asia/Kolkata        none (+05:30 all year)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Spring gap, fixed time: once, at the first instant after the gap.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00Z",
            [
                "03-29 01:00Z = 03-29 03:00+0200 shifted",
                "03-30 00:30Z = 03-30 02:30+0200",
            ],
        ),
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00Z",
            [
                "03-08 07:00Z = 03-08 03:00-0400 shifted",
                "03-09 06:30Z = 03-09 02:30-0400",
            ],
        ),
        (
            "30 2 * * *",
            "Australia/Sydney",
            "2026-10-03T00:00Z",
            [
                "10-03 16:00Z = 10-04 03:00+1100 shifted",
                "10-04 15:30Z = 10-05 02:30+1100",
            ],
        ),
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00Z",
            [
                "10-03 15:30Z = 10-04 02:30+1100 shifted",
                "10-04 15:15Z = 10-05 02:15+1100",
            ],
        ),
        # 02:30 is just past Lord Howe's half-hour gap: not moved.
        (
            "30 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00Z",
            ["10-03 15:30Z = 10-04 02:30+1100"],
        ),
        # Two gap times, or a gap time and the gap's end, run once.
        (
            "0,30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00Z",
            [
                "03-29 01:00Z = 03-29 03:00+0200 shifted",
                "03-30 00:00Z = 03-30 02:00+0200",
            ],
        ),
        (
            "0 2,3 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00Z",
            ["03-29 01:00Z = 03-29 03:00+0200", "03-30 00:00Z = 03-30 02:00+0200"],
        ),
        # Repeated hour, fixed time: the first pass only.
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T12:00Z",
            ["10-25 00:30Z = 10-25 02:30+0200", "10-26 01:30Z = 10-26 02:30+0100"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00Z",
            ["11-01 05:30Z = 11-01 01:30-0400", "11-02 06:30Z = 11-02 01:30-0500"],
        ),
        (
            "30 2 * * *",
            "Australia/Sydney",
            "2026-04-04T00:00Z",
            ["04-04 15:30Z = 04-05 02:30+1100", "04-05 16:30Z = 04-06 02:30+1000"],
        ),
        (
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-04-04T00:00Z",
            ["04-04 14:45Z = 04-05 01:45+1100", "04-05 15:15Z = 04-06 01:45+1030"],
        ),
        # No DST: the same wall time every day.
        (
            "30 2 * * *",
            "Asia/Kolkata",
            "2026-03-28T12:00Z",
            ["03-28 21:00Z = 03-29 02:30+0530", "03-29 21:00Z = 03-30 02:30+0530"],
        ),
    ],
)
def test_fixed_time_schedules_across_dst(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    assert fires(expression, zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Spring gap, wildcard: the missing times are skipped.
        (
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:30Z",
            [
                "03-29 00:45Z = 03-29 01:45+0100",
                "03-29 01:00Z = 03-29 03:00+0200",
                "03-29 01:15Z = 03-29 03:15+0200",
            ],
        ),
        (
            "30 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:00Z",
            ["03-29 00:30Z = 03-29 01:30+0100", "03-29 01:30Z = 03-29 03:30+0200"],
        ),
        (
            "*/15 * * * *",
            "America/New_York",
            "2026-03-08T06:30Z",
            [
                "03-08 06:45Z = 03-08 01:45-0500",
                "03-08 07:00Z = 03-08 03:00-0400",
                "03-08 07:15Z = 03-08 03:15-0400",
            ],
        ),
        (
            "*/15 * * * *",
            "Australia/Sydney",
            "2026-10-03T15:30Z",
            [
                "10-03 15:45Z = 10-04 01:45+1000",
                "10-03 16:00Z = 10-04 03:00+1100",
                "10-03 16:15Z = 10-04 03:15+1100",
            ],
        ),
        (
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T15:00Z",
            [
                "10-03 15:15Z = 10-04 01:45+1030",
                "10-03 15:30Z = 10-04 02:30+1100",
                "10-03 15:45Z = 10-04 02:45+1100",
            ],
        ),
        (
            "30 * * * *",
            "Australia/Lord_Howe",
            "2026-10-03T14:00Z",
            [
                "10-03 15:00Z = 10-04 01:30+1030",
                "10-03 15:30Z = 10-04 02:30+1100",
                "10-03 16:30Z = 10-04 03:30+1100",
            ],
        ),
        # Repeated hour, wildcard: both passes, in the order they happen.
        (
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-10-25T00:30Z",
            [
                "10-25 00:45Z = 10-25 02:45+0200",
                "10-25 01:00Z = 10-25 02:00+0100",
                "10-25 01:15Z = 10-25 02:15+0100",
                "10-25 01:30Z = 10-25 02:30+0100",
            ],
        ),
        (
            "30 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:00Z",
            [
                "10-24 23:30Z = 10-25 01:30+0200",
                "10-25 00:30Z = 10-25 02:30+0200",
                "10-25 01:30Z = 10-25 02:30+0100",
                "10-25 02:30Z = 10-25 03:30+0100",
            ],
        ),
        (
            "30 * * * *",
            "America/New_York",
            "2026-11-01T04:00Z",
            [
                "11-01 04:30Z = 11-01 00:30-0400",
                "11-01 05:30Z = 11-01 01:30-0400",
                "11-01 06:30Z = 11-01 01:30-0500",
                "11-01 07:30Z = 11-01 02:30-0500",
            ],
        ),
        (
            "30 * * * *",
            "Australia/Sydney",
            "2026-04-04T14:00Z",
            [
                "04-04 14:30Z = 04-05 01:30+1100",
                "04-04 15:30Z = 04-05 02:30+1100",
                "04-04 16:30Z = 04-05 02:30+1000",
                "04-04 17:30Z = 04-05 03:30+1000",
            ],
        ),
        (
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2026-04-04T14:30Z",
            [
                "04-04 14:45Z = 04-05 01:45+1100",
                "04-04 15:00Z = 04-05 01:30+1030",
                "04-04 15:15Z = 04-05 01:45+1030",
                "04-04 15:30Z = 04-05 02:00+1030",
            ],
        ),
        (
            "*/15 * * * *",
            "Asia/Kolkata",
            "2026-03-29T00:50Z",
            ["03-29 01:00Z = 03-29 06:30+0530", "03-29 01:15Z = 03-29 06:45+0530"],
        ),
    ],
)
def test_wildcard_schedules_across_dst(
    expression: str, zone: str, after: str, expected: list[str]
) -> None:
    assert fires(expression, zone, after, len(expected)) == expected


def test_next_slots_are_strictly_after_a_slot() -> None:
    spec = parse_cron("*/30 * * * *")
    slots = next_slots(spec, "UTC", at("2026-05-01T12:00Z"), 1)
    assert [slot.utc for slot in slots] == [at("2026-05-01T12:30Z")]
    assert next_slots(spec, "UTC", at("2026-05-01T12:29:59.999999Z"), 1) == slots


def test_shifted_slot_is_strictly_after_too() -> None:
    spec = parse_cron("30 2 * * *")
    gap_end = at("2026-03-29T01:00Z")
    assert next_slots(spec, "Europe/Berlin", gap_end, 1)[0].utc == at(
        "2026-03-30T00:30Z"
    )
    before = gap_end - timedelta(microseconds=1)
    assert next_slots(spec, "Europe/Berlin", before, 1)[0].utc == gap_end


def test_after_in_the_second_pass_does_not_return_the_first_pass() -> None:
    # 01:10 UTC is 02:10 CET, the second pass; 02:30 CEST (00:30 UTC) has passed.
    spec = parse_cron("30 2 * * *")
    slot = next_slots(spec, "Europe/Berlin", at("2026-10-25T01:10Z"), 1)[0]
    assert slot.utc == at("2026-10-26T01:30Z")


def test_after_in_any_zone_is_converted() -> None:
    spec = parse_cron("0 9 * * *")
    tokyo = datetime(2026, 5, 1, 17, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 08:00 UTC
    fixed = datetime(2026, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=-2)))
    assert next_slots(spec, "UTC", tokyo, 1)[0].utc == at("2026-05-01T09:00Z")
    assert next_slots(spec, "UTC", fixed, 1)[0].utc == at("2026-05-02T09:00Z")


def test_slots_are_aware_utc_and_local() -> None:
    (slot,) = next_slots(
        parse_cron("0 9 * * *"), "Europe/Berlin", at("2026-05-01T00:00Z"), 1
    )
    assert slot.utc.tzinfo is UTC
    assert slot.local.tzinfo == ZoneInfo("Europe/Berlin")
    assert slot.local.hour == 9 and slot.utc.hour == 7


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        next_slots(parse_cron("0 9 * * *"), "UTC", datetime(2026, 5, 1), 1)


def test_no_slots_for_n_zero() -> None:
    assert next_slots(parse_cron("* * * * *"), "UTC", at("2026-05-01T00:00Z"), 0) == []


def test_slots_between_excludes_start_and_includes_end() -> None:
    spec = parse_cron("0 * * * *")
    slots = slots_between(spec, "UTC", at("2026-05-01T10:00Z"), at("2026-05-01T13:00Z"))
    assert [slot.utc.hour for slot in slots] == [11, 12, 13]
    assert (
        slots_between(spec, "UTC", at("2026-05-01T13:00Z"), at("2026-05-01T10:00Z"))
        == []
    )


def test_slots_between_keeps_the_newest_when_over_the_limit() -> None:
    spec = parse_cron("* * * * *")
    start, end = at("2026-01-01T00:00Z"), at("2026-03-01T00:00Z")
    slots = slots_between(spec, "UTC", start, end, limit=5)
    assert [slot.utc for slot in slots] == [
        end - timedelta(minutes=k) for k in range(4, -1, -1)
    ]


def test_slots_between_across_a_long_sparse_range() -> None:
    spec = parse_cron("0 0 1 1 *")
    slots = slots_between(
        spec, "Europe/Berlin", at("2020-06-01T00:00Z"), at("2026-06-01T00:00Z")
    )
    assert [slot.local.year for slot in slots] == [2021, 2022, 2023, 2024, 2025, 2026]


def test_newest_slot_at_or_before() -> None:
    spec = parse_cron("*/15 * * * *")
    on_slot = at("2026-05-01T12:15Z")
    exact = newest_slot_at_or_before(spec, "UTC", on_slot)
    assert exact is not None and exact.utc == on_slot
    late = newest_slot_at_or_before(spec, "UTC", at("2026-05-01T12:29:59Z"))
    assert late is not None and late.utc == on_slot


def test_newest_slot_at_or_before_across_the_gap_and_fold() -> None:
    fixed = parse_cron("30 2 * * *")
    shifted = newest_slot_at_or_before(fixed, "Europe/Berlin", at("2026-03-29T05:00Z"))
    assert shifted == Slot(
        at("2026-03-29T01:00Z"),
        at("2026-03-29T01:00Z").astimezone(ZoneInfo("Europe/Berlin")),
        shifted=True,
    )
    # In the second pass of 02:00-03:00 the newest slot is the first pass's 02:30.
    first_pass = newest_slot_at_or_before(
        fixed, "Europe/Berlin", at("2026-10-25T01:45Z")
    )
    assert first_pass is not None and first_pass.utc == at("2026-10-25T00:30Z")


def test_newest_slot_none_within_the_horizon() -> None:
    spec = parse_cron("0 0 1 1 *")
    now = at("2026-06-01T00:00Z")
    assert (
        newest_slot_at_or_before(spec, "UTC", now, horizon=timedelta(days=30)) is None
    )
    found = newest_slot_at_or_before(spec, "UTC", now)
    assert found is not None and found.utc == at("2026-01-01T00:00Z")


def test_next_slot_is_fast() -> None:
    # The daemon asks this for every schedule (10,000 of them) after each run.
    specs = [parse_cron(f"{m} {h} * * *") for m in range(0, 60, 6) for h in range(24)]
    specs += [parse_cron("*/15 * * * *"), parse_cron("0 9 * * 1-5")]
    after = at("2026-05-01T12:07:30Z")
    started = time.perf_counter()
    for spec in specs * 4:
        next_slots(spec, "Europe/Berlin", after, 1)
    per_call = (time.perf_counter() - started) / (len(specs) * 4)
    assert per_call < 0.001


def test_importing_plan_stays_light() -> None:
    code = (
        "import sys, spaces_scheduler.plan;"
        "heavy = {'pydantic', 'huggingface_hub', 'sqlalchemy', 'httpx'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# Jitter


def test_jitter_is_the_same_everywhere() -> None:
    # Pinned: a change here would move every user's runs.
    nightly = jitter_offset("nightly", "acme/demo", timedelta(seconds=90))
    assert nightly == timedelta(seconds=39)
    dashboard = jitter_offset("dashboards", "dibt-ru/dashboard", timedelta(minutes=15))
    assert dashboard == timedelta(minutes=12, seconds=27)


def test_jitter_stays_in_range_and_spreads() -> None:
    jitter = timedelta(seconds=90)
    offsets = {jitter_offset("nightly", f"acme/space-{k}", jitter) for k in range(300)}
    assert all(timedelta(0) <= offset < jitter for offset in offsets)
    assert len(offsets) > 60
    assert all(offset.microseconds == 0 for offset in offsets)


def test_jitter_depends_on_schedule_and_space() -> None:
    jitter = timedelta(hours=1)
    assert jitter_offset("a", "o/b", jitter) == jitter_offset("a", "o/b", jitter)
    pairs = [("a", "o/b"), ("b", "o/b"), ("a", "o/c"), ("ao", "/b")]
    assert len({jitter_offset(s, space, jitter) for s, space in pairs}) == 4


@pytest.mark.parametrize("jitter", [timedelta(0), timedelta(seconds=-5)])
def test_no_jitter_means_no_offset(jitter: timedelta) -> None:
    assert jitter_offset("nightly", "acme/demo", jitter) == timedelta(0)


def test_sub_second_jitter_is_zero() -> None:
    assert jitter_offset(
        "nightly", "acme/demo", timedelta(milliseconds=900)
    ) == timedelta(0)


# ---------------------------------------------------------------------------
# Catch-up


def hourly(*hours: int) -> list[Slot]:
    moments = [datetime(2026, 5, 1, hour, tzinfo=UTC) for hour in hours]
    return [Slot(moment, moment) for moment in moments]


def test_daemon_runs_the_newest_slot_within_grace() -> None:
    slots = hourly(9, 10, 11)
    decision = daemon_catch_up(
        slots,
        now=at("2026-05-01T11:09Z"),
        grace=timedelta(minutes=10),
        jitter=timedelta(0),
    )
    assert decision == CatchUp(
        slots[2], ((slots[0], "coalesced"), (slots[1], "coalesced"))
    )


def test_daemon_counts_grace_from_the_jittered_instant() -> None:
    slots = hourly(11)
    now = at("2026-05-01T11:11Z")
    grace = timedelta(minutes=10)
    missed = daemon_catch_up(slots, now=now, grace=grace, jitter=timedelta(0))
    assert missed == CatchUp(None, ((slots[0], "misfired"),))
    runs = daemon_catch_up(slots, now=now, grace=grace, jitter=timedelta(seconds=90))
    assert runs == CatchUp(slots[0])


def test_daemon_misfires_everything_when_the_newest_is_too_late() -> None:
    slots = hourly(9, 10)
    decision = daemon_catch_up(
        slots,
        now=at("2026-05-01T12:00Z"),
        grace=timedelta(minutes=10),
        jitter=timedelta(0),
    )
    assert decision.run is None
    assert decision.skipped == ((slots[0], "misfired"), (slots[1], "misfired"))


def test_grace_is_inclusive() -> None:
    slots = hourly(10)
    decision = daemon_catch_up(
        slots,
        now=at("2026-05-01T10:10Z"),
        grace=timedelta(minutes=10),
        jitter=timedelta(0),
    )
    assert decision.run == slots[0]


def test_catch_up_with_nothing_passed() -> None:
    empty = CatchUp(None, ())
    assert (
        daemon_catch_up(
            [], now=at("2026-05-01T10:10Z"), grace=timedelta(0), jitter=timedelta(0)
        )
        == empty
    )
    assert one_shot_catch_up([]) == empty


def test_one_shot_runs_the_newest_however_late() -> None:
    slots = hourly(1, 2, 3)
    decision = one_shot_catch_up(slots)
    assert decision.run == slots[2]
    assert decision.skipped == ((slots[0], "coalesced"), (slots[1], "coalesced"))


def test_catch_up_orders_slots_itself() -> None:
    slots = hourly(3, 1, 2)
    assert one_shot_catch_up(slots).run == slots[0]
