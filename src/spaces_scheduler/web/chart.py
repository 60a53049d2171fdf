"""The timeline of runs as inline SVG, drawn on the server.

One stacked bar per time bucket (successes, skips, failures, abandoned runs) and
a dot per bucket for the median time to `RUNNING`, on its own scale at the
right. Every bar carries a `<title>`, so the browser shows a tooltip even with
JavaScript off; `static/app.js` only makes it nicer. No inline styles: the CSP
forbids them, so colours are presentation attributes and CSS classes.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.web.ledger import Point

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 52, 12, 34
SERIES = (
    ("ok", "#2e9e5b", (OutcomeKind.OK,)),
    ("skipped", "#a0a7b4", (OutcomeKind.SKIPPED,)),
    ("failed", "#d64545", (OutcomeKind.FAILED, OutcomeKind.TIMED_OUT)),
    ("abandoned", "#e89b2d", (OutcomeKind.ABANDONED,)),
)
RUNNING_COLOUR = "#3a6fd8"


@dataclass
class Bucket:
    start: float
    counts: dict[str, int] = field(default_factory=dict)
    to_running: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def bucket_seconds(days: int) -> int:
    """Return a bucket size that gives 48 to 112 bars."""
    return 3600 if days <= 4 else 3 * 3600 if days <= 14 else 6 * 3600


def buckets(
    points: list[Point],
    *,
    now: datetime,
    days: int,
    schedule: str = "",
    owner: str = "",
    outcome: str = "",
    space: str = "",
) -> list[Bucket]:
    """Count the points of the last `days` per bucket, filtered."""
    size = bucket_seconds(days)
    end = (int(now.timestamp()) // size + 1) * size
    start = end - days * 86400
    result = [Bucket(float(t)) for t in range(start, end, size)]
    by_series = {kind: name for name, _, kinds in SERIES for kind in kinds}

    first = bisect.bisect_left(points, float(start), key=_claimed_at)
    for point in points[first:]:
        if not _wanted(point, schedule, owner, outcome, space):
            continue
        bucket = result[min(int((point.at - start) // size), len(result) - 1)]
        name = by_series[point.outcome]
        bucket.counts[name] = bucket.counts.get(name, 0) + 1
        if point.to_running is not None:
            bucket.to_running.append(point.to_running)
    return result


def _claimed_at(point: Point) -> float:
    return point.at


def _wanted(point: Point, schedule: str, owner: str, outcome: str, space: str) -> bool:
    if schedule and point.schedule != schedule:
        return False
    if space and point.space != space:
        return False
    if owner and not point.space.startswith(owner + "/"):
        return False
    return not outcome or point.outcome.value == outcome


def timeline_svg(bars: list[Bucket], *, days: int) -> str:
    """Return the SVG of `bars`."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    peak = max((bar.total for bar in bars), default=0) or 1
    medians = [statistics.median(b.to_running) if b.to_running else None for b in bars]
    slowest = max((m for m in medians if m is not None), default=0.0) or 1.0
    step = plot_w / max(len(bars), 1)

    parts = [
        f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(_summary(bars, days))}" '
        'xmlns="http://www.w3.org/2000/svg">',
        *_axes(bars, peak, slowest, step, plot_h, days),
    ]
    for index, bar in enumerate(bars):
        x = LEFT + index * step
        parts.append(_bar(bar, x, step, peak, plot_h, medians[index]))
    parts.append(_running_dots(medians, slowest, step, plot_h))
    parts.append("</svg>")
    return "".join(parts)


def _summary(bars: list[Bucket], days: int) -> str:
    totals = {name: sum(b.counts.get(name, 0) for b in bars) for name, _, _ in SERIES}
    text = ", ".join(f"{count} {name}" for name, count in totals.items())
    return f"Runs over the last {days} days: {text}"


def _axes(
    bars: list[Bucket],
    peak: int,
    slowest: float,
    step: float,
    plot_h: float,
    days: int,
) -> list[str]:
    base = TOP + plot_h
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" '
        f'y2="{base}" stroke="#8a93a3"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">'
        f"{peak}</text>",
        f'<text class="tick" x="{LEFT - 6}" y="{base}" text-anchor="end">0</text>',
        f'<text class="tick running" x="{WIDTH - RIGHT + 6}" y="{TOP + 10}" '
        f'fill="{RUNNING_COLOUR}">{slowest:.0f}s</text>',
    ]
    # A label per day (or per 6 hours on short spans) keeps the axis legible.
    every = 86400 if days > 1 else 6 * 3600
    for index, bar in enumerate(bars):
        if int(bar.start) % every:
            continue
        moment = datetime.fromtimestamp(bar.start, UTC)
        label = moment.strftime("%d %b" if every == 86400 else "%H:%M")
        x = LEFT + index * step
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{base}" '
            'stroke="#d8dce3"/>'
            f'<text class="tick" x="{x:.1f}" y="{base + 16}" text-anchor="middle">'
            f"{label}</text>"
        )
    return parts


def _bar(
    bar: Bucket,
    x: float,
    step: float,
    peak: int,
    plot_h: float,
    median: float | None,
) -> str:
    moment = datetime.fromtimestamp(bar.start, UTC)
    words = ", ".join(f"{bar.counts.get(name, 0)} {name}" for name, _, _ in SERIES)
    tip = f"{moment:%Y-%m-%d %H:%M} UTC: {words}"
    if median is not None:
        tip += f"; median {median:.1f}s to RUNNING"

    width = max(step - 1.5, 1.0)
    y = TOP + plot_h
    rects = []
    for name, colour, _ in SERIES:
        count = bar.counts.get(name, 0)
        if not count:
            continue
        height = plot_h * count / peak
        y -= height
        rects.append(
            f'<rect class="{name}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{height:.1f}" fill="{colour}"/>'
        )
    # A full-height transparent target makes empty and thin bars hoverable too.
    target = (
        f'<rect class="hit" x="{x:.1f}" y="{TOP}" width="{step:.1f}" '
        f'height="{plot_h:.1f}" fill="transparent"/>'
    )
    return (
        f'<g class="bar" data-tip="{escape(tip)}"><title>{escape(tip)}</title>'
        f"{target}{''.join(rects)}</g>"
    )


def _running_dots(
    medians: list[float | None], slowest: float, step: float, plot_h: float
) -> str:
    dots = []
    for index, median in enumerate(medians):
        if median is None:
            continue
        cx = LEFT + index * step + step / 2
        cy = TOP + plot_h - plot_h * median / slowest
        dots.append(
            f'<circle class="to-running" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" '
            f'fill="{RUNNING_COLOUR}"/>'
        )
    return f'<g class="running-series">{"".join(dots)}</g>'


def span_days(text: str | None, *, default: int = 3) -> int:
    """Return the `days` query value, clamped to 1..14."""
    try:
        value = int(text) if text else default
    except ValueError:
        return default
    return min(max(value, 1), 14)
