"""How fast the Space list renders for 1,000 Spaces and 100,000 runs.

The page is rendered in-process through the ASGI app (no network), 20 times;
the median is printed next to the median of the store queries a naive page
would make (`latest_runs()` + `stages()`), as a ratio. The target is 200 ms.

Rows are written with one bulk INSERT (the store's `claim()`/`finish()` would
take minutes for 100,000 runs); the dashboard reads them through the store's
public methods only. The run history is read once cold (printed apart), then
each render reads what is new, as a long-lived daemon or `serve` does.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from starlette.testclient import TestClient

from spaces_scheduler.config import parse_config
from spaces_scheduler.store import open_store
from spaces_scheduler.store import schema as tables
from spaces_scheduler.store.base import Store
from spaces_scheduler.web import build_app

SPACES = 1000
RUNS = 100_000
SCHEDULES = 10
REPEAT = 20
TARGET = 0.200
OUTCOMES = (["ok"] * 80) + (["skipped"] * 12) + (["failed"] * 6) + ["timed-out"] * 2


def space_name(index: int) -> str:
    return f"org{index % 20:02d}/dashboard-{index:04d}"


def config_text() -> str:
    parts = []
    for number in range(SCHEDULES):
        spaces = [space_name(i) for i in range(SPACES) if i % SCHEDULES == number]
        parts.append(
            f'[[schedule]]\nname = "refresh-{number}"\n'
            f'cron = "{number * 5 + 1} * * * *"\n'
            f'spaces = {json.dumps(spaces)}\naction = "restart"\n'
        )
    return "\n".join(parts)


def fill(store: Store, now: datetime) -> None:
    """Write RUNS finished runs over the last week, one Space after another."""
    rnd = random.Random(7)
    step = timedelta(days=7) / RUNS
    rows = []
    for index in range(RUNS):
        space = index % SPACES
        slot = now - timedelta(days=7) + step * index
        outcome = rnd.choice(OUTCOMES)
        acted = outcome != "skipped"
        duration = rnd.uniform(20, 200) if acted else 0.0
        rows.append(
            {
                "schedule": f"refresh-{space % SCHEDULES}",
                "space": space_name(space),
                "slot": slot,
                "action": "restart",
                "trigger": "schedule",
                "owner": "bench",
                "due_at": slot,
                "claimed_at": slot + timedelta(seconds=rnd.uniform(0, 5)),
                "finished_at": slot + timedelta(seconds=duration + 5),
                "lease_until": None,
                "state": "done",
                "outcome": outcome,
                "reason": "BUILD_ERROR: exit 1" if outcome == "failed" else "",
                "summary": f"RUNNING after {duration:.1f}s" if outcome == "ok" else "",
                "stages": json.dumps(["BUILDING", "RUNNING"] if acted else []),
                "requests": 6 if acted else 0,
                "duration": duration,
                "log_tail": "[]",
                "escalated": False,
            }
        )
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(tables.runs), rows)
    for index in range(SPACES):
        store.save_stage(space_name(index), "RUNNING", now)


def median_of(action: Callable[[], object], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-web-"))
    store = open_store(f"sqlite:///{folder}/state.db", config_path=None)
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    fill(store, now)
    took = time.perf_counter() - started
    print(f"wrote {RUNS:,} runs over {SPACES:,} Spaces in {took:.1f}s")

    config = parse_config(config_text(), folder / "spaces.toml")
    app = build_app(config=config, store=store)
    ledger = app.state.web.ledger
    ledger.min_interval = 0.0  # every render reads the store, none is served cached
    client = TestClient(app, base_url="http://127.0.0.1")

    started = time.perf_counter()
    first = client.get("/")
    cold = time.perf_counter() - started
    assert first.status_code == 200 and first.text.count("/spaces/org") >= SPACES

    query = median_of(lambda: (store.latest_runs(), store.stages()))
    refresh = median_of(ledger.view)
    render = median_of(lambda: client.get("/"))
    api = median_of(lambda: client.get("/api/spaces"))
    metrics = median_of(lambda: client.get("/metrics"))

    print(f"cold first render (reads all {RUNS:,} runs once): {cold * 1000:8.1f} ms")
    print(f"store query alone, latest_runs() + stages():     {query * 1000:8.1f} ms")
    print(f"history refresh (new rows only):                 {refresh * 1000:8.1f} ms")
    print(
        f"Space list page, rendered (median of {REPEAT}):       {render * 1000:8.1f} ms"
    )
    print(f"  ratio page / store query: {render / query:.2f}")
    print(f"/api/spaces: {api * 1000:.1f} ms   /metrics: {metrics * 1000:.1f} ms")
    verdict = "meets" if render < TARGET else "MISSES"
    print(f"{verdict} the target of {TARGET * 1000:.0f} ms for the page")
    store.close()


if __name__ == "__main__":
    main()
