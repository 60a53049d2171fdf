"""Wiring for the commands that run schedules: config + store + Hub + dispatcher.

Each function here is what one command does from a loaded config; the command
line only parses flags and maps errors to exit codes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from spaces_scheduler.acting import (
    CHECK_DEADLINE,
    SpaceResolver,
    check_access,
    echo_log_tail,
    open_hub,
    schedule_executor,
    scheduled_line,
)
from spaces_scheduler.dispatch import Dispatcher, Finished, schedule_rows, utc_now
from spaces_scheduler.oneshot import Selection, due_runs, fire, select_schedules
from spaces_scheduler.store import open_store

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule
    from spaces_scheduler.daemon import Daemon
    from spaces_scheduler.dispatch import DueRun
    from spaces_scheduler.hub import HubClient
    from spaces_scheduler.outcome import Outcome
    from spaces_scheduler.store.base import Store
    from spaces_scheduler.watch import Watcher
    from spaces_scheduler.webhooks.receiver import WebhookReceiver

__all__ = ["Selection", "check", "run_daemon", "run_once", "status"]

log = logging.getLogger(__name__)


def poll_first(config: Config) -> float:
    """Return the first pause between runtime reads the config asks for."""
    poll = getattr(config.hub, "poll", None)
    return poll.total_seconds() if poll is not None else 2.0


def _spaces_table(
    config: Config, resolver: SpaceResolver, schedules: list[Schedule]
) -> dict[str, list[str]]:
    return {s.name: resolver.expand(s.spaces) for s in schedules}


def _printer(width: int) -> Callable[[Finished], None]:
    def show(finished: Finished) -> None:
        click.echo(scheduled_line(finished, width=width))
        echo_log_tail(finished.outcome)

    return show


def run_once(
    config: Config, state_url: str | None, token_env: str | None, selection: Selection
) -> bool:
    """Fire what is due now; return whether a run failed."""
    schedules = select_schedules(config, selection)
    others: list[Schedule] = []
    if selection.catch_up:
        others = [s for s in config.schedules if s not in schedules]
    client = open_hub(config, token_env=token_env)
    resolver = SpaceResolver(client)
    table = _spaces_table(config, resolver, schedules + others)
    if selection.space is not None:
        table = {
            name: [s for s in spaces if s == selection.space]
            for name, spaces in table.items()
        }
    check_access(client, {space for spaces in table.values() for space in spaces})

    store = open_store(state_url, config_path=config.path)
    failed: list[Finished] = []
    width = max((len(s) for spaces in table.values() for s in spaces), default=0)
    show = _printer(width)

    def on_finished(finished: Finished) -> None:
        show(finished)
        if finished.outcome.kind.is_failure:
            failed.append(finished)

    try:
        now = utc_now()
        _register(store, config, now)
        store.expire(now)
        last_slots = store.last_slots()
        runs, skipped = due_runs(
            schedules,
            lambda schedule: table[schedule.name],
            last_slots,
            now=now,
            at=selection.at is not None,
        )
        late, coalesced = due_runs(
            others,
            lambda schedule: table[schedule.name],
            last_slots,
            now=now,
            at=False,
            with_state_only=True,
        )
        runs, skipped = runs + late, skipped + coalesced
        executor = schedule_executor(
            client, poll_first=poll_first(config), watcher=make_watcher(client, store)
        )
        dispatcher = Dispatcher(store, executor, on_finished=on_finished)
        fire(dispatcher, runs, skipped)
        dispatcher.shutdown(grace=0)
        if not runs and not skipped:
            log.info("nothing is due")
    finally:
        store.close()
    return bool(failed)


def make_watcher(client: HubClient, store: Store) -> Watcher:
    """Return the `when_changed` checks, one head cache for the whole process."""
    from spaces_scheduler.watch import HeadCache, Watcher

    return Watcher(HeadCache(client), store)


def daemon_executor(
    config: Config, client: HubClient, watcher: Watcher
) -> Callable[[DueRun], Outcome]:
    """Return how the daemon makes a run: a schedule's (when_changed) or a window's."""
    from spaces_scheduler.windows import window_executor

    poll = poll_first(config)
    scheduled = schedule_executor(client, poll_first=poll, watcher=watcher)
    return window_executor(client, poll_first=poll, otherwise=scheduled)


def webhook_receiver(
    config: Config,
    daemon: Daemon,
    watcher: Watcher,
    spaces_of: Callable[[Schedule], list[str]],
) -> WebhookReceiver | None:
    """Return the `/webhooks/hub` receiver, or None when webhooks are not set up."""
    if not any(schedule.when_changed for schedule in config.schedules):
        return None
    from spaces_scheduler.webhooks import webhook_secret
    from spaces_scheduler.webhooks.receiver import WebhookReceiver

    secret = webhook_secret(config)
    if secret is None:
        log.info(
            "webhooks off: set [webhooks] secret_env to a variable holding the "
            "secret to receive Hub webhooks on /webhooks/hub"
        )
        return None
    return WebhookReceiver(
        config,
        secret=secret,
        spaces_of=spaces_of,
        on_trigger=daemon.trigger,
        forget=watcher.forget,
    )


def _register(store: Store, config: Config, now: Any) -> None:
    store.register_schedules(schedule_rows(config.schedules), now)


def run_daemon(
    config: Config,
    state_url: str | None,
    token_env: str | None,
    *,
    config_file: str | None,
) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from spaces_scheduler.cli import load_config
    from spaces_scheduler.daemon import Daemon

    _check_web(config)
    client = open_hub(config, token_env=token_env)
    resolver = SpaceResolver(client)
    # Windows act on their Spaces too: check them before the first action.
    window_spaces = resolver.expand([s for w in config.windows for s in w.spaces])
    check_access(
        client,
        {
            s
            for spaces in _spaces_table(
                config, resolver, list(config.schedules)
            ).values()
            for s in spaces
        }
        | set(window_spaces),
    )

    store = open_store(state_url, config_path=config.path)
    watcher = make_watcher(client, store)
    executor = daemon_executor(config, client, watcher)
    printer = _printer(0)
    notifier = _notifier(config, store)

    def on_finished(finished: Finished) -> None:
        printer(finished)
        if notifier is not None:
            notifier.on_finished(finished)

    dispatcher = Dispatcher(
        store, executor, lease=config.daemon.lease, on_finished=on_finished
    )

    def spaces_of(schedule: Schedule) -> list[str]:
        return resolver.expand(schedule.spaces)

    def reload() -> Config:
        fresh = load_config(config_file)
        assert fresh is not None
        resolver.refresh()
        if receiver is not None:
            receiver.update(fresh)
        return fresh

    daemon = Daemon(config, dispatcher, spaces_of=spaces_of)
    receiver = webhook_receiver(config, daemon, watcher, spaces_of)
    daemon.webhook_endpoint = receiver.endpoint if receiver is not None else None
    log.info(
        "daemon %s: %d schedules, state in %s",
        dispatcher.owner,
        len(config.schedules),
        getattr(store, "label", "the state store"),  # the URL, password masked
    )
    web = start_web(config, store, client, daemon)
    if notifier is not None:
        daemon.chores.append(
            lambda now: notifier.check_missed(daemon.config, now, spaces_of=spaces_of)
        )
    try:
        daemon.run_forever(reload=reload)
    finally:
        if web is not None:
            web.stop()
        if receiver is not None:
            receiver.close()
        if notifier is not None:
            notifier.close()
        store.close()
        client.close()


def _notifier(config: Config, store: Store) -> Any:
    """Return the alert sender when any schedule has `notify` URLs, else None."""
    wanted = config.defaults.notify or any(s.policy.notify for s in config.schedules)
    if not wanted:
        return None
    try:
        from spaces_scheduler.notify import Notifier
    except ImportError:  # pragma: no cover - the `web` extra brings apprise
        log.warning(
            "notify is set but apprise is missing: pip install 'spaces-scheduler[web]'"
        )
        return None
    return Notifier(
        store=store, urls=config.defaults.notify, dashboard_url=_web_url(config)
    )


def web_access_token(config: Config) -> str | None:
    """Return the dashboard's access token from `[web] access_token_env`, if set."""
    import os

    name = config.web.access_token_env
    return (os.environ.get(name) or None) if name else None


