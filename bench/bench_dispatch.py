"""Dispatching herds, next to APScheduler 3.11 doing the same work.

(a) dispatch lateness of 1,000 and 10,000 schedules due at the same instant:
    fire time to the instant each run is claimed and started by the runner,
    p50 / p99 / max, and the runs dropped. Each side runs in its own process
    (spawned, so nothing is shared with the bench) and builds everything
    first, then waits for the herd on the real clock:

    - ours: `Daemon` + `Dispatcher` on a real SQLite store, a no-op executor,
      the daemon's own loop (`run_forever`) in a thread. Its clock is the real
      clock shifted by a constant, so that a daily cron slot falls a few
      seconds after everything is built; lateness is that clock at the
      executor's entry minus the run's due instant.
    - APScheduler: a BackgroundScheduler with its defaults (a pool of 10
      threads, a misfire grace of 1 s) and one no-op cron job per schedule;
      lateness is the job's start minus its fire time; a missed job is dropped.

(b) memory per schedule and in all with 10,000 schedules: the resident size of
    a real `spaces-scheduler run` (against the simulated Hub, nothing due) with
    10,000 schedules less that with one, next to a process holding a started
    BackgroundScheduler with as many cron jobs;
(c) idle CPU of both over 60 s with nothing due;
(d) `run --once` whole-process time for a config of 50 schedules, next to the
    single-restart script.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import BIN, hub_env, hub_sim, median, report, timed
from bench.common import world_toml as world

CONFIG_HEAD = """
[daemon]
lease = "{lease}"

[defaults]
jitter = "0s"
"""
SCHEDULE = """
[[schedule]]
name = "herd-{n:05d}"
cron = "{cron}"
spaces = ["bench/space-{n:05d}"]
action = "restart"
"""


@dataclass(frozen=True)
class Herd:
    """What one side saw of a herd: lateness of each run started, and losses."""

    lateness: list[float]
    dropped: int
    twice: int = 0
    late_start: bool = False  # a process was still building at the herd's instant
    handoff: list[float] = field(default_factory=list)  # ours: put on the queue


def config_text(count: int, cron: str, *, lease: str = "2m") -> str:
    parts = [CONFIG_HEAD.format(lease=lease)]
    parts += [SCHEDULE.format(n=n, cron=cron) for n in range(count)]
    return "".join(parts)


def daily_cron(slot: datetime) -> str:
    return f"{slot.minute} {slot.hour} * * *"


def ours(url: str, count: int, *, daemons: int = 1, lead: float = 8.0) -> Herd:
    """Dispatch a herd of `count` runs with `daemons` daemons on the store `url`."""
    herd_at = time.time() + lead + count / 2000  # room to build the heap
    slot = _next_minute(datetime.now(UTC) + timedelta(hours=2))
    shift = slot.timestamp() - herd_at
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(
            target=_our_worker, args=(url, count, shift, herd_at, f"d{i}", queue)
        )
        for i in range(daemons)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=lead + 120) for _ in workers]
    for worker in workers:
        worker.join(30)

    seen = [key for result in results for key in result["keys"]]
    lateness = [value for result in results for value in result["lateness"]]
    handoff = [value for result in results for value in result["handoff"]]
    return Herd(
        lateness=lateness,
        handoff=handoff,
        dropped=count - len(set(seen)),
        twice=len(seen) - len(set(seen)),
        late_start=any(result["late_start"] for result in results),
    )


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _our_worker(
    url: str, count: int, shift: float, herd_at: float, owner: str, queue: Any
) -> None:
    from spaces_scheduler.config import parse_config
    from spaces_scheduler.daemon import Daemon
    from spaces_scheduler.dispatch import Dispatcher, DueRun
    from spaces_scheduler.outcome import Outcome, OutcomeKind
    from spaces_scheduler.store import open_store

    def clock() -> datetime:
        return datetime.fromtimestamp(time.time() + shift, UTC)

    slot = datetime.fromtimestamp(herd_at + shift, UTC)
    # A lease of 30 s: the daemons look at each other's heartbeats every 10 s,
    # so those started together have met before the herd.
    config = parse_config(
        config_text(count, daily_cron(slot), lease="30s"), Path("spaces.toml")
    )
    store = open_store(url, config_path=None)
    lateness: list[float] = []
    keys: list[tuple[str, str]] = []
    lock = threading.Lock()

    def execute(run: DueRun) -> Outcome:
        late = (clock() - run.due_at).total_seconds()
        with lock:
            lateness.append(late)
            keys.append((run.schedule.name, run.space))
        return Outcome(OutcomeKind.OK)

    dispatcher = Dispatcher(
        store, execute, owner=owner, clock=clock, lease=config.daemon.lease
    )
    # The instant each claimed run is handed to the runner (put on the queue
    # the worker threads take runs from), which is what issue 3 names.
    handoff: list[float] = []
    submit = dispatcher._pool.submit

    def handing_over(task: Any, *, busy: int) -> None:
        run = task.args[0]
        handoff.append((clock() - run.due_at).total_seconds())
        submit(task, busy=busy)

    dispatcher._pool.submit = handing_over  # type: ignore[method-assign]
    daemon = Daemon(config, dispatcher, spaces_of=lambda s: list(s.spaces), clock=clock)
    daemon.load(clock())
    late_start = time.time() > herd_at
    loop = threading.Thread(target=daemon.run_forever, daemon=True)
    loop.start()

    # Runs later than this count as dropped; nothing reads the store meanwhile.
    time.sleep(max(0.0, herd_at + 6 + count / 1000 - time.time()))
    daemon.stop()
    loop.join(60)
    store.close()
    queue.put(
        {
            "lateness": lateness,
            "handoff": handoff,
            "keys": keys,
            "late_start": late_start,
        }
    )


# -- APScheduler -----------------------------------------------------------------------


def apscheduler(count: int, *, lead: float = 5.0) -> Herd:
    """Dispatch a herd of `count` no-op cron jobs with APScheduler's defaults."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_aps_worker, args=(count, lead, queue))
    worker.start()
    result = queue.get(timeout=lead + 180)
    worker.join(30)
    return Herd(lateness=result["lateness"], dropped=result["missed"])


