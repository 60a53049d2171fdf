"""Loading spaces.toml: the documented example, defaults, and every kind of problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.config import (
    Config,
    HubSettings,
    RunPolicy,
    WebhookSettings,
    WebSettings,
    config_path,
    load_config,
    parse_config,
)
from spaces_scheduler.errors import ConfigError

FILE = Path("spaces.toml")

# The config-file example of DESIGN.md, verbatim.
DESIGN_EXAMPLE = """\
[hub]
token_env = "HF_TOKEN"        # else huggingface_hub's own lookup (HF_TOKEN, cached login)
requests_per_5min = 800       # stay under the account's API quota (free tier: 1,000)
concurrency = 8

[defaults]
timezone = "UTC"              # the default when omitted; any IANA name
wait = "20m"                  # after acting, wait until the Space is RUNNING; fail after this
min_interval = "15m"          # never act on one Space more often than this
jitter = "90s"                # a fixed offset in [0, jitter) per (schedule, Space)
if_busy = "skip"              # the Hub shows the Space building or starting: skip | wait | act
misfire_grace = "10m"         # the daemon runs a slot missed by less than this, once
escalate = "rebuild-once"     # BUILD_ERROR or a build stuck past `wait`: one factory rebuild
notify = ["discord://webhook_id/webhook_token"]   # Apprise URLs, for failures and missed runs

[web]
listen = "127.0.0.1:8473"     # the dashboard, JSON API, /metrics, /healthz, /webhooks/hub
access_token_env = "SPACES_SCHEDULER_WEB_TOKEN"   # required to listen beyond loopback

[webhooks]
secret_env = "SPACES_SCHEDULER_WEBHOOK_SECRET"
debounce = "30s"

[[schedule]]
name = "language-dashboards"
cron = "*/30 * * * *"
spaces = ["dibt-ru/dashboard", "dibt-es/dashboard", "dibt-org/*-dashboard"]
action = "restart"
when_changed = ["datasets/dibt-org/prompts-ru"]   # act only if one of these moved

[[window]]
name = "demo-office-hours"
spaces = ["acme/demo"]
timezone = "Europe/Berlin"
days = "mon-fri"
hours = "08:00-19:00"
inside = { hardware = "t4-small" }
outside = "pause"             # or { hardware = "cpu-basic" }, or { sleep_time = "1h" }
"""  # noqa: E501

SCHEDULE = """
[[schedule]]
name = "nightly"
cron = "0 3 * * *"
spaces = ["acme/demo"]
action = "restart"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, FILE)
    return caught.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------------------
# Loading


def test_the_design_example_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    path.write_text(DESIGN_EXAMPLE)
    config = load_config(path)

    assert config.path == path
    assert config.hub == HubSettings("HF_TOKEN", 800, 8)
    assert config.web == WebSettings("127.0.0.1:8473", "SPACES_SCHEDULER_WEB_TOKEN")
    assert config.webhooks == WebhookSettings(
        "SPACES_SCHEDULER_WEBHOOK_SECRET", timedelta(seconds=30)
    )
    assert config.defaults == RunPolicy(notify=("discord://webhook_id/webhook_token",))


def test_the_design_example_schedule_and_window() -> None:
    config = parse_config(DESIGN_EXAMPLE, FILE)

    schedule = config.schedule("language-dashboards")
    assert schedule.cron == "*/30 * * * *"
    assert schedule.spaces == (
        "dibt-ru/dashboard",
        "dibt-es/dashboard",
        "dibt-org/*-dashboard",
    )
    assert schedule.action == Action(ActionKind.RESTART)
    assert schedule.when_changed == ("datasets/dibt-org/prompts-ru",)
    assert schedule.policy == config.defaults

    (window,) = config.windows
    assert window.name == "demo-office-hours"
    assert (window.timezone, window.days, window.hours) == (
        "Europe/Berlin",
        "mon-fri",
        "08:00-19:00",
    )
    assert window.inside == Action(ActionKind.HARDWARE, hardware="t4-small")
    assert window.outside == Action(ActionKind.PAUSE)


