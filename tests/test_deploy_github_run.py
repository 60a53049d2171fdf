"""The generated workflow's `run` steps, run by bash as GitHub would run them.

The steps run against the simulated Hub with the environment a runner gives
them: the step's `env:` with `${{ ... }}` filled in (the HF_TOKEN secret,
`github.event.schedule`, the dispatch inputs) and the GITHUB_* variables. The
install step is skipped (this checkout's own `spaces-scheduler` is on PATH) and
so is the step that calls GitHub's API. The cache steps are stood in for by the
state folder staying on disk between runs, as restore and save would leave it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
import yaml
from click.testing import CliRunner

from deploy_support import deploy, fast_polling, project
from spaces_scheduler.cli import main

from support import ALICE_TOKEN, alice_world, fast

BIN = Path(sys.executable).parent
SKIPPED_STEPS = {"Install spaces-scheduler", "Keep the schedule enabled"}


def _workflow(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    data["on"] = data.pop(True, data.get("on"))
    return data


def _expand(text: str, context: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        return context.get(match.group(1).strip(), "")

    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def _run_steps(
    repo: Path, workflow: Path, sim: Any, *, event: str, context: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """Run the workflow's shell steps in order, as the runner would; stop on failure."""
    done = []
    for step in _workflow(workflow)["jobs"]["run"]["steps"]:
        if "run" not in step or step.get("name") in SKIPPED_STEPS:
            continue
        env = {
            "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin",
            "HOME": str(repo.parent),
            "HF_HOME": str(repo.parent / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_ENDPOINT": sim.url,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event,
            "GITHUB_REPOSITORY": "alice/schedules",
            "GITHUB_WORKSPACE": str(repo),
            "GITHUB_RUN_ID": "1",
        }
        env.update(
            {k: _expand(str(v), context) for k, v in step.get("env", {}).items()}
        )
        # GitHub's own shell line for `run:` on Linux runners.
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        done.append(result)
        if result.returncode != 0:
            break
    return done


def _restarts(sim: Any, space: str) -> int:
    path = f"/api/spaces/{space}/restart"
    return sum(1 for r in sim.requests() if r["method"] == "POST" and r["path"] == path)


def _scheduled(cron: str) -> dict[str, str]:
    return {
        "secrets.HF_TOKEN": ALICE_TOKEN,
        "github.event.schedule": cron,
        "inputs.schedule": "",
        "inputs.space": "",
    }


def _write(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spaces.toml").write_text(fast_polling(text))


def test_scheduled_run_acts_once_and_the_kept_state_stops_a_repeat(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/dashboard")))
    repo = project(tmp_path, "deploy-basic.toml", fast=True)
    assert deploy(repo, "github").exit_code == 0
    workflow = repo / ".github/workflows/spaces-scheduler.yml"

    first = _run_steps(
        repo, workflow, sim, event="schedule", context=_scheduled("*/30 * * * *")
    )
    assert [r.returncode for r in first] == [0], first[-1].stderr
    assert "alice/dashboard" in first[-1].stdout
    assert _restarts(sim, "alice/dashboard") == 1
    assert (repo / ".spaces-scheduler/state.db").exists()

    again = _run_steps(
        repo, workflow, sim, event="schedule", context=_scheduled("*/30 * * * *")
    )
    assert again[-1].returncode == 0, again[-1].stderr
    assert _restarts(sim, "alice/dashboard") == 1


def test_a_failed_run_fails_the_step(tmp_path: Path, start_sim: Any) -> None:
    broken = fast("alice/dashboard", build_error="ERROR: no module named foo")
    sim = start_sim(alice_world(broken))
    repo = project(tmp_path, "deploy-basic.toml", fast=True)
    assert deploy(repo, "github").exit_code == 0
    workflow = repo / ".github/workflows/spaces-scheduler.yml"

    done = _run_steps(
        repo, workflow, sim, event="schedule", context=_scheduled("*/30 * * * *")
    )
    assert done[-1].returncode == 1
    assert "failed" in done[-1].stdout


def test_a_missing_secret_fails_with_the_set_up_step(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/dashboard")))
    repo = project(tmp_path, "deploy-basic.toml", fast=True)
    assert deploy(repo, "github").exit_code == 0
    context = {**_scheduled("*/30 * * * *"), "secrets.HF_TOKEN": ""}

    done = _run_steps(
        repo,
        repo / ".github/workflows/spaces-scheduler.yml",
        sim,
        event="schedule",
        context=context,
    )
    assert done[-1].returncode == 2
    assert "HF_TOKEN repository secret is missing" in done[-1].stdout
    assert _restarts(sim, "alice/dashboard") == 0


def test_one_cron_in_two_zones_runs_only_the_zones_own_schedule(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/dashboard"), fast("alice/demo")))
    repo = project(tmp_path, "deploy-same-cron.toml", fast=True)
    assert deploy(repo, "github").exit_code == 0
    folder = repo / ".github/workflows"
    assert sorted(p.name for p in folder.iterdir()) == [
        "spaces-scheduler-asia-tokyo.yml",
        "spaces-scheduler-europe-berlin.yml",
        "spaces-scheduler-utc.yml",
    ]

    tokyo = folder / "spaces-scheduler-asia-tokyo.yml"
    assert _workflow(tokyo)["on"]["schedule"] == [
        {"cron": "0 9 * * *", "timezone": "Asia/Tokyo"}
    ]
    done = _run_steps(
        repo, tokyo, sim, event="schedule", context=_scheduled("0 9 * * *")
    )
    assert done[-1].returncode == 0, done[-1].stderr
    assert _restarts(sim, "alice/demo") == 1
    assert _restarts(sim, "alice/dashboard") == 0


def test_manual_dispatch_passes_schedule_and_space(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/dashboard")))
    repo = project(tmp_path, "deploy-zones.toml", fast=True)
    assert deploy(repo, "github").exit_code == 0
    context = {
        "secrets.HF_TOKEN": ALICE_TOKEN,
        "github.event.schedule": "",
        "inputs.schedule": "weekend",
        "inputs.space": "alice/dashboard",
    }

    done = _run_steps(
        repo,
        repo / ".github/workflows/spaces-scheduler.yml",
        sim,
        event="workflow_dispatch",
        context=context,
    )
    assert done[-1].returncode == 0, done[-1].stderr
    requests = sim.requests()
    # Only the one Space of that schedule was looked at (checked and maybe run).
    assert not any("alice/demo" in r["path"] for r in requests)


def test_a_sunday_written_as_7_is_mapped_back_to_the_configs_cron(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/dashboard")))
    repo = tmp_path / "repo"
    _write(
        repo,
        '[[schedule]]\nname = "weekend"\ncron = "15 6 * * 6,7"\n'
        'spaces = ["alice/dashboard"]\naction = "restart"\n',
    )
    assert deploy(repo, "github").exit_code == 0
    workflow = repo / ".github/workflows/spaces-scheduler.yml"
    assert _workflow(workflow)["on"]["schedule"][0]["cron"] == "15 6 * * 0,6"

    done = _run_steps(
        repo, workflow, sim, event="schedule", context=_scheduled("15 6 * * 0,6")
    )
    assert done[-1].returncode == 0, done[-1].stderr + done[-1].stdout
    assert _restarts(sim, "alice/dashboard") == 1


# -- late and dropped deliveries ------------------------------------------------------


def _run_once_at(repo: Path, sim: Any, moment: datetime, cron: str) -> str:
    """Run `run --once --at CRON` as the workflow does, with the clock at `moment`."""
    with time_machine.travel(moment, tick=True):
        result = CliRunner().invoke(
            main,
            ["run", "--once", "--config", str(repo / "spaces.toml"), "--at", cron],
            env={"HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN},
        )
    assert result.exit_code == 0, result.output
    return result.output


CATCH_UP = """
[defaults]
jitter = "0s"
min_interval = "0s"

[[schedule]]
name = "hourly"
cron = "0 * * * *"
spaces = ["alice/hourly"]
action = "restart"

[[schedule]]
name = "daily"
cron = "0 6 * * *"
spaces = ["alice/daily"]
action = "restart"
"""


@pytest.fixture
def catch_up_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    _write(repo, CATCH_UP)
    return repo


def _at(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, second, tzinfo=UTC)


def test_a_dropped_delivery_is_caught_up_exactly_once(
    catch_up_repo: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/hourly"), fast("alice/daily")))

    _run_once_at(catch_up_repo, sim, _at(4, 10, 0, 30), "0 * * * *")
    assert _restarts(sim, "alice/hourly") == 1

    # 11:00 is never delivered; the 12:00 run runs 12:00 and coalesces 11:00.
    output = _run_once_at(catch_up_repo, sim, _at(4, 12, 0, 30), "0 * * * *")
    assert _restarts(sim, "alice/hourly") == 2
    assert "alice/hourly" in output

    # GitHub delivering 12:00 a second time changes nothing.
    _run_once_at(catch_up_repo, sim, _at(4, 12, 3), "0 * * * *")
    assert _restarts(sim, "alice/hourly") == 2
    assert _restarts(sim, "alice/daily") == 0

    history = CliRunner().invoke(
        main, ["history", "--config", str(catch_up_repo / "spaces.toml"), "--json"]
    )
    rows = {
        row["slot"]: (row["outcome"], row["reason"])
        for row in json.loads(history.output)
        if row["schedule"] == "hourly"
    }
    assert rows == {
        "2027-01-04T10:00:00Z": ("ok", ""),
        "2027-01-04T11:00:00Z": ("skipped", "coalesced"),
        "2027-01-04T12:00:00Z": ("ok", ""),
    }


def test_a_late_delivery_is_caught_up_exactly_once(
    catch_up_repo: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/hourly"), fast("alice/daily")))

    _run_once_at(catch_up_repo, sim, _at(4, 6, 0, 20), "0 6 * * *")
    assert _restarts(sim, "alice/daily") == 1

    # The next day's 06:00 arrives at 09:40, hours late: it runs, once.
    _run_once_at(catch_up_repo, sim, _at(5, 9, 40), "0 6 * * *")
    assert _restarts(sim, "alice/daily") == 2
    _run_once_at(catch_up_repo, sim, _at(5, 10, 10), "0 6 * * *")
    assert _restarts(sim, "alice/daily") == 2
    assert _restarts(sim, "alice/hourly") == 0

    history = CliRunner().invoke(
        main, ["history", "--config", str(catch_up_repo / "spaces.toml"), "--json"]
    )
    late = [
        r for r in json.loads(history.output) if r["slot"] == "2027-01-05T06:00:00Z"
    ]
    assert [r["outcome"] for r in late] == ["ok"]
    assert late[0]["lateness"] >= 3 * 3600 + 40 * 60
