"""`when_changed` against the simulated Hub: skip while unchanged, act once after
a commit, one read per repository per tick, the README-less fallback, and the
failure of a repository that cannot be read."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spaces_scheduler.acting import schedule_executor
from spaces_scheduler.cli import main
from spaces_scheduler.config import Config, parse_config
from spaces_scheduler.dispatch import Dispatcher, DueRun, Finished
from spaces_scheduler.hub import HubClient, RequestBudget
from spaces_scheduler.store import open_store
from spaces_scheduler.store.base import Store
from spaces_scheduler.watch import HeadCache, Watcher, split_watched

from support import ALICE_TOKEN, alice_world, fast

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PROMPTS = "1" * 40


def config_text(spaces: list[str], watched: list[str]) -> str:
    return f"""
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
min_interval = "0s"
jitter = "0s"

[[schedule]]
name = "refresh"
cron = "* * * * *"
spaces = {spaces!r}
action = "restart"
when_changed = {watched!r}
""".replace("'", '"')


def world(*spaces: str, **extra: Any) -> dict[str, object]:
    base = alice_world(*(fast(space) for space in spaces))
    base["dataset"] = [
        {"id": "alice/prompts", "sha": PROMPTS},
        {"id": "alice/raw", "readme": False},
        {"id": "bob/secret", "private": True},
    ]
    base.update(extra)
    return base


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Ticks:
    """Runs slots of one config's schedule through the real executor and Hub."""

    config: Config
    store: Store
    sim: Any
    clock: FakeClock = field(default_factory=FakeClock)
    finished: list[Finished] = field(default_factory=list)

    def __post_init__(self) -> None:
        client = HubClient(
            token=ALICE_TOKEN, endpoint=self.sim.url, budget=RequestBudget(10_000)
        )
        self.watcher = Watcher(HeadCache(client, clock=self.clock), self.store)
        executor = schedule_executor(client, poll_first=0.05, watcher=self.watcher)
        self.dispatcher = Dispatcher(
            self.store, executor, owner="test", on_finished=self.finished.append
        )

    def tick(self, slot: datetime) -> list[str]:
        """Run every Space of the schedule for `slot`; return their outcome lines."""
        self.clock.now += 61  # a new tick: the cached heads are stale
        self.finished.clear()
        schedule = self.config.schedules[0]
        runs = [DueRun(schedule, space, slot, slot) for space in schedule.spaces]
        self.dispatcher.dispatch(runs)
        assert self.dispatcher.wait(30)
        return sorted(f.outcome.line() for f in self.finished)


@pytest.fixture
def ticks(tmp_path: Path, start_sim: Any) -> Iterator[Any]:
    stores: list[Store] = []

    def make(spaces: list[str], watched: list[str], **extra: Any) -> Ticks:
        sim = start_sim(world(*spaces, **extra))
        text = config_text(spaces, watched)
        path = tmp_path / "spaces.toml"
        path.write_text(text)
        store = open_store(f"sqlite:///{tmp_path}/state.db", config_path=path)
        stores.append(store)
        return Ticks(parse_config(text, path), store, sim)

    yield make
    for store in stores:
        store.close()


def head_reads(sim: Any, repo: str) -> list[tuple[str, str, int]]:
    return [
        (r["method"], r["path"], r["status"])
        for r in sim.requests()
        if repo in r["path"] and r["method"] in ("HEAD", "GET")
    ]


def restarts(sim: Any) -> int:
    return sum(1 for r in sim.requests() if r["path"].endswith("/restart"))


def test_split_watched_defaults_to_main() -> None:
    assert split_watched("datasets/a/b") == ("datasets/a/b", "main")
    assert split_watched("models/a/b@v2") == ("models/a/b", "v2")


def test_skips_while_unchanged_and_acts_once_after_a_commit(ticks: Any) -> None:
    t = ticks(["alice/a"], ["datasets/alice/prompts"])

    first = t.tick(T0)
    second = t.tick(T0 + MINUTE)
    new_sha = t.sim.commit("datasets/alice/prompts")
    third = t.tick(T0 + 2 * MINUTE)
    fourth = t.tick(T0 + 3 * MINUTE)

    assert first[0].startswith("ok") and "(first run)" in first[0]
    assert second == [f"skipped: unchanged  datasets/alice/prompts at {PROMPTS[:7]}"]
    assert third[0].startswith("ok")
    assert "new commit in datasets/alice/prompts" in third[0]
    assert fourth == [f"skipped: unchanged  datasets/alice/prompts at {new_sha[:7]}"]
    assert restarts(t.sim) == 2
    assert t.store.seen_commits("refresh", "alice/a") == {
        "datasets/alice/prompts": new_sha
    }


