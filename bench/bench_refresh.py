"""Refresh only when the data changed: webhook latency, and a month of economy.

(a) MEASURED: the delay from the simulated Hub sending a webhook (its delivery
    log) to the restart request it causes (its request log), over 20 commits to a
    dataset, through the daemon as `run` wires it: the web server and receiver,
    the loop's trigger, the claim, the `when_changed` head read, the runtime read
    and the restart. Debounce 0: with `[webhooks] debounce = D`, add D.
(b) SIMULATED: a month (30 days) of a dataset committed to twice a day, watched
    by N Spaces, decided by the product's own rules (the head cache shared per
    tick, seen commits saved after a refresh, one refresh per webhook burst)
    next to the template approach (a blind `*/30` restart). Requests are
    counted, not sent; what one verified refresh costs in requests is taken
    from the runs measured in (a).
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import TOKEN, hub_sim, report, sim_requests
from bench.common import world_toml as world

DELIVERIES = 20
MONTH_DAYS = 30
TICK = timedelta(minutes=30)
CONFIG = """
[hub]
poll = "0.05s"

[defaults]
wait = "30s"
min_interval = "0s"
jitter = "0s"

[webhooks]
secret_env = "BENCH_WEBHOOK_SECRET"
debounce = "0s"

[[schedule]]
name = "refresh"
cron = "*/30 * * * *"
spaces = ["bench/dashboard"]
action = "restart"
when_changed = ["datasets/bench/prompts"]
"""
DATASET = '\n[[dataset]]\nid = "bench/prompts"\n'


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _post(url: str) -> Any:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


# -- (a) measured ------------------------------------------------------------------


def webhook_latency() -> float:
    """Measure delivery-to-restart delays; return the mean requests of a refresh."""
    import os

    from spaces_scheduler.config import parse_config
    from spaces_scheduler.daemon import Daemon
    from spaces_scheduler.dispatch import Dispatcher
    from spaces_scheduler.hub import HubClient, RequestBudget
    from spaces_scheduler.service import _watcher, daemon_executor, webhook_receiver
    from spaces_scheduler.store import open_store
    from spaces_scheduler.web import WebServer, build_app

    os.environ["BENCH_WEBHOOK_SECRET"] = "bench-secret"
    with (
        hub_sim(world(["bench/dashboard"], build_seconds=0.1) + DATASET) as hub,
        tempfile.TemporaryDirectory() as folder,
    ):
        path = Path(folder, "spaces.toml")
        path.write_text(CONFIG)
        config = parse_config(CONFIG, path)
        store = open_store(f"sqlite:///{folder}/state.db", config_path=path)
        client = HubClient(token=TOKEN, endpoint=hub, budget=RequestBudget(10_000))
        watcher = _watcher(client, store)
        dispatcher = Dispatcher(store, daemon_executor(config, client, watcher))
        daemon = Daemon(config, dispatcher, spaces_of=lambda s: list(s.spaces))
        receiver = webhook_receiver(config, daemon, watcher, lambda s: list(s.spaces))
        assert receiver is not None
        server = WebServer(
            build_app(config=config, store=store, webhook=receiver.endpoint),
            listen="127.0.0.1:0",
        )
        target = server.start() + "/webhooks/hub"
        loop = threading.Thread(target=daemon.run_forever, daemon=True)
        loop.start()
        try:
            calls = client.calls(deadline=time.monotonic() + 30)
            watched = [{"type": "dataset", "name": "bench/prompts"}]
            calls.create_webhook(url=target, watched=watched, secret="bench-secret")
            delays = [_one_delivery(hub, store, n) for n in range(DELIVERIES)]
            runs = [r for r in store.runs(limit=1000) if r.outcome is not None]
        finally:
            daemon.stop()
            loop.join(10)
            server.stop()
            receiver.close()
            store.close()

    per_refresh = statistics.mean(r.requests for r in runs)
    delays.sort()
    p95 = delays[max(0, round(0.95 * len(delays)) - 1)]
    report(
        f"(a) MEASURED: webhook delivery -> restart request ({DELIVERIES} commits)",
        [
            ("median", f"{statistics.median(delays) * 1000:.1f} ms"),
            ("p95", f"{p95 * 1000:.1f} ms"),
            ("max", f"{delays[-1] * 1000:.1f} ms"),
            ("Hub requests per verified refresh", f"{per_refresh:.1f}"),
            ("includes", "receiver, loop, claim, head read, runtime read"),
            ("debounce", "0s (a configured debounce D adds D)"),
        ],
    )
    return per_refresh


def _one_delivery(hub: str, store: Any, index: int) -> float:
    """Commit once; wait for the run to end; return delivery -> restart seconds."""
    _post(f"{hub}/_sim/datasets/bench/prompts/commit")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        finished = [r for r in store.runs(limit=1000) if r.outcome is not None]
        if len(finished) > index:
            break
        time.sleep(0.02)
    else:
        raise RuntimeError("the webhook did not lead to a finished run in 30 s")

    sent = _parse(_get(f"{hub}/_sim/webhook-deliveries")[index]["time"])
    restarts = [
        _parse(r["time"]) for r in sim_requests(hub) if r["path"].endswith("/restart")
    ]
    return (restarts[index] - sent).total_seconds()


# -- (b) simulated -------------------------------------------------------------------


@dataclass
class Month:
    builds: int = 0
    api_requests: float = 0.0
    resolver_requests: int = 0


def commit_times(rng: random.Random, start: datetime) -> list[datetime]:
    """Two commits a day at random minutes of the working day."""
    found = []
    for day in range(MONTH_DAYS):
        base = start + timedelta(days=day, hours=8)
        found += sorted(
            base + timedelta(minutes=rng.randrange(0, 600)) for _ in range(2)
        )
    return found


def blind_template(spaces: int) -> Month:
    """A GitHub Actions cron calling restart_space every 30 min: one request each."""
    ticks = MONTH_DAYS * 48
    return Month(builds=ticks * spaces, api_requests=ticks * spaces)


def when_changed(
    commits: list[datetime],
    start: datetime,
    spaces: int,
    per_refresh: float,
    *,
    webhooks: bool,
) -> Month:
    """Replay the product's rules: webhook refreshes, then the */30 safety net."""
    month = Month()
    head, seen = 0, 0  # commit counters stand in for shas
    pending = list(commits)
    tick = start + TICK
    end = start + timedelta(days=MONTH_DAYS)
    while tick <= end:
        arrived = [c for c in pending if c <= tick]
        pending = pending[len(arrived) :]
        for _ in arrived:
            head += 1
            if webhooks:
                # One refresh per delivery (a burst would be one); the run reads
                # the head once (shared by all Spaces), then acts on each Space.
                month.resolver_requests += 1
                month.builds += spaces
                month.api_requests += spaces * (per_refresh - 1)
                seen = head
        # The cron slot: one head read for all Spaces (the shared cache).
        month.resolver_requests += 1
        if head != seen:
            month.builds += spaces
            month.api_requests += spaces * (per_refresh - 1)
            seen = head
        tick += TICK
    return month


