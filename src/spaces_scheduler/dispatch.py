"""From due slots to recorded runs, for the daemon and for one-shot runs alike.

A due run goes through the same steps wherever it comes from (a cron slot, a
catch-up after downtime, a manual trigger, a webhook):

1. `min_interval`: a Space acted on too recently is recorded `skipped`.
2. The claim: the store inserts the run and takes the Space's lock in one
   transaction, so two processes never run one key, and a Space already in
   flight is recorded `skipped: busy`.
3. The run itself, on a worker thread, while a renewer keeps the claim's lease.
4. The outcome is recorded by one recorder thread, which writes the outcomes
   that ended together in one transaction (a herd of quick runs costs one
   commit, and the workers never queue for the store); a claim that was
   expired meanwhile records nothing.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from spaces_scheduler.durations import format_duration
from spaces_scheduler.errors import StoreError
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store.base import (
    Claim,
    ClaimRequest,
    Refusal,
    RunKey,
    ScheduleRow,
    Store,
    Trigger,
)

if TYPE_CHECKING:
    from spaces_scheduler.config import Schedule

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
YIELD_AT_MOST = 2.0  # seconds an outcome may wait for a herd to be started
YIELD_PER_RUN = 0.0001  # ... in proportion to the herd: 0.1 s for 1,000 runs
MAX_WORKERS = 256
# Pauses between attempts to record an outcome while the store is unreachable.
FINISH_RETRY = (0.5, 1.0, 2.0, 5.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


def schedule_rows(schedules: Iterable[Schedule]) -> list[ScheduleRow]:
    """Return the schedules as the store remembers them."""
    return [
        ScheduleRow(s.name, s.cron, s.policy.timezone, str(s.action)) for s in schedules
    ]


def new_owner() -> str:
    """Return a name for this process's claims: host, pid and a random tail."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class DueRun:
    """A run that should happen now: (schedule, Space, slot) and why."""

    schedule: Schedule
    space: str
    slot: datetime
    due_at: datetime
    trigger: Trigger = Trigger.SCHEDULE

    @property
    def key(self) -> RunKey:
        return RunKey(self.schedule.name, self.space, self.slot)


@dataclass(frozen=True)
class Finished:
    """A run with its outcome, as reported to whoever prints or alerts."""

    run: DueRun
    outcome: Outcome
    lateness: float


Executor = Callable[[DueRun], Outcome]
Listener = Callable[[Finished], None]


