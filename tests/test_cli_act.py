"""`restart` and `act` end to end: the CLI against the simulated Hub over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spaces_scheduler.cli import main

from support import ALICE_TOKEN, BOB_TOKEN, alice_world, fast

FAST_CONFIG = """
[hub]
poll = "0.05s"

[defaults]
wait = "8s"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "spaces.toml"
    path.write_text(FAST_CONFIG)
    return path


def invoke(
    sim: Any, config: Path, *args: str, token: str | None = ALICE_TOKEN
) -> Result:
    env = {"HF_ENDPOINT": sim.url}
    if token is not None:
        env["HF_TOKEN"] = token
    return CliRunner().invoke(main, [*args, "--config", str(config)], env=env)


def actions_sent(sim: Any) -> list[str]:
    return [r["path"] for r in sim.requests() if r["method"] == "POST"]


def test_restart_prints_one_line_per_space_and_exits_0(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice-org/b")))

    result = invoke(sim, config, "restart", "alice/a", "alice-org/b")

    assert result.exit_code == 0, result.output
    lines = sorted(result.stdout.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("alice-org/b  restart  ok  RUNNING after ")
    assert lines[1].startswith("alice/a      restart  ok  RUNNING after ")


def test_build_error_exits_1_with_the_hubs_reason(start_sim: Any, config: Path) -> None:
    sim = start_sim(
        alice_world(
            fast("alice/ok"),
            fast("alice/broken", build_error="ERROR: No matching distribution"),
        )
    )

    result = invoke(sim, config, "restart", "alice/ok", "alice/broken")

    assert result.exit_code == 1
    assert "alice/broken  restart  failed  BUILD_ERROR: ERROR: No matching" in (
        result.stdout
    )
    assert "alice/ok      restart  ok" in result.stdout


def test_token_that_does_not_own_the_space_exits_2_before_acting(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("bob/b")))

    result = invoke(sim, config, "restart", "alice/a", "bob/b", token=BOB_TOKEN)

    assert result.exit_code == 2
    assert "may not manage alice/a" in result.stderr
    assert actions_sent(sim) == []


def test_read_token_exits_2_before_acting(start_sim: Any, config: Path) -> None:
    world = alice_world(fast("alice/a"))
    world["token"].append(  # type: ignore[attr-defined]
        {"value": "hf_aliceReadOnly000000", "user": "alice", "role": "read"}
    )
    sim = start_sim(world)

    result = invoke(sim, config, "restart", "alice/a", token="hf_aliceReadOnly000000")

    assert result.exit_code == 2
    assert actions_sent(sim) == []


def test_missing_token_exits_2_and_says_how_to_give_one(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "restart", "alice/a", token=None)

    assert result.exit_code == 2
    assert "No Hub token found: set HF_TOKEN" in result.stderr
    assert sim.requests() == []


def test_rejected_token_exits_2(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "restart", "alice/a", token="hf_wrong0000000000000")

    assert result.exit_code == 2
    assert "refused the token" in result.stderr
    assert actions_sent(sim) == []


def test_token_env_names_the_variable(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))
    env = {"HF_ENDPOINT": sim.url, "MY_HUB_TOKEN": ALICE_TOKEN}

    result = CliRunner().invoke(
        main,
        ["restart", "alice/a", "--token-env", "MY_HUB_TOKEN", "--config", str(config)],
        env=env,
    )

    assert result.exit_code == 0, result.output


def test_bad_space_id_is_a_usage_error(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "restart", "not-a-space")

    assert result.exit_code == 2
    assert "'not-a-space' is not a Space id" in result.stderr
    assert sim.requests() == []


def test_missing_space_fails_the_run_with_exit_1(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "restart", "alice/gone")

    assert result.exit_code == 1
    assert "alice/gone  restart  failed" in result.stdout
    assert "404" in result.stdout


