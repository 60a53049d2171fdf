"""Hub webhooks end to end: the simulated Hub delivers to the daemon's web server on
127.0.0.1, which refreshes the Spaces that watch the repository, once per burst;
a forged or missing secret does nothing. Also `webhook register` and the parts."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spaces_scheduler.cli import main
from spaces_scheduler.config import parse_config
from spaces_scheduler.daemon import Daemon
from spaces_scheduler.dispatch import Dispatcher, DueRun
from spaces_scheduler.hub import HubClient, RequestBudget
from spaces_scheduler.service import daemon_executor, make_watcher, webhook_receiver
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import Store, Trigger
from spaces_scheduler.webhooks.receiver import Debouncer, WebhookReceiver, parse_push

from support import ALICE_TOKEN, alice_world, fast

SECRET = "s3cret-for-tests"
PROMPTS = "1" * 40
CONFIG = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
min_interval = "0s"
jitter = "0s"

[webhooks]
secret_env = "TEST_WEBHOOK_SECRET"
debounce = "{debounce}"

[[schedule]]
name = "refresh"
cron = "0 0 1 1 *"
spaces = ["alice/a", "alice/b"]
action = "restart"
when_changed = ["datasets/alice/prompts"]

[[schedule]]
name = "other"
cron = "0 0 1 1 *"
spaces = ["alice/c"]
action = "restart"
when_changed = ["datasets/alice/other"]
"""


def documented_payload(
    repo: str = "alice/prompts", new: str | None = "2" * 40
) -> dict[str, Any]:
    return {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": {"type": "dataset", "name": repo, "id": "x", "private": False},
        "updatedRefs": [{"ref": "refs/heads/main", "oldSha": PROMPTS, "newSha": new}],
        "webhook": {"id": "w", "version": 3},
    }


def test_parse_push_reads_updated_refs_not_head_sha() -> None:
    payload = documented_payload()
    payload["repo"]["headSha"] = "9" * 40

    push = parse_push(payload)

    assert push is not None
    assert push.repo == "datasets/alice/prompts"
    assert push.refs == {"refs/heads/main": "2" * 40}


def test_parse_push_ignores_other_events() -> None:
    discussion = {"event": {"action": "create", "scope": "discussion"}, "repo": {}}

    assert parse_push(discussion) is None
    assert parse_push(documented_payload(new=None)) is None  # a deleted branch
    assert parse_push(["not", "an", "object"]) is None


def test_debouncer_fires_once_per_burst_on_the_trailing_edge() -> None:
    fired: list[tuple[str, float]] = []
    done = threading.Event()

    def fire(repo: str, schedules: list[Any]) -> None:
        fired.append((repo, time.monotonic()))
        done.set()

    debouncer = Debouncer(0.2, fire)
    start = time.monotonic()
    for _ in range(5):
        debouncer.push("datasets/a/b", [])
        time.sleep(0.03)
    last_push = time.monotonic()
    assert done.wait(3)
    time.sleep(0.3)
    debouncer.close()

    assert [repo for repo, _ in fired] == ["datasets/a/b"]
    assert fired[0][1] - last_push >= 0.15
    assert fired[0][1] - start < 1.5


def test_debouncer_fires_a_busy_repository_within_its_hold() -> None:
    fired = threading.Event()
    debouncer = Debouncer(0.05, lambda repo, schedules: fired.set())
    start = time.monotonic()

    while not fired.is_set() and time.monotonic() - start < 3:
        debouncer.push("datasets/a/b", [])
        time.sleep(0.01)
    debouncer.close()

    # Pushed every 10 ms, it is never quiet for 50 ms; the hold ends it at 0.5 s.
    assert fired.is_set()
    assert time.monotonic() - start < 1.5


# -- end to end ---------------------------------------------------------------------


