"""`/metrics` in the Prometheus text format (version 0.0.4), written by hand.

Run counts and histograms come from the store (through the ledger) at scrape
time, so `serve` reports what the daemons recorded; Hub traffic is this
process's own (`hub.STATS`): under `serve` it counts only the "run now" runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from spaces_scheduler.hub import STATS
from spaces_scheduler.web.ledger import Histogram, LedgerView

if TYPE_CHECKING:
    from spaces_scheduler.store.base import DaemonRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "spaces_scheduler"


def escape_label(value: str) -> str:
    """Escape a label value as the text format requires."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """Format a sample value: integers plainly, infinities as +Inf/-Inf."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{key}="{escape_label(value)}"' for key, value in pairs.items())
    return "{" + inner + "}"


class Exposition:
    """Collects metric families and renders them once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> str:
        full = f"{PREFIX}_{name}"
        self.lines.append(f"# HELP {full} {help_text}")
        self.lines.append(f"# TYPE {full} {kind}")
        return full

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {number(value)}")

    def histogram(
        self, name: str, labels: Mapping[str, str], histogram: Histogram
    ) -> None:
        for bound, count in zip(histogram.bounds, histogram.cumulative(), strict=True):
            self.sample(f"{name}_bucket", {**labels, "le": number(bound)}, count)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, histogram.count)
        self.sample(f"{name}_sum", labels, histogram.total)
        self.sample(f"{name}_count", labels, histogram.count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    ledger: LedgerView,
    *,
    next_fires: Mapping[str, datetime],
    daemons: Iterable[DaemonRow],
    now: datetime,
) -> str:
    """Return the whole exposition."""
    out = Exposition()
    _runs(out, ledger)
    _hub(out)
    _schedules(out, next_fires, now)
    _spaces(out, ledger)
    _daemons(out, daemons, now)
    return out.text()


def _runs(out: Exposition, ledger: LedgerView) -> None:
    name = out.family(
        "runs_total", "counter", "Finished runs by schedule, action and outcome."
    )
    for (schedule, action, outcome), count in sorted(ledger.totals.items()):
        labels = {"schedule": schedule, "action": action, "outcome": outcome}
        out.sample(name, labels, count)

    name = out.family(
        "run_duration_seconds",
        "histogram",
        "Seconds from the first request to the verified end, of runs that acted.",
    )
    for (schedule, action), histogram in sorted(ledger.durations.items()):
        out.histogram(name, {"schedule": schedule, "action": action}, histogram)

    name = out.family(
        "run_lateness_seconds",
        "histogram",
        "Seconds from a run's due instant to its claim, of runs that acted.",
    )
    for schedule, histogram in sorted(ledger.lateness.items()):
        out.histogram(name, {"schedule": schedule}, histogram)

    name = out.family("runs_in_flight", "gauge", "Runs claimed and not finished.")
    out.sample(name, {}, ledger.in_flight)


def _hub(out: Exposition) -> None:
    # Read without the client's lock: a scrape a request behind is harmless.
    name = out.family(
        "hub_requests_total", "counter", "Hub requests made by this process."
    )
    out.sample(name, {}, STATS.requests)
    name = out.family(
        "hub_rate_limited_total", "counter", "Hub answers 429 to this process."
    )
    out.sample(name, {}, STATS.rate_limited)
    name = out.family(
        "hub_server_errors_total", "counter", "Hub answers 5xx to this process."
    )
    out.sample(name, {}, STATS.server_errors)
    name = out.family(
        "hub_responses_total", "counter", "Hub answers to this process by status."
    )
    for status, count in sorted(dict(STATS.by_status).items()):
        out.sample(name, {"status": str(status)}, count)


def _schedules(
    out: Exposition, next_fires: Mapping[str, datetime], now: datetime
) -> None:
    name = out.family(
        "next_fire_seconds",
        "gauge",
        "Seconds until each schedule's next slot (before jitter).",
    )
    for schedule, moment in sorted(next_fires.items()):
        out.sample(
            name, {"schedule": schedule}, round((moment - now).total_seconds(), 3)
        )


def _spaces(out: Exposition, ledger: LedgerView) -> None:
    name = out.family(
        "consecutive_failures",
        "gauge",
        "Failed or timed-out runs of each Space since its last ok run.",
    )
    for space, count in sorted(ledger.streaks.items()):
        out.sample(name, {"space": space}, count)


def _daemons(out: Exposition, daemons: Iterable[DaemonRow], now: datetime) -> None:
    name = out.family(
        "daemon_heartbeat_age_seconds",
        "gauge",
        "Seconds since each daemon sharing the store last said it was alive.",
    )
    for row in daemons:
        age = round((now - row.heartbeat_at).total_seconds(), 3)
        out.sample(name, {"owner": row.owner}, age)
