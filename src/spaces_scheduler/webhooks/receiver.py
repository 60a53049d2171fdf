"""`POST /webhooks/hub`: Hub webhooks that trigger `when_changed` schedules at once.

A delivery is checked the way the Hub's own `WebhooksServer` checks it: the
`X-Webhook-Secret` header must be present (401 otherwise) and equal the secret
(compared in constant time; 403 otherwise). The body is capped (413 beyond
`MAX_BODY`) and read as the documented payload; the new commit comes from
`updatedRefs` (the client library's `head_sha` is never filled). A push to the
ref a schedule watches (`refs/heads/main`, or the `@revision` of the entry)
triggers that schedule's runs on every one of its Spaces, with
`Trigger.WEBHOOK` and the second of the trigger as slot. Other events (a
discussion, a push to another branch, a repository nobody watches) are answered
200 and ignored: the Hub suspends a webhook whose deliveries keep failing.

Debounce, per repository, on the trailing edge: the runs start once the
repository has been quiet for `[webhooks] debounce` (so an upload made of
several commits is refreshed once, on its last commit), and at the latest
`HOLD_FACTOR` times that after the first push of a burst, so a repository
pushed to without pause is still refreshed. With a debounce of 0 the runs
start at once. The runs then go through the same steps as scheduled ones:
`when_changed` reads the head again (the cache is dropped for that repository),
and `min_interval` and `if_busy` apply. Cron slots remain the safety net for
deliveries that never came.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from spaces_scheduler.dispatch import DueRun, utc_now
from spaces_scheduler.store.base import Trigger
from spaces_scheduler.watch import split_watched

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
HOLD_FACTOR = 10
_KINDS = {"dataset": "datasets", "model": "models", "space": "spaces"}

SpacesOf = Callable[["Schedule"], list[str]]
OnTrigger = Callable[[list[DueRun]], None]


@dataclass(frozen=True)
class Push:
    """A delivery that moved refs of a repository: `datasets/owner/name`, refs."""

    repo: str
    refs: dict[str, str]  # "refs/heads/main" -> new commit


def parse_push(payload: Any) -> Push | None:
    """Return the refs a documented payload moved; None for any other event."""
    if not isinstance(payload, dict):
        return None
    repo = payload.get("repo")
    updated = payload.get("updatedRefs")
    if not isinstance(repo, dict) or not isinstance(updated, list):
        return None
    kind, name = _KINDS.get(str(repo.get("type"))), repo.get("name")
    if kind is None or not isinstance(name, str) or name.count("/") != 1:
        return None

    refs = {
        item["ref"]: item["newSha"]
        for item in updated
        if isinstance(item, dict)
        and isinstance(item.get("ref"), str)
        and isinstance(item.get("newSha"), str)  # null: the ref was deleted
    }
    return Push(f"{kind}/{name}", refs) if refs else None


def watched_by(config: Config) -> dict[str, list[tuple[Schedule, str]]]:
    """Return, per repository, the schedules that watch it and the revision."""
    found: dict[str, list[tuple[Schedule, str]]] = {}
    for schedule in config.schedules:
        for entry in schedule.when_changed:
            repo, revision = split_watched(entry)
            found.setdefault(repo, []).append((schedule, revision))
    return found


def _moves(push: Push, revision: str) -> bool:
    return f"refs/heads/{revision}" in push.refs or f"refs/tags/{revision}" in push.refs


@dataclass
class _Burst:
    first: float
    last: float
    schedules: dict[str, Schedule] = field(default_factory=dict)


class Debouncer:
    """Coalesce pushes per repository; call `fire(repo, schedules)` once per burst."""

    def __init__(
        self,
        quiet: float,
        fire: Callable[[str, list[Schedule]], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet = quiet
        self.fire = fire
        self._clock = clock
        self._bursts: dict[str, _Burst] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def push(self, repo: str, schedules: list[Schedule]) -> None:
        # Even without a delay the runs start on the debouncer's thread: the
        # endpoint answers the Hub at once, whatever expanding Spaces costs.
        now = self._clock()
        with self._changed:
            burst = self._bursts.setdefault(repo, _Burst(first=now, last=now))
            burst.last = now
            burst.schedules.update((s.name, s) for s in schedules)
            self._start()
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="webhook-debounce", daemon=True
            )
            self._thread.start()

    def _due_at(self, burst: _Burst) -> float:
        return min(burst.last + self.quiet, burst.first + self.quiet * HOLD_FACTOR)

    def _loop(self) -> None:
        while True:
            with self._changed:
                due = self._wait_for_due()
                if due is None:
                    return
            for repo, burst in due:
                self._fire(repo, list(burst.schedules.values()))

    def _wait_for_due(self) -> list[tuple[str, _Burst]] | None:
        """Wait (holding the condition) until a burst is due; None once closed."""
        while not self._closed:
            now = self._clock()
            due = [(r, b) for r, b in self._bursts.items() if self._due_at(b) <= now]
            if due:
                for repo, _ in due:
                    del self._bursts[repo]
                return due
            waits = [self._due_at(b) - now for b in self._bursts.values()]
            self._changed.wait(min(waits) if waits else None)
        return None

    def _fire(self, repo: str, schedules: list[Schedule]) -> None:
        try:
            self.fire(repo, schedules)
        except Exception:  # one bad trigger must not end the debouncer
            log.exception("webhook: could not trigger the runs of %s", repo)


class WebhookReceiver:
    """The `/webhooks/hub` endpoint: check, parse, debounce, trigger."""

    def __init__(
        self,
        config: Config,
        *,
        secret: str,
        spaces_of: SpacesOf,
        on_trigger: OnTrigger,
        forget: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_body: int = MAX_BODY,
    ) -> None:
        if not secret:
            raise ValueError("a webhook receiver needs a secret")
        self.secret = secret.encode()
        self.spaces_of = spaces_of
        self.on_trigger = on_trigger
        self.forget = forget or (lambda repo: None)
        self.clock = clock
        self.max_body = max_body
        self.watched = watched_by(config)
        quiet = config.webhooks.debounce.total_seconds()
        self.debouncer = Debouncer(quiet, self._trigger)
        self._last_slot: datetime | None = None

    async def endpoint(self, request: Request) -> Response:
        """Answer one delivery of the Hub."""
        refused = self._refusal(request.headers.get("x-webhook-secret"))
        if refused is not None:
            return refused
        body = await _read_capped(request, self.max_body)
        if body is None:
            return _error(413, f"The body is larger than {self.max_body} bytes.")
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "The body is not JSON.")

        push = parse_push(payload)
        schedules = self._schedules_moved_by(push) if push is not None else []
        if push is None or not schedules:
            return JSONResponse({"status": "ignored"})
        self.debouncer.push(push.repo, schedules)
        names = [s.name for s in schedules]
        return JSONResponse(
            {"status": "accepted", "repo": push.repo, "schedules": names}
        )

    def update(self, config: Config) -> None:
        """Follow a reloaded config: the repositories and schedules watched."""
        self.watched = watched_by(config)

    def close(self) -> None:
        self.debouncer.close()

    def _refusal(self, given: str | None) -> Response | None:
        # The same answers as huggingface_hub's WebhooksServer.
        if given is None:
            return _error(401, "x-webhook-secret header not set.")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.secret):
            log.warning("webhook: a delivery with a wrong secret was refused")
            return _error(403, "Invalid webhook secret.")
        return None

    def _schedules_moved_by(self, push: Push) -> list[Schedule]:
        found = {
            schedule.name: schedule
            for schedule, revision in self.watched.get(push.repo, [])
            if _moves(push, revision)
        }
        return list(found.values())

    def _trigger(self, repo: str, schedules: list[Schedule]) -> None:
        """Start the runs of `schedules` on all their Spaces now."""
        self.forget(repo)
        now = self.clock()
        slot = self._next_slot(now)
        runs = [
            DueRun(schedule, space, slot, now, trigger=Trigger.WEBHOOK)
            for schedule in schedules
            for space in self.spaces_of(schedule)
        ]
        log.info("webhook: %s moved; %d runs triggered", repo, len(runs))
        self.on_trigger(runs)

    def _next_slot(self, now: datetime) -> datetime:
        """Return `now` to the second, later than any slot given before.

        Two bursts within one second would otherwise share a slot, and the
        store would refuse the second one's runs as already recorded.
        """
        slot = now.replace(microsecond=0)
        if self._last_slot is not None and slot <= self._last_slot:
            slot = self._last_slot + timedelta(seconds=1)
        self._last_slot = slot
        return slot


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """Return the body, or None as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
