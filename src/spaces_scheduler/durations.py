"""Parse and format the durations of the config file and the command line."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}
ALLOWED = "a number with a unit, such as 90s, 15m, 1h30m or 2d"


def parse_duration(text: str) -> timedelta:
    """Return the duration written as `text` (`90s`, `15m`, `1h30m`, `0`).

    Raise ValueError with what is allowed when `text` is not a duration.
    """
    compact = text.strip().replace(" ", "").lower()
    if compact == "0":
        return timedelta(0)

    seconds = 0.0
    position = 0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()

    if not compact or position != len(compact):
        raise ValueError(f"{text!r} is not a duration; use {ALLOWED}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float) -> str:
    """Return a short human form of a duration: `41.2s`, `15m`, `1h30m`."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds < 60:
        return f"{seconds:.1f}s"

    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
