"""Alerts through Apprise to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from spaces_scheduler.config import Schedule, parse_config
from spaces_scheduler.dispatch import DueRun, Finished
from spaces_scheduler.notify import Alert, Notifier
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import RunKey, ScheduleRow, Store, Trigger, open_store
from spaces_scheduler.store.base import Claim


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body posted to it.

    The first `fail_first` posts are answered 500, to exercise retries.
    """

    def __init__(self, *, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver.attempts += 1
                if receiver.attempts <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def titles(self) -> list[str]:
        return [body["title"] for body in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/state.db", config_path=None)
    yield opened
    opened.close()


def config_for(tmp_path: Path, url: str, extra: str = "") -> Any:
    text = f"""
[defaults]
notify = ["{url}"]
misfire_grace = "10m"

[[schedule]]
name = "hourly"
cron = "7 * * * *"
spaces = ["alice/dashboard"]
action = "restart"
{extra}
"""
    return parse_config(text, tmp_path / "spaces.toml")


def run(
    store: Store, schedule: Schedule, slot: datetime, kind: OutcomeKind
) -> Finished:
    """Record a run of `schedule` on its Space at `slot`, as the dispatcher does."""
    space = schedule.spaces[0]
    claim = store.claim(
        RunKey(schedule.name, space, slot),
        owner="test",
        action=str(schedule.action),
        trigger=Trigger.SCHEDULE,
        due_at=slot,
        lease=timedelta(minutes=5),
        now=slot,
    )
    assert isinstance(claim, Claim)
    outcome = Outcome(
        kind,
        reason="BUILD_ERROR: No matching distribution found for foo==9"
        if kind.is_failure
        else "",
        log_tail=("Step 3/9 : RUN pip install -r requirements.txt",),
    )
    store.finish(claim, outcome, now=slot + timedelta(seconds=30))
    return Finished(DueRun(schedule, space, slot, slot), outcome, 0.0)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def settle(notifier: Notifier) -> None:
    wait_for(lambda: notifier.pending() == 0)
    time.sleep(0.2)  # anything wrongly sent twice would arrive by now


def test_failure_and_recovery_each_arrive_once(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = config_for(tmp_path, receiver.url)
    schedule = config.schedules[0]
    notifier = Notifier(store=store, dashboard_url="http://127.0.0.1:8473")
    start = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
    try:
        kinds = [OutcomeKind.OK, OutcomeKind.FAILED, OutcomeKind.FAILED]
        kinds += [OutcomeKind.TIMED_OUT, OutcomeKind.OK, OutcomeKind.OK]
        for hour, kind in enumerate(kinds):
            notifier.on_finished(
                run(store, schedule, start + timedelta(hours=hour), kind)
            )
        settle(notifier)
    finally:
        notifier.close()

    assert receiver.titles() == [
        "alice/dashboard failed",
        "alice/dashboard recovered",
    ]
    failure, recovery = receiver.bodies
    assert "No matching distribution found for foo==9" in failure["message"]
    assert "Step 3/9" in failure["message"]
    assert "http://127.0.0.1:8473/spaces/alice/dashboard" in failure["message"]
    assert "after 3 failed runs" in recovery["message"]


def test_threshold_alerts_only_after_n_consecutive_failures(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    schedule = config_for(tmp_path, receiver.url).schedules[0]
    notifier = Notifier(store=store, failures_before_alert=3)
    start = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
    try:
        kinds = [OutcomeKind.FAILED, OutcomeKind.FAILED, OutcomeKind.OK]  # no alert
        kinds += [OutcomeKind.FAILED] * 4  # one alert, at the third
        for hour, kind in enumerate(kinds):
            notifier.on_finished(
                run(store, schedule, start + timedelta(hours=hour), kind)
            )
        settle(notifier)
    finally:
        notifier.close()

    assert receiver.titles() == ["alice/dashboard failed"]
    assert "(3 in a row)" in receiver.bodies[0]["message"]


def test_a_restarted_notifier_does_not_repeat_a_failure_alert(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    schedule = config_for(tmp_path, receiver.url).schedules[0]
    start = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
    for hour in range(2):
        notifier = Notifier(store=store)
        slot = start + timedelta(hours=hour)
        notifier.on_finished(run(store, schedule, slot, OutcomeKind.FAILED))
        settle(notifier)
        notifier.close()

    assert receiver.titles() == ["alice/dashboard failed"]


def test_missed_run_alert_arrives_once_per_gap(
    tmp_path: Path, store: Store, receiver: Receiver
) -> None:
    config = config_for(tmp_path, receiver.url)
    schedule = config.schedules[0]
    seen = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    store.register_schedules(
        [ScheduleRow("hourly", "7 * * * *", "UTC", "restart")], seen
    )
    notifier = Notifier(store=store, dashboard_url="http://127.0.0.1:8473")
    try:
        within_grace = datetime(2026, 12, 4, 9, 15, tzinfo=UTC)
        assert notifier.check_missed(config, within_grace) == 0
        late = datetime(2026, 12, 4, 9, 20, tzinfo=UTC)
        later = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)
        counts = [notifier.check_missed(config, moment) for moment in (late, later)]
        settle(notifier)

        # A run closes the gap; a new gap alerts again.
        run(store, schedule, datetime(2026, 12, 4, 11, 7, tzinfo=UTC), OutcomeKind.OK)
        assert (
            notifier.check_missed(config, datetime(2026, 12, 4, 11, 20, tzinfo=UTC))
            == 0
        )
        assert (
            notifier.check_missed(config, datetime(2026, 12, 4, 12, 20, tzinfo=UTC))
            == 1
        )
        settle(notifier)
    finally:
        notifier.close()

    assert counts == [1, 0]
    assert receiver.titles() == ["alice/dashboard missed a run"] * 2
    assert "2026-12-04T09:07:00Z" in receiver.bodies[0]["message"]
    assert "/spaces/alice/dashboard" in receiver.bodies[0]["message"]


def test_undeliverable_alerts_are_retried_and_never_block_the_run(
    tmp_path: Path, store: Store
) -> None:
    flaky = Receiver(fail_first=2)
    schedule = config_for(tmp_path, flaky.url).schedules[0]
    notifier = Notifier(store=store, backoff=0.05)
    try:
        finished = run(
            store,
            schedule,
            datetime(2026, 12, 4, 10, 7, tzinfo=UTC),
            OutcomeKind.FAILED,
        )
        started = time.monotonic()
        notifier.on_finished(finished)
        assert time.monotonic() - started < 0.05
        settle(notifier)
    finally:
        notifier.close()
        flaky.close()

    assert flaky.attempts == 3
    assert [body["title"] for body in flaky.bodies] == ["alice/dashboard failed"]


def test_a_sender_that_raises_is_logged_and_given_up(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = config_for(tmp_path, "json://127.0.0.1:9/never").schedules[0]
    calls: list[Alert] = []

    def broken(url: str, alert: Alert) -> bool:
        calls.append(alert)
        raise OSError("connection refused")

    notifier = Notifier(store=store, send=broken, attempts=3, backoff=0.01)
    try:
        slot = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
        notifier.on_finished(run(store, schedule, slot, OutcomeKind.FAILED))
        settle(notifier)
    finally:
        notifier.close()

    assert len(calls) == 3
    assert "given up after 3 attempts" in caplog.text


def test_schedules_without_urls_send_nothing(tmp_path: Path, store: Store) -> None:
    text = (
        '[[schedule]]\nname = "h"\ncron = "7 * * * *"\nspaces = ["a/b"]\n'
        'action = "restart"\n'
    )
    schedule = parse_config(text, tmp_path / "spaces.toml").schedules[0]
    sent: list[Alert] = []
    notifier = Notifier(
        store=store, send=lambda url, alert: bool(sent.append(alert)) or True
    )
    try:
        slot = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
        notifier.on_finished(run(store, schedule, slot, OutcomeKind.FAILED))
        settle(notifier)
    finally:
        notifier.close()
    assert sent == []
