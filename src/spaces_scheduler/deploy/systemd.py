"""`deploy systemd`: a service and a timer per schedule, or one daemon service.

The timers fire at the schedule's own instants (`OnCalendar=` in its time zone,
translated exactly or refused) and start `run --once --schedule NAME --at
CRON`, which acts on the newest due slot and records it in the state under
`/var/lib/spaces-scheduler`. `Persistent=true` fires once after the machine was
off over a slot; the run then catches the newest missed slot up.

`install.sh` makes the virtual environment under /opt/spaces-scheduler, copies
the config to /etc/spaces-scheduler and the units to /etc/systemd/system, and
enables them. The token goes in /etc/spaces-scheduler/env (HF_TOKEN=...), which
may also set SPACES_SCHEDULER_STATE to another store.
"""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from spaces_scheduler.deploy.base import (
    STATE_ENV,
    Entry,
    Options,
    Rendered,
    Target,
    entries,
    header,
    refusal,
    unique_slugs,
    window_notes,
)
from spaces_scheduler.deploy.cron_translate import Untranslatable, on_calendar
from spaces_scheduler.deploy.files import generated
from spaces_scheduler.errors import ConfigError

if TYPE_CHECKING:
    from spaces_scheduler.config import Config

APP = "spaces-scheduler"
CONFIG_DIR = "/etc/spaces-scheduler"
ENV_FILE = f"{CONFIG_DIR}/env"
UNIT_DIR = "/etc/systemd/system"


class SystemdTarget(Target):
    """Unit files and `install.sh` under `deploy/systemd/`."""

    name = "systemd"
    default_output = "deploy/systemd"

    def render(self, config: Config, options: Options) -> Rendered:
        folder = options.output
        config_file = f"{CONFIG_DIR}/{Path(config.path).name}"
        units: dict[str, str] = {}
        if options.mode == "daemon":
            units[f"{APP}.service"] = _daemon_service(options, config, config_file)
        else:
            units.update(_timer_units(config, options, config_file))

        files = [generated(folder / name, text) for name, text in units.items()]
        script = _install_script(options, config, sorted(units))
        files.append(generated(folder / "install.sh", script, executable=True))
        files.sort(key=lambda item: item.path.name)
        # The daemon reconciles windows itself; one-shot runs do not.
        notes = () if options.mode == "daemon" else window_notes(config, self.name)
        return Rendered(tuple(files), folder, notes)


def _timer_units(config: Config, options: Options, config_file: str) -> dict[str, str]:
    items = entries(config, target="systemd")
    slugs = unique_slugs([entry.name for entry in items], limit=60)
    now = options.now or datetime.now(UTC)
    units, problems = {}, []
    for entry in items:
        try:
            calendar = on_calendar(entry.spec, entry.timezone, now=now)
        except Untranslatable as exc:
            problems.append(refusal(config, entry, "systemd", str(exc)))
            continue
        unit = f"{APP}-{slugs[entry.name]}"
        units[f"{unit}.service"] = _run_once_service(options, entry, config_file)
        units[f"{unit}.timer"] = _timer(options, entry, calendar, unit)
    if problems:
        raise ConfigError(problems)
    return units


def _run_once_service(options: Options, entry: Entry, config_file: str) -> str:
    command = [
        f"{options.prefix}/bin/{APP}",
        "run",
        "--once",
        "--config",
        config_file,
        "--schedule",
        entry.name,
        "--at",
        entry.spec.text,
    ]
    limit = 2 * entry.wait + timedelta(minutes=10)
    return _unit(
        options,
        unit=[
            f"Description={APP}: run what is due of schedule {_plain(entry.name)}",
            "Wants=network-online.target",
            "After=network-online.target",
        ],
        service=[
            "Type=oneshot",
            f"ExecStart={_exec_line(command)}",
            f"TimeoutStartSec={_seconds(limit)}",
            *_environment(),
        ],
        install=[],
    )


