"""`costs`: hours per flavor from windows and schedules, money from the price list,
and builds per week with and without when_changed."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spaces_scheduler.cli import main
from spaces_scheduler.config import Config, parse_config
from spaces_scheduler.costs import (
    OFFLINE_PRICES,
    WEEKS_PER_MONTH,
    schedule_builds,
    space_cost,
)
from spaces_scheduler.hub import Runtime
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import RunKey, Trigger

from support import ALICE_TOKEN, alice_world, fast

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # no DST change in Berlin that week

OFFICE = """
[[window]]
name = "office"
spaces = ["acme/demo"]
timezone = "Europe/Berlin"
days = "mon-fri"
hours = "08:00-19:00"
inside = { hardware = "t4-small" }
outside = "pause"

[[schedule]]
name = "refresh"
cron = "*/30 * * * *"
spaces = ["acme/a", "acme/b", "acme/c"]
action = "restart"
when_changed = ["datasets/acme/prompts"]

[[schedule]]
name = "up"
cron = "0 8 * * 1-5"
spaces = ["acme/gpu"]
action = { hardware = "a10g-small" }

[[schedule]]
name = "down"
cron = "0 20 * * 1-5"
spaces = ["acme/gpu"]
action = { hardware = "cpu-basic" }
"""


def load(tmp_path: Path, text: str = OFFICE) -> Config:
    path = tmp_path / "spaces.toml"
    path.write_text(text)
    return parse_config(text, path)


def test_an_office_window_runs_55_hours_and_pauses_the_rest(tmp_path: Path) -> None:
    config = load(tmp_path)
    runtime = Runtime(stage="RUNNING", hardware="t4-small")

    cost = space_cost("acme/demo", config, OFFLINE_PRICES, now=MONDAY, runtime=runtime)

    assert cost.hours == {"t4-small": 55.0, "paused": 113.0}
    assert cost.monthly == round(55 * 0.40 * WEEKS_PER_MONTH, 2)
    assert cost.always_on == round(168 * 0.40 * WEEKS_PER_MONTH, 2)
    assert cost.saving == pytest.approx(cost.always_on - cost.monthly, abs=0.01)


def test_hardware_schedules_split_the_week_between_flavors(tmp_path: Path) -> None:
    config = load(tmp_path)

    cost = space_cost("acme/gpu", config, OFFLINE_PRICES, now=MONDAY)

    assert cost.hours == {"a10g-small": 60.0, "cpu-basic": 108.0}
    assert cost.monthly == round(60 * 1.00 * WEEKS_PER_MONTH, 2)
    assert cost.saving == round(cost.always_on - cost.monthly, 2)


def test_a_space_without_windows_runs_all_week_on_what_it_has(tmp_path: Path) -> None:
    config = load(tmp_path)
    runtime = Runtime(stage="RUNNING", hardware="l4x1", requested_hardware="l4x1")

    cost = space_cost("acme/a", config, OFFLINE_PRICES, now=MONDAY, runtime=runtime)

    assert cost.hours == {"l4x1": 168.0}
    assert cost.saving == 0.0


def test_a_pause_nothing_undoes_is_pointed_out(tmp_path: Path) -> None:
    text = OFFICE.replace('inside = { hardware = "t4-small" }\n', "")

    cost = space_cost("acme/demo", load(tmp_path, text), OFFLINE_PRICES, now=MONDAY)

    assert cost.hours == {"paused": 168.0}
    assert cost.notes == ["paused all week: nothing in the config brings it up"]


def test_a_sleep_time_window_is_an_upper_bound(tmp_path: Path) -> None:
    text = OFFICE.replace('outside = "pause"', 'outside = { sleep_time = "1h" }')

    cost = space_cost("acme/demo", load(tmp_path, text), OFFLINE_PRICES, now=MONDAY)

    assert cost.notes == ["sleep time set: the cost is an upper bound"]


def test_builds_blind_and_with_an_assumed_commit_rate(tmp_path: Path) -> None:
    schedule = load(tmp_path).schedule("refresh")

    builds = schedule_builds(schedule, 3, now=MONDAY, store=None, commits_per_day=2)

    per_slot = 1 - math.exp(-2 / 48)
    assert builds.blind == 336 * 3
    assert builds.when_changed == round(336 * 3 * per_slot, 1)
    assert builds.basis == "assumed 2 commits/day"


def test_builds_with_the_rate_observed_in_the_history(tmp_path: Path) -> None:
    config = load(tmp_path)
    store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=config.path)
    start = MONDAY - timedelta(days=2)
    for n in range(96):  # two days of */30 slots; one in eight found a commit
        slot = start + timedelta(minutes=30 * n)
        acted = n % 8 == 0
        outcome = Outcome(OutcomeKind.OK) if acted else Outcome.skipped("unchanged")
        store.record(
            RunKey("refresh", "acme/a", slot),
            outcome,
            owner="t",
            action="restart",
            trigger=Trigger.SCHEDULE,
            due_at=slot,
            now=slot,
        )

    builds = schedule_builds(
        config.schedule("refresh"), 1, now=MONDAY, store=store, commits_per_day=None
    )
    store.close()

    assert builds.blind == 336
    assert builds.when_changed == 42.0  # 12 builds in 2 days
    assert builds.basis.startswith("observed over 2.0 days")


def test_a_schedule_that_builds_nothing(tmp_path: Path) -> None:
    text = OFFICE.replace('action = "restart"', 'action = "pause"')

    builds = schedule_builds(
        load(tmp_path, text).schedule("refresh"),
        3,
        now=MONDAY,
        store=None,
        commits_per_day=None,
    )

    assert (builds.blind, builds.when_changed) == (0.0, 0.0)


def test_costs_offline_prints_tables_and_json(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    path.write_text(OFFICE)

    text = CliRunner().invoke(main, ["costs", "--offline", "--config", str(path)])
    data = CliRunner().invoke(
        main,
        [
            "costs",
            "--offline",
            "--json",
            "--commits-per-day",
            "2",
            "--config",
            str(path),
        ],
    )

    assert text.exit_code == 0, text.output
    assert "acme/demo" in text.output and "paused" in text.output
    assert "no history: pass --commits-per-day N" in text.output
    report = json.loads(data.output)
    assert report["prices"].startswith("built-in")
    rows = {row["schedule"]: row for row in report["schedules"]}
    assert rows["refresh"]["blind"] == 1008
    assert rows["refresh"]["when_changed"] < 60
    assert not (tmp_path / ".spaces-scheduler").exists()  # costs creates no store


def test_costs_reads_prices_and_hardware_from_the_hub(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/demo", hardware="t4-medium")))
    text = """
[[window]]
name = "nights"
spaces = ["alice/demo"]
timezone = "UTC"
hours = "20:00-08:00"
inside = "pause"
outside = { hardware = "t4-medium" }
"""
    path = tmp_path / "spaces.toml"
    path.write_text(text)
    env = {"HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}

    result = CliRunner().invoke(
        main, ["costs", "--json", "--config", str(path)], env=env
    )

    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["spaces"]
    assert row["hours"] == {"t4-medium": 84.0, "paused": 84.0}
    assert row["monthly"] == round(84 * 0.60 * WEEKS_PER_MONTH, 2)
    paths = {r["path"] for r in sim.requests()}
    assert "/api/spaces/hardware" in paths
    assert "/api/spaces/alice/demo/runtime" in paths
