"""`spaces-scheduler costs`: hours per hardware flavor, monthly cost and saving,
and the builds each schedule implies.

The hours come from replaying one week of the config from now: window boundaries
and the slots of schedules that change hardware, pause or restart, after a week of
warm-up so the state at the start is the one the config leaves. A PAUSED Space
costs nothing; a Space whose window sets a sleep time is counted as running (the
Hub does not bill a sleeping Space, but how long it sleeps depends on visits), so
its cost is an upper bound. The saving is against running the costliest flavor
the Space uses for the whole week.

Builds per week: the slots of each schedule whose action rebuilds or restarts,
times its Spaces. With `when_changed` a slot builds only when a commit came since
the last one: the rate observed in the store's history (runs that acted against
runs `skipped: unchanged`, over at least a day), or the `--commits-per-day`
assumption, with commits spread at random (Poisson): a slot `d` days after the
previous one builds with probability 1 - exp(-rate * d).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.cli import common_options, load_config, setup
from spaces_scheduler.dispatch import utc_now
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.plan import parse_cron, slots_between

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule, Window
    from spaces_scheduler.hub import Runtime
    from spaces_scheduler.store.base import Store

WEEK = timedelta(days=7)
WEEK_HOURS = 168.0
WEEKS_PER_MONTH = 365.25 / 12 / 7
HISTORY = timedelta(days=28)
MIN_OBSERVED = timedelta(days=1)
PAUSED = "paused"
UNKNOWN = "unknown"

# USD per hour, the Hub's public price list (huggingface.co/pricing), for
# `--offline`; the Hub's own list (`GET /api/spaces/hardware`) is used otherwise.
OFFLINE_PRICES = {
    "cpu-basic": 0.0,
    "cpu-upgrade": 0.03,
    "zero-a10g": 0.0,
    "t4-small": 0.40,
    "t4-medium": 0.60,
    "l4x1": 0.80,
    "l4x4": 3.80,
    "l40sx1": 1.80,
    "l40sx4": 8.30,
    "l40sx8": 23.50,
    "a10g-small": 1.00,
    "a10g-large": 1.50,
    "a10g-largex2": 3.00,
    "a10g-largex4": 5.00,
    "a100-large": 2.50,
}
BUILDING_ACTIONS = frozenset(
    {ActionKind.RESTART, ActionKind.REBUILD, ActionKind.HARDWARE, ActionKind.VARIABLES}
)


@dataclass(frozen=True)
class SpaceCost:
    """What one Space costs under the config."""

    space: str
    hours: dict[str, float]  # flavor (or "paused") -> hours per week
    monthly: float
    always_on: float
    saving: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScheduleBuilds:
    """The builds one schedule implies per week, blind and with when_changed."""

    schedule: str
    spaces: int
    blind: float
    when_changed: float | None
    basis: str


# -- hours and money --------------------------------------------------------------


@dataclass
class _State:
    flavor: str
    paused: bool

    @property
    def key(self) -> str:
        return PAUSED if self.paused else self.flavor


def _apply(state: _State, action: Action, *, window: bool) -> None:
    """Change `state` as the Hub would after `action`."""
    kind = action.kind
    if kind is ActionKind.HARDWARE:
        state.flavor = str(action.hardware)
        # A window brings a paused Space up on its flavor; a schedule's hardware
        # change leaves a paused Space paused, as the Hub does.
        state.paused = state.paused and not window
    elif kind is ActionKind.PAUSE:
        state.paused = True
    elif kind in (ActionKind.RESTART, ActionKind.REBUILD):
        state.paused = False


def _events(
    space: str, config: Config, start: datetime, end: datetime
) -> list[tuple[datetime, Action, bool]]:
    """Return (instant, action, from a window) for `space` in (start, end]."""
    from spaces_scheduler.windows import next_boundary

    found: list[tuple[datetime, Action, bool]] = []
    for window in _windows_over(space, config.windows):
        hours = window.weekly_hours
        moment: datetime | None = start
        while moment is not None and moment <= end:
            action = window.inside if hours.contains(moment) else window.outside
            if action is not None:
                found.append((moment, action, True))
            moment = next_boundary(hours, moment)

    for schedule in _schedules_over(space, config.schedules):
        zone = schedule.policy.timezone
        slots = slots_between(
            parse_cron(schedule.cron), zone, start, end, limit=100_000
        )
        found.extend((slot.utc, schedule.action, False) for slot in slots)
    return sorted(found, key=lambda event: event[0])


def week_hours(
    space: str, config: Config, *, now: datetime, first: _State
) -> tuple[dict[str, float], list[str]]:
    """Return hours per flavor (or paused) over the week from `now`, and notes."""
    state = _State(first.flavor, first.paused)
    hours: dict[str, float] = {}
    moment = now
    for instant, action, window in _events(space, config, now - WEEK, now + WEEK):
        if instant > now:
            span = (instant - moment).total_seconds() / 3600
            hours[state.key] = hours.get(state.key, 0.0) + span
            moment = instant
        _apply(state, action, window=window)
    span = (now + WEEK - moment).total_seconds() / 3600
    hours[state.key] = hours.get(state.key, 0.0) + span

    notes = []
    if hours.get(PAUSED, 0.0) >= WEEK_HOURS - 0.01 and not first.paused:
        notes.append("paused all week: nothing in the config brings it up")
    if _sets_sleep_time(space, config):
        notes.append("sleep time set: the cost is an upper bound")
    return {k: round(v, 2) for k, v in hours.items() if v > 0}, notes


def space_cost(
    space: str,
    config: Config,
    prices: dict[str, float],
    *,
    now: datetime,
    runtime: Runtime | None = None,
) -> SpaceCost:
    """Return the hours, monthly cost and saving of `space`."""
    first = _first_state(runtime)
    hours, notes = week_hours(space, config, now=now, first=first)

    used = [flavor for flavor in hours if flavor != PAUSED]
    missing = sorted(f for f in used if f not in prices and f != UNKNOWN)
    notes += [f"no price for {flavor}" for flavor in missing]
    if UNKNOWN in used:
        notes.append("hardware unknown: without --offline it is read from the Hub")
    weekly = sum(hours[f] * prices.get(f, 0.0) for f in used)
    costliest = max((prices.get(f, 0.0) for f in used), default=0.0)

    monthly = round(weekly * WEEKS_PER_MONTH, 2)
    always_on = round(costliest * WEEK_HOURS * WEEKS_PER_MONTH, 2)
    saving = round(always_on - monthly, 2)
    return SpaceCost(space, hours, monthly, always_on, saving, notes)


def _first_state(runtime: Runtime | None) -> _State:
    if runtime is None:
        return _State(UNKNOWN, paused=False)
    flavor = runtime.requested_hardware or runtime.hardware or UNKNOWN
    return _State(flavor, paused=runtime.stage == "PAUSED")


def _sets_sleep_time(space: str, config: Config) -> bool:
    actions = [
        a for w in _windows_over(space, config.windows) for a in (w.inside, w.outside)
    ]
    actions += [s.action for s in _schedules_over(space, config.schedules)]
    return any(a is not None and a.kind is ActionKind.SLEEP_TIME for a in actions)


def _covers(entries: Iterable[str], space: str) -> bool:
    return any(fnmatch.fnmatchcase(space, entry) for entry in entries)


def _windows_over(space: str, windows: Iterable[Window]) -> list[Window]:
    return [w for w in windows if _covers(w.spaces, space)]


def _schedules_over(space: str, schedules: Iterable[Schedule]) -> list[Schedule]:
    return [s for s in schedules if _covers(s.spaces, space)]


# -- builds -------------------------------------------------------------------------


def schedule_builds(
    schedule: Schedule,
    spaces: int,
    *,
    now: datetime,
    store: Store | None,
    commits_per_day: float | None,
) -> ScheduleBuilds:
    """Return the builds per week of `schedule`, blind and with when_changed."""
    if schedule.action.kind not in BUILDING_ACTIONS:
        return ScheduleBuilds(
            schedule.name, spaces, 0.0, 0.0, "its action builds nothing"
        )

    spec, zone = parse_cron(schedule.cron), schedule.policy.timezone
    slots = [
        s.utc for s in slots_between(spec, zone, now - WEEK, now + WEEK, limit=100_000)
    ]
    week = [moment for moment in slots if moment > now]
    blind = float(len(week) * spaces)

    observed = _observed(schedule, store, now) if schedule.when_changed else None
    if observed is not None:
        acted, days = observed
        return ScheduleBuilds(
            schedule.name,
            spaces,
            blind,
            round(min(blind, acted / days * 7), 1),
            f"observed over {days:.1f} days",
        )
    if commits_per_day is None:
        return ScheduleBuilds(
            schedule.name, spaces, blind, None, "no history: pass --commits-per-day N"
        )

    expected = expected_builds(slots, now, commits_per_day) * spaces
    basis = f"assumed {commits_per_day:g} commits/day"
    return ScheduleBuilds(schedule.name, spaces, blind, round(expected, 1), basis)


def expected_builds(slots: list[datetime], now: datetime, rate: float) -> float:
    """Return the expected builds in the week after `now` at `rate` commits/day."""
    total = 0.0
    for previous, slot in zip(slots, slots[1:], strict=False):
        if slot <= now:
            continue
        days = (slot - previous).total_seconds() / 86400
        total += 1 - math.exp(-rate * days)
    return total


def _observed(
    schedule: Schedule, store: Store | None, now: datetime
) -> tuple[int, float] | None:
    """Return (runs that acted, days observed) of the history, if enough."""
    if store is None:
        return None
    rows = store.runs(schedule=schedule.name, limit=10_000)
    rows = [r for r in rows if r.claimed_at >= now - HISTORY and r.outcome is not None]
    acted = [r for r in rows if r.outcome is not OutcomeKind.SKIPPED]
    unchanged = [
        r for r in rows if r.outcome is OutcomeKind.SKIPPED and r.reason == "unchanged"
    ]
    checked = acted + unchanged
    if not checked:
        return None
    since = min(r.claimed_at for r in checked)
    if now - since < MIN_OBSERVED:
        return None
    return len(acted), (now - since).total_seconds() / 86400


# -- the command ----------------------------------------------------------------------


@dataclass
class Report:
    prices: str
    spaces: list[SpaceCost]
    schedules: list[ScheduleBuilds]


def build_report(
    config: Config,
    *,
    prices: dict[str, float],
    price_source: str,
    spaces: dict[str, Runtime | None],
    schedule_spaces: dict[str, int],
    store: Store | None,
    commits_per_day: float | None,
    now: datetime,
) -> Report:
    """Return the costs of every Space and the builds of every schedule."""
    costs = [
        space_cost(space, config, prices, now=now, runtime=runtime)
        for space, runtime in spaces.items()
    ]
    builds = [
        schedule_builds(
            schedule,
            schedule_spaces.get(schedule.name, len(schedule.spaces)),
            now=now,
            store=store,
            commits_per_day=commits_per_day,
        )
        for schedule in config.schedules
    ]
    return Report(price_source, costs, builds)


def render_text(report: Report) -> str:
    """Return the two tables people read."""
    width = max([len(c.space) for c in report.spaces] + [5])
    lines = [
        f"{'SPACE':<{width}}  {'HOURS/WEEK':<34}  {'$/MONTH':>8}  "
        f"{'ALWAYS ON':>9}  SAVING",
    ]
    for cost in report.spaces:
        hours = ", ".join(f"{k} {v:g}" for k, v in sorted(cost.hours.items()))
        share = f" ({cost.saving / cost.always_on:.0%})" if cost.always_on else ""
        lines.append(
            f"{cost.space:<{width}}  {hours:<34}  {cost.monthly:>8.2f}  "
            f"{cost.always_on:>9.2f}  {cost.saving:.2f}{share}"
        )
        lines += [f"{'':<{width}}  note: {note}" for note in cost.notes]
    lines.append(f"prices: {report.prices}; a month is {WEEKS_PER_MONTH:.3f} weeks")

    width = max([len(b.schedule) for b in report.schedules] + [8])
    lines += [
        "",
        f"{'SCHEDULE':<{width}}  SPACES  BUILDS/WEEK  WITH when_changed  BASIS",
    ]
    for b in report.schedules:
        watched = "-" if b.when_changed is None else f"{b.when_changed:g}"
        lines.append(
            f"{b.schedule:<{width}}  {b.spaces:>6}  {b.blind:>11g}  {watched:>17}  "
            f"{b.basis}"
        )
    return "\n".join(lines)


@click.command("costs")
@click.option(
    "--offline", is_flag=True, help="Built-in public prices; no Hub requests."
)
@click.option(
    "--commits-per-day",
    type=click.FloatRange(min=0),
    help="Assume this commit rate where the history shows none.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@click.option(
    "--token-env", metavar="NAME", help="Read the Hub token from this variable."
)
@common_options
@click.pass_context
def costs_command(
    ctx: click.Context,
    offline: bool,
    commits_per_day: float | None,
    as_json: bool,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Hours per hardware flavor, monthly cost and saving, builds per week."""
    setup(ctx, debug=debug)
    config = load_config(config_file)
    assert config is not None
    now = utc_now().replace(second=0, microsecond=0)

    if offline:
        prices, source = dict(OFFLINE_PRICES), "built-in public prices (--offline)"
        spaces: dict[str, Runtime | None] = {s: None for s in _literal_spaces(config)}
        counts = {s.name: len(s.spaces) for s in config.schedules}
    else:
        prices, source, spaces, counts = _from_hub(config, token_env)

    store = _open_store(config, state_url)
    try:
        report = build_report(
            config,
            prices=prices,
            price_source=source,
            spaces=spaces,
            schedule_spaces=counts,
            store=store,
            commits_per_day=commits_per_day,
            now=now,
        )
    finally:
        if store is not None:
            store.close()
    click.echo(json.dumps(asdict(report), indent=2) if as_json else render_text(report))


