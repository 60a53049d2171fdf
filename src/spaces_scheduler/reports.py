"""What `next`, `status` and `history` show, as rows and as lines.

Rows are plain dicts so that `--json` prints them as they are; the text forms are
narrow columns for a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spaces_scheduler.durations import format_duration
from spaces_scheduler.plan import jitter_offset, next_slots, parse_cron
from spaces_scheduler.store.base import DaemonRow, RunRecord

if TYPE_CHECKING:
    from spaces_scheduler.config import Config, Schedule


def iso_utc(moment: datetime) -> str:
    """Return `moment` in UTC as ISO-8601 ending in `Z`."""
    text = moment.astimezone(UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """Return an ISO-8601 instant; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not an ISO-8601 instant such as 2026-12-04T10:00:00Z"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- next ----------------------------------------------------------------------------


def next_rows(config: Config, *, after: datetime, count: int) -> list[dict[str, Any]]:
    """Return the next `count` slots of every schedule after `after`."""
    rows = []
    for schedule in config.schedules:
        spec = parse_cron(schedule.cron)
        for slot in next_slots(spec, schedule.policy.timezone, after, count):
            rows.append(
                {
                    "schedule": schedule.name,
                    "local": slot.local.isoformat(timespec="seconds"),
                    "utc": iso_utc(slot.utc),
                    "shifted": slot.shifted,
                }
            )
    return rows


def next_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    width = max((len(row["schedule"]) for row in rows), default=0)
    lines = []
    for row in rows:
        line = f"{row['schedule']:<{width}}  {row['local']}  {row['utc']}"
        if row["shifted"]:
            line += "  (moved by DST)"
        lines.append(line)
    return lines


# -- history -------------------------------------------------------------------------


def run_row(record: RunRecord) -> dict[str, Any]:
    """Return one run as the JSON of `history --json` and the web API."""
    return {
        "id": record.id,
        "schedule": record.key.schedule,
        "space": record.key.space,
        "slot": iso_utc(record.key.slot),
        "action": record.action,
        "trigger": record.trigger.value,
        "owner": record.owner,
        "outcome": record.outcome.value if record.outcome else "running",
        "reason": record.reason,
        "summary": record.summary,
        "stages": list(record.stages),
        "requests": record.requests,
        "duration": round(record.duration, 3),
        "lateness": round(record.lateness, 3),
        "claimed_at": iso_utc(record.claimed_at),
        "finished_at": iso_utc(record.finished_at) if record.finished_at else None,
        "log_tail": list(record.log_tail),
    }


def history_lines(records: Iterable[RunRecord]) -> list[str]:
    rows = [run_row(record) for record in records]
    space_width = max((len(row["space"]) for row in rows), default=0)
    lines = []
    for row in rows:
        why = "  ".join(part for part in (row["reason"], row["summary"]) if part)
        words = [
            row["slot"],
            f"{row['space']:<{space_width}}",
            row["schedule"],
            row["action"],
            row["outcome"],
            *([why] if why else []),
            f"({format_duration(row['duration'])}, late "
            f"{format_duration(row['lateness'])})",
        ]
        lines.append("  ".join(words))
    return lines


# -- status --------------------------------------------------------------------------


def next_run_of(
    config: Config, space: str, *, now: datetime
) -> tuple[datetime, Schedule] | None:
    """Return the next due instant of `space` over all schedules that name it."""
    best: tuple[datetime, Schedule] | None = None
    for schedule in config.schedules:
        if space not in schedule.spaces and not _matches(schedule, space):
            continue
        spec = parse_cron(schedule.cron)
        upcoming = next_slots(spec, schedule.policy.timezone, now, 1)
        if not upcoming:
            continue
        due = upcoming[0].utc + jitter_offset(
            schedule.name, space, schedule.policy.jitter
        )
        if best is None or due < best[0]:
            best = (due, schedule)
    return best


def _matches(schedule: Schedule, space: str) -> bool:
    import fnmatch

    owner, _, name = space.partition("/")
    for entry in schedule.spaces:
        entry_owner, _, pattern = entry.partition("/")
        if "*" in pattern and entry_owner == owner:
            if fnmatch.fnmatchcase(name, pattern):
                return True
    return False


def status_rows(
    config: Config,
    *,
    latest: dict[tuple[str, str], RunRecord],
    stages: dict[str, tuple[str, datetime]],
    now: datetime,
    live: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Return one row per Space: stage, last run, next run."""
    spaces = _known_spaces(config, latest)
    rows = []
    for space in spaces:
        runs = [r for (_, s), r in latest.items() if s == space]
        last = max(runs, key=lambda r: r.claimed_at, default=None)
        upcoming = next_run_of(config, space, now=now)
        stage, seen = stages.get(space, (None, None))
        if live is not None and space in live:
            stage, seen = live[space], now
        rows.append(
            {
                "space": space,
                "stage": stage,
                "stage_seen": iso_utc(seen) if seen else None,
                "last_run": run_row(last) if last else None,
                "next_run": iso_utc(upcoming[0]) if upcoming else None,
                "next_schedule": upcoming[1].name if upcoming else None,
            }
        )
    return rows


def _known_spaces(
    config: Config, latest: dict[tuple[str, str], RunRecord]
) -> list[str]:
    names = [s for sched in config.schedules for s in sched.spaces if "*" not in s]
    names += [s for window in config.windows for s in window.spaces if "*" not in s]
    names += [space for _, space in latest]
    return sorted(dict.fromkeys(names))


def status_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    width = max((len(row["space"]) for row in rows), default=0)
    lines = []
    for row in rows:
        last = row["last_run"]
        last_text = "never run"
        if last is not None:
            last_text = f"{last['schedule']} {last['outcome']} at {last['claimed_at']}"
            last_text += f" by {last['owner']}"
        upcoming = "none"
        if row["next_run"]:
            upcoming = f"{row['next_schedule']} at {row['next_run']}"
        lines.append(
            f"{row['space']:<{width}}  {row['stage'] or '?':<13}  "
            f"last: {last_text}  next: {upcoming}"
        )
    return lines


# -- daemons -------------------------------------------------------------------------


def daemon_rows(rows: Iterable[DaemonRow], *, now: datetime) -> list[dict[str, Any]]:
    """Return every daemon that shares the store, and whether it is alive."""
    from spaces_scheduler.sharing import alive

    living = {row.owner for row in alive(rows, now)}
    return [
        {
            "owner": row.owner,
            "host": row.host,
            "pid": row.pid,
            "started_at": iso_utc(row.started_at),
            "heartbeat_at": iso_utc(row.heartbeat_at),
            "alive": row.owner in living,
        }
        for row in rows
    ]


def daemon_lines(rows: Sequence[dict[str, Any]], *, now: datetime) -> list[str]:
    """Return one line per daemon: alive or silent, and since when."""
    width = max((len(row["owner"]) for row in rows), default=0)
    lines = []
    for row in rows:
        beat = parse_instant(row["heartbeat_at"])
        ago = format_duration(max(0.0, (now - beat).total_seconds()))
        state = "alive" if row["alive"] else "silent"
        lines.append(
            f"daemon {row['owner']:<{width}}  {state:<6}  last heartbeat {ago} ago"
            f"  (started {row['started_at']})"
        )
    return lines