def _check_web(config: Config) -> None:
    """Refuse a dashboard address beyond loopback without an access token."""
    try:
        from spaces_scheduler.web.server import checked_listen
    except ImportError:
        return  # no web extra: no dashboard will be served
    checked_listen(config.web.listen, access_token=web_access_token(config))


def _web_url(config: Config) -> str:
    return f"http://{config.web.listen}"


def start_web(config: Config, store: Store, client: HubClient, daemon: Any) -> Any:
    """Serve the dashboard, API, /metrics and /healthz beside the daemon."""
    try:
        from spaces_scheduler.web import WebServer, build_app
        from spaces_scheduler.web.runnow import InProcessRuns
    except ImportError:
        log.warning(
            "the dashboard needs the web extra: pip install 'spaces-scheduler[web]'"
        )
        return None

    run_now = InProcessRuns(config, store, client, poll_first=poll_first(config))

    def health() -> dict[str, Any]:
        last = daemon.last_step
        # The loop wakes at least every chore period (15 s); two missed
        # periods mean it is stuck.
        alive = last is not None and (utc_now() - last).total_seconds() < 45
        return {"loop_alive": alive, "last_step": last.isoformat() if last else None}

    access_token = web_access_token(config)
    app = build_app(
        config=config,
        store=store,
        run_now=run_now,
        health=health,
        webhook=getattr(daemon, "webhook_endpoint", None),
    )
    server = WebServer(app, listen=config.web.listen, access_token=access_token or None)
    server.start()
    log.info("dashboard on %s", server.url)
    return server


