"""`when_changed`: act only when a watched repository has a new commit.

A due run of a schedule with `when_changed` first reads the head commit of every
repository it watches and compares each with the commit seen when that Space was
last refreshed successfully (the store keeps one per (schedule, Space, repository)):

- nothing seen yet (the first run of a new schedule or Space), or a repository
  moved: the run acts;
- nothing moved: the run ends `skipped: unchanged` (a skip does not count for
  `min_interval`);
- a repository that cannot be read (gone, private without access) fails the run
  with the Hub's reason rather than skipping silently.

The heads read before acting are saved only after an `ok` run, so a failed
refresh is tried again at the next slot, and a commit that lands while the Space
restarts is seen as new at the next one.

Reads are shared by every run of the process (`HeadCache`): one request per
(repository, revision) within `TTL`, however many Spaces watch it; a herd of
runs due at one minute waits on the first run's answer. The resolver's HEAD of
README.md is asked first, because it counts against the resolver quota, several
times the API's; a repository found to have no README is asked through the API's
repository info from then on, instead of paying a 404 every time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from spaces_scheduler.dispatch import DueRun, utc_now
from spaces_scheduler.errors import HubError, NotFoundError, TransientHubError
from spaces_scheduler.outcome import Outcome, OutcomeKind

if TYPE_CHECKING:
    from spaces_scheduler.hub import HubCalls, HubClient
    from spaces_scheduler.store.base import Store

log = logging.getLogger(__name__)

# Cron's resolution is a minute: the runs of one slot (jitter aside) share one
# read. A commit within that minute is seen at the next slot, or at once when a
# webhook reports it (`forget()`).
TTL = 60.0
READ_DEADLINE = 60.0


def split_watched(entry: str) -> tuple[str, str]:
    """Return (`datasets/owner/name`, revision) of a `when_changed` entry."""
    repo, _, revision = entry.partition("@")
    return repo, revision or "main"


@dataclass
class _Answer:
    """One read of a head commit, shared by everyone who asks while it is fresh."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    sha: str = ""
    error: HubError | None = None


class HeadCache:
    """Head commits of watched repositories, read once per `ttl` per process."""

    def __init__(
        self,
        client: HubClient,
        *,
        ttl: float = TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[tuple[str, str], _Answer] = {}
        self._no_readme: set[str] = set()
        self._lock = threading.Lock()

    def head(self, entry: str) -> tuple[str, int]:
        """Return the head commit of `entry` and the requests this call sent.

        Raise the HubError of the read (shared too: a herd over a missing
        repository costs one 404, not one per Space).
        """
        key = split_watched(entry)
        with self._lock:
            answer = self._answers.get(key)
            leader = answer is None or self._stale(answer)
            if leader:
                answer = self._answers[key] = _Answer(started=self._clock())
        assert answer is not None

        spent = self._read(key, answer) if leader else 0
        if not answer.done.wait(READ_DEADLINE):
            raise TransientHubError(f"{entry}: no answer from the head read in time")
        if answer.error is not None:
            raise answer.error
        return answer.sha, spent

    def forget(self, repo: str) -> None:
        """Drop what is known of `repo` (a webhook said it moved)."""
        with self._lock:
            for key in [key for key in self._answers if key[0] == repo]:
                if self._answers[key].done.is_set():
                    del self._answers[key]

    def _stale(self, answer: _Answer) -> bool:
        if not answer.done.is_set():
            return False  # in flight: wait for it
        return self._clock() - answer.started >= self.ttl

    def _read(self, key: tuple[str, str], answer: _Answer) -> int:
        repo, revision = key
        calls = self.client.calls(deadline=time.monotonic() + READ_DEADLINE)
        try:
            answer.sha = self._ask(calls, repo, revision)
        except HubError as exc:
            answer.error = exc
        finally:
            answer.done.set()
        return calls.requests

    def _ask(self, calls: HubCalls, repo: str, revision: str) -> str:
        if repo not in self._no_readme:
            try:
                return calls.repo_head_from(repo, revision=revision, resolver=True)
            except NotFoundError:
                pass  # no README, or no repository: the API says which

        sha = calls.repo_head_from(repo, revision=revision, resolver=False)
        with self._lock:
            self._no_readme.add(repo)
        return sha


@dataclass(frozen=True)
class Heads:
    """The head commits of a run's watched repositories, and what they cost."""

    commits: dict[str, str]
    requests: int


class Watcher:
    """Decides, for each due run of a `when_changed` schedule, whether to act."""

    def __init__(
        self,
        cache: HeadCache,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.cache = cache
        self.store = store
        self.clock = clock

    def run(self, due: DueRun, act: Callable[[], Outcome]) -> Outcome:
        """Call `act` if a watched repository moved; return the run's outcome."""
        watched = due.schedule.when_changed
        if not watched:
            return act()
        try:
            heads = self.read_heads(watched)
        except HubError as exc:
            return Outcome(OutcomeKind.FAILED, reason=f"when_changed: {exc}")

        seen = self.store.seen_commits(due.schedule.name, due.space)
        moved = [entry for entry in watched if seen.get(entry) != heads.commits[entry]]
        if not moved:
            summary = ", ".join(f"{e} at {heads.commits[e][:7]}" for e in watched)
            outcome = Outcome.skipped("unchanged", summary=summary)
            return dataclasses.replace(outcome, requests=heads.requests)

        outcome = act()
        if outcome.kind is OutcomeKind.OK:
            self.store.save_seen_commits(
                due.schedule.name, due.space, heads.commits, self.clock()
            )
        why = "first run" if not seen else "new commit in " + ", ".join(moved)
        summary = f"{outcome.summary} ({why})" if outcome.summary else why
        return dataclasses.replace(
            outcome, summary=summary, requests=outcome.requests + heads.requests
        )

    def read_heads(self, watched: Iterable[str]) -> Heads:
        """Return the head commit of each entry; raise the first HubError."""
        commits, spent = {}, 0
        for entry in watched:
            commits[entry], requests = self.cache.head(entry)
            spent += requests
        return Heads(commits, spent)

    def forget(self, repo: str) -> None:
        self.cache.forget(repo)