def _literal_spaces(config: Config) -> list[str]:
    entries = [s for w in config.windows for s in w.spaces]
    entries += [s for sched in config.schedules for s in sched.spaces]
    return list(dict.fromkeys(entries))


def _from_hub(
    config: Config, token_env: str | None
) -> tuple[dict[str, float], str, dict[str, Runtime | None], dict[str, int]]:
    """Read the price list, expand patterns, and read each Space's runtime."""
    from spaces_scheduler.acting import SpaceResolver, open_hub
    from spaces_scheduler.errors import HubError

    client = open_hub(config, token_env=token_env)
    calls = client.calls(deadline=time.monotonic() + 120)
    prices = calls.hardware_prices()
    resolver = SpaceResolver(client)
    counts = {s.name: len(resolver.expand(s.spaces)) for s in config.schedules}

    spaces: dict[str, Runtime | None] = {}
    for space in resolver.expand(_literal_spaces(config)):
        try:
            spaces[space] = calls.runtime(space)
        except HubError:
            spaces[space] = None  # shown as `unknown` hardware
    return prices, "the Hub's price list", spaces, counts


def _open_store(config: Config, state_url: str | None) -> Store | None:
    """Return the store when there is one to read; costs never creates one."""
    from spaces_scheduler.store import STATE_ENV, default_state_path, open_store

    chosen = state_url or os.environ.get(STATE_ENV)
    if not chosen and not default_state_path(config.path).exists():
        return None
    return open_store(chosen, config_path=config.path)
