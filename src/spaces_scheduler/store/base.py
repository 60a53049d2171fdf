"""The state store's contract, shared by every backend.

Times given to and returned by a store are timezone-aware UTC datetimes. A run is
identified by its key (schedule, Space, slot); the store never holds two rows for
one key, which is what makes every run happen at most once.

The life of a run:

1. `claim()` inserts the run's row as `claimed` by an owner (a daemon or a one-shot
   process) with a lease, and takes the Space's lock, in one transaction.
2. The owner acts on the Hub, calling `renew()` while the run lasts longer than a
   fraction of the lease.
3. `finish()` writes the outcome and releases the Space's lock.

A claim whose lease passed without `finish()` (its process died) is turned into an
`abandoned` outcome by `expire()`, whoever calls it; it is never claimed again,
because the Hub may already have acted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from spaces_scheduler.outcome import Outcome, OutcomeKind


class Trigger(StrEnum):
    """Why a run exists."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    WEBHOOK = "webhook"
    WINDOW = "window"


@dataclass(frozen=True)
class RunKey:
    schedule: str
    space: str
    slot: datetime


@dataclass(frozen=True)
class Claim:
    run_id: int
    key: RunKey
    owner: str
    lease_until: datetime


class Refusal(StrEnum):
    """Why `claim()` gave no claim."""

    RECORDED = "recorded"  # the key has a row already: never run it again
    BUSY = "busy"  # another live run holds the Space


@dataclass(frozen=True)
class ClaimRequest:
    """One run to claim in a batch: what `claim()` takes besides owner and lease."""

    key: RunKey
    action: str
    trigger: Trigger
    due_at: datetime


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule as the store remembers it, to know since when it exists."""

    name: str
    cron: str
    timezone: str
    action: str


@dataclass(frozen=True)
class RunRecord:
    """One row of run history."""

    id: int
    key: RunKey
    action: str
    trigger: Trigger
    owner: str
    due_at: datetime
    claimed_at: datetime
    finished_at: datetime | None
    outcome: OutcomeKind | None  # None while claimed
    reason: str = ""
    summary: str = ""
    stages: tuple[str, ...] = ()
    requests: int = 0
    duration: float = 0.0
    log_tail: tuple[str, ...] = field(default=())

    @property
    def lateness(self) -> float:
        """Seconds from the run's due instant to its claim."""
        return max(0.0, (self.claimed_at - self.due_at).total_seconds())


@dataclass(frozen=True)
class DaemonRow:
    owner: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


