"""The values of the config file: each checker returns a value or raises `Invalid`.

A checker's reasons become the end of one problem line in `config.py`, which
names the file, the table and the key before them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from spaces_scheduler.action import ALLOWED_ACTIONS, Action, ActionKind
from spaces_scheduler.durations import ALLOWED as DURATIONS
from spaces_scheduler.durations import parse_duration
from spaces_scheduler.plan import parse_cron, parse_days, parse_hours

# The values of huggingface_hub's `SpaceHardware` enum, copied so that loading a
# config does not import the Hub client. The Hub client itself accepts any string:
# add a flavor here when the Hub adds one.
HARDWARE_FLAVORS = tuple(
    "cpu-basic cpu-upgrade cpu-performance cpu-xl zero-a10g t4-small t4-medium "
    "l4x1 l4x4 l40sx1 l40sx4 l40sx8 a10g-small a10g-large a10g-largex2 a10g-largex4 "
    "a100-large a100x4 a100x8 h100 h100x8 "
    "rtx-pro-6000 rtx-pro-6000x2 rtx-pro-6000x4 rtx-pro-6000x8".split()
)

NAME_PART = r"[A-Za-z0-9_.-]+"
SPACE_ID = re.compile(rf"^{NAME_PART}/[A-Za-z0-9_.*-]+$")
WATCHED = re.compile(rf"^(datasets|models|spaces)/{NAME_PART}/{NAME_PART}(@\S+)?$")
OWNED = re.compile(rf"^{NAME_PART}/{NAME_PART}(@\S+)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Invalid(ValueError):
    """A value is wrong; each reason is what follows it in one problem line.

    A reason that starts with a colon explains a part of the value.
    """

    def __init__(self, *reasons: str) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class InvalidItems(Invalid):
    """Some items of a list are wrong; each reason shows its item."""


def show(value: Any) -> str:
    """Return `value` written as TOML, the way the user wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{key} = {show(item)}" for key, item in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    return str(value)


