"""Alerts through Apprise: failures, recoveries and missed runs.

What is sent, per Space (a Space's schedules share one failure streak):

- **failure**: when its streak of failed or timed-out runs reaches the alert
  threshold (1 by default; `failures_before_alert`, or a schedule policy's
  `alert_after` when the config has one): once per streak, with the reason and
  a link to the Space's page;
- **recovery**: on the first `ok` after a streak that was alerted;
- **missed run**: a schedule whose slot passed more than `misfire_grace` ago
  with no run recorded (the rule of `check --missed`), once per gap.

The streak is read from the store, so a restarted daemon neither repeats an
alert nor misses a recovery. Skipped and abandoned runs neither extend nor end
a streak.

Nothing here may slow or fail a run: `on_finished()` only queues; a worker
thread reads the store and delivers. A delivery that fails is logged and tried
again with backoff, `attempts` times, per URL; the other URLs are not retried.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spaces_scheduler.dispatch import Finished
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.plan import parse_cron, slots_between
from spaces_scheduler.reports import iso_utc

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule
    from spaces_scheduler.store.base import RunRecord, Store

log = logging.getLogger(__name__)

ATTEMPTS = 6
BACKOFF_FIRST = 5.0
BACKOFF_CAP = 300.0
STREAK_LOOKBACK = 200
SEND_TIMEOUT = 15.0


@dataclass(frozen=True)
class Alert:
    """One message, before it is sent to each of its URLs."""

    kind: str  # failure | recovery | missed
    title: str
    body: str


@dataclass(order=True)
class _Delivery:
    due: float
    order: int
    url: str = field(compare=False)
    alert: Alert = field(compare=False)
    attempt: int = field(default=0, compare=False)


Sender = Callable[[str, Alert], bool]


@functools.cache
def _apprise() -> Any:
    """Import Apprise once, quietly.

    On Python 3.11 it imports the deprecated `imghdr` for its PGP support; the
    warning is Apprise's business, and it must not reach a daemon's log on each
    start (nor fail a test suite that turns warnings into errors).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        try:
            import apprise.utils.pgp  # noqa: F401
        except ImportError:  # an Apprise without PGP support
            pass
    return apprise


def apprise_sender(url: str, alert: Alert) -> bool:
    """Send `alert` to one Apprise URL; return whether it was delivered."""
    apprise = _apprise()
    # In memory: Apprise would otherwise keep a cache folder in the home.
    asset = apprise.AppriseAsset(storage_mode="memory")
    target = apprise.Apprise(asset=asset)
    if not target.add(url):
        log.error("alert not sent: an Apprise URL of the config is not valid")
        return True  # retrying cannot make the URL valid
    kind = apprise.NotifyType.FAILURE if alert.kind != "recovery" else "success"
    return bool(target.notify(body=alert.body, title=alert.title, notify_type=kind))


