"""Real `spaces-scheduler run` processes against a simulated Hub, for the crash
and chaos tests: start them, kill them with SIGKILL, and read back what they
printed and what the simulator saw.

Every process here talks only to 127.0.0.1: the simulator's address is passed
as HF_ENDPOINT, the state is a SQLite file or the local PostgreSQL server.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.store.base import RunRecord

BIN = Path(sys.executable).parent
TOKEN = "hf_chaosToken0123456789abcdef"
# Clocks of the simulator (milliseconds) and the store (microseconds) differ in
# precision: a request may seem to come up to this long before its claim.
CLOCK_SLACK = timedelta(milliseconds=2)


def world(spaces: Sequence[str], *, build_seconds: float = 1.0) -> dict[str, Any]:
    """Return a simulator world with one write token owning `spaces`."""
    orgs = sorted({space.split("/")[0] for space in spaces})
    return {
        "hub": {"requests_per_window": 1_000_000, "window_seconds": 300},
        "token": [{"value": TOKEN, "user": "chaos", "role": "write", "orgs": orgs}],
        "space": [
            {
                "id": space,
                "build_seconds": build_seconds,
                "start_seconds": 0.1,
                "stale_running_seconds": 0.0,
            }
            for space in spaces
        ],
    }


def config_text(
    spaces: Sequence[str], *, lease: str, jitter: str, cron: str = "* * * * *"
) -> str:
    """Return a config of one schedule restarting `spaces`, every run acting."""
    listed = ", ".join(f'"{space}"' for space in spaces)
    return f"""
[hub]
requests_per_5min = 1000000
concurrency = 64
poll = "100ms"

[daemon]
lease = "{lease}"

[defaults]
jitter = "{jitter}"
min_interval = "0s"
if_busy = "act"
wait = "30s"
misfire_grace = "10m"
escalate = "none"

[[schedule]]
name = "refresh"
cron = "{cron}"
spaces = [{listed}]
action = "restart"
"""


@dataclass
class Daemon:
    """One `spaces-scheduler run` process and the run lines it printed."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    killed_at: datetime | None = None
    _reader: threading.Thread | None = None

    @property
    def owner_prefix(self) -> str:
        """The start of its claims' owner name: host and pid."""
        return f"{socket.gethostname()}:{self.process.pid}:"

    def kill(self) -> None:
        """SIGKILL it; it must have been alive until then."""
        assert self.process.poll() is None, self.stderr_tail()
        self.killed_at = datetime.now(UTC)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._join()

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM it and wait for its clean exit; return its status."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self._join()
        return status

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    def stderr_tail(self) -> str:
        return f"daemon {self.process.pid} exited {self.process.returncode}"


def register_early(config: str, url: str) -> datetime:
    """Record the schedule as seen two minutes ago, so work is due at once."""
    from spaces_scheduler.config import parse_config
    from spaces_scheduler.dispatch import schedule_rows
    from spaces_scheduler.store import open_store

    rows = schedule_rows(parse_config(config, Path("spaces.toml")).schedules[:1])
    first_seen = datetime.now(UTC) - timedelta(minutes=2)
    store = open_store(url, config_path=None)
    try:
        store.register_schedules(rows, first_seen)
    finally:
        store.close()
    return first_seen


def free_port() -> int:
    """Return a port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_daemon(
    folder: Path, config: str, *, state: str, hub_url: str, log: Path
) -> Daemon:
    """Start `spaces-scheduler run`; its stdout lines are collected as they come.

    Each daemon gets its own config file, `config` with a dashboard address of
    its own, so that daemons side by side (or one just killed) never collide.
    """
    path = folder / f"spaces-{next(_numbers)}.toml"
    path.write_text(f'{config}\n[web]\nlisten = "127.0.0.1:{free_port()}"\n')
    env = {
        **os.environ,
        "HF_ENDPOINT": hub_url,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(folder / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [str(BIN / "spaces-scheduler"), "run", "--config", str(path)]
    command += ["--state", state]
    with log.open("a") as errors:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    daemon = Daemon(process)
    daemon._reader = threading.Thread(target=_collect, args=(daemon,), daemon=True)
    daemon._reader.start()
    return daemon


_numbers = itertools.count()


def _collect(daemon: Daemon) -> None:
    assert daemon.process.stdout is not None
    for line in daemon.process.stdout:
        daemon.lines.append(line.rstrip("\n"))
    daemon.process.stdout.close()


# -- reading back --------------------------------------------------------------------


def printed_outcomes(lines: Iterable[str]) -> Counter[tuple[str, str, str]]:
    """Count the run lines by (schedule, Space, outcome word)."""
    found: Counter[tuple[str, str, str]] = Counter()
    for line in lines:
        if line.startswith(" "):
            continue  # a build log line under a failed run
        space, schedule, _action, outcome = line.split("  ")[:4]
        found[(schedule, space.strip(), outcome)] += 1
    return found


def stored_outcomes(runs: Iterable[RunRecord]) -> Counter[tuple[str, str, str]]:
    """Count the recorded runs the way `printed_outcomes` counts lines."""
    found: Counter[tuple[str, str, str]] = Counter()
    for run in runs:
        word = run.outcome.value if run.outcome else "claimed"
        if run.outcome is OutcomeKind.SKIPPED:
            word = f"skipped: {run.reason}"
        found[(run.key.schedule, run.key.space, word)] += 1
    return found


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def actions(requests: Iterable[dict[str, Any]]) -> dict[str, list[datetime]]:
    """Return the accepted restart requests per Space, in time order."""
    found: dict[str, list[datetime]] = defaultdict(list)
    for row in requests:
        path = row["path"]
        if row["method"] == "POST" and path.endswith("/restart"):
            if row["status"] == 200:
                space = path.removeprefix("/api/spaces/").removesuffix("/restart")
                found[space].append(parse_time(row["time"]))
    return {space: sorted(times) for space, times in found.items()}


def match_actions(
    runs: Iterable[RunRecord], sent: dict[str, list[datetime]]
) -> tuple[dict[int, list[datetime]], list[tuple[str, datetime]]]:
    """Give each restart request to the run it belongs to.

    A run's request comes after its claim, and the Space's lock keeps a later
    run from being claimed before the earlier one ended or its process died:
    so a request belongs to the newest run of its Space claimed before it.
    Returns the requests of each run (by id) and the requests of no run.
    """
    by_space: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.outcome is not OutcomeKind.SKIPPED:
            by_space[run.key.space].append(run)

    owned: dict[int, list[datetime]] = defaultdict(list)
    orphans: list[tuple[str, datetime]] = []
    for space, times in sent.items():
        claims = sorted(by_space.get(space, []), key=lambda run: run.claimed_at)
        for moment in times:
            before = [r for r in claims if r.claimed_at <= moment + CLOCK_SLACK]
            if before:
                owned[before[-1].id].append(moment)
            else:
                orphans.append((space, moment))
    return owned, orphans
