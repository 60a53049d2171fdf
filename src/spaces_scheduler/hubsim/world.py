"""The simulated Hub's world: tokens, Spaces, repos, faults, read from TOML.

`/work/shared/hubsim-world.example.toml` documents every key. Without `--world`, the
simulator serves the built-in default world below (`DEFAULT_WORLD_TOML`):

    token `hf_sim_demo_write_token`   user `demo`, role write, member of `demo-org`
                                      (`DEFAULT_TOKEN`)
    token `hf_sim_demo_read_token`    user `demo`, role read: may look, not act
    token `hf_sim_other_write_token`  user `other`, role write: not demo's Spaces

    Space `demo/dashboard`      RUNNING, cpu-basic; a restart shows the old RUNNING
                                for 0.5 s, then BUILDING 3 s, APP_STARTING 1 s
    Space `demo/gpu-demo`       RUNNING on t4-small, sleep time 3600 s
    Space `demo/leaderboard`    SLEEPING, cpu-basic; wakes on restart
    Space `demo/paused-demo`    PAUSED on a10g-small; only a restart un-pauses it
    Space `demo/broken`         BUILD_ERROR; every build fails until a factory rebuild
    Space `demo-org/es-dashboard`, `demo-org/ru-dashboard`
                                RUNNING, owned by the organisation `demo-org`
    Space `other/private-space` private, owned by `other`: 404 for demo's tokens
    dataset `demo/prompts`, `demo-org/prompts-ru`; model `demo/tiny-model`

Every token is fake; the Spaces exist only in the simulator's memory.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spaces_scheduler.hubsim.common import STAGES

DEFAULT_TOKEN = "hf_sim_demo_write_token"
DEFAULT_READ_TOKEN = "hf_sim_demo_read_token"
OTHER_TOKEN = "hf_sim_other_write_token"

DEFAULT_WORLD_TOML = f"""\
[hub]
requests_per_window = 1000
window_seconds = 300
latency = 0.0
webhook_timeout = 30

[[token]]
value = "{DEFAULT_TOKEN}"
user = "demo"
role = "write"
orgs = ["demo-org"]

[[token]]
value = "{DEFAULT_READ_TOKEN}"
user = "demo"
role = "read"
orgs = ["demo-org"]

[[token]]
value = "{OTHER_TOKEN}"
user = "other"
role = "write"

[[space]]
id = "demo/dashboard"
build_seconds = 3
start_seconds = 1
stale_running_seconds = 0.5
variables = {{ DATA_REPO = "demo/prompts" }}

[[space]]
id = "demo/gpu-demo"
hardware = "t4-small"
sleep_time = 3600
build_seconds = 3
start_seconds = 1

[[space]]
id = "demo/leaderboard"
stage = "SLEEPING"
build_seconds = 3
start_seconds = 1

[[space]]
id = "demo/paused-demo"
stage = "PAUSED"
hardware = "a10g-small"

[[space]]
id = "demo/broken"
stage = "BUILD_ERROR"
build_error = "ERROR: No matching distribution found for foo==9"
build_log = ["Step 3/9 : RUN pip install -r requirements.txt"]
fixed_by_factory = true
build_seconds = 2

[[space]]
id = "demo-org/es-dashboard"
build_seconds = 2

[[space]]
id = "demo-org/ru-dashboard"
build_seconds = 2

[[space]]
id = "other/private-space"
private = true

[[dataset]]
id = "demo/prompts"

[[dataset]]
id = "demo-org/prompts-ru"