class Store(ABC):
    """Persistent state: schedules seen, runs, claims, Space locks, commits seen."""

    # -- schedules -------------------------------------------------------------

    @abstractmethod
    def register_schedules(self, rows: Iterable[ScheduleRow], now: datetime) -> None:
        """Insert schedules not yet known with `first_seen = now`; update the others.

        A schedule's `first_seen` never changes, so a daemon restarted much later
        knows which slots passed since the schedule existed.
        """

    @abstractmethod
    def first_seen(self) -> dict[str, datetime]:
        """Return when each registered schedule was first seen."""

    # -- claims and outcomes -----------------------------------------------------

    @abstractmethod
    def claim(
        self,
        key: RunKey,
        *,
        owner: str,
        action: str,
        trigger: Trigger,
        due_at: datetime,
        lease: timedelta,
        now: datetime,
    ) -> Claim | Refusal:
        """Claim the run `key` for `owner`, in one transaction.

        Returns `Refusal.RECORDED` when the key already has a row (whatever its
        outcome), and `Refusal.BUSY` when another unexpired claim holds the Space
        (nothing is written then; the caller records the slot `skipped: busy`).
        Otherwise inserts the row as claimed with `lease_until = now + lease`,
        takes the Space's lock, and returns the claim. Safe against any number of
        concurrent callers on any number of processes and machines.
        """

    def claim_many(
        self,
        requests: Sequence[ClaimRequest],
        *,
        owner: str,
        lease: timedelta,
        now: datetime,
    ) -> list[Claim | Refusal]:
        """Claim many runs at once; answer for each request, in order.

        The same as calling `claim()` for each in turn, but a backend may do it
        in one transaction: a herd of runs due at the same minute is then
        claimed in one round trip. Two requests for one Space: the first that
        is not RECORDED claims, the later ones are BUSY.
        """
        return [
            self.claim(
                request.key,
                owner=owner,
                action=request.action,
                trigger=request.trigger,
                due_at=request.due_at,
                lease=lease,
                now=now,
            )
            for request in requests
        ]

    def last_acted_many(self, spaces: Iterable[str]) -> dict[str, datetime]:
        """Return `last_acted_at()` of each of `spaces` that has one."""
        found = {}
        for space in spaces:
            moment = self.last_acted_at(space)
            if moment is not None:
                found[space] = moment
        return found

    @abstractmethod
    def renew(
        self, claims: Iterable[Claim], *, lease: timedelta, now: datetime
    ) -> list[Claim]:
        """Extend the leases of `claims` still held; return the renewed claims.

        A claim missing from the result was expired by someone else: its owner
        must not record an outcome for it.
        """

    @abstractmethod
    def finish(self, claim: Claim, outcome: Outcome, *, now: datetime) -> bool:
        """Record the outcome of a claimed run and release the Space's lock.

        Returns False, writing nothing, when the claim is no longer held (it was
        expired and recorded `abandoned`).
        """

    @abstractmethod
    def record(
        self,
        key: RunKey,
        outcome: Outcome,
        *,
        owner: str,
        action: str,
        trigger: Trigger,
        due_at: datetime,
        now: datetime,
    ) -> bool:
        """Insert a finished run directly (a skip); False if the key had a row."""

    @abstractmethod
    def expire(self, now: datetime) -> list[RunRecord]:
        """Record every claim whose lease passed as `abandoned`; return them.

        Releases their Space locks. Each abandoned claim is returned by exactly
        one caller, even when several call at once.
        """

    @abstractmethod
    def release_owner(self, owner: str, now: datetime) -> list[RunRecord]:
        """Record every claim held by `owner` as `abandoned` now (clean shutdown)."""

    # -- reads -----------------------------------------------------------------

    @abstractmethod
    def last_slots(self) -> dict[tuple[str, str], datetime]:
        """Return the newest recorded slot of every (schedule, Space), any outcome."""

    @abstractmethod
    def last_acted_at(self, space: str) -> datetime | None:
        """Return when the newest run that sent an action to `space` was claimed.

        Runs that sent one are those whose outcome is ok, failed, timed-out or
        abandoned, and live claims (other than those skipped before acting,
        which carry the `skipped` outcome).
        """

    @abstractmethod
    def last_success(self, schedule: str, space: str) -> RunRecord | None:
        """Return the newest `ok` run of (schedule, Space)."""

    @abstractmethod
    def runs(
        self,
        *,
        space: str | None = None,
        schedule: str | None = None,
        outcome: OutcomeKind | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Return runs, newest first (by id), filtered and paged by `before_id`."""

    @abstractmethod
    def latest_runs(self) -> dict[tuple[str, str], RunRecord]:
        """Return the newest run of every (schedule, Space)."""

    # -- upstream commits and stages ------------------------------------------

    @abstractmethod
    def seen_commits(self, schedule: str, space: str) -> dict[str, str]:
        """Return the commit last acted on of each repository watched by the pair."""

    @abstractmethod
    def save_seen_commits(
        self, schedule: str, space: str, commits: Mapping[str, str], now: datetime
    ) -> None:
        """Remember `commits` (repository -> sha) as acted on for the pair."""

    @abstractmethod
    def save_stage(self, space: str, stage: str, now: datetime) -> None:
        """Remember the last stage seen of `space`."""

    @abstractmethod
    def stages(self) -> dict[str, tuple[str, datetime]]:
        """Return the last stage seen of every Space, with when it was seen."""

    # -- daemons ------------------------------------------------------------------

    @abstractmethod
    def heartbeat(self, owner: str, *, host: str, pid: int, now: datetime) -> None:
        """Insert or refresh the heartbeat row of a live daemon."""

    @abstractmethod
    def daemons(self) -> list[DaemonRow]:
        """Return every daemon's heartbeat row, newest heartbeat first."""

    # -- sharing the work among daemons -----------------------------------------

    @abstractmethod
    def recorded(self, keys: Iterable[RunKey]) -> set[RunKey]:
        """Return those of `keys` that have a row, whatever its state.

        A daemon asks before claiming runs another daemon was preferred for,
        so that the runs that daemon took cost it one read, not one write each.
        """

    def finish_many(
        self, finished: Sequence[tuple[Claim, Outcome]], *, now: datetime
    ) -> list[bool]:
        """Record many outcomes at once; answer for each, in order.

        The same as calling `finish()` for each in turn, but a backend may do
        it in one transaction: a herd of short runs ending together then costs
        one commit, not one each.
        """
        return [self.finish(claim, outcome, now=now) for claim, outcome in finished]

    @abstractmethod
    def forget_daemon(self, owner: str) -> None:
        """Delete the heartbeat row of `owner` (a daemon stopping cleanly).

        The other daemons then stop counting it as alive at their next look,
        instead of waiting for its heartbeat to grow old. Runs keep `owner`.
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
