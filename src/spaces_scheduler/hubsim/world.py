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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spaces_scheduler.hubsim import tables as check
from spaces_scheduler.hubsim.tables import Table, check_table
from spaces_scheduler.hubsim.tables import WorldError as WorldError

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


HUB = Table(
    checks={
        "requests_per_window": check.count,
        "window_seconds": check.positive,
        "latency": check.seconds,
        "webhook_timeout": check.positive,
        "resolver_factor": check.count,
        "page_size": check.count,
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
        "value": check.text,
        "user": check.text,
        "role": check.role,
        "orgs": check.texts,
        "deny": check.texts,
        "fullname": check.text,
    },
    defaults={"role": "write", "orgs": [], "deny": []},
    required=("value", "user"),
)

# The keys `POST /_sim/spaces/{id}` accepts too, so they are public.
SPACE = Table(
    checks={
        "id": check.repo_id,
        "stage": check.stage,
        "hardware": check.text,
        "build_seconds": check.seconds,
        "start_seconds": check.seconds,
        "stale_running_seconds": check.seconds,
        "build_error": check.opt_text,
        "build_log": check.texts,
        "fixed_by_factory": check.flag,
        "stuck": check.flag,
        "runtime_error": check.opt_text,
        "runtime_errors": check.texts,
        "stuck_stage": check.opt_stage,
        "stage_since": check.offset,
        "ignore_restart": check.flag,
        "ignore_hardware": check.flag,
        "pause_after_queue": check.seconds,
        "app_status": check.status,
        "logs_available": check.flag,
        "private": check.flag,
        "error_message": check.opt_text,
        "sdk": check.text,
        "sha": check.sha,
        "sleep_time": check.opt_sleep,
        "variables": check.str_map,
        "secrets": check.texts,
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
    checks={
        "id": check.repo_id,
        "sha": check.sha,
        "readme": check.flag,
        "private": check.flag,
    },
    defaults={"sha": None, "readme": True, "private": False},
    required=("id",),
)

FAULT = Table(
    checks={
        "path": check.text,
        "space": check.repo_id,
        "method": check.text,
        "times": check.count,
        "status": check.status,
        "message": check.opt_text,
        "error_code": check.text,
        "retry_after": check.seconds,
        "delay": check.seconds,
        "hang": check.flag,
    },
    defaults={"times": 1, "message": None, "delay": 0.0, "hang": False},
)

WEBHOOK = Table(
    checks={
        "user": check.text,
        "url": check.text,
        "watched": check.watched,
        "domains": check.texts,
        "secret": check.text,
        "disabled": check.flag,
    },
    defaults={"domains": ["repo", "discussion"], "disabled": False, "secret": None},
    required=("user", "url", "watched"),
)


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


# The default world, checked once; a HubSim copies what it changes, so one World
# may serve any number of simulators.
DEFAULT_WORLD = World.default()
