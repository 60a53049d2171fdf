"""Sharing due runs among the daemons of one store, with no configuration.

Every daemon writes a heartbeat row; the ones seen lately are alive. Each run
has one preferred daemon among them, chosen by rendezvous hashing of
(schedule, Space) over their names: every daemon computes the same choice from
the same rows, a herd spreads evenly, and when a daemon comes or goes only its
own share moves.

A daemon claims at once the runs it is preferred for. The others' it holds for
`HANDOVER`, then claims those still unrecorded: a live peer has taken them by
then (costing one read), and the share of a peer that died is taken seconds
late instead of waiting for its heartbeat to grow old. A daemon restarted on
the same machine does not wait for its predecessor at all: a heartbeat row of
this host whose process is gone is not counted. The claims settle any
disagreement about who is alive: whatever each daemon believes, a run is
claimed at most once and a Space is held by one run at a time.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import socket
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from spaces_scheduler.dispatch import DueRun
from spaces_scheduler.store.base import DaemonRow

# Daemons heartbeat every 15 s at most: three missed beats mean it is gone.
ALIVE = timedelta(seconds=45)
HANDOVER = timedelta(seconds=2)


def alive(rows: Iterable[DaemonRow], now: datetime) -> list[DaemonRow]:
    """Return the daemons whose heartbeat is recent at `now`."""
    return [row for row in rows if now - row.heartbeat_at <= ALIVE]


def preferred(owners: Sequence[str], schedule: str, space: str) -> str:
    """Return which of `owners` should claim the runs of (schedule, Space)."""
    return max(owners, key=lambda owner: _score(owner, schedule, space))


def _score(owner: str, schedule: str, space: str) -> bytes:
    text = "\0".join((owner, schedule, space)).encode()
    return hashlib.blake2b(text, digest_size=8).digest()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by another user
    return True


class Sharing:
    """One daemon's view of its peers, and the runs it holds for them."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.host = socket.gethostname()
        self.peers: tuple[str, ...] = (owner,)
        self._held: list[tuple[datetime, int, DueRun]] = []
        self._counter = itertools.count()

    def see(self, rows: Iterable[DaemonRow], now: datetime) -> None:
        """Take the live daemons from the heartbeat rows; this one always counts."""
        owners = {row.owner for row in alive(rows, now) if not self._gone(row)}
        self.peers = tuple(sorted(owners | {self.owner}))

    def _gone(self, row: DaemonRow) -> bool:
        """Whether the row is of a process of this host that no longer runs."""
        # A container restarted under the same name may reuse the pid: then the
        # predecessor counts as alive, and its share waits the hand-over delay.
        return row.host == self.host and not _running(row.pid)

    def split(self, runs: Sequence[DueRun]) -> tuple[list[DueRun], list[DueRun]]:
        """Return the runs this daemon is preferred for, and the others'."""
        if len(self.peers) == 1:
            return list(runs), []
        mine: list[DueRun] = []
        theirs: list[DueRun] = []
        for run in runs:
            chosen = preferred(self.peers, run.schedule.name, run.space)
            (mine if chosen == self.owner else theirs).append(run)
        return mine, theirs

    def hold(self, runs: Iterable[DueRun], now: datetime) -> None:
        """Keep the others' runs until the hand-over delay has passed.

        The delay counts from each run's due instant, or from now for a run
        already late (a catch-up): runs are seen a little before they are due.
        """
        for run in runs:
            until = max(now, run.due_at) + HANDOVER
            heapq.heappush(self._held, (until, next(self._counter), run))

    def handed_over(self, now: datetime) -> list[DueRun]:
        """Return the held runs whose hand-over delay has passed."""
        ready = []
        while self._held and self._held[0][0] <= now:
            ready.append(heapq.heappop(self._held)[2])
        return ready

    def next_hand_over(self) -> datetime | None:
        return self._held[0][0] if self._held else None

    def clear(self) -> None:
        """Forget the held runs (the daemon rebuilds its plan from the store)."""
        self._held = []
