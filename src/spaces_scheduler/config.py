"""Load and check `spaces.toml`.

Every problem of the file is collected and raised together as one ConfigError, so
a user fixes them all in one pass. Each problem is one line that names the file,
the table or entry and the key, shows the bad value as it is written in TOML, says
what is allowed, and ends with a period.

The file is read with plain validation code rather than pydantic models: every
message is written for this file's keys, and loading stays quick to import.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from spaces_scheduler.action import ALLOWED_ACTIONS, Action, ActionKind
from spaces_scheduler.durations import ALLOWED as DURATIONS
from spaces_scheduler.durations import parse_duration
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.plan import (
    DAY_NAMES,
    WeeklyHours,
    first_overlap,
    parse_cron,
    parse_days,
    parse_hours,
)

T = TypeVar("T")

CONFIG_VARIABLE = "SPACES_SCHEDULER_CONFIG"
DEFAULT_FILE = "spaces.toml"

# The values of huggingface_hub's `SpaceHardware` enum, copied so that loading a
# config does not import the Hub client. The Hub client itself accepts any string:
# add a flavor here when the Hub adds one.
HARDWARE_FLAVORS = tuple(
    "cpu-basic cpu-upgrade cpu-performance cpu-xl zero-a10g t4-small t4-medium "
    "l4x1 l4x4 l40sx1 l40sx4 l40sx8 a10g-small a10g-large a10g-largex2 a10g-largex4 "
    "a100-large a100x4 a100x8 h100 h100x8 "
    "rtx-pro-6000 rtx-pro-6000x2 rtx-pro-6000x4 rtx-pro-6000x8".split()
)

_POLICY_KEYS = (
    "timezone",
    "wait",
    "min_interval",
    "jitter",
    "if_busy",
    "misfire_grace",
    "escalate",
    "notify",
)
_TABLES = ("hub", "defaults", "web", "webhooks", "daemon", "schedule", "window")
_NAME_PART = r"[A-Za-z0-9_.-]+"
_SPACE_ID = re.compile(rf"^{_NAME_PART}/[A-Za-z0-9_.*-]+$")
_WATCHED = re.compile(rf"^(datasets|models|spaces)/{_NAME_PART}/{_NAME_PART}(@\S+)?$")
_OWNED = re.compile(rf"^{_NAME_PART}/{_NAME_PART}(@\S+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class HubSettings:
    """The `[hub]` table: how to reach the Hub and how hard to use it.

    `poll` is the first pause between runtime reads while a run waits; later
    pauses grow from it. Not in the documented example: tests against the
    simulated Hub shorten it.
    """

    token_env: str | None = None
    requests_per_5min: int = 800
    concurrency: int = 8
    poll: timedelta = timedelta(seconds=2)


@dataclass(frozen=True)
class RunPolicy:
    """How runs of a schedule behave: `[defaults]`, merged with its own keys."""

    timezone: str = "UTC"
    wait: timedelta = timedelta(minutes=20)
    min_interval: timedelta = timedelta(minutes=15)
    jitter: timedelta = timedelta(seconds=90)
    if_busy: Literal["skip", "wait", "act"] = "skip"
    misfire_grace: timedelta = timedelta(minutes=10)
    escalate: Literal["rebuild-once", "none"] = "rebuild-once"
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebSettings:
    """The `[web]` table: where the dashboard listens and who may read it."""

    listen: str = "127.0.0.1:8473"
    access_token_env: str | None = None


@dataclass(frozen=True)
class WebhookSettings:
    """The `[webhooks]` table: the Hub webhook secret and the debounce delay."""

    secret_env: str | None = None
    debounce: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class DaemonSettings:
    """The `[daemon]` table: how long a claim lives without its holder renewing it.

    A run whose daemon died is recorded `abandoned`, and its Space is free again,
    once `lease` has passed; the holder renews at a third of it. Short leases
    take over sooner but need a store that answers well within a third of them.
    """

    lease: timedelta = timedelta(minutes=2)


@dataclass(frozen=True)
class Schedule:
    """One `[[schedule]]`: when (`cron` as written, in `policy.timezone`) and what."""

    name: str
    cron: str
    spaces: tuple[str, ...]
    action: Action
    when_changed: tuple[str, ...] = ()
    policy: RunPolicy = field(default_factory=RunPolicy)


@dataclass(frozen=True)
class Window:
    """One `[[window]]`: the state its Spaces hold inside and outside its hours.

    `days` and `hours` are kept as written; `hours` may wrap past midnight, and
    then a day's window ends on the next morning.
    """

    name: str
    spaces: tuple[str, ...]
    timezone: str
    days: str
    hours: str
    inside: Action | None
    outside: Action | None

    @property
    def weekly_hours(self) -> WeeklyHours:
        """Return `days` and `hours` in the window's zone, parsed."""
        return WeeklyHours.parse(self.days, self.hours, self.timezone)

    def contains(self, moment: datetime) -> bool:
        """Return whether the aware instant `moment` falls inside the window."""
        return self.weekly_hours.contains(moment)