class Notifier:
    """Turns finished runs and missed slots into alerts, delivered off the run path."""

    def __init__(
        self,
        *,
        store: Store,
        urls: Sequence[str] = (),
        dashboard_url: str | None = None,
        failures_before_alert: int = 1,
        send: Sender = apprise_sender,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF_FIRST,
    ) -> None:
        self.store = store
        self.urls = tuple(urls)
        self.dashboard_url = (dashboard_url or "").rstrip("/")
        self.failures_before_alert = max(1, failures_before_alert)
        self.send = send
        self.attempts = attempts
        self.backoff = backoff
        self._queue: list[_Delivery] = []
        self._events: list[Callable[[], None]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._closing = False
        self._missed_sent: set[tuple[str, str, datetime]] = set()
        if send is apprise_sender:
            _apprise()  # here, on the caller's thread, not first on the worker's
        self._worker = threading.Thread(target=self._loop, name="notify", daemon=True)
        self._worker.start()

    # -- what to say ---------------------------------------------------------------

    def on_finished(self, finished: Finished) -> None:
        """Queue the alert a finished run may call for; returns at once."""
        if finished.outcome.kind in (OutcomeKind.SKIPPED, OutcomeKind.ABANDONED):
            return
        if not self._urls_of(finished.run.schedule):
            return
        self._submit(lambda: self._judge(finished))

    def _judge(self, finished: Finished) -> None:
        """Compare the run with the Space's history; queue failure or recovery."""
        run = finished.run
        history = self.store.runs(space=run.space, limit=STREAK_LOOKBACK)
        index = next((i for i, r in enumerate(history) if r.key == run.key), None)
        if index is None:
            return  # pruned already, or recorded by no one: nothing to compare
        before = _streak(history[index + 1 :])
        threshold = self._threshold(run.schedule)
        urls = self._urls_of(run.schedule)

        if finished.outcome.kind.is_failure and before + 1 == threshold:
            self._queue_alert(self._failure(finished, before + 1), urls)
        elif finished.outcome.kind is OutcomeKind.OK and before >= threshold:
            self._queue_alert(self._recovery(finished, before), urls)

    def _failure(self, finished: Finished, streak: int) -> Alert:
        run, outcome = finished.run, finished.outcome
        times = f" ({streak} in a row)" if streak > 1 else ""
        lines = [
            f"{run.space}: {run.schedule.action} ({run.schedule.name}) "
            f"{outcome.kind.value}{times}.",
            f"Reason: {outcome.reason or outcome.summary or 'none given'}",
        ]
        lines += [f"  | {line}" for line in outcome.log_tail[-5:]]
        lines.append(self._link(run.space))
        title = f"{run.space} {outcome.kind.value}"
        return Alert("failure", title, "\n".join(filter(None, lines)))

    def _recovery(self, finished: Finished, streak: int) -> Alert:
        run = finished.run
        body = (
            f"{run.space}: {run.schedule.action} ({run.schedule.name}) is ok again "
            f"after {streak} failed run{'s' if streak > 1 else ''}."
        )
        link = self._link(run.space)
        return Alert("recovery", f"{run.space} recovered", f"{body}\n{link}".strip())

    def _link(self, space: str) -> str:
        return f"{self.dashboard_url}/spaces/{space}" if self.dashboard_url else ""

    def _threshold(self, schedule: Schedule) -> int:
        configured = getattr(schedule.policy, "alert_after", None)
        if isinstance(configured, int) and configured >= 1:
            return configured
        return self.failures_before_alert

    def _urls_of(self, schedule: Schedule | None) -> tuple[str, ...]:
        own = tuple(getattr(schedule.policy, "notify", ())) if schedule else ()
        return own or self.urls

    # -- missed runs ---------------------------------------------------------------

    def check_missed(
        self,
        config: Config,
        now: datetime,
        *,
        spaces_of: Callable[[Schedule], Iterable[str]] | None = None,
    ) -> int:
        """Alert once per gap: slots past their grace with no run recorded.

        `spaces_of` expands a schedule's patterns (the daemon has a resolver);
        without it, the literal Spaces and those the store has runs for count.
        Return how many alerts were queued.
        """
        first_seen = self.store.first_seen()
        last_slots = self.store.last_slots()
        queued = 0
        for schedule in config.schedules:
            urls = self._urls_of(schedule)
            seen = first_seen.get(schedule.name)
            if not urls or seen is None:
                continue
            spaces = spaces_of(schedule) if spaces_of else _spaces(schedule, last_slots)
            for space in spaces:
                since = max(last_slots.get((schedule.name, space), seen), seen)
                queued += self._missed(schedule, space, since, now, urls)
        return queued

    def _missed(
        self,
        schedule: Schedule,
        space: str,
        since: datetime,
        now: datetime,
        urls: tuple[str, ...],
    ) -> int:
        spec = parse_cron(schedule.cron)
        until = now - schedule.policy.misfire_grace
        missed = slots_between(spec, schedule.policy.timezone, since, until)
        key = (schedule.name, space, since)
        if not missed or key in self._missed_sent:
            return 0

        self._missed_sent.add(key)
        count = len(missed)
        body = (
            f"{space}: {schedule.name} ({schedule.cron}, {schedule.policy.timezone}) "
            f"did not run: {count} slot{'s' if count > 1 else ''} passed with no run, "
            f"the last at {iso_utc(missed[-1].utc)}. Is the daemon or the external "
            f"scheduler alive?\n{self._link(space)}"
        )
        alert = Alert("missed", f"{space} missed a run", body.strip())
        self._queue_alert(alert, urls)
        return 1

    # -- delivery ------------------------------------------------------------------

    def _submit(self, event: Callable[[], None]) -> None:
        with self._wake:
            self._events.append(event)
            self._wake.notify()

    def _queue_alert(self, alert: Alert, urls: Iterable[str]) -> None:
        with self._wake:
            for url in dict.fromkeys(urls):
                delivery = _Delivery(time.monotonic(), next(self._order), url, alert)
                heapq.heappush(self._queue, delivery)
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            work = self._next_work()
            if work is None:
                return
            try:
                work()
            except Exception:  # an alert must never take the worker down
                log.exception("alert worker: an event failed")

    def _next_work(self) -> Callable[[], None] | None:
        """Wait for an event or a delivery that is due; None when closed and idle."""
        with self._wake:
            while True:
                if self._events:
                    return self._events.pop(0)
                now = time.monotonic()
                if self._queue and self._queue[0].due <= now:
                    delivery = heapq.heappop(self._queue)
                    return lambda: self._deliver(delivery)
                if self._closing:
                    return None
                wait = self._queue[0].due - now if self._queue else None
                self._wake.wait(wait)

    def _deliver(self, delivery: _Delivery) -> None:
        try:
            sent = self.send(delivery.url, delivery.alert)
        except Exception as exc:
            log.warning("alert %r: %s", delivery.alert.title, exc)
            sent = False
        if sent:
            log.info("alert sent: %s", delivery.alert.title)
            return

        delivery.attempt += 1
        if delivery.attempt >= self.attempts:
            log.error(
                "alert %r given up after %d attempts to one of its URLs",
                delivery.alert.title,
                delivery.attempt,
            )
            return
        delay = min(BACKOFF_CAP, self.backoff * 2 ** (delivery.attempt - 1))
        log.warning(
            "alert %r not delivered; trying again in %.0fs", delivery.alert.title, delay
        )
        delivery.due = time.monotonic() + delay
        with self._wake:
            heapq.heappush(self._queue, delivery)

    def pending(self) -> int:
        """Return the events and deliveries not done yet."""
        with self._wake:
            return len(self._events) + len(self._queue)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is due within `timeout`, then stop; waiting retries are lost."""
        with self._wake:
            self._closing = True
            # Retries waiting for their backoff would keep the worker alive.
            self._queue = [d for d in self._queue if d.attempt == 0]
            heapq.heapify(self._queue)
            self._wake.notify()
        self._worker.join(timeout)
        with self._wake:
            lost = len(self._queue) + len(self._events)
        if lost:
            log.warning("%d alerts were not delivered before shutdown", lost)


def _streak(older: Sequence[RunRecord]) -> int:
    """Return how many failures precede, newest first, down to the last ok."""
    count = 0
    for record in older:
        if record.outcome is None or record.outcome in (
            OutcomeKind.SKIPPED,
            OutcomeKind.ABANDONED,
        ):
            continue
        if record.outcome is OutcomeKind.OK:
            break
        count += 1
    return count


def _spaces(schedule: Schedule, last_slots: dict[tuple[str, str], Any]) -> list[str]:
    literal = [space for space in schedule.spaces if "*" not in space]
    seen = [space for (name, space) in last_slots if name == schedule.name]
    return list(dict.fromkeys(literal + seen))