[[model]]
id = "demo/tiny-model"
"""


class WorldError(ValueError):
    """A world file is invalid; the message is one line naming the key."""


Check = Callable[[Any], Any]


def _fail(problem: str) -> ValueError:
    return ValueError(problem)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail("must be a non-empty string")
    return value


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail("must be true or false")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _fail("must be a number of seconds >= 0")
    return float(value)


def _positive(value: Any) -> float:
    if _seconds(value) <= 0:
        raise _fail("must be a number of seconds > 0")
    return float(value)


def _offset(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("must be a number of seconds")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("must be a whole number >= 0")
    return value


def _status(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail("must be an HTTP status code")
    if not 100 <= value <= 599:
        raise _fail("must be an HTTP status code (100-599)")
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail("must be a list of strings")
    return list(value)


def _stage(value: Any) -> str:
    if value not in STAGES:
        raise _fail(f"must be one of {', '.join(sorted(STAGES))}")
    return str(value)


def _opt_stage(value: Any) -> str | None:
    return None if value is None else _stage(value)


def _repo_id(value: Any) -> str:
    parts = _text(value).split("/")
    if len(parts) != 2 or not all(parts):
        raise _fail("must look like owner/name")
    return str(value)


def _sha(value: Any) -> str:
    text = _text(value)
    if len(text) != 40 or any(c not in "0123456789abcdef" for c in text):
        raise _fail("must be 40 lowercase hex digits")
    return text


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise _fail("must be a table of strings")
    return dict(value)


def _opt_sleep(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise _fail("must be a whole number of seconds (-1 = never)")
    return value


def _role(value: Any) -> str:
    if value not in ("read", "write", "fineGrained", "oauth", "admin"):
        raise _fail("must be one of read, write, fineGrained, oauth, admin")
    return str(value)


def _watched(value: Any) -> list[dict[str, str]]:
    kinds = ("dataset", "model", "space", "user", "org")
    if not isinstance(value, list):
        raise _fail("must be a list of {type, name} tables")
    for item in value:
        if not isinstance(item, dict) or item.get("type") not in kinds:
            raise _fail(f"must be a list of {{type, name}}; type one of {kinds}")
        _text(item.get("name"))
    return [{"type": i["type"], "name": i["name"]} for i in value]


@dataclass(frozen=True)
class Table:
    """The keys one kind of table accepts: checks, defaults, required keys."""

    checks: dict[str, Check]
    defaults: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


HUB = Table(
    checks={
        "requests_per_window": _count,
        "window_seconds": _positive,
        "latency": _seconds,
        "webhook_timeout": _positive,
        "resolver_factor": _count,
        "page_size": _count,
    },
    defaults={
        "requests_per_window": 1000,
        "window_seconds": 300.0,
        "latency": 0.0,
        "webhook_timeout": 30.0,
        "resolver_factor": 5,
        "page_size": 50,
    },
)

TOKEN = Table(
    checks={
        "value": _text,
        "user": _text,
        "role": _role,
        "orgs": _texts,
        "deny": _texts,
        "fullname": _text,
    },
    defaults={"role": "write", "orgs": [], "deny": []},
    required=("value", "user"),
)

# The keys `POST /_sim/spaces/{id}` accepts too, so they are public.
SPACE = Table(
    checks={
        "id": _repo_id,
        "stage": _stage,
        "hardware": _text,
        "build_seconds": _seconds,
        "start_seconds": _seconds,
        "stale_running_seconds": _seconds,
        "build_error": _opt_text,
        "build_log": _texts,
        "fixed_by_factory": _flag,
        "stuck": _flag,
        "runtime_error": _opt_text,
        "runtime_errors": _texts,
        "stuck_stage": _opt_stage,
        "stage_since": _offset,
        "ignore_restart": _flag,
        "ignore_hardware": _flag,
        "pause_after_queue": _seconds,
        "app_status": _status,
        "logs_available": _flag,
        "private": _flag,
        "error_message": _opt_text,
        "sdk": _text,
        "sha": _sha,
        "sleep_time": _opt_sleep,
        "variables": _str_map,
        "secrets": _texts,
    },
    defaults={
        "stage": "RUNNING",
        "hardware": "cpu-basic",
        "build_seconds": 1.0,
        "start_seconds": 0.5,
        "stale_running_seconds": 0.0,
        "build_error": None,
        "build_log": [],
        "fixed_by_factory": False,
        "stuck": False,
        "runtime_error": None,
        "runtime_errors": [],
        "stuck_stage": None,
        "stage_since": 0.0,
        "ignore_restart": False,
        "ignore_hardware": False,
        "pause_after_queue": 0.0,
        "app_status": 200,
        "logs_available": True,
        "private": False,
        "error_message": None,
        "sdk": "gradio",
        "sha": None,
        "sleep_time": None,
        "variables": {},
        "secrets": [],
    },
    required=("id",),
)

REPO = Table(
    checks={"id": _repo_id, "sha": _sha, "readme": _flag, "private": _flag},
    defaults={"sha": None, "readme": True, "private": False},
    required=("id",),
)

FAULT = Table(
    checks={
        "path": _text,
        "space": _repo_id,
        "method": _text,
        "times": _count,
        "status": _status,
        "message": _opt_text,
        "error_code": _text,
        "retry_after": _seconds,
        "delay": _seconds,
        "hang": _flag,
    },
    defaults={"times": 1, "message": None, "delay": 0.0, "hang": False},
)

WEBHOOK = Table(
    checks={
        "user": _text,
        "url": _text,
        "watched": _watched,
        "domains": _texts,
        "secret": _text,
        "disabled": _flag,
    },
    defaults={"domains": ["repo", "discussion"], "disabled": False, "secret": None},
    required=("user", "url", "watched"),
)


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


def check_fault(raw: Any, *, where: str) -> dict[str, Any]:
    """Return a checked fault; it must say what to do (status, delay or hang)."""
    fault = check_table(FAULT, raw, where=where)
    if "status" not in fault and not fault["delay"] and not fault["hang"]:
        raise WorldError(f"{where}: needs one of 'status', 'delay' or 'hang'.")
    if "method" in fault:
        fault["method"] = fault["method"].upper()
    return fault


_SECTIONS = ("hub", "token", "space", "dataset", "model", "fault", "webhook")


@dataclass(frozen=True)
class World:
    """A checked world: what the simulated Hub holds when it starts."""

    hub: dict[str, Any]
    tokens: tuple[dict[str, Any], ...] = ()
    spaces: tuple[dict[str, Any], ...] = ()
    datasets: tuple[dict[str, Any], ...] = ()
    models: tuple[dict[str, Any], ...] = ()
    faults: tuple[dict[str, Any], ...] = ()
    webhooks: tuple[dict[str, Any], ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> World:
        """Read and check a world file; raise WorldError naming the file."""
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise WorldError(f"{source}: cannot read: {error.strerror}.") from None
        except tomllib.TOMLDecodeError as error:
            raise WorldError(f"{source}: invalid TOML: {error}.") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def default(cls) -> World:
        """Return the built-in world described in this module's docstring."""
        return cls.from_dict(tomllib.loads(DEFAULT_WORLD_TOML), source="default world")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "world") -> World:
        """Check a world given as the dict TOML would give."""
        for key in data:
            if key not in _SECTIONS:
                known = ", ".join(_SECTIONS)
                raise WorldError(f"{source}: unknown table {key!r} (known: {known}).")

        hub = check_table(HUB, data.get("hub", {}), where=f"{source}: [hub]")
        world = cls(
            hub=hub,
            tokens=_many(TOKEN, data, "token", source),
            spaces=_many(SPACE, data, "space", source),
            datasets=_many(REPO, data, "dataset", source),
            models=_many(REPO, data, "model", source),
            faults=tuple(
                check_fault(raw, where=f"{source}: [[fault]] #{i}")
                for i, raw in enumerate(_list(data, "fault", source), start=1)
            ),
            webhooks=_many(WEBHOOK, data, "webhook", source),
        )
        world._check_unique(source)
        return world

    def _check_unique(self, source: str) -> None:
        for name, rows, key in (
            ("token", self.tokens, "value"),
            ("space", self.spaces, "id"),
            ("dataset", self.datasets, "id"),
            ("model", self.models, "id"),
        ):
            seen: set[str] = set()
            for row in rows:
                if row[key] in seen:
                    raise WorldError(
                        f"{source}: [[{name}]] {key} {row[key]!r} appears twice."
                    )
                seen.add(row[key])


def _list(data: Mapping[str, Any], name: str, source: str) -> list[Any]:
    rows = data.get(name, [])
    if not isinstance(rows, list):
        raise WorldError(f"{source}: {name!r} must be an array of tables [[{name}]].")
    return rows


def _many(
    table: Table, data: Mapping[str, Any], name: str, source: str
) -> tuple[dict[str, Any], ...]:
    checked = []
    for i, raw in enumerate(_list(data, name, source), start=1):
        label = raw.get("id") if isinstance(raw, Mapping) else None
        where = f"{source}: [[{name}]] #{i}" + (f" ({label})" if label else "")
        checked.append(check_table(table, raw, where=where))
    return tuple(checked)
