"""Checks for world-file tables: one-line errors that name the table and the key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from spaces_scheduler.hubsim.common import STAGES


class WorldError(ValueError):
    """A world file is invalid; the message is one line naming the key."""


Check = Callable[[Any], Any]


def _fail(problem: str) -> ValueError:
    return ValueError(problem)


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail("must be a non-empty string")
    return value


def opt_text(value: Any) -> str | None:
    return None if value is None else text(value)


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail("must be true or false")
    return value


def seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _fail("must be a number of seconds >= 0")
    return float(value)


def positive(value: Any) -> float:
    if seconds(value) <= 0:
        raise _fail("must be a number of seconds > 0")
    return float(value)


def offset(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("must be a number of seconds")
    return float(value)


def count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("must be a whole number >= 0")
    return value


def status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("must be an HTTP status code")
    if not 100 <= value <= 599:
        raise _fail("must be an HTTP status code (100-599)")
    return value


def texts(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail("must be a list of strings")
    return list(value)


def stage(value: Any) -> str:
    if value not in STAGES:
        raise _fail(f"must be one of {', '.join(sorted(STAGES))}")
    return str(value)


def opt_stage(value: Any) -> str | None:
    return None if value is None else stage(value)


def repo_id(value: Any) -> str:
    parts = text(value).split("/")
    if len(parts) != 2 or not all(parts):
        raise _fail("must look like owner/name")
    return str(value)


def sha(value: Any) -> str:
    digits = text(value)
    if len(digits) != 40 or any(c not in "0123456789abcdef" for c in digits):
        raise _fail("must be 40 lowercase hex digits")
    return digits


def str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise _fail("must be a table of strings")
    return dict(value)


def opt_sleep(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise _fail("must be a whole number of seconds (-1 = never)")
    return value


def role(value: Any) -> str:
    if value not in ("read", "write", "fineGrained", "oauth", "admin"):
        raise _fail("must be one of read, write, fineGrained, oauth, admin")
    return str(value)


def watched(value: Any) -> list[dict[str, str]]:
    kinds = ("dataset", "model", "space", "user", "org")
    if not isinstance(value, list):
        raise _fail("must be a list of {type, name} tables")
    for item in value:
        if not isinstance(item, dict) or item.get("type") not in kinds:
            raise _fail(f"must be a list of {{type, name}}; type one of {kinds}")
        text(item.get("name"))
    return [{"type": i["type"], "name": i["name"]} for i in value]


@dataclass(frozen=True)
class Table:
    """The keys one kind of table accepts: checks, defaults, required keys."""

    checks: dict[str, Check]
    defaults: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


def check_table(
    table: Table, raw: Any, *, where: str, partial: bool = False
) -> dict[str, Any]:
    """Return `raw` checked against `table`, defaults filled unless `partial`.

    Raises WorldError with one line naming `where` and the key.
    """
    if not isinstance(raw, Mapping):
        raise WorldError(f"{where}: must be a table, got {raw!r}.")

    for key in raw:
        if key not in table.checks:
            known = ", ".join(sorted(table.checks))
            raise WorldError(f"{where}: unknown key {key!r} (known: {known}).")
    if not partial:
        for key in table.required:
            if key not in raw:
                raise WorldError(f"{where}: key {key!r} is required.")

    checked = {} if partial else dict(table.defaults)
    for key, value in raw.items():
        try:
            checked[key] = table.checks[key](value)
        except ValueError as error:
            raise WorldError(f"{where}: key {key!r} {error}, got {value!r}.") from None
    return checked
