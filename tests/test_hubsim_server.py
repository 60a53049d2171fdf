"""The simulator as a process, and its world files: first line, signals, errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from spaces_scheduler.hubsim import (
    DEFAULT_READ_TOKEN,
    DEFAULT_TOKEN,
    DEFAULT_WORLD_TOML,
    World,
    WorldError,
)

WORLDS = Path(__file__).parent / "worlds"
LISTENING = re.compile(r"^listening on (http://127\.0\.0\.1:(\d+))\n$")


def start(*args: str, code: str | None = None) -> subprocess.Popen[str]:
    """Start the simulator as a child process, with a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    command = [sys.executable, "-m", "spaces_scheduler.hubsim", *args]
    if code is not None:
        command = [sys.executable, "-c", code]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=5)


def first_line_url(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    match = LISTENING.match(line)
    assert match, f"unexpected first line: {line!r}"
    return match[1]


def test_module_serves_a_world_and_stops_on_sigterm(
    process: list[subprocess.Popen[str]],
) -> None:
    child = start("--port", "0", "--world", str(WORLDS / "small.toml"))
    process.append(child)

    url = first_line_url(child)
    answer = httpx2.get(
        f"{url}/api/spaces/carol/dashboard/runtime",
        headers={"authorization": "Bearer hf_small_write"},
    )
    child.send_signal(signal.SIGTERM)

    assert answer.json()["stage"] == "RUNNING"
    assert child.wait(timeout=5) == 0


def test_serve_forever_defaults_to_the_default_world_and_stops_on_sigint(
    process: list[subprocess.Popen[str]],
) -> None:
    code = (
        "from spaces_scheduler.hubsim import serve_forever\n"
        "serve_forever(port=0, world_path=None)\n"
    )
    child = start(code=code)
    process.append(child)

    url = first_line_url(child)
    me = httpx2.get(
        f"{url}/api/whoami-v2", headers={"authorization": f"Bearer {DEFAULT_TOKEN}"}
    )
    child.send_signal(signal.SIGINT)

    assert me.json()["name"] == "demo"
    assert child.wait(timeout=5) == 0


def test_bad_world_exits_2_with_one_line_naming_the_key(
    process: list[subprocess.Popen[str]],
) -> None:
    child = start("--port", "0", "--world", str(WORLDS / "bad-key.toml"))
    process.append(child)

    out, err = child.communicate(timeout=10)

    assert child.returncode == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "bad-key.toml" in err and "'build_secs'" in err


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"spaces": []}, "unknown table 'spaces'"),
        ({"space": [{"id": "a/b", "colour": 1}]}, "unknown key 'colour'"),
        ({"space": [{"id": "nobody"}]}, "key 'id' must look like owner/name"),
        ({"space": [{"id": "a/b", "stuck": "yes"}]}, "key 'stuck' must be true"),
        ({"space": [{"build_seconds": 1}]}, "key 'id' is required"),
        ({"space": [{"id": "a/b"}, {"id": "a/b"}]}, "'a/b' appears twice"),
        ({"hub": {"window_seconds": 0}}, "key 'window_seconds' must be"),
        ({"token": [{"value": "t", "user": "u", "role": "god"}]}, "key 'role'"),
        ({"fault": [{"path": "/x"}]}, "needs one of 'status', 'delay' or 'hang'"),
        ({"fault": [{"status": 999}]}, "key 'status' must be an HTTP status"),
        ({"dataset": [{"id": "a/b", "sha": "xyz"}]}, "key 'sha' must be 40"),
    ],
)
def test_world_errors_are_one_line_naming_the_key(
    data: dict[str, object], expected: str
) -> None:
    with pytest.raises(WorldError) as caught:
        World.from_dict(data, source="w.toml")

    message = str(caught.value)
    assert expected in message
    assert message.startswith("w.toml: ") and "\n" not in message


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[space]\n")

    with pytest.raises(WorldError, match="cannot read"):
        World.load(tmp_path / "missing.toml")
    with pytest.raises(WorldError, match="broken.toml: invalid TOML"):
        World.load(broken)


def test_default_world_is_the_documented_one() -> None:
    world = World.default()
    spaces = {space["id"]: space for space in world.spaces}
    tokens = {token["value"]: token for token in world.tokens}

    assert tomllib.loads(DEFAULT_WORLD_TOML)["space"][0]["id"] == "demo/dashboard"
    assert tokens[DEFAULT_TOKEN]["user"] == "demo"
    assert tokens[DEFAULT_TOKEN]["role"] == "write"
    assert tokens[DEFAULT_READ_TOKEN]["role"] == "read"
    assert spaces["demo/leaderboard"]["stage"] == "SLEEPING"
    assert spaces["demo/paused-demo"]["stage"] == "PAUSED"
    assert spaces["demo/broken"]["stage"] == "BUILD_ERROR"
    assert spaces["other/private-space"]["private"] is True
    assert {"demo-org/es-dashboard", "demo-org/ru-dashboard"} <= set(spaces)


def test_every_shipped_test_world_loads() -> None:
    for path in WORLDS.glob("*.toml"):
        if path.name.startswith("bad-"):
            continue
        assert World.load(path).spaces


def test_simulators_of_one_world_share_no_state() -> None:
    from spaces_scheduler.hubsim import DEFAULT_WORLD, HubSim

    first, second = HubSim(DEFAULT_WORLD), HubSim(DEFAULT_WORLD)
    first.set_space("demo/dashboard", stage="PAUSED", runtime_errors=["boom"])
    first.hub.spaces["demo/dashboard"].restart(now=0.0)

    state = second.space_state("demo/dashboard")
    assert state["stage"] == "RUNNING"
    assert state["settings"]["runtime_errors"] == []