def test_an_empty_file_gives_the_defaults() -> None:
    assert parse_config("", FILE) == Config(FILE)


def test_the_first_poll_pause_can_be_shortened() -> None:
    config = parse_config('[hub]\npoll = "50ms"\n', FILE)
    assert config.hub.poll == timedelta(milliseconds=50)
    assert HubSettings().poll == timedelta(seconds=2)


def test_the_daemon_lease_can_be_set_but_not_below_three_seconds() -> None:
    config = parse_config('[daemon]\nlease = "20s"\n', FILE)
    assert config.daemon.lease == timedelta(seconds=20)
    assert Config(FILE).daemon.lease == timedelta(minutes=2)

    assert problems_of('[daemon]\nlease = "1s"\nleas = "2m"\n') == [
        f'{FILE}: [daemon] key "leas" is not known; the closest known key is "lease".',
        f'{FILE}: [daemon] lease "1s" is too short for a lease; use 3s or more,'
        " such as 2m.",
    ]


def test_schedule_keys_override_the_defaults_one_by_one() -> None:
    config = parse_config(
        """
        [defaults]
        timezone = "Europe/Berlin"
        jitter = "5m"
        if_busy = "wait"

        [[schedule]]
        name = "nightly"
        cron = "0 3 * * *"
        spaces = ["acme/demo"]
        action = "rebuild"
        timezone = "America/New_York"
        wait = "45m"
        notify = ["mailto://ops@example.com"]
        """,
        FILE,
    )
    policy = config.schedule("nightly").policy
    assert policy == RunPolicy(
        timezone="America/New_York",
        wait=timedelta(minutes=45),
        jitter=timedelta(minutes=5),
        if_busy="wait",
        notify=("mailto://ops@example.com",),
    )
    assert config.defaults.timezone == "Europe/Berlin"


def test_unknown_schedule_name_is_a_key_error() -> None:
    config = parse_config(SCHEDULE, FILE)
    assert config.schedule("nightly").name == "nightly"
    with pytest.raises(KeyError):
        config.schedule("weekly")


def test_every_action_form_loads() -> None:
    config = parse_config(
        SCHEDULE.replace('"restart"', '{ sleep_time = "never" }')
        + SCHEDULE.replace("nightly", "vars").replace(
            '"restart"', '{ variables = { MODE = "fast" } }'
        ),
        FILE,
    )
    actions = [str(schedule.action) for schedule in config.schedules]
    assert actions == ["sleep_time=never", "variables=MODE"]


def test_config_path_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPACES_SCHEDULER_CONFIG", raising=False)
    assert config_path(None) == Path("spaces.toml")
    monkeypatch.setenv("SPACES_SCHEDULER_CONFIG", "/etc/spaces.toml")
    assert config_path(None) == Path("/etc/spaces.toml")
    assert config_path("mine.toml") == Path("mine.toml")


def test_a_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: no such config file; create it or pass --config FILE."
    ]


def test_a_toml_syntax_error_gives_line_and_column() -> None:
    problem = only_problem('[hub]\nconcurrency = 8\ntoken_env = "HF_TOKEN\n')
    assert problem.startswith("spaces.toml: line 3, column 22: not valid TOML: ")
    assert problem.endswith(".")