def test_no_wait_says_triggered(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a", build_seconds=5)))

    result = invoke(sim, config, "restart", "alice/a", "--no-wait")

    assert result.exit_code == 0
    assert result.stdout.strip() == "alice/a  restart  ok  triggered"


def test_factory_flag_sends_a_factory_rebuild(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "restart", "alice/a", "--factory")

    assert result.exit_code == 0
    queries = [r["query"] for r in sim.requests() if r["method"] == "POST"]
    assert queries == ["factory=true"]
    assert "alice/a  rebuild  ok" in result.stdout


def test_act_wake_leaves_paused_and_wakes_sleeping(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(
        alice_world(
            fast("alice/paused", stage="PAUSED"), fast("alice/sleepy", stage="SLEEPING")
        )
    )

    result = invoke(sim, config, "act", "wake", "alice/paused", "alice/sleepy")

    assert result.exit_code == 0, result.output
    assert "alice/paused  wake  skipped: paused" in result.stdout
    assert "alice/sleepy  wake  ok  RUNNING after" in result.stdout
    assert actions_sent(sim) == ["/api/spaces/alice/sleepy/restart"]


def test_act_hardware_and_pause(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/gpu")))

    hardware = invoke(sim, config, "act", "hardware=t4-small", "alice/gpu")
    pause = invoke(sim, config, "act", "pause", "alice/gpu")

    assert hardware.exit_code == 0, hardware.output
    assert "hardware=t4-small  ok  RUNNING on t4-small" in hardware.stdout
    assert pause.exit_code == 0
    assert "pause  ok  PAUSED" in pause.stdout


def test_act_refused_by_the_hub_fails_with_its_message(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/gpu")))
    sim.add_fault(
        {
            "path": "/api/spaces/alice/gpu/hardware",
            "status": 402,
            "message": "A payment method is required to upgrade hardware.",
        }
    )

    result = invoke(sim, config, "act", "hardware=a10g-small", "alice/gpu")

    assert result.exit_code == 1
    assert "A payment method is required to upgrade hardware" in result.stdout


def test_unknown_action_is_a_usage_error(start_sim: Any, config: Path) -> None:
    sim = start_sim(alice_world(fast("alice/a")))

    result = invoke(sim, config, "act", "explode", "alice/a")

    assert result.exit_code == 2
    assert "unknown action 'explode'" in result.stderr


def test_whoami_rate_limited_for_long_is_reported_as_a_rate_limit(
    start_sim: Any, tmp_path: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/a")))
    sim.add_fault(
        {"path": "/api/whoami-v2", "status": 429, "times": 0, "retry_after": 3600}
    )
    config = tmp_path / "spaces.toml"
    config.write_text(FAST_CONFIG)

    result = invoke(sim, config, "restart", "alice/a")

    assert result.exit_code == 1
    assert "429" in result.stderr
    assert "refused the token" not in result.stderr
    assert actions_sent(sim) == []


def test_the_token_never_appears_anywhere(start_sim: Any, config: Path) -> None:
    sim = start_sim(
        alice_world(
            fast("alice/a"),
            fast("alice/broken", build_error="ERROR: failed"),
            fast("bob/b"),
        )
    )
    sim.add_fault({"path": "/api/spaces/alice/a/restart", "status": 500})

    results = [
        invoke(sim, config, "restart", "alice/a", "alice/broken", "--debug"),
        invoke(sim, config, "restart", "bob/b", "--debug"),
        invoke(sim, config, "act", "pause", "alice/gone", "--debug"),
        invoke(sim, config, "restart", "alice/a", token="hf_wrong0000000000000"),
    ]

    for result in results:
        assert ALICE_TOKEN not in result.output
        assert ALICE_TOKEN not in (result.stderr or "")
    assert ALICE_TOKEN not in str(sim.requests())


def test_an_explicit_restart_acts_on_a_space_building_on_the_hub(
    start_sim: Any, config: Path
) -> None:
    sim = start_sim(alice_world(fast("alice/stuck", stage="BUILDING", stuck=True)))

    skipped = invoke(sim, config, "restart", "alice/stuck", "--if-busy", "skip")
    acted = invoke(sim, config, "restart", "alice/stuck", "--no-wait")

    assert skipped.exit_code == 0
    assert "skipped: building" in skipped.stdout
    assert acted.exit_code == 0
    assert actions_sent(sim) == ["/api/spaces/alice/stuck/restart"]


def test_a_read_token_is_told_it_is_read_only(start_sim: Any, config: Path) -> None:
    world = alice_world(fast("alice/a"))
    world["token"].append(  # type: ignore[attr-defined]
        {"value": "hf_aliceReadOnly000000", "user": "alice", "role": "read"}
    )
    sim = start_sim(world)

    result = invoke(sim, config, "restart", "alice/a", token="hf_aliceReadOnly000000")

    assert result.exit_code == 2
    assert "read-only (role read)" in result.stderr
