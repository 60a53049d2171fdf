"""A SQLite writer killed with SIGKILL at any instant loses nothing it recorded and
leaves no run half-claimed for ever."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.store.sql import open_url
from test_store import SRC_PATH, T0

# Claims runs in a loop over seven Spaces, finishing every other one, and prints
# each step once it has returned (so once it is committed).
WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import Claim, RunKey, Trigger, open_store

store = open_store(sys.argv[1], config_path=None)
t0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
for n in range(1_000_000):
    slot = t0 + timedelta(minutes=n)
    key = RunKey("nightly", f"acme/{n % 7}", slot)
    got = store.claim(
        key, owner="writer", action="restart", trigger=Trigger.SCHEDULE,
        due_at=slot, lease=timedelta(minutes=1), now=slot,
    )
    assert isinstance(got, Claim), got
    print("claimed", got.run_id, flush=True)
    if n % 2:
        assert store.finish(got, Outcome(OutcomeKind.OK), now=slot)
        print("finished", got.run_id, flush=True)
"""


def run_and_kill(url: str, *, after_lines: int) -> dict[str, set[int]]:
    """Start the writer, SIGKILL it after it printed `after_lines` lines."""
    env = {**os.environ, "PYTHONPATH": str(SRC_PATH)}
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    seen: dict[str, set[int]] = {"claimed": set(), "finished": set()}
    for _ in range(after_lines):
        word, run_id = child.stdout.readline().split()
        seen[word].add(int(run_id))

    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return seen


@pytest.mark.parametrize("after_lines", [1, 97, 400])
def test_a_killed_writer_loses_nothing_and_leaves_leases(
    tmp_path: Path, after_lines: int
) -> None:
    path = tmp_path / "state.db"
    seen = run_and_kill(f"sqlite:///{path}", after_lines=after_lines)

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = "SELECT count(*) FROM runs WHERE state = 'claimed'"
        assert raw.execute(orphans + " AND lease_until IS NULL").fetchone() == (0,)

    store = open_url(f"sqlite:///{path}")
    runs = {run.id: run for run in store.runs(limit=10_000)}
    assert seen["claimed"] <= runs.keys()
    assert all(runs[i].outcome is OutcomeKind.OK for i in seen["finished"])

    # Every run left claimed has a lease, so it ends abandoned once that passes.
    unfinished = {run_id for run_id, run in runs.items() if run.outcome is None}
    abandoned = store.expire(T0 + timedelta(days=3650))
    assert {run.id for run in abandoned} == unfinished
    assert all(run.outcome is not None for run in store.runs(limit=10_000))
    store.close()