# ---------------------------------------------------------------------------
# One problem, one line


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            SCHEDULE.replace("0 3 * * *", "61 * * * *"),
            'spaces.toml: schedule "nightly": cron "61 * * * *": minute 61 is out '
            "of range 0-59.",
        ),
        (
            SCHEDULE.replace("0 3 * * *", "0 0 31 2 *"),
            'spaces.toml: schedule "nightly": cron "0 0 31 2 *": can never fire: no '
            "date matches its day-of-month, month and weekday.",
        ),
        (
            SCHEDULE.replace("0 3 * * *", "@reboot"),
            'spaces.toml: schedule "nightly": cron "@reboot": @reboot is not '
            "supported: a schedule needs times; use @daily or cron.",
        ),
        (
            '[defaults]\nwait = "20 minutes"\n',
            'spaces.toml: [defaults] wait "20 minutes" is not a duration; use a number '
            "with a unit, such as 90s, 15m, 1h30m or 2d.",
        ),
        (
            "[defaults]\njitter = 90\n",
            "spaces.toml: [defaults] jitter 90 is not a duration; use a number with a "
            "unit, such as 90s, 15m, 1h30m or 2d.",
        ),
        (
            '[defaults]\nwait = "0s"\n',
            'spaces.toml: [defaults] wait "0s" must be longer than 0, such as 20m.',
        ),
        (
            '[defaults]\ntimezone = "Europe/Berln"\n',
            'spaces.toml: [defaults] timezone "Europe/Berln" is not an IANA time zone; '
            'the closest is "Europe/Berlin".',
        ),
        (
            '[defaults]\nif_busy = "later"\n',
            'spaces.toml: [defaults] if_busy "later" is not allowed; use skip, wait '
            "or act.",
        ),
        (
            '[defaults]\nescalate = "always"\n',
            'spaces.toml: [defaults] escalate "always" is not allowed; use '
            "rebuild-once or none.",
        ),
        (
            '[defaults]\nnotify = ["discord:/x"]\n',
            'spaces.toml: [defaults] notify "discord:/x" is not an Apprise URL; write '
            'one such as "discord://webhook_id/webhook_token".',
        ),
        (
            "[hub]\nrequests_per_5min = 0\n",
            "spaces.toml: [hub] requests_per_5min 0 must be a whole number of 1 or "
            "more.",
        ),
        (
            "[hub]\nconcurrency = true\n",
            "spaces.toml: [hub] concurrency true must be a whole number of 1 or more.",
        ),
        (
            '[web]\nlisten = "8473"\n',
            'spaces.toml: [web] listen "8473" is not host:port; write it as '
            '"127.0.0.1:8473".',
        ),
        (
            '[webhooks]\ndebounce = "soon"\n',
            'spaces.toml: [webhooks] debounce "soon" is not a duration; use a number '
            "with a unit, such as 90s, 15m, 1h30m or 2d.",
        ),
        (
            SCHEDULE.replace('["acme/demo"]', "[]"),
            'spaces.toml: schedule "nightly": spaces [] must list at least one Space, '
            'such as ["acme/demo"].',
        ),
        (
            SCHEDULE.replace('["acme/demo"]', '["demo"]'),
            'spaces.toml: schedule "nightly": spaces "demo" is not a Space id; write '
            'owner/name or a pattern such as "acme/*-demo".',
        ),
        (
            SCHEDULE.replace('["acme/demo"]', '["*/dashboard"]'),
            'spaces.toml: schedule "nightly": spaces "*/dashboard" has * in its '
            "owner; write the owner out, only the name may hold *.",
        ),
        (
            SCHEDULE.replace('["acme/demo"]', '["acme/demo", "acme/demo"]'),
            'spaces.toml: schedule "nightly": spaces "acme/demo" is listed twice.',
        ),
        (
            SCHEDULE.replace('"restart"', '"reboot"'),
            'spaces.toml: schedule "nightly": action "reboot" is not an action; use '
            "restart, rebuild, pause, wake, { hardware = FLAVOR }, { sleep_time = "
            'DURATION | "never" } or { variables = { KEY = "value" } }.',
        ),
        (
            SCHEDULE.replace('"restart"', '{ hardware = "t4-smal" }'),
            'spaces.toml: schedule "nightly": action { hardware = "t4-smal" }: '
            'hardware "t4-smal" is not a known flavor; the closest is "t4-small".',
        ),
        (
            SCHEDULE.replace('"restart"', '{ sleep_time = "soon" }'),
            'spaces.toml: schedule "nightly": action { sleep_time = "soon" }: '
            "'soon' is not a duration; use a number with a unit, such as 90s, 15m, "
            "1h30m or 2d.",
        ),
        (
            SCHEDULE + 'when_changed = ["dibt-org/prompts-ru"]\n',
            'spaces.toml: schedule "nightly": when_changed "dibt-org/prompts-ru" '
            'needs its kind first, such as "datasets/dibt-org/prompts-ru".',
        ),
        (
            SCHEDULE + 'when_changed = ["datasets/acme"]\n',
            'spaces.toml: schedule "nightly": when_changed "datasets/acme" is not a '
            "repository; write datasets/owner/name, models/owner/name or "
            "spaces/owner/name, optionally with @revision.",
        ),
        (
            SCHEDULE.replace('name = "nightly"\n', ""),
            'spaces.toml: schedule #1: name is missing; name it, such as "nightly".',
        ),
        (
            SCHEDULE + SCHEDULE,
            'spaces.toml: schedule "nightly": name "nightly" is taken by another '
            "schedule; give each its own.",
        ),
        (
            '[[schedule]]\nname = "x"\ncron = "0 3 * * *"\naction = "restart"\n',
            'spaces.toml: schedule "x": spaces is missing; list them: ["acme/demo"].',
        ),
    ],
)
def test_each_problem_is_one_line(text: str, problem: str) -> None:
    assert only_problem(text) == problem