def check(
    config: Config,
    state_url: str | None,
    token_env: str | None,
    *,
    missed: bool,
    offline: bool,
) -> bool:
    """Print warnings and problems; return whether a problem was found."""
    from spaces_scheduler.checks import (
        access_findings,
        schedule_warnings,
    )

    now = utc_now()
    findings = schedule_warnings(config, now=now)
    resolver: SpaceResolver | None = None
    if not offline:
        client = open_hub(config, token_env=token_env)
        client.identity(deadline=time.monotonic() + CHECK_DEADLINE)
        resolver = SpaceResolver(client)
        findings += access_findings(client, resolver, config)

    if missed:
        findings += _missed(config, state_url, resolver, now)

    for finding in findings:
        click.echo(finding.line(), err=not finding.problem)
    problems = [f for f in findings if f.problem]
    click.echo(
        f"{config.path}: {len(config.schedules)} schedules, "
        f"{len(config.windows)} windows; {len(problems)} problems, "
        f"{len(findings) - len(problems)} warnings."
    )
    return bool(problems)


def _missed(
    config: Config, state_url: str | None, resolver: SpaceResolver | None, now: Any
) -> list[Any]:
    from spaces_scheduler.checks import missed_findings

    store = open_store(state_url, config_path=config.path, must_exist=True)
    try:
        table = {}
        for schedule in config.schedules:
            literal = [s for s in schedule.spaces if "*" not in s]
            table[schedule.name] = (
                resolver.expand(schedule.spaces) if resolver else literal
            )
        return missed_findings(config, store, spaces_of=table, now=now)
    finally:
        store.close()


def status(
    config: Config, state_url: str | None, token_env: str | None, *, live: bool
) -> list[dict[str, Any]]:
    """Return the rows of `status`."""
    from spaces_scheduler.reports import status_rows

    store = open_store(state_url, config_path=config.path, must_exist=True)
    try:
        latest = store.latest_runs()
        stages = store.stages()
    finally:
        store.close()

    live_stages = None
    if live:
        live_stages = _live_stages(
            open_hub(config, token_env=token_env), config, latest
        )
    return status_rows(
        config, latest=latest, stages=stages, now=utc_now(), live=live_stages
    )


def daemons(config: Config, state_url: str | None) -> list[dict[str, Any]]:
    """Return the rows of the daemons that share the store (`status`)."""
    from spaces_scheduler.reports import daemon_rows

    store = open_store(state_url, config_path=config.path, must_exist=True)
    try:
        rows = store.daemons()
    finally:
        store.close()
    return daemon_rows(rows, now=utc_now())


def _live_stages(
    client: HubClient, config: Config, latest: dict[Any, Any]
) -> dict[str, str]:
    from spaces_scheduler.errors import HubError

    spaces = {s for sched in config.schedules for s in sched.spaces if "*" not in s}
    spaces |= {space for _, space in latest}
    found = {}
    for space in sorted(spaces):
        try:
            calls = client.calls(deadline=time.monotonic() + 30)
            found[space] = calls.runtime(space).stage
        except HubError as exc:
            found[space] = f"unknown ({exc.status or 'no answer'})"
    return found