def _aps_worker(count: int, lead: float, queue: Any) -> None:
    import logging

    from apscheduler.events import EVENT_JOB_MISSED
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    lateness: list[float] = []
    missed: list[str] = []
    lock = threading.Lock()

    def job(fire_at: float) -> None:
        late = time.time() - fire_at
        with lock:
            lateness.append(late)

    # Each missed job is a warning line: counted below, not printed.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_listener(lambda event: missed.append(event.job_id), EVENT_JOB_MISSED)
    fire = datetime.fromtimestamp(int(time.time() + lead + count / 2000), UTC)
    trigger = CronTrigger(
        hour=fire.hour, minute=fire.minute, second=fire.second, timezone="UTC"
    )
    for n in range(count):
        scheduler.add_job(job, trigger, args=[fire.timestamp()], id=f"herd-{n}")
    scheduler.start()

    deadline = time.time() + lead + 60 + count / 500
    while time.time() < deadline and len(lateness) + len(missed) < count:
        time.sleep(0.2)
    scheduler.shutdown(wait=False)
    queue.put({"lateness": lateness, "missed": len(missed)})


# -- (a) lateness --------------------------------------------------------------------


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def herd_rows(name: str, herd: Herd, count: int) -> list[tuple[str, str]]:
    if not herd.lateness:
        return [(name, f"nothing ran; dropped {herd.dropped} of {count}")]
    p50, p99 = quantile(herd.lateness, 0.5), quantile(herd.lateness, 0.99)
    text = (
        f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
        f"max {max(herd.lateness) * 1000:7.1f} ms  dropped {herd.dropped}/{count}"
    )
    if herd.twice:
        text += f"  RAN TWICE {herd.twice}"
    if herd.late_start:
        text += "  (built after the herd was due)"
    return [(name, text)]