def test_when_changed_accepts_every_kind_and_a_revision() -> None:
    watched = [
        "datasets/acme/prices",
        "models/acme/model@v2",
        "spaces/acme/source@main",
    ]
    text = SCHEDULE + f"when_changed = {watched!r}\n".replace("'", '"')
    assert parse_config(text, FILE).schedules[0].when_changed == tuple(watched)


def test_every_known_flavor_is_accepted() -> None:
    flavors = ["cpu-basic", "zero-a10g", "l40sx8", "a100x8", "h100", "rtx-pro-6000x8"]
    for flavor in flavors:
        text = SCHEDULE.replace('"restart"', f'{{ hardware = "{flavor}" }}')
        assert parse_config(text, FILE).schedules[0].action.hardware == flavor


def test_unknown_keys_suggest_the_closest_known_one() -> None:
    problems = problems_of(
        '[defaults]\ntimezon = "UTC"\n[hub]\nconcurency = 3\n'
        + SCHEDULE
        + 'when_change = ["datasets/a/b"]\ncolour = "red"\n'
    )
    assert problems == [
        'spaces.toml: [hub] key "concurency" is not known; the closest known key is '
        '"concurrency".',
        'spaces.toml: [defaults] key "timezon" is not known; the closest known key is '
        '"timezone".',
        'spaces.toml: schedule "nightly": key "when_change" is not known; the closest '
        'known key is "when_changed".',
        'spaces.toml: schedule "nightly": key "colour" is not known; the known keys '
        "are name, cron, spaces, action, when_changed, timezone, wait, min_interval, "
        "jitter, if_busy, misfire_grace, escalate, notify.",
    ]


def test_unknown_tables_and_top_level_keys() -> None:
    problems = problems_of('timezone = "UTC"\n[schedules]\nx = 1\n')
    assert problems == [
        'spaces.toml: key "timezone" belongs in [defaults] or a [[schedule]].',
        "spaces.toml: table [schedules] is not known; the closest is [[schedule]].",
    ]


def test_a_single_schedule_table_needs_double_brackets() -> None:
    problem = only_problem('[schedule]\nname = "x"\n')
    assert problem == (
        'spaces.toml: schedule { name = "x" } must be tables, each written '
        "[[schedule]]."
    )


