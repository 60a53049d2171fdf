"""`run --once`: fire what is due and exit, for external schedulers.

GitHub Actions may deliver a schedule hours late or drop it, so `misfire_grace`
does not apply here. With state, the due slots of a (schedule, Space) are those
after its last recorded slot up to now: the newest runs, the others are recorded
`skipped: coalesced`. With no state, the newest slot within `misfire_grace` runs;
with `--at CRON` (what GitHub passes as `github.event.schedule`) the newest slot
of the matching schedules runs even with no state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from spaces_scheduler.dispatch import Dispatcher, DueRun
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.outcome import Outcome
from spaces_scheduler.plan import (
    CatchUp,
    Slot,
    newest_slot_at_or_before,
    normalise_cron,
    one_shot_catch_up,
    parse_cron,
    slots_between,
)

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule

# Recording every coalesced slot of a long gap would write thousands of rows
# for a minute schedule; older slots than this are passed over silently.
BACKFILL = timedelta(days=7)
BACKFILL_SLOTS = 1000


@dataclass(frozen=True)
class Selection:
    """What `run --once` restricts itself to."""

    at: str | None = None
    schedule: str | None = None
    space: str | None = None
    # Also the others' slots missed since their last recorded one (with state
    # only): a platform that dropped or cancelled a run is caught up by the
    # next run of any schedule, not only by the next of its own cron.
    catch_up: bool = False


def select_schedules(config: Config, selection: Selection) -> list[Schedule]:
    """Return the schedules `--at` and `--schedule` leave; ConfigError if none."""
    schedules = list(config.schedules)
    if selection.schedule is not None:
        schedules = [s for s in schedules if s.name == selection.schedule]
        if not schedules:
            names = ", ".join(s.name for s in config.schedules) or "none"
            raise ConfigError(
                [
                    f"{config.path}: no schedule is named {selection.schedule!r}; "
                    f"the schedules are: {names}."
                ]
            )

    if selection.at is not None:
        wanted = _normalised(selection.at, config)
        schedules = [s for s in schedules if normalise_cron(s.cron) == wanted]
        if not schedules:
            raise ConfigError(
                [
                    f"{config.path}: no schedule has the cron {selection.at!r} "
                    "(--at); regenerate the workflow with `spaces-scheduler "
                    "deploy github`."
                ]
            )
    return schedules


def _normalised(text: str, config: Config) -> str:
    try:
        return normalise_cron(text)
    except ValueError as exc:
        raise ConfigError([f"--at {text!r}: {exc}."]) from exc


def due_runs(
    schedules: Iterable[Schedule],
    spaces_of: Callable[[Schedule], list[str]],
    last_slots: dict[tuple[str, str], datetime],
    *,
    now: datetime,
    at: bool,
    with_state_only: bool = False,
) -> tuple[list[DueRun], list[tuple[DueRun, str]]]:
    """Return the runs to make now and the slots to record as skipped.

    `with_state_only` leaves out the (schedule, Space) pairs never recorded.
    """
    runs: list[DueRun] = []
    skipped: list[tuple[DueRun, str]] = []
    for schedule in schedules:
        for space in spaces_of(schedule):
            last = last_slots.get((schedule.name, space))
            if last is None and with_state_only:
                continue
            decision = _catch_up(schedule, last, now=now, at=at)
            runs.extend(_as_runs(schedule, space, decision))
            skipped.extend(
                (_due(schedule, space, slot), reason)
                for slot, reason in decision.skipped
            )
    return runs, skipped


def _catch_up(
    schedule: Schedule, last: datetime | None, *, now: datetime, at: bool
) -> CatchUp:
    spec = parse_cron(schedule.cron)
    zone = schedule.policy.timezone
    if last is None:
        newest = newest_slot_at_or_before(spec, zone, now)
        grace = schedule.policy.misfire_grace
        if newest is None or (not at and now - newest.utc > grace):
            return CatchUp(run=None, skipped=())
        return CatchUp(run=newest, skipped=())

    since = max(last, now - BACKFILL)
    missed = slots_between(spec, zone, since, now, limit=100_000)
    return one_shot_catch_up(missed[-BACKFILL_SLOTS:])


def _as_runs(schedule: Schedule, space: str, decision: CatchUp) -> list[DueRun]:
    if decision.run is None:
        return []
    return [_due(schedule, space, decision.run)]


def _due(schedule: Schedule, space: str, slot: Slot) -> DueRun:
    # The external scheduler decides when we start; jitter is the daemon's.
    return DueRun(schedule, space, slot.utc, slot.utc)


def fire(
    dispatcher: Dispatcher,
    runs: list[DueRun],
    skipped: list[tuple[DueRun, str]],
) -> None:
    """Record the skipped slots, run the due ones, and wait for them all."""
    for run, reason in skipped:
        dispatcher.skip(run, Outcome.skipped(reason))
    dispatcher.dispatch(runs)
    dispatcher.wait()