def month_economy(per_refresh: float) -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    commits = commit_times(random.Random(5), start)
    for spaces in (1, 20):
        blind = blind_template(spaces)
        cron = when_changed(commits, start, spaces, per_refresh, webhooks=False)
        hooks = when_changed(commits, start, spaces, per_refresh, webhooks=True)
        rows = [
            ("commits", f"{len(commits)} (2 a day, random minutes 08:00-18:00)"),
            ("blind */30 restart: builds", f"{blind.builds}"),
            ("blind */30 restart: API requests", f"{blind.api_requests:.0f}"),
            ("when_changed */30: builds", f"{cron.builds}"),
            (
                "when_changed */30: API / resolver",
                f"{cron.api_requests:.0f} / {cron.resolver_requests}",
            ),
            ("when_changed + webhooks: builds", f"{hooks.builds}"),
            (
                "when_changed + webhooks: API / resolver",
                f"{hooks.api_requests:.0f} / {hooks.resolver_requests}",
            ),
            ("builds, blind / webhooks", f"{blind.builds / hooks.builds:.1f}x fewer"),
            (
                "API requests, blind / webhooks",
                f"{blind.api_requests / hooks.api_requests:.1f}x fewer",
            ),
        ]
        report(
            f"(b) SIMULATED: 30 days, {spaces} Space(s) watching one dataset "
            f"(requests per verified refresh {per_refresh:.1f}, measured in (a); "
            "the template's restart is 1 unverified request)",
            rows,
        )


def main() -> None:
    per_refresh = webhook_latency()
    month_economy(per_refresh)


if __name__ == "__main__":
    main()
