"""`spaces-scheduler demo`: the simulated Hub and the daemon on a sample config.

Everything runs in this process on 127.0.0.1: a simulated Hub with a dozen
Spaces (some scripted to fail, hang or sleep), and the daemon on a config that
makes each kind of outcome show within two minutes. The schedules are
registered as if the daemon had been down for two minutes, so the first round
is a catch-up run at once; the next comes at the next full minute.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

DEMO_TOKEN = "hf_demo_local_write_token"
DEMO_CONFIG = """\
# The demo's config: every schedule fires each minute so that something happens.
[hub]
token_env = "SPACES_SCHEDULER_DEMO_TOKEN"
requests_per_5min = 800
concurrency = 8
poll = "0.5s"

[defaults]
timezone = "Europe/Berlin"
wait = "25s"
min_interval = "0s"
jitter = "5s"
misfire_grace = "5m"

[web]
listen = "127.0.0.1:8473"         # the dashboard; another free port if taken

[[schedule]]
name = "refresh-dashboards"       # a pattern, expanded through the Hub's listing
cron = "* * * * *"
spaces = ["demo/dashboard-*"]
action = "restart"

[[schedule]]
name = "leaderboard"              # min_interval skips the second minute
cron = "* * * * *"
spaces = ["demo/leaderboard"]
action = "restart"
min_interval = "5m"

[[schedule]]
name = "rebuild-broken"           # fails with the Hub's reason and build log
cron = "* * * * *"
spaces = ["demo/broken"]
action = "rebuild"

[[schedule]]
name = "wake-sleepers"            # wakes a sleeping Space, leaves a paused one
cron = "* * * * *"
spaces = ["demo/sleepy", "demo/paused"]
action = "wake"
"""


def demo_world() -> dict[str, Any]:
    """Return the simulated Hub's world for the demo."""
    fast = {"build_seconds": 2.0, "start_seconds": 1.0, "stale_running_seconds": 0.3}
    spaces = [
        {"id": f"demo/dashboard-{lang}", **fast} for lang in ("en", "fr", "de", "ru")
    ]
    spaces += [
        {"id": "demo/leaderboard", **fast},
        {
            "id": "demo/broken",
            **fast,
            "build_error": "ERROR: No matching distribution found for gradio==9.9",
            "build_log": [
                "Step 3/9 : RUN pip install -r requirements.txt",
                "Collecting gradio==9.9",
            ],
        },
        {"id": "demo/sleepy", "stage": "SLEEPING", **fast},
        {"id": "demo/paused", "stage": "PAUSED", **fast},
        {"id": "demo/gpu-demo", "hardware": "t4-small", **fast},
        {"id": "demo/hangs", "stuck": True},
        {"id": "demo/crashes", **fast, "runtime_error": "KeyError: 'DATA_URL'"},
        {"id": "demo/notes", **fast},
    ]
    return {
        "hub": {"requests_per_window": 1000, "window_seconds": 300},
        "token": [{"value": DEMO_TOKEN, "user": "demo", "role": "write", "orgs": []}],
        "space": spaces,
        "dataset": [{"id": "demo/prompts", "sha": "1" * 40}],
    }


def run_demo(*, duration: float | None, folder: Path | None) -> None:
    """Run the demo until Ctrl-C or for `duration` seconds."""
    import os

    from spaces_scheduler.acting import SpaceResolver, schedule_executor, scheduled_line
    from spaces_scheduler.config import load_config
    from spaces_scheduler.daemon import Daemon
    from spaces_scheduler.dispatch import (
        Dispatcher,
        Finished,
        schedule_rows,
        utc_now,
    )
    from spaces_scheduler.hub import HubClient, RequestBudget
    from spaces_scheduler.hubsim import HubSim, World
    from spaces_scheduler.store import open_store

    logging.getLogger("spaces_scheduler").setLevel(logging.WARNING)
    home = folder or Path(tempfile.mkdtemp(prefix="spaces-scheduler-demo-"))
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "spaces.toml"
    config_file.write_text(DEMO_CONFIG)

    sim = HubSim(World.from_dict(demo_world()), port=0)
    url = sim.start()
    os.environ["SPACES_SCHEDULER_DEMO_TOKEN"] = DEMO_TOKEN
    config = load_config(config_file)
    _intro(url, config_file)

    client = HubClient(
        token=DEMO_TOKEN, endpoint=url, budget=RequestBudget(800), concurrency=8
    )
    resolver = SpaceResolver(client)
    store = open_store(None, config_path=config_file)

    # As if the daemon had been down for two minutes: the first round is the
    # catch-up of the newest missed slot, the older one is recorded coalesced.
    started = utc_now()
    rows = schedule_rows(config.schedules)
    store.register_schedules(rows, started - timedelta(minutes=2, seconds=5))

    def show(finished: Finished) -> None:
        click.echo(f"{utc_now():%H:%M:%S}  {scheduled_line(finished, width=22)}")
        for line in finished.outcome.log_tail:
            click.echo(f"{'':10}    | {line}")

    dispatcher = Dispatcher(
        store, schedule_executor(client, poll_first=0.5), on_finished=show
    )
    daemon = Daemon(config, dispatcher, spaces_of=lambda s: resolver.expand(s.spaces))
    web = _dashboard(config, store, client, daemon)
    if duration is not None:
        threading.Timer(duration, daemon.stop).start()
    try:
        daemon.run_forever()
    finally:
        if web is not None:
            web.stop()
        store.close()
        sim.stop()
    _outro(config_file)


def _dashboard(config: Any, store: Any, client: Any, daemon: Any) -> Any:
    """Serve the dashboard on the config's port, or any free one if it is taken."""
    import dataclasses

    from spaces_scheduler.errors import ConfigError
    from spaces_scheduler.service import start_web

    try:
        web = start_web(config, store, client, daemon)
    except ConfigError:
        anywhere = dataclasses.replace(config.web, listen="127.0.0.1:0")
        web = start_web(
            dataclasses.replace(config, web=anywhere), store, client, daemon
        )
    if web is not None:
        click.echo(f"dashboard      {web.url}\n")
    return web


def _command() -> str:
    """Return how this user started us, for the hints (`.venv/bin/...` or not)."""
    import shlex
    import sys

    started = sys.argv[0]
    return (
        shlex.quote(started)
        if started.endswith("spaces-scheduler")
        else ("spaces-scheduler")
    )


def _intro(url: str, config_file: Path) -> None:
    click.echo(f"simulated Hub  {url}  (12 Spaces of the user 'demo')")
    click.echo(f"config         {config_file}")
    click.echo(f"in another terminal: {_command()} history --config {config_file}")
    click.echo("the daemon catches up the slot it 'missed', then runs every minute;")
    click.echo("expect ok restarts, a build error with its reason, a Space woken,")
    click.echo("a paused one left alone, and skipped: min-interval. Ctrl-C stops.")


def _outro(config_file: Path) -> None:
    click.echo("\nstopped. Where to look next:")
    for command in ("history", "status", "next"):
        click.echo(f"  {_command()} {command} --config {config_file}")
