"""`spaces-scheduler check`: what is risky in a config, and what was missed.

The warnings need no Hub: they read the cron expressions. The access check asks
the Hub once for the token and once per Space.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from spaces_scheduler.durations import format_duration
from spaces_scheduler.errors import HubError, NotFoundError
from spaces_scheduler.plan import next_slots, parse_cron, slots_between

if TYPE_CHECKING:
    from spaces_scheduler.acting import SpaceResolver
    from spaces_scheduler.config import Config, Schedule
    from spaces_scheduler.hub import HubClient
    from spaces_scheduler.store.base import Store

GITHUB_FLOOR = timedelta(minutes=5)
# Requests a verified run costs at most: runtime read, action, ~8 polls.
REQUESTS_PER_RUN = 10
_FIELDS = (("minute", 60), ("hour", 24), ("day of month", 31), ("month", 12))


@dataclass(frozen=True)
class Finding:
    """One line of `check`: a warning, or a problem that makes it exit 1."""

    subject: str
    text: str
    problem: bool = False

    def line(self) -> str:
        kind = "problem" if self.problem else "warning"
        return f"{kind}: {self.subject}: {self.text}"


def schedule_warnings(config: Config, *, now: datetime) -> list[Finding]:
    """Return the risky traits of every schedule."""
    findings = []
    if not config.schedules and not config.windows:
        findings.append(
            Finding(
                str(config.path), "has no [[schedule]] and no [[window]]: nothing to do"
            )
        )
    for schedule in config.schedules:
        findings.extend(_warnings_of(schedule, now=now))
    findings.extend(_window_warnings(config))
    findings.extend(_budget_warnings(config, now=now))
    return findings


def _window_warnings(config: Config) -> list[Finding]:
    """Warn of windows that pause a Space and never bring it back up."""
    from spaces_scheduler.action import ActionKind

    findings = []
    for window in config.windows:
        kinds = {a.kind for a in (window.inside, window.outside) if a is not None}
        if ActionKind.PAUSE in kinds and ActionKind.HARDWARE not in kinds:
            findings.append(
                Finding(
                    f'window "{window.name}"',
                    "pauses its Spaces and nothing in it brings them up again (a "
                    "sleep time does not restart a paused Space); use { hardware "
                    "= FLAVOR } for the other side, or a schedule that wakes them",
                )
            )
    return findings


def _warnings_of(schedule: Schedule, *, now: datetime) -> list[Finding]:
    subject = f'schedule "{schedule.name}"'
    spec = parse_cron(schedule.cron)
    fields = spec.text.split()
    found: list[str] = []

    interval = _shortest_interval(schedule, now=now)
    if interval is not None and interval < schedule.policy.min_interval:
        found.append(
            f"fires every {format_duration(interval)}, more often than its "
            f"min_interval ({format_duration(schedule.policy.min_interval)}); "
            "the runs in between are skipped"
        )
    if interval is not None and interval < GITHUB_FLOOR:
        found.append(
            f"fires every {format_duration(interval)}; if deployed to GitHub "
            "Actions, note that it runs schedules at most every 5 minutes"
        )
    if fields[0] == "0":
        found.append(
            "fires at minute 0, when hosted schedulers are busiest and most late; "
            "prefer an odd minute such as 7"
        )
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        found.append(
            "restricts both day of month and day of week: cron fires when EITHER "
            "matches, not both"
        )
    found.extend(_uneven_steps(fields))
    if not spec.portable:
        found.append("uses L, W or #, which GitHub, Kubernetes and systemd lack")
    return [Finding(subject, text) for text in found]


def _shortest_interval(schedule: Schedule, *, now: datetime) -> timedelta | None:
    spec = parse_cron(schedule.cron)
    slots = next_slots(spec, schedule.policy.timezone, now, 50)
    gaps = [b.utc - a.utc for a, b in zip(slots, slots[1:], strict=False)]
    return min(gaps, default=None)


def _uneven_steps(fields: list[str]) -> list[str]:
    found = []
    for text, (name, size) in zip(fields, _FIELDS, strict=False):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step.isdigit() and base == "*" and size % int(step):
                found.append(
                    f"{name} step {part!r} does not divide {size}: the gap at the "
                    "end of each cycle is shorter"
                )
    return found


def _budget_warnings(config: Config, *, now: datetime) -> list[Finding]:
    """Warn when the runs due in one 5-minute window may exceed the budget."""
    counts: dict[datetime, int] = {}
    horizon = now + timedelta(days=7)
    for schedule in config.schedules:
        spec = parse_cron(schedule.cron)
        slots = slots_between(spec, schedule.policy.timezone, now, horizon, limit=3000)
        for slot in slots:
            window = slot.utc.replace(minute=slot.utc.minute // 5 * 5, second=0)
            counts[window] = counts.get(window, 0) + len(schedule.spaces)

    peak = max(counts.values(), default=0) * REQUESTS_PER_RUN
    budget = config.hub.requests_per_5min
    if peak <= budget:
        return []
    return [
        Finding(
            "[hub] requests_per_5min",
            f"up to {peak} Hub requests may fall in one 5-minute window at peak, "
            f"over the budget of {budget}; runs will wait for room",
        )
    ]


def access_findings(
    client: HubClient, resolver: SpaceResolver, config: Config
) -> list[Finding]:
    """Check that each Space exists and that the token may manage it."""
    deadline = time.monotonic() + 120
    identity = client.identity(deadline=deadline)
    findings = []
    checked: set[str] = set()
    for entry in _entries(config):
        spaces = resolver.expand([entry])
        if "*" in entry and not spaces:
            findings.append(Finding(entry, "the pattern matches no Space"))
        for space in spaces:
            if space in checked:
                continue  # named and matched by a pattern too: one line
            checked.add(space)
            finding = _space_finding(client, identity.may_manage(space), space)
            if finding is not None:
                findings.append(finding)
    return findings


def _entries(config: Config) -> list[str]:
    entries = [e for s in config.schedules for e in s.spaces]
    entries += [e for w in config.windows for e in w.spaces]
    return list(dict.fromkeys(entries))


def _space_finding(client: HubClient, may_manage: bool, space: str) -> Finding | None:
    if not may_manage:
        return Finding(
            space,
            "the token may not manage this Space (read-only, or neither the "
            "owner nor a member of its organisation): use a write token of the owner",
            problem=True,
        )
    try:
        client.calls(deadline=time.monotonic() + 60).runtime(space)
    except NotFoundError:
        return Finding(space, "no such Space, or the token cannot see it", problem=True)
    except HubError as exc:
        return Finding(space, f"could not be read: {exc}", problem=True)
    return None


def missed_findings(
    config: Config,
    store: Store,
    *,
    spaces_of: dict[str, list[str]],
    now: datetime,
) -> list[Finding]:
    """Report slots whose grace passed with no run recorded (the dead-man's switch)."""
    first_seen = store.first_seen()
    last_slots = store.last_slots()
    findings = []
    for schedule in config.schedules:
        seen = first_seen.get(schedule.name)
        if seen is None:
            continue
        spec = parse_cron(schedule.cron)
        until = now - schedule.policy.misfire_grace
        for space in spaces_of.get(schedule.name, []):
            since = max(last_slots.get((schedule.name, space), seen), seen)
            missed = slots_between(spec, schedule.policy.timezone, since, until)
            if missed:
                findings.append(
                    Finding(
                        f"{space} ({schedule.name})",
                        f"{len(missed)} slot(s) passed with no run, the last at "
                        f"{missed[-1].utc.isoformat()}",
                        problem=True,
                    )
                )
    return findings
