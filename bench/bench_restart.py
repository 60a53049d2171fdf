"""Restarts against the simulated Hub, next to plain huggingface_hub scripts.

(a) whole-process time of `spaces-scheduler restart X --no-wait` next to a
    script that calls `HfApi().restart_space(X)`;
(b) 1,000 restarts with 50 ms of latency per request, next to a sequential
    loop of `restart_space` calls; then against a small quota with a short
    window, where the right result is pacing without a single 429;
(c) Hub requests spent per verified restart of a Space that builds for 60 s.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.common import BIN, hub_env, hub_sim, median, report, sim_requests, timed
from bench.common import world_toml as world

SCRIPT_ONE = "from huggingface_hub import HfApi; HfApi().restart_space({space!r})"
SCRIPT_LOOP = """
import sys
from huggingface_hub import HfApi
api = HfApi()
for space in sys.argv[1:]:
    api.restart_space(space)
"""
CONFIG = """
[hub]
requests_per_5min = {budget}
concurrency = {concurrency}
poll = "{poll}"

[defaults]
if_busy = "act"
"""


def single_restart(runs: int = 15) -> None:
    scheduler = str(BIN / "spaces-scheduler")
    with hub_sim(world(["bench/one"])) as url, tempfile.TemporaryDirectory() as home:
        env = hub_env(url, home)
        script = SCRIPT_ONE.format(space="bench/one")
        ours, plain = [], []
        for _ in range(runs):
            plain.append(timed([sys.executable, "-c", script], env, cwd=home))
            ours.append(
                timed([scheduler, "restart", "bench/one", "--no-wait"], env, cwd=home)
            )

    ratio = median(ours) / median(plain)
    report(
        "(a) one restart --no-wait, whole process (median of 15)",
        [
            ("HfApi().restart_space script", f"{median(plain):.3f}s"),
            ("spaces-scheduler restart", f"{median(ours):.3f}s"),
            ("ratio (target <= 1.25)", f"{ratio:.2f}x"),
        ],
    )


def fleet(count: int = 1000, latency: float = 0.05) -> None:
    spaces = [f"bench/space-{n:04d}" for n in range(count)]
    scheduler = str(BIN / "spaces-scheduler")
    with (
        hub_sim(world(spaces, latency=latency)) as url,
        tempfile.TemporaryDirectory() as home,
    ):
        env = hub_env(url, home)
        loop = timed([sys.executable, "-c", SCRIPT_LOOP, *spaces], env, cwd=home)

        config = Path(home, "spaces.toml")
        config.write_text(CONFIG.format(budget=6000, concurrency=32, poll="2s"))
        before = len(sim_requests(url))
        ours = timed(
            [scheduler, "restart", *spaces, "--no-wait", "--config", str(config)],
            env,
            cwd=home,
        )
        sent = sim_requests(url)[before:]

    limited = sum(1 for row in sent if row["status"] == 429)
    report(
        f"(b) {count} restarts, {latency * 1000:.0f} ms latency, budget 6000/5min",
        [
            ("sequential restart_space loop", f"{loop:.2f}s"),
            ("spaces-scheduler, concurrency 32", f"{ours:.2f}s"),
            ("speed-up (target >= 20x)", f"{loop / ours:.1f}x"),
            ("requests sent / 429s", f"{len(sent)} / {limited}"),
        ],
    )


def small_quota(count: int = 150, quota: int = 100, window: float = 5.0) -> None:
    spaces = [f"bench/space-{n:04d}" for n in range(count)]
    scheduler = str(BIN / "spaces-scheduler")
    hub = world(spaces, quota=quota, window=window, latency=0.01)
    with hub_sim(hub) as url, tempfile.TemporaryDirectory() as home:
        env = hub_env(url, home)
        config = Path(home, "spaces.toml")
        config.write_text(CONFIG.format(budget=6000, concurrency=32, poll="2s"))
        took = timed(
            [scheduler, "restart", *spaces, "--no-wait", "--config", str(config)],
            env,
            cwd=home,
        )
        sent = sim_requests(url)

    limited = sum(1 for row in sent if row["status"] == 429)
    # The first window opens at once; each further one costs a whole window.
    floor = (-(-len(sent) // quota) - 1) * window
    report(
        f"(b') {count} restarts against a quota of {quota} per {window:g}s",
        [
            ("requests / 429s (target: 0)", f"{len(sent)} / {limited}"),
            ("time / fastest the quota allows", f"{took:.1f}s / {floor:.1f}s"),
        ],
    )


def requests_per_restart(build_seconds: float = 60.0) -> None:
    scheduler = str(BIN / "spaces-scheduler")
    hub = world(["bench/slow"], build_seconds=build_seconds)
    with hub_sim(hub) as url, tempfile.TemporaryDirectory() as home:
        env = hub_env(url, home)
        config = Path(home, "spaces.toml")
        config.write_text(CONFIG.format(budget=800, concurrency=8, poll="2s"))
        took = timed(
            [scheduler, "restart", "bench/slow", "--config", str(config)], env, cwd=home
        )
        sent = sim_requests(url)

    polls = sum(1 for row in sent if row["path"].endswith("/runtime")) - 1
    others = len(sent) - polls
    report(
        f"(c) one verified restart of a Space that builds {build_seconds:.0f}s",
        [
            ("wall time", f"{took:.1f}s"),
            ("requests besides polls (target <= 3)", f"{others}"),
            ("polls (target <= 8)", f"{polls}"),
        ],
    )


def main() -> None:
    single_restart()
    fleet()
    small_quota()
    requests_per_restart()
