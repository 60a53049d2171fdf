"""`spaces-scheduler serve`: the dashboard for one-shot deployments.

It reads the store that `run --once` writes, and runs "run now" in-process
through the Hub client. Without a Hub token the pages are read-only.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from spaces_scheduler.cli import common_options, load_config, setup
from spaces_scheduler.errors import CredentialsError

if TYPE_CHECKING:
    from spaces_scheduler.acting import SpaceResolver
    from spaces_scheduler.config import Config
    from spaces_scheduler.watch import Watcher
    from spaces_scheduler.web.runnow import InProcessRuns

log = logging.getLogger(__name__)


@click.command()
@common_options
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Where to listen (default: [web] listen, else 127.0.0.1:8473).",
)
@click.option(
    "--token-env",
    metavar="NAME",
    help="The variable holding the Hub token for run now (default: [hub] token_env).",
)
def serve(
    config_file: str | None,
    state_url: str | None,
    debug: bool,
    listen: str | None,
    token_env: str | None,
) -> None:
    """Serve the dashboard, JSON API and /metrics from the state store."""
    from spaces_scheduler.acting import SpaceResolver, open_hub
    from spaces_scheduler.service import make_watcher, poll_first, web_access_token
    from spaces_scheduler.store import open_store
    from spaces_scheduler.web import WebServer, build_app
    from spaces_scheduler.web.runnow import InProcessRuns

    setup(click.get_current_context(), debug=debug, level=logging.INFO)
    config = load_config(config_file)
    assert config is not None
    store = open_store(state_url, config_path=config.path)

    runner = None
    webhook = None
    try:
        client = open_hub(config, token_env=token_env)
        watcher = make_watcher(client, store)
        runner = InProcessRuns(
            config, store, client, poll_first=poll_first(config), watcher=watcher
        )
        webhook = _webhook_endpoint(config, runner, watcher, SpaceResolver(client))
    except CredentialsError as exc:
        log.warning("run now and webhooks are off: %s", exc)

    access_token = web_access_token(config)
    app = build_app(config=config, store=store, run_now=runner, webhook=webhook)
    server = WebServer(
        app, listen=listen or config.web.listen, access_token=access_token
    )
    try:
        click.echo(f"serving {server.start()}")
        _wait_for_signal()
    finally:
        server.stop()
        if runner is not None:
            runner.close()
        store.close()


def _webhook_endpoint(
    config: Config, runner: InProcessRuns, watcher: Watcher, resolver: SpaceResolver
) -> Any:
    """Return the `/webhooks/hub` endpoint, running its refreshes in-process."""
    from spaces_scheduler.webhooks import webhook_secret
    from spaces_scheduler.webhooks.receiver import WebhookReceiver

    secret = webhook_secret(config)
    if secret is None or not any(s.when_changed for s in config.schedules):
        return None
    receiver = WebhookReceiver(
        config,
        secret=secret,
        spaces_of=lambda schedule: resolver.expand(schedule.spaces),
        on_trigger=lambda runs: _dispatch(runner, runs),
        forget=watcher.forget,
    )
    return receiver.endpoint


def _dispatch(runner: InProcessRuns, runs: list[Any]) -> None:
    runner.dispatcher.dispatch(runs)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
