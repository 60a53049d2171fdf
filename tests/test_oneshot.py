"""`run --once`: which slots are due (with an explicit now), and the command
end to end against the simulated Hub."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spaces_scheduler.cli import main
from spaces_scheduler.config import parse_config
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.oneshot import Selection, due_runs, select_schedules

from support import ALICE_TOKEN, alice_world, fast

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
CONFIG = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
min_interval = "0s"
misfire_grace = "10m"

[[schedule]]
name = "hourly"
cron = "7 * * * *"
spaces = ["alice/a", "alice/b"]
action = "restart"

[[schedule]]
name = "berlin-morning"
cron = "0 8 * * *"
timezone = "Europe/Berlin"
spaces = ["alice/a"]
action = "rebuild"
"""


def config(tmp_path: Path, text: str = CONFIG) -> Any:
    path = tmp_path / "spaces.toml"
    path.write_text(text)
    return parse_config(text, path)


def due(
    cfg: Any, last: dict[tuple[str, str], datetime], now: datetime, at: bool
) -> Any:
    runs, skipped = due_runs(
        cfg.schedules, lambda s: list(s.spaces), last, now=now, at=at
    )
    return (
        sorted((r.schedule.name, r.space, r.slot) for r in runs),
        sorted((r.schedule.name, r.space, r.slot, why) for r, why in skipped),
    )


def test_without_state_the_newest_slot_within_grace_runs(tmp_path: Path) -> None:
    cfg = config(tmp_path)

    runs, skipped = due(cfg, {}, T0 + timedelta(minutes=12), at=False)

    assert runs == [
        ("hourly", "alice/a", T0 + timedelta(minutes=7)),
        ("hourly", "alice/b", T0 + timedelta(minutes=7)),
    ]
    assert skipped == []


def test_without_state_a_slot_past_the_grace_does_not_run(tmp_path: Path) -> None:
    cfg = config(tmp_path)

    runs, _ = due(cfg, {}, T0 + timedelta(minutes=30), at=False)

    assert runs == []