@dataclass
class Host:
    """The daemon as `run` wires it: Hub runs, windows, receiver and web server."""

    sim: Any
    store: Store
    daemon: Daemon
    receiver: WebhookReceiver
    url: str

    def wait_for_runs(self, count: int, timeout: float = 15) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [r for r in self.store.runs() if r.outcome is not None]
            if len(rows) >= count:
                return rows
            time.sleep(0.05)
        return [r for r in self.store.runs() if r.outcome is not None]

    def wait_for_deliveries(self, count: int, timeout: float = 10) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.sim.deliveries()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.sim.deliveries())

    def restarts(self) -> list[str]:
        return [
            r["path"].split("/")[4]
            for r in self.sim.requests()
            if r["path"].endswith("/restart")
        ]

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture
def host(
    tmp_path: Path, start_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Host]]:
    from spaces_scheduler.web import WebServer, build_app

    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    cleanups: list[Callable[[], None]] = []

    def make(debounce: str = "0.3s") -> Host:
        world = alice_world(fast("alice/a"), fast("alice/b"), fast("alice/c"))
        world["dataset"] = [
            {"id": "alice/prompts", "sha": PROMPTS},
            {"id": "alice/other"},
        ]
        sim = start_sim(world)
        text = CONFIG.format(debounce=debounce)
        path = tmp_path / "spaces.toml"
        path.write_text(text)
        config = parse_config(text, path)
        store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=path)
        now = datetime.now(UTC)
        for space in ("alice/a", "alice/b"):
            # Refreshed before: only a new commit is a reason to act.
            seen = {"datasets/alice/prompts": PROMPTS}
            store.save_seen_commits("refresh", space, seen, now)

        client = HubClient(
            token=ALICE_TOKEN, endpoint=sim.url, budget=RequestBudget(1000)
        )
        watcher = make_watcher(client, store)
        dispatcher = Dispatcher(store, daemon_executor(config, client, watcher))
        daemon = Daemon(config, dispatcher, spaces_of=lambda s: list(s.spaces))
        receiver = webhook_receiver(
            config, daemon, watcher, spaces_of=lambda s: list(s.spaces)
        )
        assert receiver is not None
        server = WebServer(
            build_app(config=config, store=store, webhook=receiver.endpoint),
            listen="127.0.0.1:0",
        )
        url = server.start() + "/webhooks/hub"
        loop = threading.Thread(target=daemon.run_forever, daemon=True)
        loop.start()

        def stop() -> None:
            daemon.stop()
            loop.join(10)
            server.stop()
            receiver.close()
            store.close()

        cleanups.append(stop)
        return Host(sim, store, daemon, receiver, url)

    yield make
    for cleanup in cleanups:
        cleanup()


def register(sim: Any, url: str, tmp_path: Path) -> Result:
    env = {
        "HF_ENDPOINT": sim.url,
        "HF_TOKEN": ALICE_TOKEN,
        "TEST_WEBHOOK_SECRET": SECRET,
    }
    config = str(tmp_path / "spaces.toml")
    return CliRunner().invoke(
        main, ["webhook", "register", url, "--config", config], env=env
    )


def test_register_creates_then_updates_one_webhook(host: Any, tmp_path: Path) -> None:
    h = host()

    first = register(h.sim, h.url, tmp_path)
    second = register(h.sim, h.url, tmp_path)

    assert first.exit_code == 0, first.output
    assert first.output.startswith("created webhook ")
    assert "datasets/alice/prompts, datasets/alice/other" in first.output
    assert second.output.startswith("updated webhook ")
    hooks = [r for r in h.sim.requests() if r["path"].startswith("/api/settings")]
    assert [(r["method"], r["status"]) for r in hooks] == [
        ("GET", 200),
        ("POST", 200),
        ("GET", 200),
        ("POST", 200),
    ]


def test_a_delivery_refreshes_the_spaces_watching_the_repository(
    host: Any, tmp_path: Path
) -> None:
    h = host(debounce="0s")
    assert register(h.sim, h.url, tmp_path).exit_code == 0

    h.sim.commit("datasets/alice/prompts")
    deliveries = h.wait_for_deliveries(1)
    rows = h.wait_for_runs(2)

    assert [d["status"] for d in deliveries] == [200]
    assert sorted(h.restarts()) == ["a", "b"]
    assert {(r.key.space, r.trigger, r.outcome.value) for r in rows} == {
        ("alice/a", Trigger.WEBHOOK, "ok"),
        ("alice/b", Trigger.WEBHOOK, "ok"),
    }
    assert all("new commit in datasets/alice/prompts" in r.summary for r in rows)


def test_a_burst_of_ten_commits_refreshes_once(host: Any, tmp_path: Path) -> None:
    h = host(debounce="0.5s")
    assert register(h.sim, h.url, tmp_path).exit_code == 0

    for _ in range(10):
        h.sim.commit("datasets/alice/prompts")
    deliveries = h.wait_for_deliveries(10)
    rows = h.wait_for_runs(2)
    time.sleep(0.8)  # a second refresh, if one were coming, would start by now

    assert [d["status"] for d in deliveries] == [200] * 10
    assert sorted(h.restarts()) == ["a", "b"]
    assert len(h.store.runs()) == 2 == len(rows)