def test_every_problem_of_a_file_is_reported() -> None:
    problems = problems_of(
        '[defaults]\nwait = "20 minutes"\n'
        + SCHEDULE.replace("0 3 * * *", "61 * * * *").replace('"restart"', '"x"')
        + '[[schedule]]\nname = "second"\ncron = "0 0 * * * *"\nspaces = ["a/b"]\n'
        + 'action = "pause"\ntimezone = "Mars/Olympus"\n'
    )
    assert len(problems) == 5
    assert all(
        line.startswith("spaces.toml: ") and line.endswith(".") for line in problems
    )
    assert all("\n" not in line for line in problems)
    assert [line.split(": ")[1] for line in problems] == [
        '[defaults] wait "20 minutes" is not a duration; use a number with a unit, '
        "such as 90s, 15m, 1h30m or 2d.",
        'schedule "nightly"',
        'schedule "nightly"',
        'schedule "second"',
        'schedule "second"',
    ]


def test_a_token_pasted_into_token_env_is_not_shown() -> None:
    problem = only_problem('[hub]\ntoken_env = "hf_abcdefghijklmnopqrstuvwxyz"\n')
    assert "hf_abc" not in problem
    assert problem == (
        "spaces.toml: [hub] token_env (not shown) must name an environment variable, "
        'such as "HF_TOKEN", not hold the secret itself.'
    )


# ---------------------------------------------------------------------------
# Windows


def window(name: str, spaces: str, days: str, hours: str, zone: str = "UTC") -> str:
    return (
        f'\n[[window]]\nname = "{name}"\nspaces = {spaces}\ntimezone = "{zone}"\n'
        f'days = "{days}"\nhours = "{hours}"\noutside = "pause"\n'
    )


@pytest.mark.parametrize(
    ("days", "hours"),
    [
        ("mon-fri", "08:00-19:00"),
        ("sat,sun", "00:00-24:00"),
        ("mon-wed,fri", "22:00-06:00"),
        ("fri-mon", "9:30-10:00"),
    ],
)
def test_window_days_and_hours_forms(days: str, hours: str) -> None:
    config = parse_config(window("w", '["acme/demo"]', days, hours), FILE)
    assert (config.windows[0].days, config.windows[0].hours) == (days, hours)


@pytest.mark.parametrize(
    ("days", "hours", "problem"),
    [
        (
            "weekdays",
            "08:00-19:00",
            'days "weekdays" are not days; write them as mon-fri, sat,sun or '
            "mon-wed,fri.",
        ),
        (
            "mon-fri",
            "8-19",
            'hours "8-19" are not a span of the day; write HH:MM-HH:MM, such as '
            "08:00-19:00 or 22:00-06:00 (past midnight).",
        ),
        (
            "mon-fri",
            "08:00-25:00",
            'hours "08:00-25:00" are not a span of the day; write HH:MM-HH:MM, such '
            "as 08:00-19:00 or 22:00-06:00 (past midnight).",
        ),
        (
            "mon-fri",
            "08:00-08:00",
            'hours "08:00-08:00" start when they end; write HH:MM-HH:MM, such as '
            "08:00-19:00 or 22:00-06:00 (past midnight).",
        ),
    ],
)
def test_window_days_and_hours_problems(days: str, hours: str, problem: str) -> None:
    text = window("w", '["acme/demo"]', days, hours)
    assert only_problem(text) == f'spaces.toml: window "w": {problem}'


def test_a_window_needs_a_state_it_can_hold() -> None:
    text = window("w", '["acme/demo"]', "mon", "08:00-09:00")
    assert only_problem(text.replace('outside = "pause"', 'inside = "restart"')) == (
        'spaces.toml: window "w": inside "restart" is not a state a window can hold; '
        'use "pause", { hardware = FLAVOR } or { sleep_time = DURATION }.'
    )
    assert only_problem(text.replace('outside = "pause"', "")) == (
        'spaces.toml: window "w": inside and outside are both missing; set at least '
        'one, such as outside = "pause".'
    )


def test_a_window_takes_the_default_time_zone() -> None:
    text = '[defaults]\ntimezone = "Asia/Tokyo"\n' + window(
        "w", '["acme/demo"]', "mon", "08:00-09:00"
    ).replace('timezone = "UTC"\n', "")
    assert parse_config(text, FILE).windows[0].timezone == "Asia/Tokyo"


