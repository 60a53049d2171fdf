""" "Run now" inside the web process, for `serve` (one-shot deployments).

A manual run goes through the same steps as a scheduled one (a `Dispatcher` on
the store claims it, so it never overlaps a run of another process on the same
Space), keyed by (schedule, Space, now to the second). A schedule-less action
runs under the schedule name `(manual)` with the config's `[defaults]`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spaces_scheduler.acting import CHECK_DEADLINE, check_access, schedule_executor
from spaces_scheduler.action import Action
from spaces_scheduler.config import Schedule
from spaces_scheduler.dispatch import Dispatcher, DueRun, utc_now
from spaces_scheduler.errors import CredentialsError, HubError
from spaces_scheduler.reports import run_row
from spaces_scheduler.store.base import Trigger
from spaces_scheduler.web.views import covers

if TYPE_CHECKING:
    from collections.abc import Callable

    from spaces_scheduler.config import Config
    from spaces_scheduler.hub import HubClient
    from spaces_scheduler.store.base import RunRecord, Store
    from spaces_scheduler.watch import Watcher

log = logging.getLogger(__name__)

MANUAL = "(manual)"
ANSWER_WAIT = 15.0


class InProcessRuns:
    """The `run_now` of `build_app()`, acting through a Hub client in this process.

    Waits up to `answer_wait` seconds for the outcome, then answers `running`
    (the page refreshes until the run ends).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        client: HubClient,
        *,
        answer_wait: float = ANSWER_WAIT,
        clock: Callable[[], datetime] = utc_now,
        poll_first: float = 2.0,
        watcher: Watcher | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.answer_wait = answer_wait
        self.clock = clock
        executor = schedule_executor(client, poll_first=poll_first, watcher=watcher)
        self.dispatcher = Dispatcher(store, executor, clock=clock)

    def __call__(
        self, space: str, schedule: str | None, action: str, request_id: str
    ) -> dict[str, Any]:
        # `build_app()` wraps this in `Idempotent`: one call per request id.
        return self._run(space, schedule, action)

    def _run(
        self, space: str, schedule_name: str | None, action: str
    ) -> dict[str, Any]:
        schedule = self._schedule(space, schedule_name, action)
        self._check_access(space)

        slot = self.clock().replace(microsecond=0)
        due = DueRun(schedule, space, slot, slot, trigger=Trigger.MANUAL)
        log.info("run now: %s %s (%s)", space, schedule.action, schedule.name)
        future = self.dispatcher.dispatch_one(due)
        if future is not None:
            try:
                future.result(timeout=self.answer_wait)
            except FutureTimeout:
                pass  # answered as running; the page shows the outcome later

        record = self._record_of(due)
        if record is None:
            raise ValueError(f"The run of {space} was not recorded; try again.")
        row = run_row(record)
        return {"run_id": record.id, **{k: row[k] for k in _ANSWER_KEYS}}

    def _schedule(self, space: str, name: str | None, action: str) -> Schedule:
        """Return the schedule the run goes under; ValueError for bad input."""
        if name is not None:
            return self._named_schedule(space, name, action)

        if not self._known(space):
            raise ValueError(f"{space} is in no schedule or window of the config.")
        return Schedule(
            name=MANUAL,
            cron="* * * * *",
            spaces=(space,),
            action=Action.from_cli(action),
            policy=self.config.defaults,
        )

    def _named_schedule(self, space: str, name: str, action: str) -> Schedule:
        try:
            schedule = self.config.schedule(name)
        except KeyError:
            raise ValueError(f"No schedule is named {name!r}.") from None
        if not covers(schedule.spaces, space):
            raise ValueError(f"The schedule {name!r} does not name {space}.")
        if not action or action == str(schedule.action):
            return schedule
        return dataclasses.replace(schedule, action=Action.from_cli(action))

    def _known(self, space: str) -> bool:
        entries = [e for s in self.config.schedules for e in s.spaces]
        entries += [e for w in self.config.windows for e in w.spaces]
        return covers(entries, space)

    def _check_access(self, space: str) -> None:
        try:
            check_access(self.client, [space])
        except CredentialsError as exc:
            raise ValueError(str(exc)) from None
        except HubError as exc:
            raise ValueError(f"The token could not be checked: {exc}") from None

    def _record_of(self, due: DueRun) -> RunRecord | None:
        deadline = time.monotonic() + 2.0
        while True:
            for record in self.store.runs(
                space=due.space, schedule=due.schedule.name, limit=20
            ):
                if record.key == due.key:
                    return record
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def close(self) -> None:
        """Let runs in flight end for a moment, then record the rest abandoned."""
        self.dispatcher.shutdown(grace=CHECK_DEADLINE / 12)


_ANSWER_KEYS = ("outcome", "space", "schedule", "action", "reason", "summary")