def lateness(counts: tuple[int, ...] = (1000, 10_000)) -> None:
    for count in counts:
        with tempfile.TemporaryDirectory() as folder:
            mine = ours(f"sqlite:///{folder}/state.db", count)
        theirs = apscheduler(count)
        ratio = quantile(theirs.lateness, 0.99) / quantile(mine.lateness, 0.99)
        handed = Herd(lateness=mine.handoff, dropped=mine.dropped)
        ratio_handed = quantile(theirs.lateness, 0.99) / quantile(mine.handoff, 0.99)
        target = "p99 < 50 ms" if count <= 1000 else ">= 10x better"
        report(
            f"(a) {count:,} schedules due at one instant: lateness to the run's start",
            [
                *herd_rows("spaces-scheduler, SQLite, run started", mine, count),
                *herd_rows("spaces-scheduler, claimed and handed over", handed, count),
                *herd_rows("APScheduler 3.11 defaults, job started", theirs, count),
                (f"p99 ratio, started (target {target})", f"{ratio:.1f}x"),
                ("p99 ratio, our hand-over to their start", f"{ratio_handed:.1f}x"),
            ],
        )


# -- (b, c) memory and idle CPU -------------------------------------------------------

APS_IDLE = """
import sys, time
from datetime import UTC, datetime, timedelta
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

count = int(sys.argv[1])
fire = datetime.now(UTC) + timedelta(hours=12)
scheduler = BackgroundScheduler(timezone="UTC")
for n in range(count):
    trigger = CronTrigger(hour=fire.hour, minute=fire.minute, timezone="UTC")
    scheduler.add_job(print, trigger, id=f"job-{n}")
scheduler.start()
print("ready", flush=True)
time.sleep(600)
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def idle_daemon(url: str, home: str, count: int) -> subprocess.Popen[bytes]:
    """Start `spaces-scheduler run` with `count` schedules none due for hours."""
    cron = daily_cron(_next_minute(datetime.now(UTC) + timedelta(hours=12)))
    folder = Path(home, f"daemon-{count}")
    folder.mkdir()
    config = folder / "spaces.toml"
    text = config_text(count, cron).replace("bench/space", "bench/idle")
    config.write_text(f'{text}\n[web]\nlisten = "127.0.0.1:{free_port()}"\n')
    command = [str(BIN / "spaces-scheduler"), "run", "--config", str(config)]
    command += ["--state", f"sqlite:///{folder}/state.db"]
    env = hub_env(url, home)
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


def idle_apscheduler(count: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", APS_IDLE, str(count)]
    return subprocess.Popen(command, stdout=subprocess.PIPE)


def settle(processes: list[Any], *, quiet: float = 0.002, limit: float = 120) -> None:
    """Wait until every process has been using (almost) no CPU for a second."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = [p.cpu_times() for p in processes]
        time.sleep(1.0)
        after = [p.cpu_times() for p in processes]
        used = [
            (a.user + a.system) - (b.user + b.system)
            for a, b in zip(after, before, strict=True)
        ]
        if max(used) <= quiet:
            return
    raise RuntimeError("the processes never went idle")