def test_overlapping_windows_over_one_space_are_refused() -> None:
    text = window("day", '["acme/demo"]', "mon-fri", "08:00-19:00") + window(
        "evening", '["acme/demo"]', "fri", "18:00-23:00"
    )
    assert only_problem(text) == (
        'spaces.toml: window "evening": hours "18:00-23:00" overlap window "day" on '
        '"acme/demo" from fri 18:00 UTC time; two windows over one Space may not '
        "overlap."
    )


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        # Adjacent spans share no minute.
        (("mon-fri", "08:00-19:00"), ("mon-fri", "19:00-08:00"), None),
        (("mon-fri", "08:00-19:00"), ("sat,sun", "00:00-24:00"), None),
        # Friday night runs into Saturday morning.
        (("fri", "22:00-06:00"), ("sat", "05:00-07:00"), "sat 05:00"),
        (("fri", "22:00-06:00"), ("sun", "05:00-07:00"), None),
        # Sunday night runs into Monday, across the week's end.
        (("sun", "22:00-06:00"), ("mon", "05:30-07:00"), "mon 05:30"),
        (("mon", "05:30-07:00"), ("sun", "22:00-06:00"), "mon 05:30"),
        (("tue", "00:00-24:00"), ("mon", "23:00-00:30"), "tue 00:00"),
    ],
)
def test_window_overlap_is_exact(
    first: tuple[str, str], second: tuple[str, str], overlap: str | None
) -> None:
    text = window("a", '["acme/demo"]', *first) + window("b", '["acme/demo"]', *second)
    if overlap is None:
        parse_config(text, FILE)
    else:
        assert f" from {overlap} UTC time;" in only_problem(text)


def test_windows_in_different_zones_overlap_in_real_time() -> None:
    # 17:00-18:00 in New York is 23:00-24:00 in Berlin (22:00-23:00 for the
    # few weeks the two switch DST on different dates).
    berlin = window(
        "berlin", '["acme/demo"]', "mon-fri", "22:00-23:30", "Europe/Berlin"
    )
    new_york = window(
        "new-york", '["acme/demo"]', "mon-fri", "17:00-18:00", "America/New_York"
    )
    assert "from mon 23:00 Europe/Berlin time" in only_problem(berlin + new_york)

    later = window(
        "late", '["acme/demo"]', "mon-fri", "18:30-19:00", "America/New_York"
    )
    parse_config(berlin + later, FILE)


def test_window_overlap_through_patterns() -> None:
    text = window("all", '["acme/*-demo"]', "mon", "08:00-09:00") + window(
        "ru", '["acme/ru-*"]', "mon", "08:30-10:00"
    )
    assert 'on "acme/*-demo" and "acme/ru-*" from mon 08:30' in only_problem(text)


def test_windows_over_different_spaces_may_overlap() -> None:
    text = window("a", '["acme/one", "acme/x-*"]', "mon", "08:00-09:00") + window(
        "b", '["acme/two", "other/one", "acme/y*"]', "mon", "08:00-09:00"
    )
    assert len(parse_config(text, FILE).windows) == 2


def test_window_contains() -> None:
    text = window("nights", '["acme/demo"]', "fri", "22:00-06:00", "Europe/Berlin")
    nights = parse_config(text, FILE).windows[0]
    berlin = ZoneInfo("Europe/Berlin")
    assert nights.contains(datetime(2026, 5, 1, 23, 0, tzinfo=berlin))  # Friday
    assert nights.contains(datetime(2026, 5, 2, 5, 59, tzinfo=berlin))  # Saturday
    assert not nights.contains(datetime(2026, 5, 2, 6, 0, tzinfo=berlin))
    assert not nights.contains(datetime(2026, 4, 30, 23, 0, tzinfo=berlin))
    assert nights.contains(datetime(2026, 5, 1, 21, 30, tzinfo=UTC))