class Dispatcher:
    """Claims due runs, runs them on a pool, records their outcomes."""

    def __init__(
        self,
        store: Store,
        execute: Executor,
        *,
        owner: str | None = None,
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = utc_now,
        workers: int = MAX_WORKERS,
        on_finished: Listener | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.owner = owner or new_owner()
        self.lease = lease
        self.clock = clock
        self.on_finished = on_finished or (lambda finished: None)
        self._pool = _Workers(workers)
        self._inflight: dict[int, Claim] = {}
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._renewer = _Renewer(self)
        self._herd_until = 0.0  # monotonic; see _Recorder._yield_to_starts
        self._recorder = _Recorder(self)
        self._recorded: dict[int, Future[None]] = {}

    # -- steps 1 and 2 -----------------------------------------------------------

    def dispatch(self, runs: Iterable[DueRun]) -> list[Future[None]]:
        """Claim the runs in one batch and start each claimed; return their futures.

        A herd of runs due at the same minute costs two store round trips
        (the min_interval read and the batch claim), not two per run.
        """
        return self.launch(self.arm(runs))

    def arm(self, runs: Iterable[DueRun]) -> list[tuple[DueRun, Claim]]:
        """Claim the runs in one batch, without starting them; return the claims.

        The daemon claims a herd a moment before it is due, so that at its
        instant it only hands the runs to the workers. Armed claims are renewed
        like runs in flight and abandoned with them if the process stops.
        """
        now = self.clock()
        runs = list(runs)
        spaces = {
            r.space for r in runs if r.schedule.policy.min_interval > timedelta(0)
        }
        last_acted = self.store.last_acted_many(spaces) if spaces else {}
        runs = [run for run in runs if not self._too_soon(run, now, last_acted)]
        if not runs:
            return []

        requests = [
            ClaimRequest(run.key, str(run.schedule.action), run.trigger, run.due_at)
            for run in runs
        ]
        answers = self.store.claim_many(
            requests, owner=self.owner, lease=self.lease, now=now
        )

        # Hold every claim before recording the busy ones: a store failure
        # while recording must not leave a claim that nothing runs.
        answered = list(zip(runs, answers, strict=True))
        armed = [(run, a) for run, a in answered if isinstance(a, Claim)]
        with self._lock:
            self._inflight.update((claim.run_id, claim) for _, claim in armed)
        for run, answer in answered:
            if answer is Refusal.BUSY:
                self.skip(run, Outcome.skipped("busy", summary="a run is in flight"))
        return armed

    def launch(self, armed: Iterable[tuple[DueRun, Claim]]) -> list[Future[None]]:
        """Start armed runs now; their lateness is counted from here."""
        armed = list(armed)
        now = self.clock()
        # The recorder stands back while a herd this size is being started.
        busy_for = min(YIELD_AT_MOST, YIELD_PER_RUN * len(armed))
        self._herd_until = max(self._herd_until, time.monotonic() + busy_for)
        return [self._start(run, claim, now) for run, claim in armed]

    def prestart(self, count: int) -> None:
        """Start up to `count` workers now, so that a herd waits for no thread.

        A pool starts a thread per run until it is full, each start costing
        the dispatching thread about a millisecond; at a herd, that is late.
        """
        self._pool.grow(count)

    def dispatch_one(self, run: DueRun) -> Future[None] | None:
        started = self.dispatch([run])
        return started[0] if started else None

    def _too_soon(
        self, run: DueRun, now: datetime, last_acted: dict[str, datetime]
    ) -> bool:
        """Record the run `skipped: min-interval` if the Space was acted on lately."""
        interval = run.schedule.policy.min_interval
        if interval <= timedelta(0) or run.trigger is Trigger.MANUAL:
            return False
        last = last_acted.get(run.space)
        if last is None or now - last >= interval:
            return False

        ago = format_duration(now - last)
        summary = f"last acted {ago} ago, min_interval {format_duration(interval)}"
        self.skip(run, Outcome.skipped("min-interval", summary=summary))
        return True

    def skip(self, run: DueRun, outcome: Outcome) -> None:
        """Record a run that is not made, and report it once."""
        now = self.clock()
        recorded = self.store.record(
            run.key,
            outcome,
            owner=self.owner,
            action=str(run.schedule.action),
            trigger=run.trigger,
            due_at=run.due_at,
            now=now,
        )
        if recorded:
            self._report(Finished(run, outcome, _lateness(run, now)))

    # -- steps 3 and 4 -------------------------------------------------------------

    def _start(self, run: DueRun, claim: Claim, now: datetime) -> Future[None]:
        with self._lock:
            # The renewer may have extended the armed claim: keep its lease.
            self._inflight.setdefault(claim.run_id, claim)
        self._renewer.ensure_started()

        # Done once the outcome is recorded, not when the worker returns.
        recorded: Future[None] = Future()
        with self._lock:
            self._futures.add(recorded)
        recorded.add_done_callback(self._forget)
        self._recorded[claim.run_id] = recorded
        task = functools.partial(self._work, run, claim, _lateness(run, now))
        self._pool.submit(task, busy=self.in_flight)
        return recorded

    def _work(self, run: DueRun, claim: Claim, lateness: float) -> None:
        try:
            self._run(run, claim, lateness)
        except Exception as exc:  # a bug here must not cost the worker
            log.exception("%s: the run could not be handed over", run.space)
            self._resolve(claim, exc)

    def _report(self, finished: Finished) -> None:
        """Tell the listener; its trouble (a closed pipe, an alert) is not the run's."""
        try:
            self.on_finished(finished)
        except Exception:
            log.exception("%s: could not report the run", finished.run.space)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
        error = None if future.cancelled() else future.exception()
        if error is not None:
            log.error("a run could not be recorded: %s", error, exc_info=error)

    def _run(self, run: DueRun, claim: Claim, lateness: float) -> None:
        try:
            outcome = self.execute(run)
        except Exception as exc:  # one run must never take the process down
            log.exception("%s: run crashed", run.space)
            outcome = Outcome(OutcomeKind.FAILED, reason=f"internal error: {exc}")

        # The claim stays in flight (its lease renewed) until recorded.
        self._recorder.put(Finished(run, outcome, lateness), claim)

    def _record(self, batch: list[tuple[Finished, Claim]]) -> None:
        """Record outcomes that ended together, and report those recorded."""
        answers: list[bool | None]
        try:
            pairs = [(claim, finished.outcome) for finished, claim in batch]
            answers = list(self.store.finish_many(pairs, now=self.clock()))
        except StoreError:
            # One by one, each retried while its lease lasts.
            answers = [self._finish_or_give_up(*item) for item in batch]

        with self._lock:
            for _, claim in batch:
                self._inflight.pop(claim.run_id, None)
        for (finished, claim), recorded in zip(batch, answers, strict=True):
            if recorded:
                self._report(finished)
                self._save_stage(finished.run.space, finished.outcome)
            elif recorded is False:
                _say_abandoned(finished)
            self._resolve(claim)

    def _resolve(self, claim: Claim, error: BaseException | None = None) -> None:
        """Complete the future of a run whose outcome was recorded (or not)."""
        future = self._recorded.pop(claim.run_id, None)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def _finish_or_give_up(self, finished: Finished, claim: Claim) -> bool | None:
        """Return `_finish()`'s answer, or None when the store never answered."""
        try:
            return self._finish(claim, finished.outcome)
        except StoreError as exc:
            log.error(
                "%s: the outcome of %s (%s) could not be recorded: %s",
                claim.key.space,
                claim.key.schedule,
                finished.outcome.kind,
                exc,
            )
            return None

    def _finish(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the outcome, retrying while the store fails and the lease lasts.

        Retrying is safe: `finish()` writes only while the claim is held, so a
        write that committed before its answer was lost is refused the second
        time. Past the lease, the run is for whoever expires it to record.
        """
        lease_left = (self._lease_of(claim) - self.clock()).total_seconds()
        give_up = time.monotonic() + lease_left
        pauses = itertools.chain(FINISH_RETRY, itertools.repeat(FINISH_RETRY[-1]))
        while True:
            try:
                return self.store.finish(claim, outcome, now=self.clock())
            except StoreError as exc:
                pause = next(pauses)
                if time.monotonic() + pause > give_up:
                    raise
                log.warning(
                    "%s: could not record the outcome yet: %s", claim.key.space, exc
                )
                time.sleep(pause)

    def _lease_of(self, claim: Claim) -> datetime:
        with self._lock:
            return self._inflight.get(claim.run_id, claim).lease_until

    def _save_stage(self, space: str, outcome: Outcome) -> None:
        if not outcome.stages:
            return
        try:
            self.store.save_stage(space, outcome.stages[-1], self.clock())
        except StoreError as exc:  # the stage is a hint; the outcome is recorded
            log.warning("%s: could not remember its stage: %s", space, exc)

    # -- leases and shutdown ----------------------------------------------------------

    def renew_leases(self) -> None:
        """Extend the lease of every claim in flight."""
        with self._lock:
            claims = list(self._inflight.values())
        if not claims:
            return
        renewed = self.store.renew(claims, lease=self.lease, now=self.clock())
        kept = {claim.run_id for claim in renewed}
        with self._lock:
            for claim in renewed:
                if claim.run_id in self._inflight:
                    self._inflight[claim.run_id] = claim
        lost = [claim for claim in claims if claim.run_id not in kept]
        for claim in lost:
            log.warning("%s: lost the claim of %s", claim.key.space, claim.key.schedule)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the runs in flight; return whether all ended within `timeout`.

        A run has ended when its outcome is recorded (or could not be).
        """
        started = time.monotonic()
        with self._lock:
            futures = list(self._futures)
        from concurrent.futures import wait as wait_for

        _, pending = wait_for(futures, timeout=timeout)
        if pending:
            return False
        left = None if timeout is None else timeout - (time.monotonic() - started)
        return self._recorder.drain(left)

    def shutdown(self, *, grace: float) -> list[str]:
        """Let runs finish for `grace` seconds, then record the rest `abandoned`."""
        self.wait(grace)
        try:
            abandoned = self.store.release_owner(self.owner, self.clock())
        finally:
            self._renewer.stop()
            self._pool.stop()
            with self._lock:
                unfinished = list(self._futures)
            for future in unfinished:
                future.cancel()  # its claim was recorded abandoned
        return [f"{row.key.space} ({row.key.schedule})" for row in abandoned]


class _Workers:
    """Threads that take runs from one queue: handing a run over is one put.

    (A ThreadPoolExecutor's submit takes locks its busy workers contend for:
    handing over a herd of 10,000 took over a second.)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Callable[[], None] | None]
        self._queue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def queued(self) -> int:
        """Return how many runs wait for a thread."""
        return self._queue.qsize()

    def submit(self, task: Callable[[], None], *, busy: int) -> None:
        """Queue `task`; start a thread if fewer than `busy` runs have one."""
        self._queue.put(task)
        if len(self._threads) < min(busy, self.size):
            self.grow(busy)

    def grow(self, wanted: int) -> None:
        """Start threads until there are `wanted` of them, at most `size`."""
        with self._lock:
            while len(self._threads) < min(wanted, self.size):
                name = f"run-{len(self._threads)}"
                thread = threading.Thread(target=self._loop, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        """Drop the runs not started; let each thread end after its run."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with self._lock:
            for _ in self._threads:
                self._queue.put(None)

    def _loop(self) -> None:
        while (task := self._queue.get()) is not None:
            task()


class _Recorder:
    """A thread that records outcomes, those that ended together in one batch."""

    BATCH = 400

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._queue: list[tuple[Finished, Claim]] = []
        self._busy = False
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, finished: Finished, claim: Claim) -> None:
        with self._ready:
            self._queue.append((finished, claim))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="recorder", daemon=True
                )
                self._thread.start()
            self._ready.notify_all()

    def _yield_to_starts(self) -> None:
        """Wait while queued runs are being started: that comes first.

        Recording takes the interpreter for milliseconds per batch; done
        while a herd is being started, it makes the herd's last runs late.
        An outcome waits those few milliseconds instead (its claim stays
        renewed); runs queued only because every thread is busy make it wait
        no longer than one look.
        """
        queued = self.dispatcher._pool.queued()
        while queued and time.monotonic() < self.dispatcher._herd_until:
            time.sleep(0.002)
            before, queued = queued, self.dispatcher._pool.queued()
            if queued >= before:
                return  # nothing was started meanwhile: every thread is busy

    def drain(self, timeout: float | None) -> bool:
        """Wait until every outcome put is recorded; return whether it was."""
        with self._ready:
            idle = self._ready.wait_for(
                lambda: not self._queue and not self._busy, timeout=timeout
            )
        return bool(idle)

    def _loop(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._queue))
            self._yield_to_starts()
            with self._ready:
                batch = self._queue[: self.BATCH]
                del self._queue[: self.BATCH]
                self._busy = True
            try:
                self.dispatcher._record(batch)
            except Exception as exc:  # the recorder must outlive any one batch
                log.exception("could not record %d outcomes", len(batch))
                for _, claim in batch:
                    self.dispatcher._resolve(claim, exc)
            with self._ready:
                self._busy = False
                self._ready.notify_all()


class _Renewer:
    """A thread that renews the leases of the claims in flight."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="lease-renewer", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        # Renew at a third of the lease, so one missed renewal still leaves time.
        interval = self.dispatcher.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.dispatcher.renew_leases()
            except Exception:
                log.exception("could not renew leases")

    def stop(self) -> None:
        self._stop.set()


def _say_abandoned(finished: Finished) -> None:
    log.warning(
        "%s: the run of %s was recorded abandoned before it ended (its "
        "lease passed, or the process was stopping); its outcome (%s) "
        "is not recorded",
        finished.run.space,
        finished.run.schedule.name,
        finished.outcome.kind,
    )


def _lateness(run: DueRun, now: datetime) -> float:
    return max(0.0, (now - run.due_at).total_seconds())
