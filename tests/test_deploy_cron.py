"""The cron translations agree with the plan, slot for slot.

systemd's own `systemd-analyze calendar` is asked when it is installed, so the
`OnCalendar=` lines are judged by systemd itself and not by our model of it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from spaces_scheduler.deploy.cron_translate import (
    Untranslatable,
    cover_problems,
    on_calendar,
    plain_cron,
    utc_cover,
)
from spaces_scheduler.plan import next_slots, parse_cron, slots_between

START = datetime(2027, 3, 20, tzinfo=UTC)  # a week before Europe's spring change
CRONS = [
    ("0 9 * * 1-5", "UTC"),
    ("0 9 1 * 1", "UTC"),
    ("*/20 8-18 * * mon,wed,fri", "UTC"),
    ("15 6 * * 6,7", "UTC"),
    ("0 0 1-7 * 5-7", "UTC"),
    ("5 4 */3 jan-jun *", "UTC"),
    ("0 9 * * 1-5", "Europe/Berlin"),
    ("*/30 * * * *", "Europe/Berlin"),
    ("45 23 * * sun", "America/New_York"),
    ("@weekly", "Asia/Kolkata"),
]


def _systemd_slots(lines: list[str], count: int) -> list[datetime]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    found: set[datetime] = set()
    for line in lines:
        done = subprocess.run(
            [
                analyze,
                "calendar",
                f"--iterations={count}",
                f"--base-time=@{int(START.timestamp())}",
                line,
            ],
            capture_output=True,
            text=True,
            env={"TZ": "UTC"},
            check=True,
        )
        for match in re.finditer(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", done.stdout):
            moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
            found.add(moment)
    return sorted(found)[:count]


@pytest.mark.parametrize(("cron", "zone"), CRONS)
def test_on_calendar_fires_at_the_plans_slots(cron: str, zone: str) -> None:
    spec = parse_cron(cron)
    lines = on_calendar(spec, zone, now=START)
    plan = [slot.utc for slot in next_slots(spec, zone, START, 40)]
    assert _systemd_slots(lines, 40) == plan


@pytest.mark.parametrize(("cron", "zone"), CRONS)
def test_plain_cron_has_the_same_slots(cron: str, zone: str) -> None:
    spec = parse_cron(cron)
    plain = parse_cron(plain_cron(spec))
    assert next_slots(plain, zone, START, 60) == next_slots(spec, zone, START, 60)
    assert " 7" not in plain.text.split(" ", 4)[-1]


@pytest.mark.parametrize(("cron", "zone"), CRONS)
def test_utc_cover_fires_at_every_slot(cron: str, zone: str) -> None:
    spec = parse_cron(cron)
    cover = parse_cron(utc_cover(spec, zone, now=START))
    end = START + timedelta(days=60)
    fires = {slot.utc for slot in slots_between(cover, "UTC", START, end)}
    assert {slot.utc for slot in slots_between(spec, zone, START, end)} <= fires
    assert (
        cover_problems(spec, zone, cover.text, grace=timedelta(minutes=10), now=START)
        == []
    )


def test_a_gap_time_gets_the_gap_end_in_its_cover() -> None:
    spec = parse_cron("30 2 * * *")
    cover = utc_cover(spec, "Europe/Berlin", now=START)
    assert cover == "0,30 * * * *"  # 02:30 on 28 March runs at 03:00 CEST (01:00Z)
    assert (
        cover_problems(
            spec, "Europe/Berlin", cover, grace=timedelta(minutes=10), now=START
        )
        == []
    )


@pytest.mark.parametrize(
    ("cron", "zone"),
    [
        ("30 2 * * *", "Europe/Berlin"),
        ("*/15 * * * *", "Australia/Lord_Howe"),
        ("*/30 1 * * *", "America/New_York"),
    ],
)
def test_on_calendar_refuses_what_dst_would_tell_apart(cron: str, zone: str) -> None:
    with pytest.raises(Untranslatable, match="DST change"):
        on_calendar(parse_cron(cron), zone, now=START)


def test_a_fixed_time_in_a_repeated_hour_is_kept_first_pass_only() -> None:
    # systemd and the plan both run 01:30 once on the autumn night in New York.
    assert on_calendar(parse_cron("30 1 * * *"), "America/New_York", now=START) == [
        "*-*-* 01:30:00 America/New_York"
    ]