def closest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return "the closest known key is X" or the list of known keys."""
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if match:
        return f"the closest known key is {show(match[0])}"
    return "the known keys are " + ", ".join(choices)


def entry_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise Invalid('must be a name without blanks around it, such as "nightly"')
    if any(ord(character) < 32 for character in value):
        raise Invalid("must not hold control characters")
    return value


def cron(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid('must be a string, such as "0 3 * * *"')
    try:
        parse_cron(value)
    except ValueError as error:
        raise Invalid(f": {error}") from error
    return value


def duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise Invalid(f"is not a duration; use {DURATIONS}")
    try:
        return parse_duration(value)
    except ValueError:
        raise Invalid(f"is not a duration; use {DURATIONS}") from None


def positive_duration(value: Any) -> timedelta:
    result = duration(value)
    if result <= timedelta(0):
        raise Invalid("must be longer than 0, such as 20m")
    return result


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid("must be a whole number of 1 or more")
    return value


def env_name(value: Any) -> str:
    # The value is never shown: people paste the secret itself here.
    looks_like_token = isinstance(value, str) and value.startswith("hf_")
    if not isinstance(value, str) or not ENV_NAME.match(value) or looks_like_token:
        raise Invalid(
            'must name an environment variable, such as "HF_TOKEN", '
            "not hold the secret itself"
        )
    return value


def choice(*options: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value not in options:
            raise Invalid(f"is not allowed; use {one_of(options)}")
        return value

    return convert


def one_of(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def time_zone(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid('must be an IANA time zone name, such as "Europe/Berlin"')
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(f"is not an IANA time zone; {zone_hint(value)}") from None
    return value


def zone_hint(name: str) -> str:
    zones = {zone.lower(): zone for zone in available_timezones()}
    match = difflib.get_close_matches(name.lower(), list(zones), n=1, cutoff=0.6)
    if match:
        return f"the closest is {show(zones[match[0]])}"
    return 'use a name such as "Europe/Berlin", "America/New_York" or "UTC"'


def notify_urls(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid('must be a list of Apprise URLs, such as ["discord://id/token"]')
    reasons = [
        f"{show(url)} is not an Apprise URL; write one such as "
        '"discord://webhook_id/webhook_token"'
        for url in value
        if not isinstance(url, str) or "://" not in url
    ]
    if reasons:
        raise InvalidItems(*reasons)
    return tuple(value)


def listen_address(value: Any) -> str:
    host, _, port = str(value).rpartition(":")
    if not isinstance(value, str) or not host or not port.isdigit():
        raise Invalid('is not host:port; write it as "127.0.0.1:8473"')
    if not 1 <= int(port) <= 65535:
        raise Invalid(f"has port {port}, out of range 1-65535")
    return value


def space_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise Invalid('must list at least one Space, such as ["acme/demo"]')
    reasons = [f"{show(space)} {space_problem(space)}" for space in value]
    reasons = [reason for reason in reasons if not reason.endswith(" ")]
    repeated = sorted({space for space in value if value.count(space) > 1}, key=str)
    reasons += [f"{show(space)} is listed twice" for space in repeated]
    if reasons:
        raise InvalidItems(*reasons)
    return tuple(value)


def space_problem(space: Any) -> str:
    if not isinstance(space, str):
        return 'is not a Space id; write owner/name, such as "acme/demo"'
    if space.startswith("spaces/"):
        return "needs no spaces/ prefix; write owner/name"
    if "*" in space.partition("/")[0]:
        return "has * in its owner; write the owner out, only the name may hold *"
    if not SPACE_ID.match(space):
        return 'is not a Space id; write owner/name or a pattern such as "acme/*-demo"'
    return ""


def watched_repositories(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid('must be a list, such as ["datasets/acme/prices"]')
    reasons = [
        f"{show(entry)} {watched_hint(entry)}"
        for entry in value
        if not isinstance(entry, str) or not WATCHED.match(entry)
    ]
    if reasons:
        raise InvalidItems(*reasons)
    return tuple(value)


def watched_hint(entry: Any) -> str:
    kinds = ("datasets/", "models/", "spaces/")
    if isinstance(entry, str) and not entry.startswith(kinds) and OWNED.match(entry):
        return f"needs its kind first, such as {show('datasets/' + entry)}"
    return (
        "is not a repository; write datasets/owner/name, models/owner/name or "
        "spaces/owner/name, optionally with @revision"
    )


def action(value: Any) -> Action:
    try:
        result = Action.from_config(value)
    except ValueError as error:
        if isinstance(value, str):
            raise Invalid(f"is not an action; use {ALLOWED_ACTIONS}") from None
        # Action names the argument's problem; list the actions if the form is wrong.
        reason = str(error)
        if reason.startswith(("unknown action", f"{value!r} is not one")):
            reason += f"; use {ALLOWED_ACTIONS}"
        raise Invalid(f": {reason}") from None
    if result.kind is ActionKind.HARDWARE:
        check_flavor(result.hardware or "")
    return result


def check_flavor(flavor: str) -> None:
    if flavor in HARDWARE_FLAVORS:
        return
    match = difflib.get_close_matches(flavor, HARDWARE_FLAVORS, n=1, cutoff=0.6)
    hint = (
        f"the closest is {show(match[0])}"
        if match
        else "use " + ", ".join(HARDWARE_FLAVORS)
    )
    raise Invalid(f": hardware {show(flavor)} is not a known flavor; {hint}")


def window_state(value: Any) -> Action:
    allowed = '"pause", { hardware = FLAVOR } or { sleep_time = DURATION }'
    result = action(value)
    if result.kind not in (
        ActionKind.PAUSE,
        ActionKind.HARDWARE,
        ActionKind.SLEEP_TIME,
    ):
        raise Invalid(f"is not a state a window can hold; use {allowed}")
    return result


def days_text(value: Any) -> str:
    try:
        parse_days(value if isinstance(value, str) else "")
    except ValueError:
        raise Invalid(
            "are not days; write them as mon-fri, sat,sun or mon-wed,fri"
        ) from None
    return str(value)


def hours_text(value: Any) -> str:
    how = "write HH:MM-HH:MM, such as 08:00-19:00 or 22:00-06:00 (past midnight)"
    try:
        parse_hours(value if isinstance(value, str) else "")
    except ValueError as error:
        if str(error).endswith("starts when it ends"):
            raise Invalid(f"start when they end; {how}") from None
        raise Invalid(f"are not a span of the day; {how}") from None
    return str(value)