def test_a_forged_secret_does_nothing(host: Any) -> None:
    h = host(debounce="0s")
    calls = HubClient(token=ALICE_TOKEN, endpoint=h.sim.url).calls(
        deadline=time.monotonic() + 30
    )
    watched = [{"type": "dataset", "name": "alice/prompts"}]
    calls.create_webhook(url=h.url, watched=watched, secret="guessed")

    h.sim.commit("datasets/alice/prompts")
    deliveries = h.wait_for_deliveries(1)
    time.sleep(0.3)

    assert [d["status"] for d in deliveries] == [403]
    assert h.restarts() == []
    assert h.store.runs() == []


def test_the_endpoint_answers_like_the_hubs_own_server(host: Any) -> None:
    h = host(debounce="0s")
    body = json.dumps(documented_payload()).encode()
    other = json.dumps(documented_payload(repo="bob/unwatched")).encode()
    good = {"X-Webhook-Secret": SECRET, "Content-Type": "application/json"}

    missing = h.post(body, {"Content-Type": "application/json"})
    wrong = h.post(body, {"X-Webhook-Secret": "nope"})
    # A small cap: a client still sending a MiB may see the early 413 as a reset.
    h.receiver.max_body = 1000
    huge = h.post(b"{" + b" " * 2000 + b"}", good)
    not_json = h.post(b"not json", good)
    ignored = h.post(other, good)
    time.sleep(0.3)

    assert missing == (401, {"error": "x-webhook-secret header not set."})
    assert wrong == (403, {"error": "Invalid webhook secret."})
    assert huge[0] == 413
    assert not_json[0] == 400
    assert ignored == (200, {"status": "ignored"})
    assert h.store.runs() == []


def test_a_webhook_run_still_honours_min_interval(
    start_sim: Any, tmp_path: Path
) -> None:
    world = alice_world(fast("alice/a"))
    world["dataset"] = [{"id": "alice/prompts", "sha": PROMPTS}]
    sim = start_sim(world)
    text = CONFIG.format(debounce="0s").replace('"0s"\njitter', '"1h"\njitter')
    path = tmp_path / "spaces.toml"
    path.write_text(text)
    config = parse_config(text, path)
    store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=path)
    client = HubClient(token=ALICE_TOKEN, endpoint=sim.url)
    executor = daemon_executor(config, client, make_watcher(client, store))
    dispatcher = Dispatcher(store, executor)
    schedule = config.schedule("refresh")
    now = datetime.now(UTC).replace(microsecond=0)

    for second in (0, 1):  # two bursts, a second apart
        sim.commit("datasets/alice/prompts")
        slot = now + timedelta(seconds=second)
        dispatcher.dispatch([DueRun(schedule, "alice/a", slot, slot, Trigger.WEBHOOK)])
        assert dispatcher.wait(15)

    rows = store.runs(space="alice/a")
    store.close()
    assert config.schedule("refresh").policy.min_interval == timedelta(hours=1)
    assert sorted((r.outcome, r.reason) for r in rows) == [
        ("ok", ""),
        ("skipped", "min-interval"),
    ]


def test_two_bursts_in_one_second_get_their_own_slots(tmp_path: Path) -> None:
    path = tmp_path / "spaces.toml"
    config = parse_config(CONFIG.format(debounce="0s"), path)
    moment = datetime(2026, 3, 2, 9, 0, 0, 300_000, tzinfo=UTC)
    triggered: list[list[DueRun]] = []
    receiver = WebhookReceiver(
        config,
        secret=SECRET,
        spaces_of=lambda s: list(s.spaces),
        on_trigger=triggered.append,
        clock=lambda: moment,
    )
    schedule = config.schedule("refresh")

    receiver._trigger("datasets/alice/prompts", [schedule])
    receiver._trigger("datasets/alice/prompts", [schedule])
    receiver.close()

    slots = [{run.slot for run in runs} for runs in triggered]
    assert slots == [
        {moment.replace(microsecond=0)},
        {moment.replace(second=1, microsecond=0)},
    ]
    assert all(run.trigger is Trigger.WEBHOOK for runs in triggered for run in runs)
