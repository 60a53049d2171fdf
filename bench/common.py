"""What the benchmarks share: a simulated Hub in its own process, timing helpers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TOKEN = "hf_benchToken0123456789abcdef"


def world_toml(
    spaces: Sequence[str],
    *,
    quota: int = 100_000,
    window: float = 300.0,
    latency: float = 0.0,
    build_seconds: float = 0.2,
) -> str:
    """Return a world file with one write token and `spaces`."""
    lines = [
        "[hub]",
        f"requests_per_window = {quota}",
        f"window_seconds = {window}",
        f"latency = {latency}",
        "",
        "[[token]]",
        f'value = "{TOKEN}"',
        'user = "bench"',
        'role = "write"',
        "",
    ]
    for space in spaces:
        lines += [
            "[[space]]",
            f'id = "{space}"',
            f"build_seconds = {build_seconds}",
            "start_seconds = 0.1",
            "stale_running_seconds = 0.0",
            "",
        ]
    return "\n".join(lines)


@contextmanager
def hub_sim(world: str) -> Iterator[str]:
    """Run `spaces-scheduler hub-sim` in its own process; yield its URL."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "world.toml")
        path.write_text(world)
        process = subprocess.Popen(
            [
                str(BIN / "spaces-scheduler"),
                "hub-sim",
                "--port",
                "0",
                "--world",
                str(path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline().strip()
            yield first.removeprefix("listening on ")
        finally:
            process.terminate()
            process.wait(10)


def sim_requests(url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_sim/requests") as answer:
        rows: list[dict[str, Any]] = json.load(answer)
        return rows


def hub_env(url: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_ENDPOINT=url,
        HF_TOKEN=TOKEN,
        HF_HOME=home,
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return env


def timed(command: Sequence[str], env: dict[str, str], cwd: str | None = None) -> float:
    """Run `command` and return its wall time; fail loudly if it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {result.stderr[-2000:]}")
    return took


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def report(title: str, rows: Sequence[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