def memory_and_idle_cpu(count: int = 10_000, window: float = 60.0) -> None:
    import psutil

    with hub_sim(world([])) as url, tempfile.TemporaryDirectory() as home:
        started = {
            "ours-1": idle_daemon(url, home, 1),
            f"ours-{count}": idle_daemon(url, home, count),
            "aps-1": idle_apscheduler(1),
            f"aps-{count}": idle_apscheduler(count),
        }
        try:
            processes = {name: psutil.Process(p.pid) for name, p in started.items()}
            settle(list(processes.values()))
            rss = {name: p.memory_info().rss for name, p in processes.items()}
            ours_process = processes[f"ours-{count}"]
            before = {name: p.cpu_times() for name, p in processes.items()}
            loop_before = _thread_cpu(ours_process, ours_process.pid)
            time.sleep(window)
            after = {name: p.cpu_times() for name, p in processes.items()}
            loop_after = _thread_cpu(ours_process, ours_process.pid)
        finally:
            for process in started.values():
                process.terminate()
                process.wait(30)

    def cpu(name: str) -> float:
        used = (after[name].user + after[name].system) - (
            before[name].user + before[name].system
        )
        return used / window * 100

    ours_each = (rss[f"ours-{count}"] - rss["ours-1"]) / (count - 1)
    aps_each = (rss[f"aps-{count}"] - rss["aps-1"]) / (count - 1)
    report(
        f"(b) memory with {count:,} schedules (resident set size)",
        [
            (
                "spaces-scheduler run, in all (target < 150 MB)",
                _mb(rss[f"ours-{count}"]),
            ),
            ("spaces-scheduler run, one schedule", _mb(rss["ours-1"])),
            ("spaces-scheduler per schedule", f"{ours_each / 1024:.2f} KiB"),
            ("APScheduler, in all", _mb(rss[f"aps-{count}"])),
            ("APScheduler per job", f"{aps_each / 1024:.2f} KiB"),
            (
                "per schedule, ours/APScheduler (target <= 1)",
                f"{ours_each / aps_each:.2f}x",
            ),
        ],
    )
    report(
        f"(c) idle CPU over {window:.0f} s with {count:,} schedules, none due",
        [
            (
                "spaces-scheduler run (target < 0.05 %)",
                f"{cpu(f'ours-{count}'):.4f} % of a core",
            ),
            (
                "  of which the daemon's loop (main thread)",
                f"{(loop_after - loop_before) / window * 100:.4f} % of a core",
            ),
            ("APScheduler", f"{cpu(f'aps-{count}'):.4f} % of a core"),
        ],
    )


def _thread_cpu(process: Any, thread_id: int) -> float:
    """Return the CPU seconds one thread of `process` has used."""
    for thread in process.threads():
        if thread.id == thread_id:
            return float(thread.user_time + thread.system_time)
    return 0.0


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


# -- (d) run --once ------------------------------------------------------------------


SCRIPT_ONE = "from huggingface_hub import HfApi; HfApi().restart_space({space!r})"
ONCE_SCHEDULE = """
[[schedule]]
name = "once-{n:02d}"
cron = "{cron}"
spaces = ["bench/once-{n:02d}"]
action = "restart"
"""


def run_once(runs: int = 10) -> None:
    """Time `run --once` over 50 schedules: none due, and one due by --at."""
    spaces = [f"bench/once-{n:02d}" for n in range(50)]
    far = daily_cron(_next_minute(datetime.now(UTC) + timedelta(hours=6)))
    crons = ["7 7 * * *" if n == 0 else far for n in range(50)]
    text = '[hub]\npoll = "100ms"\n' + "".join(
        ONCE_SCHEDULE.format(n=n, cron=cron) for n, cron in enumerate(crons)
    )
    scheduler = str(BIN / "spaces-scheduler")

    with hub_sim(world(spaces)) as url, tempfile.TemporaryDirectory() as home:
        env = hub_env(url, home)
        config = Path(home, "spaces.toml")
        config.write_text(text)
        script = SCRIPT_ONE.format(space=spaces[0])
        plain, idle, one = [], [], []
        for n in range(runs):
            plain.append(timed([sys.executable, "-c", script], env, cwd=home))
            base = [scheduler, "run", "--once", "--config", str(config)]
            state = ["--state", f"sqlite:///{home}/state-{n}.db"]
            idle.append(timed([*base, *state], env, cwd=home))
            state = ["--state", f"sqlite:///{home}/state-at-{n}.db"]
            one.append(timed([*base, *state, "--at", "7 7 * * *"], env, cwd=home))

    report(
        f"(d) run --once with 50 schedules, whole process (median of {runs})",
        [
            ("HfApi().restart_space script", f"{median(plain):.3f}s"),
            (
                "run --once, nothing due",
                f"{median(idle):.3f}s  ({median(idle) / median(plain):.2f}x)",
            ),
            (
                "run --once --at, one restart verified (build 0.2 s)",
                f"{median(one):.3f}s  ({median(one) / median(plain):.2f}x)",
            ),
        ],
    )


def main() -> None:
    lateness()
    memory_and_idle_cpu()
    run_once()


if __name__ == "__main__":
    main()