@dataclass(frozen=True)
class Config:
    """A checked config file."""

    path: Path
    hub: HubSettings = field(default_factory=HubSettings)
    defaults: RunPolicy = field(default_factory=RunPolicy)
    web: WebSettings = field(default_factory=WebSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    schedules: tuple[Schedule, ...] = ()
    windows: tuple[Window, ...] = ()
    daemon: DaemonSettings = field(default_factory=DaemonSettings)

    def schedule(self, name: str) -> Schedule:
        """Return the schedule called `name`; raise KeyError if there is none."""
        for schedule in self.schedules:
            if schedule.name == name:
                return schedule
        raise KeyError(name)


def config_path(explicit: str | None) -> Path:
    """Return the config file: `--config`, else $SPACES_SCHEDULER_CONFIG, else ./."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_VARIABLE) or DEFAULT_FILE)


def load_config(path: Path) -> Config:
    """Read and check the config file; raise ConfigError with every problem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: no such config file; create it or pass --config FILE."]
        ) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot be read: {error.strerror}."]) from error
    except UnicodeDecodeError as error:
        raise ConfigError([f"{path}: is not UTF-8 text; save it as UTF-8."]) from error
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Check the TOML `text` of the config file at `path`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([_syntax_problem(path, error)]) from error

    problems = _Problems(str(path))
    config = _read_config(data, path, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return config


def _syntax_problem(path: Path, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    where = re.search(r" \(at line (\d+), column (\d+)\)$", message)
    if where:
        message = message[: where.start()]
        return f"{path}: line {where[1]}, column {where[2]}: not valid TOML: {message}."
    message = message.removesuffix(" (at end of document)")
    return f"{path}: at the end of the file: not valid TOML: {message}."


# ---------------------------------------------------------------------------
# Reading tables


class _Invalid(ValueError):
    """A value is wrong; each reason is what follows it in one problem line.

    A reason that starts with a colon explains a part of the value.
    """

    def __init__(self, *reasons: str) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class _InvalidItems(_Invalid):
    """Some items of a list are wrong; each reason shows its item."""


class _Problems:
    """The one-line problems of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []

    def add(self, where: str, text: str) -> None:
        self.lines.append(f"{self.file}: {where}{text.rstrip('.')}.")


class _Table:
    """One TOML table being read: converts its keys and reports the bad ones."""

    def __init__(
        self,
        data: dict[str, Any],
        where: str,
        known: tuple[str, ...],
        problems: _Problems,
    ) -> None:
        self.data = data
        self.where = where
        self.known = known
        self.problems = problems
        self.failed = False

    def take(
        self, key: str, convert: Callable[[Any], T], default: T, *, hint: str = ""
    ) -> T:
        """Return the converted value of `key`, or `default` if absent or bad.

        With `hint`, the key is required and `hint` says what to write.
        """
        if key not in self.data:
            if hint:
                self.report(f"{key} is missing; {hint}")
            return default
        value = self.data[key]
        try:
            return convert(value)
        except _InvalidItems as bad:
            for reason in bad.reasons:
                self.report(f"{key} {reason}")
            return default
        except _Invalid as bad:
            shown = "(not shown)" if key.endswith("_env") else _show(value)
            for reason in bad.reasons:
                separator = "" if reason.startswith(":") else " "
                self.report(f"{key} {shown}{separator}{reason}")
            return default

    def report(self, text: str) -> None:
        self.failed = True
        self.problems.add(self.where, text)

    def check_unknown(self) -> None:
        """Report every key of the table this reader does not know."""
        for key in self.data:
            if key not in self.known:
                self.report(
                    f"key {_show(key)} is not known; {_closest(key, self.known)}"
                )


def _show(value: Any) -> str:
    """Return `value` written as TOML, the way the user wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{key} = {_show(item)}" for key, item in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    return str(value)


def _closest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return "the closest known key is X" or the list of known keys."""
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if match:
        return f"the closest known key is {_show(match[0])}"
    return "the known keys are " + ", ".join(choices)


def _read_config(data: dict[str, Any], path: Path, problems: _Problems) -> Config:
    _check_top_level(data, problems)
    hub = _read_hub(_table(data, "hub", problems), problems)
    defaults = _read_policy(_table(data, "defaults", problems), RunPolicy(), problems)
    web = _read_web(_table(data, "web", problems), problems)
    webhooks = _read_webhooks(_table(data, "webhooks", problems), problems)
    schedules = _read_schedules(data.get("schedule"), defaults, problems)
    windows = _read_windows(data.get("window"), defaults, problems)
    daemon = _read_daemon(_table(data, "daemon", problems), problems)
    return Config(path, hub, defaults, web, webhooks, schedules, windows, daemon=daemon)


def _check_top_level(data: dict[str, Any], problems: _Problems) -> None:
    for key, value in data.items():
        if key in _TABLES:
            continue
        if key in _POLICY_KEYS:
            problems.add(
                "", f"key {_show(key)} belongs in [defaults] or a [[schedule]]"
            )
        elif isinstance(value, dict | list):
            names = [_table_header(name) for name in _TABLES]
            match = difflib.get_close_matches(key, _TABLES, n=1, cutoff=0.6)
            hint = f"the closest is {_table_header(match[0])}" if match else ""
            hint = hint or "the known tables are " + ", ".join(names)
            problems.add("", f"table [{key}] is not known; {hint}")
        else:
            problems.add("", f"key {_show(key)} is not known; {_closest(key, _TABLES)}")


def _table_header(name: str) -> str:
    return f"[[{name}]]" if name in ("schedule", "window") else f"[{name}]"


def _table(data: dict[str, Any], name: str, problems: _Problems) -> dict[str, Any]:
    value = data.get(name, {})
    if isinstance(value, dict):
        return value
    problems.add("", f"{name} {_show(value)} must be a table, written [{name}]")
    return {}


def _read_hub(data: dict[str, Any], problems: _Problems) -> HubSettings:
    keys = ("token_env", "requests_per_5min", "concurrency", "poll")
    table = _Table(data, "[hub] ", keys, problems)
    table.check_unknown()
    return HubSettings(
        token_env=table.take("token_env", _env_name, None),
        requests_per_5min=table.take("requests_per_5min", _positive_int, 800),
        concurrency=table.take("concurrency", _positive_int, 8),
        poll=table.take("poll", _positive_duration, HubSettings.poll),
    )


def _read_web(data: dict[str, Any], problems: _Problems) -> WebSettings:
    table = _Table(data, "[web] ", ("listen", "access_token_env"), problems)
    table.check_unknown()
    return WebSettings(
        listen=table.take("listen", _listen_address, WebSettings.listen),
        access_token_env=table.take("access_token_env", _env_name, None),
    )


def _read_webhooks(data: dict[str, Any], problems: _Problems) -> WebhookSettings:
    table = _Table(data, "[webhooks] ", ("secret_env", "debounce"), problems)
    table.check_unknown()
    return WebhookSettings(
        secret_env=table.take("secret_env", _env_name, None),
        debounce=table.take("debounce", _duration, WebhookSettings.debounce),
    )


def _read_daemon(data: dict[str, Any], problems: _Problems) -> DaemonSettings:
    table = _Table(data, "[daemon] ", ("lease",), problems)
    table.check_unknown()
    return DaemonSettings(lease=table.take("lease", _lease, DaemonSettings.lease))


def _lease(value: Any) -> timedelta:
    # Renewals come every third of the lease: under 3s a slow commit could
    # let a live run's claim expire.
    result = _duration(value)
    if result < timedelta(seconds=3):
        raise _Invalid("is too short for a lease; use 3s or more, such as 2m")
    return result


def _read_policy(
    data: dict[str, Any], base: RunPolicy, problems: _Problems
) -> RunPolicy:
    table = _Table(data, "[defaults] ", _POLICY_KEYS, problems)
    table.check_unknown()
    return _read_policy_keys(table, base)


def _read_policy_keys(table: _Table, base: RunPolicy) -> RunPolicy:
    """Return `base` with the policy keys `table` sets."""
    return RunPolicy(
        timezone=table.take("timezone", _time_zone, base.timezone),
        wait=table.take("wait", _positive_duration, base.wait),
        min_interval=table.take("min_interval", _duration, base.min_interval),
        jitter=table.take("jitter", _duration, base.jitter),
        if_busy=table.take("if_busy", _choice("skip", "wait", "act"), base.if_busy),
        misfire_grace=table.take("misfire_grace", _duration, base.misfire_grace),
        escalate=table.take("escalate", _choice("rebuild-once", "none"), base.escalate),
        notify=table.take("notify", _notify_urls, base.notify),
    )


def _entries(value: Any, name: str, problems: _Problems) -> list[dict[str, Any]]:
    """Return the tables of an array of tables such as `[[schedule]]`."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    problems.add("", f"{name} {_show(value)} must be tables, each written [[{name}]]")
    return []


def _entry_where(kind: str, data: dict[str, Any], position: int) -> str:
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        return f"{kind} {_show(name)}: "
    return f"{kind} #{position}: "


# ---------------------------------------------------------------------------
# Schedules and windows


_SCHEDULE_KEYS = ("name", "cron", "spaces", "action", "when_changed", *_POLICY_KEYS)
_WINDOW_KEYS = ("name", "spaces", "timezone", "days", "hours", "inside", "outside")
_PLACEHOLDER = Action(ActionKind.RESTART)


def _read_schedules(
    value: Any, defaults: RunPolicy, problems: _Problems
) -> tuple[Schedule, ...]:
    entries = _entries(value, "schedule", problems)
    schedules = []
    for position, data in enumerate(entries, start=1):
        where = _entry_where("schedule", data, position)
        table = _Table(data, where, _SCHEDULE_KEYS, problems)
        schedules.append(_read_schedule(table, defaults))

    _check_unique_names("schedule", entries, problems)
    return tuple(schedules)


def _read_schedule(table: _Table, defaults: RunPolicy) -> Schedule:
    table.check_unknown()
    return Schedule(
        name=table.take("name", _entry_name, "", hint='name it, such as "nightly"'),
        cron=table.take("cron", _cron, "", hint='write one, such as "0 3 * * *"'),
        spaces=table.take("spaces", _space_ids, (), hint='list them: ["acme/demo"]'),
        action=table.take("action", _action, _PLACEHOLDER, hint='such as "restart"'),
        when_changed=table.take("when_changed", _watched_repositories, ()),
        policy=_read_policy_keys(table, defaults),
    )


def _read_windows(
    value: Any, defaults: RunPolicy, problems: _Problems
) -> tuple[Window, ...]:
    entries = _entries(value, "window", problems)
    windows, clean = [], []
    for position, data in enumerate(entries, start=1):
        where = _entry_where("window", data, position)
        table = _Table(data, where, _WINDOW_KEYS, problems)
        windows.append(_read_window(table, defaults))
        if not table.failed:
            clean.append(windows[-1])

    _check_unique_names("window", entries, problems)
    _check_window_overlaps(clean, problems)
    return tuple(windows)


def _read_window(table: _Table, defaults: RunPolicy) -> Window:
    table.check_unknown()
    window = Window(
        name=table.take("name", _entry_name, "", hint='name it, such as "nights"'),
        spaces=table.take("spaces", _space_ids, (), hint='list them: ["acme/demo"]'),
        timezone=table.take("timezone", _time_zone, defaults.timezone),
        days=table.take("days", _days_text, "mon-sun"),
        hours=table.take("hours", _hours_text, "", hint='write them: "08:00-19:00"'),
        inside=table.take("inside", _window_state, None),
        outside=table.take("outside", _window_state, None),
    )
    both_missing = "inside" not in table.data and "outside" not in table.data
    if both_missing:
        table.report(
            "inside and outside are both missing; set at least one, "
            'such as outside = "pause"'
        )
    return window


def _check_unique_names(
    kind: str, entries: list[dict[str, Any]], problems: _Problems
) -> None:
    seen = set()
    for data in entries:
        name = data.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.add(
                f"{kind} {_show(name)}: ",
                f"name {_show(name)} is taken by another {kind}; give each its own",
            )
        seen.add(name)


def _check_window_overlaps(windows: list[Window], problems: _Problems) -> None:
    for index, later in enumerate(windows):
        for earlier in windows[:index]:
            shared = _shared_space(earlier.spaces, later.spaces)
            if shared is None:
                continue
            moment = _first_overlap(earlier, later)
            if moment:
                problems.add(
                    f"window {_show(later.name)}: ",
                    f"hours {_show(later.hours)} overlap window "
                    f"{_show(earlier.name)} on {shared} from {moment} "
                    f"{earlier.timezone} time; two windows over one Space may not "
                    "overlap",
                )


def _first_overlap(earlier: Window, later: Window) -> str:
    """Return when two windows first overlap, as `mon 08:00`, or ""."""
    now = datetime.now(UTC)
    found = first_overlap(earlier.weekly_hours, later.weekly_hours, now=now)
    if found is None:
        return ""
    day, minute = found
    return f"{DAY_NAMES[day]} {minute // 60:02d}:{minute % 60:02d}"


def _shared_space(first: tuple[str, ...], second: tuple[str, ...]) -> str | None:
    """Return the Space (or patterns) two lists may both name, or None."""
    for a in first:
        for b in second:
            if a.lower() == b.lower():
                return _show(a)
            if _patterns_meet(a.lower(), b.lower()):
                return f"{_show(a)} and {_show(b)}"
    return None


def _patterns_meet(a: str, b: str) -> bool:
    """Return whether some Space id matches both `*` patterns."""
    owner_a, _, name_a = a.partition("/")
    owner_b, _, name_b = b.partition("/")
    return owner_a == owner_b and _globs_meet(name_a, name_b)


@cache
def _globs_meet(a: str, b: str) -> bool:
    if not a or not b:
        rest = a or b
        return set(rest) <= {"*"}
    if a[0] == "*":
        return _globs_meet(a[1:], b) or _globs_meet(a, b[1:])
    if b[0] == "*":
        return _globs_meet(a, b[1:]) or _globs_meet(a[1:], b)
    return a[0] == b[0] and _globs_meet(a[1:], b[1:])


# ---------------------------------------------------------------------------
# Values


def _entry_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise _Invalid('must be a name without blanks around it, such as "nightly"')
    if any(ord(character) < 32 for character in value):
        raise _Invalid("must not hold control characters")
    return value


def _cron(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid('must be a string, such as "0 3 * * *"')
    try:
        parse_cron(value)
    except ValueError as error:
        raise _Invalid(f": {error}") from error
    return value


def _duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise _Invalid(f"is not a duration; use {DURATIONS}")
    try:
        return parse_duration(value)
    except ValueError:
        raise _Invalid(f"is not a duration; use {DURATIONS}") from None


def _positive_duration(value: Any) -> timedelta:
    result = _duration(value)
    if result <= timedelta(0):
        raise _Invalid("must be longer than 0, such as 20m")
    return result


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("must be a whole number of 1 or more")
    return value


def _env_name(value: Any) -> str:
    # The value is never shown: people paste the secret itself here.
    looks_like_token = isinstance(value, str) and value.startswith("hf_")
    if not isinstance(value, str) or not _ENV_NAME.match(value) or looks_like_token:
        raise _Invalid(
            'must name an environment variable, such as "HF_TOKEN", '
            "not hold the secret itself"
        )
    return value


def _choice(*options: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value not in options:
            raise _Invalid(f"is not allowed; use {_one_of(options)}")
        return value

    return convert


def _one_of(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def _time_zone(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid('must be an IANA time zone name, such as "Europe/Berlin"')
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid(f"is not an IANA time zone; {_zone_hint(value)}") from None
    return value


def _zone_hint(name: str) -> str:
    zones = {zone.lower(): zone for zone in available_timezones()}
    match = difflib.get_close_matches(name.lower(), list(zones), n=1, cutoff=0.6)
    if match:
        return f"the closest is {_show(zones[match[0]])}"
    return 'use a name such as "Europe/Berlin", "America/New_York" or "UTC"'


def _notify_urls(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid('must be a list of Apprise URLs, such as ["discord://id/token"]')
    reasons = [
        f"{_show(url)} is not an Apprise URL; write one such as "
        '"discord://webhook_id/webhook_token"'
        for url in value
        if not isinstance(url, str) or "://" not in url
    ]
    if reasons:
        raise _InvalidItems(*reasons)
    return tuple(value)


def _listen_address(value: Any) -> str:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit():
        raise _Invalid('is not host:port; write it as "127.0.0.1:8473"')
    if not 1 <= int(port) <= 65535:
        raise _Invalid(f"has port {port}, out of range 1-65535")
    return value


def _space_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid('must list at least one Space, such as ["acme/demo"]')
    reasons = [f"{_show(space)} {_space_problem(space)}" for space in value]
    reasons = [reason for reason in reasons if not reason.endswith(" ")]
    repeated = sorted({space for space in value if value.count(space) > 1}, key=str)
    reasons += [f"{_show(space)} is listed twice" for space in repeated]
    if reasons:
        raise _InvalidItems(*reasons)
    return tuple(value)


def _space_problem(space: Any) -> str:
    if not isinstance(space, str):
        return 'is not a Space id; write owner/name, such as "acme/demo"'
    if space.startswith("spaces/"):
        return "needs no spaces/ prefix; write owner/name"
    if "*" in space.partition("/")[0]:
        return "has * in its owner; write the owner out, only the name may hold *"
    if not _SPACE_ID.match(space):
        return 'is not a Space id; write owner/name or a pattern such as "acme/*-demo"'
    return ""


def _watched_repositories(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid('must be a list, such as ["datasets/acme/prices"]')
    reasons = [
        f"{_show(entry)} {_watched_hint(entry)}"
        for entry in value
        if not isinstance(entry, str) or not _WATCHED.match(entry)
    ]
    if reasons:
        raise _InvalidItems(*reasons)
    return tuple(value)


def _watched_hint(entry: Any) -> str:
    kinds = ("datasets/", "models/", "spaces/")
    if isinstance(entry, str) and not entry.startswith(kinds) and _OWNED.match(entry):
        return f"needs its kind first, such as {_show('datasets/' + entry)}"
    return (
        "is not a repository; write datasets/owner/name, models/owner/name or "
        "spaces/owner/name, optionally with @revision"
    )


def _action(value: Any) -> Action:
    try:
        result = Action.from_config(value)
    except ValueError as error:
        if isinstance(value, str):
            raise _Invalid(f"is not an action; use {ALLOWED_ACTIONS}") from None
        # Action names the argument's problem; list the actions if the form is wrong.
        reason = str(error)
        if reason.startswith(("unknown action", f"{value!r} is not one")):
            reason += f"; use {ALLOWED_ACTIONS}"
        raise _Invalid(f": {reason}") from None
    if result.kind is ActionKind.HARDWARE:
        _check_flavor(result.hardware or "")
    return result


def _check_flavor(flavor: str) -> None:
    if flavor in HARDWARE_FLAVORS:
        return
    match = difflib.get_close_matches(flavor, HARDWARE_FLAVORS, n=1, cutoff=0.6)
    hint = (
        f"the closest is {_show(match[0])}"
        if match
        else "use " + ", ".join(HARDWARE_FLAVORS)
    )
    raise _Invalid(f": hardware {_show(flavor)} is not a known flavor; {hint}")


def _window_state(value: Any) -> Action:
    allowed = '"pause", { hardware = FLAVOR } or { sleep_time = DURATION }'
    result = _action(value)
    if result.kind not in (
        ActionKind.PAUSE,
        ActionKind.HARDWARE,
        ActionKind.SLEEP_TIME,
    ):
        raise _Invalid(f"is not a state a window can hold; use {allowed}")
    return result


def _days_text(value: Any) -> str:
    try:
        parse_days(value if isinstance(value, str) else "")
    except ValueError:
        raise _Invalid(
            "are not days; write them as mon-fri, sat,sun or mon-wed,fri"
        ) from None
    return str(value)


def _hours_text(value: Any) -> str:
    how = "write HH:MM-HH:MM, such as 08:00-19:00 or 22:00-06:00 (past midnight)"
    try:
        parse_hours(value if isinstance(value, str) else "")
    except ValueError as error:
        if str(error).endswith("starts when it ends"):
            raise _Invalid(f"start when they end; {how}") from None
        raise _Invalid(f"are not a span of the day; {how}") from None
    return str(value)
