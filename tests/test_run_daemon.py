"""`spaces-scheduler run` as a process: runs, the dashboard beside it, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from support import ALICE_TOKEN, alice_world, fast

BIN = Path(sys.executable).parent / "spaces-scheduler"
CONFIG = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
min_interval = "0s"
jitter = "0s"
misfire_grace = "5m"

[web]
listen = "127.0.0.1:{port}"

[[schedule]]
name = "refresh"
cron = "* * * * *"
spaces = ["alice/a", "alice/b"]
action = "restart"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_daemon_runs_serves_its_dashboard_and_stops_on_sigterm(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    port = free_port()
    config = tmp_path / "spaces.toml"
    config.write_text(CONFIG.format(port=port))
    # The schedule existed two minutes ago: the daemon catches up at once.
    from datetime import UTC, datetime, timedelta

    from spaces_scheduler.store import open_store
    from spaces_scheduler.store.base import ScheduleRow

    store = open_store(None, config_path=config)
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    store.register_schedules(
        [ScheduleRow("refresh", "* * * * *", "UTC", "restart")], earlier
    )
    store.close()

    env = {**os.environ, "HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}
    daemon = subprocess.Popen(
        [str(BIN), "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _restarts(sim) >= 2, 20), daemon.stderr
        assert wait_for(lambda: get(f"{base}/healthz")[0] == 200, 10)

        status, page = get(f"{base}/")
        assert status == 200
        assert "alice/a" in page and "alice/b" in page
        assert ALICE_TOKEN not in page

        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=40)
    finally:
        if daemon.poll() is None:
            daemon.kill()

    assert daemon.returncode == 0, err
    lines = [line for line in out.splitlines() if "  refresh  restart  " in line]
    acted = [line for line in lines if "skipped" not in line]
    assert len(acted) >= 2
    assert all("  ok  RUNNING after" in line for line in acted), out
    assert ALICE_TOKEN not in out + err
    for stored in (tmp_path / ".spaces-scheduler").iterdir():
        assert ALICE_TOKEN.encode() not in stored.read_bytes(), stored


def test_the_daemon_refuses_a_public_address_without_an_access_token(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    config = tmp_path / "spaces.toml"
    config.write_text(CONFIG.format(port=free_port()).replace("127.0.0.1:", "0.0.0.0:"))
    env = {**os.environ, "HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}

    result = subprocess.run(
        [str(BIN), "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "access" in result.stderr.lower()
    assert _restarts(sim) == 0


def _restarts(sim: Any) -> int:
    rows = sim.requests()
    return sum(
        1 for r in rows if r["method"] == "POST" and r["path"].endswith("/restart")
    )


def test_json_of_history_after_runs(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    config = tmp_path / "spaces.toml"
    config.write_text(CONFIG.format(port=free_port()))
    env = {**os.environ, "HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}

    subprocess.run(
        [str(BIN), "run", "--once", "--config", str(config)],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    result = subprocess.run(
        [str(BIN), "history", "--json", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    rows = json.loads(result.stdout)
    assert {row["space"] for row in rows} == {"alice/a", "alice/b"}
    assert {row["outcome"] for row in rows} == {"ok"}
    assert all(row["stages"][-1] == "RUNNING" for row in rows)
