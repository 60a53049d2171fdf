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
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from spaces_scheduler import config_values as values
from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.config_values import HARDWARE_FLAVORS as HARDWARE_FLAVORS
from spaces_scheduler.config_values import closest, show
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.plan import (
    DAY_NAMES,
    WeeklyHours,
    first_overlap,
)

T = TypeVar("T")

CONFIG_VARIABLE = "SPACES_SCHEDULER_CONFIG"
DEFAULT_FILE = "spaces.toml"


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
        except values.InvalidItems as bad:
            for reason in bad.reasons:
                self.report(f"{key} {reason}")
            return default
        except values.Invalid as bad:
            shown = "(not shown)" if key.endswith("_env") else show(value)
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
                self.report(f"key {show(key)} is not known; {closest(key, self.known)}")


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
            problems.add("", f"key {show(key)} belongs in [defaults] or a [[schedule]]")
        elif isinstance(value, dict | list):
            names = [_table_header(name) for name in _TABLES]
            match = difflib.get_close_matches(key, _TABLES, n=1, cutoff=0.6)
            hint = f"the closest is {_table_header(match[0])}" if match else ""
            hint = hint or "the known tables are " + ", ".join(names)
            problems.add("", f"table [{key}] is not known; {hint}")
        else:
            problems.add(
                "",
                f"key {show(key)} is not known; {closest(key, _TABLES)}",
            )


def _table_header(name: str) -> str:
    return f"[[{name}]]" if name in ("schedule", "window") else f"[{name}]"


def _table(data: dict[str, Any], name: str, problems: _Problems) -> dict[str, Any]:
    value = data.get(name, {})
    if isinstance(value, dict):
        return value
    problems.add("", f"{name} {show(value)} must be a table, written [{name}]")
    return {}


def _read_hub(data: dict[str, Any], problems: _Problems) -> HubSettings:
    keys = ("token_env", "requests_per_5min", "concurrency", "poll")
    table = _Table(data, "[hub] ", keys, problems)
    table.check_unknown()
    return HubSettings(
        token_env=table.take("token_env", values.env_name, None),
        requests_per_5min=table.take("requests_per_5min", values.positive_int, 800),
        concurrency=table.take("concurrency", values.positive_int, 8),
        poll=table.take("poll", values.positive_duration, HubSettings.poll),
    )


def _read_web(data: dict[str, Any], problems: _Problems) -> WebSettings:
    table = _Table(data, "[web] ", ("listen", "access_token_env"), problems)
    table.check_unknown()
    return WebSettings(
        listen=table.take("listen", values.listen_address, WebSettings.listen),
        access_token_env=table.take("access_token_env", values.env_name, None),
    )


def _read_webhooks(data: dict[str, Any], problems: _Problems) -> WebhookSettings:
    table = _Table(data, "[webhooks] ", ("secret_env", "debounce"), problems)
    table.check_unknown()
    return WebhookSettings(
        secret_env=table.take("secret_env", values.env_name, None),
        debounce=table.take("debounce", values.duration, WebhookSettings.debounce),
    )


def _read_daemon(data: dict[str, Any], problems: _Problems) -> DaemonSettings:
    table = _Table(data, "[daemon] ", ("lease",), problems)
    table.check_unknown()
    return DaemonSettings(lease=table.take("lease", _lease, DaemonSettings.lease))


def _lease(value: Any) -> timedelta:
    # Renewals come every third of the lease: under 3s a slow commit could
    # let a live run's claim expire.
    result = values.duration(value)
    if result < timedelta(seconds=3):
        raise values.Invalid("is too short for a lease; use 3s or more, such as 2m")
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
        timezone=table.take("timezone", values.time_zone, base.timezone),
        wait=table.take("wait", values.positive_duration, base.wait),
        min_interval=table.take("min_interval", values.duration, base.min_interval),
        jitter=table.take("jitter", values.duration, base.jitter),
        if_busy=table.take(
            "if_busy", values.choice("skip", "wait", "act"), base.if_busy
        ),
        misfire_grace=table.take("misfire_grace", values.duration, base.misfire_grace),
        escalate=table.take(
            "escalate", values.choice("rebuild-once", "none"), base.escalate
        ),
        notify=table.take("notify", values.notify_urls, base.notify),
    )


def _entries(value: Any, name: str, problems: _Problems) -> list[dict[str, Any]]:
    """Return the tables of an array of tables such as `[[schedule]]`."""
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return value
    problems.add("", f"{name} {show(value)} must be tables, each written [[{name}]]")
    return []


def _entry_where(kind: str, data: dict[str, Any], position: int) -> str:
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        return f"{kind} {show(name)}: "
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
        name=table.take(
            "name", values.entry_name, "", hint='name it, such as "nightly"'
        ),
        cron=table.take("cron", values.cron, "", hint='write one, such as "0 3 * * *"'),
        spaces=table.take(
            "spaces", values.space_ids, (), hint='list them: ["acme/demo"]'
        ),
        action=table.take(
            "action", values.action, _PLACEHOLDER, hint='such as "restart"'
        ),
        when_changed=table.take("when_changed", values.watched_repositories, ()),
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
        name=table.take(
            "name", values.entry_name, "", hint='name it, such as "nights"'
        ),
        spaces=table.take(
            "spaces", values.space_ids, (), hint='list them: ["acme/demo"]'
        ),
        timezone=table.take("timezone", values.time_zone, defaults.timezone),
        days=table.take("days", values.days_text, "mon-sun"),
        hours=table.take(
            "hours", values.hours_text, "", hint='write them: "08:00-19:00"'
        ),
        inside=table.take("inside", values.window_state, None),
        outside=table.take("outside", values.window_state, None),
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
                f"{kind} {show(name)}: ",
                f"name {show(name)} is taken by another {kind}; give each its own",
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
                    f"window {show(later.name)}: ",
                    f"hours {show(later.hours)} overlap window "
                    f"{show(earlier.name)} on {shared} from {moment} "
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
                return show(a)
            if _patterns_meet(a.lower(), b.lower()):
                return f"{show(a)} and {show(b)}"
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