def test_one_read_per_repository_per_tick_for_twenty_spaces(ticks: Any) -> None:
    spaces = [f"alice/dash-{n:02d}" for n in range(20)]
    t = ticks(spaces, ["datasets/alice/prompts"])

    first = t.tick(T0)
    reads_first = head_reads(t.sim, "alice/prompts")
    second = t.tick(T0 + MINUTE)

    assert all(line.startswith("ok") for line in first) and len(first) == 20
    assert reads_first == [
        ("HEAD", "/datasets/alice/prompts/resolve/main/README.md", 200)
    ]
    unchanged = f"skipped: unchanged  datasets/alice/prompts at {PROMPTS[:7]}"
    assert second == [unchanged] * 20
    assert len(head_reads(t.sim, "alice/prompts")) == 2
    assert restarts(t.sim) == 20


def test_a_dataset_without_readme_falls_back_to_repository_info(ticks: Any) -> None:
    t = ticks(["alice/a"], ["datasets/alice/raw"])

    first = t.tick(T0)
    second = t.tick(T0 + MINUTE)

    assert first[0].startswith("ok")
    assert second[0].startswith("skipped: unchanged")
    reads = head_reads(t.sim, "alice/raw")
    assert reads == [
        ("HEAD", "/datasets/alice/raw/resolve/main/README.md", 404),
        ("GET", "/api/datasets/alice/raw", 200),
        # Known to have no README: the next tick asks the API alone.
        ("GET", "/api/datasets/alice/raw", 200),
    ]


@pytest.mark.parametrize("repo", ["datasets/alice/gone", "datasets/bob/secret"])
def test_a_repository_that_cannot_be_read_fails_the_run(ticks: Any, repo: str) -> None:
    t = ticks(["alice/a"], ["datasets/alice/prompts", repo])

    lines = t.tick(T0)

    assert lines[0].startswith("failed  when_changed:")
    assert "404" in lines[0]
    assert restarts(t.sim) == 0
    assert t.store.seen_commits("refresh", "alice/a") == {}


def test_a_failed_refresh_does_not_count_as_seen(ticks: Any) -> None:
    t = ticks(["alice/a"], ["datasets/alice/prompts"])
    t.sim.set_space("alice/a", build_error="boom", fixed_by_factory=False)

    first = t.tick(T0)
    t.sim.set_space("alice/a", build_error=None)
    second = t.tick(T0 + MINUTE)

    assert first[0].startswith("failed")
    assert second[0].startswith("ok")


def test_a_skip_does_not_count_for_min_interval(ticks: Any) -> None:
    t = ticks(["alice/a"], ["datasets/alice/prompts"])
    t.tick(T0)
    t.tick(T0 + MINUTE)

    rows = t.store.runs(space="alice/a")
    acted = t.store.last_acted_at("alice/a")

    assert [r.reason for r in rows] == ["unchanged", ""]
    assert acted == rows[1].claimed_at


def test_run_once_skips_an_unchanged_dataset(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(world("alice/a"))
    path = tmp_path / "spaces.toml"
    path.write_text(config_text(["alice/a"], ["datasets/alice/prompts"]))
    env = {"HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}
    store = open_store(None, config_path=path)
    now = datetime.now(UTC)
    store.save_seen_commits(
        "refresh", "alice/a", {"datasets/alice/prompts": PROMPTS}, now
    )
    store.close()

    result = CliRunner().invoke(main, ["run", "--once", "--config", str(path)], env=env)

    assert result.exit_code == 0, result.output
    assert "skipped: unchanged" in result.output
    assert restarts(sim) == 0
    db = sqlite3.connect(tmp_path / ".spaces-scheduler" / "state.db")
    assert db.execute("select count(*) from runs").fetchone() == (1,)