def test_at_runs_the_newest_slot_however_late(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    hourly = select_schedules(cfg, Selection(at="7  *  * * *"))

    runs, _ = due_runs(
        hourly, lambda s: list(s.spaces), {}, now=T0 + timedelta(minutes=50), at=True
    )

    assert {(r.schedule.name, r.slot) for r in runs} == {
        ("hourly", T0 + timedelta(minutes=7))
    }


def test_with_state_a_late_delivery_runs_the_newest_and_coalesces(
    tmp_path: Path,
) -> None:
    # GitHub delivered the 09:07 schedule at 12:30: 10:07 and 11:07 were dropped.
    cfg = config(tmp_path)
    last = {("hourly", "alice/a"): T0 + timedelta(minutes=7)}
    now = T0 + 3 * HOUR + timedelta(minutes=30)

    runs, skipped = due(cfg, last, now, at=False)

    assert ("hourly", "alice/a", T0 + 3 * HOUR + timedelta(minutes=7)) in runs
    assert [s for s in skipped if s[1] == "alice/a"] == [
        ("hourly", "alice/a", T0 + HOUR + timedelta(minutes=7), "coalesced"),
        ("hourly", "alice/a", T0 + 2 * HOUR + timedelta(minutes=7), "coalesced"),
    ]


def test_a_recorded_slot_is_never_run_again(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    last = {
        ("hourly", "alice/a"): T0 + timedelta(minutes=7),
        ("hourly", "alice/b"): T0 + timedelta(minutes=7),
    }

    hourly = select_schedules(cfg, Selection(schedule="hourly"))

    runs, skipped = due_runs(
        hourly, lambda s: list(s.spaces), last, now=T0 + timedelta(minutes=40), at=True
    )

    assert runs == [] and skipped == []


def test_at_matches_normalised_cron_and_nicknames(tmp_path: Path) -> None:
    text = CONFIG.replace('"0 8 * * *"', '"@daily"')
    cfg = config(tmp_path, text)

    assert [s.name for s in select_schedules(cfg, Selection(at="0 0 * * *"))] == [
        "berlin-morning"
    ]
    with pytest.raises(ConfigError, match="no schedule has the cron"):
        select_schedules(cfg, Selection(at="5 4 * * *"))


def test_unknown_schedule_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schedule is named 'nope'"):
        select_schedules(config(tmp_path), Selection(schedule="nope"))


# -- the command --------------------------------------------------------------------


EVERY_MINUTE = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
min_interval = "0s"

[[schedule]]
name = "refresh"
cron = "* * * * *"
spaces = ["alice/a", "alice/b"]
action = "restart"
"""


def once(sim: Any, path: Path, *args: str) -> Result:
    env = {"HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}
    return CliRunner().invoke(
        main, ["run", "--once", *args, "--config", str(path)], env=env
    )


def restarts(sim: Any) -> list[str]:
    return [
        r["path"]
        for r in sim.requests()
        if r["method"] == "POST" and r["path"].endswith("/restart")
    ]


def test_run_once_acts_then_records_the_slot(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    path = tmp_path / "spaces.toml"
    path.write_text(EVERY_MINUTE)

    first = once(sim, path)
    second = once(sim, path)

    assert first.exit_code == 0, first.output
    assert sorted(first.stdout.splitlines())[0].startswith(
        "alice/a  refresh  restart  ok  RUNNING after"
    )
    # The same minute again: its slot is recorded, nothing runs twice.
    assert second.exit_code == 0
    assert len(restarts(sim)) in (2, 4)  # 4 only if a minute turned in between
    assert (tmp_path / ".spaces-scheduler" / "state.db").exists()


def test_run_once_filters_by_space_and_exits_1_on_failure(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(
        alice_world(fast("alice/a"), fast("alice/b", build_error="ERROR: broken"))
    )
    path = tmp_path / "spaces.toml"
    path.write_text(
        EVERY_MINUTE.replace('wait = "8s"', 'wait = "8s"\nescalate = "none"')
    )

    only_b = once(sim, path, "--schedule", "refresh", "--space", "alice/b")

    assert only_b.exit_code == 1
    assert "alice/b  refresh  restart  failed  BUILD_ERROR: ERROR: broken" in (
        only_b.stdout
    )
    assert restarts(sim) == ["/api/spaces/alice/b/restart"]


def test_run_once_checks_access_before_acting(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("bob/b")))
    path = tmp_path / "spaces.toml"
    path.write_text(EVERY_MINUTE.replace('"alice/b"', '"bob/b"'))

    result = once(sim, path)

    assert result.exit_code == 2
    assert "may not manage bob/b" in result.stderr
    assert restarts(sim) == []


def test_run_once_at_an_unknown_cron_exits_2(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    path = tmp_path / "spaces.toml"
    path.write_text(EVERY_MINUTE)

    result = once(sim, path, "--at", "5 4 * * *")

    assert result.exit_code == 2
    assert "no schedule has the cron '5 4 * * *'" in result.stderr


def test_bad_config_exits_2_naming_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    path.write_text(
        EVERY_MINUTE.replace('"* * * * *"', '"61 * * * *"').replace(
            'wait = "8s"', 'wait = "eight seconds"'
        )
    )

    result = CliRunner().invoke(main, ["run", "--once", "--config", str(path)])

    assert result.exit_code == 2
    errors = result.stderr.splitlines()
    assert len(errors) == 2
    assert any("minute 61 is out of range" in line for line in errors)
    assert any(
        "'eight seconds'" in line or '"eight seconds"' in line for line in errors
    )


def test_next_json_rows_are_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    path.write_text(CONFIG)

    result = CliRunner().invoke(
        main,
        [
            "next",
            "-n",
            "1",
            "--after",
            "2026-03-29T05:30:00",
            "--json",
            "--config",
            str(path),
        ],
    )

    import json

    rows = json.loads(result.stdout)
    assert {"schedule", "local", "utc", "shifted"} == set(rows[0])
    berlin = next(r for r in rows if r["schedule"] == "berlin-morning")
    # 29 March 2026 is the spring change in Berlin: 08:00 is UTC+2 again.
    assert berlin == {
        "schedule": "berlin-morning",
        "local": "2026-03-29T08:00:00+02:00",
        "utc": "2026-03-29T06:00:00Z",
        "shifted": False,
    }


def test_catch_up_runs_the_others_missed_slots_with_state_only(
    tmp_path: Path,
) -> None:
    # GitHub cancelled the pending 09:07 run of "hourly"; berlin-morning fired.
    cfg = config(tmp_path)
    last = {("hourly", "alice/a"): T0 - HOUR + timedelta(minutes=7)}
    others = select_schedules(cfg, Selection(schedule="hourly"))

    runs, skipped = due_runs(
        others,
        lambda s: list(s.spaces),
        last,
        now=T0 + timedelta(minutes=20),
        at=False,
        with_state_only=True,
    )

    # alice/a has state: its missed 09:07 runs; alice/b never ran: left alone.
    assert [(r.space, r.slot) for r in runs] == [("alice/a", T0 + timedelta(minutes=7))]
    assert skipped == []


def test_reading_commands_do_not_invent_a_store(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    path.write_text(CONFIG)
    missing = tmp_path / "typo" / "state.db"

    for command in (["history"], ["status"]):
        result = CliRunner().invoke(
            main, [*command, "--config", str(path), "--state", f"sqlite:///{missing}"]
        )
        assert result.exit_code == 2, result.output
        assert "No state store at" in result.stderr
    assert not missing.parent.exists()