def _timer(options: Options, entry: Entry, calendar: list[str], unit: str) -> str:
    timer = [f"OnCalendar={line}" for line in calendar]
    timer += ["Persistent=true", "AccuracySec=1s"]
    if entry.jitter > timedelta(0):
        # One fixed offset per timer, kept across reboots (systemd derives it
        # from the machine and the timer's name, not from our jitter hash).
        timer += [
            f"RandomizedDelaySec={_seconds(entry.jitter)}",
            "FixedRandomDelay=true",
        ]
    timer.append(f"Unit={unit}.service")
    description = f"{entry.spec.text} in {entry.timezone}"
    return _unit(
        options,
        unit=[f"Description={APP}: schedule {_plain(entry.name)} ({description})"],
        timer=timer,
        install=["WantedBy=timers.target"],
    )


def _daemon_service(options: Options, config: Config, config_file: str) -> str:
    command = [f"{options.prefix}/bin/{APP}", "run", "--config", config_file]
    return _unit(
        options,
        unit=[
            f"Description={APP}: the daemon that runs every schedule and window",
            "Wants=network-online.target",
            "After=network-online.target",
        ],
        service=[
            "Type=exec",
            f"ExecStart={_exec_line(command)}",
            "Restart=on-failure",
            "RestartSec=10s",
            *_environment(),
        ],
        install=["WantedBy=multi-user.target"],
    )


def _environment() -> list[str]:
    # EnvironmentFile= comes last: its values override the defaults above it.
    return [
        f"Environment={STATE_ENV}=sqlite:////var/lib/{APP}/state.db",
        f"Environment=HF_HOME=/var/cache/{APP}/hf",
        "Environment=HF_HUB_DISABLE_TELEMETRY=1",
        f"EnvironmentFile=-{ENV_FILE}",
        "DynamicUser=yes",
        # One user name for every unit, so they share the state directory.
        f"User={APP}",
        f"StateDirectory={APP}",
        f"CacheDirectory={APP}",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
    ]


def _unit(options: Options, **sections: list[str]) -> str:
    parts = [header(options)]
    for name, lines in sections.items():
        if lines:
            parts.append(
                f"\n[{name.capitalize()}]\n" + "".join(f"{x}\n" for x in lines)
            )
    return "".join(parts)


def _exec_line(words: list[str]) -> str:
    return " ".join(_exec_word(word) for word in words)


def _exec_word(word: str) -> str:
    """Quote one word of ExecStart=: systemd expands % and $ and splits blanks."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and all(c.isalnum() or c in "/._-=:@+," for c in escaped):
        return escaped
    inner = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{inner}"'


def _plain(name: str) -> str:
    """Return a schedule name as it may stand in Description= (no specifiers)."""
    return repr(name).replace("%", "%%")


def _seconds(duration: timedelta) -> str:
    return f"{int(duration.total_seconds())}s"


def _install_script(options: Options, config: Config, units: list[str]) -> str:
    here = Path(options.output).resolve()
    source = os.path.relpath(Path(config.path).resolve(), here)
    prefix = shlex.quote(options.prefix)
    timers = [unit for unit in units if unit.endswith(".timer")]
    started = timers or [unit for unit in units if unit.endswith(".service")]
    lines = [
        "#!/bin/sh",
        header(options).rstrip("\n"),
        "# Run as root on the machine that will run the schedules.",
        "set -eu",
        'cd "$(dirname "$0")"',
        f"python3 -m venv {prefix}",
        f"{prefix}/bin/pip install --quiet --upgrade {shlex.quote(options.install)}",
        f"install -d -m 0755 {CONFIG_DIR}",
        f"install -m 0644 {shlex.quote(source)} {CONFIG_DIR}/{Path(config.path).name}",
        f"if [ ! -e {ENV_FILE} ]; then",
        f"  install -m 0600 /dev/null {ENV_FILE}",
        f'  echo "Put HF_TOKEN=hf_... in {ENV_FILE}, then rerun this script."',
        "  exit 1",
        "fi",
        f"install -m 0644 {' '.join(units)} {UNIT_DIR}/",
        "systemctl daemon-reload",
        f"systemctl enable --now {' '.join(started)}",
    ]
    return "\n".join(lines) + "\n"
