"""`deploy hf-job --apply` against the simulated Hub, and the Job's own command.

The Job's command is run locally as the Job would run it (the config decoded
from its environment, `run --once --schedule NAME` without `--at`, no state), to
show that a firing acts only when a local slot of the schedule is due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from deploy_support import deploy, fast_polling

from support import ALICE_TOKEN, alice_world, fast

BIN = Path(sys.executable).parent


def _config(folder: Path, schedules: list[tuple[str, str, str, str]]) -> Path:
    """Write a config of (name, cron, timezone, space) schedules."""
    folder.mkdir(parents=True, exist_ok=True)
    text = '[defaults]\njitter = "0s"\nmin_interval = "0s"\n'
    for name, cron, zone, space in schedules:
        text += (
            f'\n[[schedule]]\nname = "{name}"\ncron = "{cron}"\ntimezone = "{zone}"\n'
            f'spaces = ["{space}"]\naction = "restart"\n'
        )
    (folder / "spaces.toml").write_text(fast_polling(text))
    return folder


def _env(sim: Any) -> dict[str, str]:
    return {"HF_ENDPOINT": sim.url, "HF_TOKEN": ALICE_TOKEN}


def _jobs(sim: Any) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{sim.url}/api/scheduled-jobs/alice",
        headers={"Authorization": f"Bearer {ALICE_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return list(json.load(answer))


def _posts(sim: Any, suffix: str = "") -> list[str]:
    return [
        r["path"]
        for r in sim.requests()
        if r["method"] in ("POST", "DELETE", "PUT")
        and "scheduled-jobs" in r["path"]
        and r["path"].endswith(suffix)
    ]


def test_dry_run_sends_nothing(tmp_path: Path, start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/a")))
    folder = _config(tmp_path, [("nine", "0 9 * * *", "Europe/Berlin", "alice/a")])
    result = deploy(folder, "hf-job", env=_env(sim))
    assert result.exit_code == 0, result.output
    assert "cron '0 * * * *' (UTC)" in result.output
    assert "acts only when a slot is due" in result.output
    assert sim.requests() == []


def test_apply_creates_then_finds_again_updates_and_prunes(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/a"), fast("alice/b")))
    folder = _config(
        tmp_path,
        [
            ("nine", "0 9 * * *", "Europe/Berlin", "alice/a"),
            ("utc", "15 */2 * * *", "UTC", "alice/b"),
        ],
    )
    result = deploy(folder, "hf-job", "--apply", env=_env(sim))
    assert result.exit_code == 0, result.output
    jobs = {j["jobSpec"]["labels"]["spaces-scheduler-schedule"]: j for j in _jobs(sim)}
    assert sorted(jobs) == ["nine", "utc"]
    assert jobs["nine"]["schedule"] == "0 * * * *"
    assert jobs["utc"]["schedule"] == "15 */2 * * *"
    assert jobs["nine"]["concurrency"] is False
    spec = jobs["nine"]["jobSpec"]
    assert spec["command"][-1] == "nine"
    assert "SPACES_SCHEDULER_CONFIG_B64" in spec["environment"]
    assert ALICE_TOKEN not in result.output
    assert ALICE_TOKEN not in str(spec["environment"])

    # Applying again finds both by their labels and changes nothing.
    before = len(_posts(sim))
    again = deploy(folder, "hf-job", "--apply", env=_env(sim))
    assert again.output.count("unchanged") == 2
    assert len(_posts(sim)) == before

    # The config travels in the Job, so an edit recreates the Jobs (the Hub
    # cannot edit a Job's spec); a gone schedule is left unless --prune.
    _config(tmp_path, [("utc", "45 */2 * * *", "UTC", "alice/b")])
    changed = deploy(folder, "hf-job", "--apply", env=_env(sim))
    assert "outdated" in changed.output and "created" in changed.output
    assert "--prune deletes it" in changed.output
    assert len(_jobs(sim)) == 2
    pruned = deploy(folder, "hf-job", "--apply", "--prune", env=_env(sim))
    assert "deleted" in pruned.output
    assert [j["schedule"] for j in _jobs(sim)] == ["45 */2 * * *"]


def test_a_changed_spec_recreates_the_job(tmp_path: Path, start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/a")))
    folder = _config(tmp_path, [("utc", "15 * * * *", "UTC", "alice/a")])
    assert deploy(folder, "hf-job", "--apply", env=_env(sim)).exit_code == 0
    (first,) = _jobs(sim)

    result = deploy(
        folder, "hf-job", "--apply", "--flavor", "cpu-upgrade", env=_env(sim)
    )
    assert "outdated" in result.output and "created" in result.output
    (second,) = _jobs(sim)
    assert second["id"] != first["id"]
    assert second["jobSpec"]["flavor"] == "cpu-upgrade"


def test_a_grace_that_would_run_a_slot_twice_is_refused(tmp_path: Path) -> None:
    folder = _config(tmp_path, [("nine", "0 9 * * *", "Europe/Berlin", "alice/a")])
    text = (folder / "spaces.toml").read_text()
    (folder / "spaces.toml").write_text(
        text.replace('jitter = "0s"', 'jitter = "0s"\nmisfire_grace = "2h"')
    )
    result = deploy(folder, "hf-job")
    assert result.exit_code == 2
    assert "would run 3 times" in result.output
    assert deploy(folder, "hf-job", "--state-secret").exit_code == 0


def _run_job_command(job: dict[str, Any], sim: Any, tmp_path: Path) -> str:
    """Run the Job's command as the Job would, with this checkout's install."""
    spec = job["jobSpec"]
    tmp_path.mkdir(parents=True)
    script = spec["command"][2].replace("/tmp/", f"{tmp_path}/")
    env = {
        **spec["environment"],
        "PATH": f"{BIN}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": sim.url,
        "HF_TOKEN": ALICE_TOKEN,  # the Job's secret
    }
    done = subprocess.run(
        ["sh", "-c", script, *spec["command"][3:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_jobs_stateless_run_acts_only_when_a_local_slot_is_due(
    tmp_path: Path, start_sim: Any
) -> None:
    sim = start_sim(alice_world(fast("alice/due"), fast("alice/not-due")))
    zone = "Asia/Kolkata"  # +05:30: the Job's UTC minute differs from the local one
    local = datetime.now(UTC).astimezone(ZoneInfo(zone))
    due = local - timedelta(minutes=1)
    passed = local - timedelta(minutes=40)
    folder = _config(
        tmp_path,
        [
            ("due", f"{due.minute} {due.hour} * * *", zone, "alice/due"),
            ("passed", f"{passed.minute} {passed.hour} * * *", zone, "alice/not-due"),
        ],
    )
    result = deploy(folder, "hf-job", "--apply", "--install", "", env=_env(sim))
    assert result.exit_code == 0, result.output
    jobs = {j["jobSpec"]["command"][-1]: j for j in _jobs(sim)}

    # Both Jobs fire now (their UTC crons fire every hour at the shifted minute);
    # only the one whose local slot is a minute old acts.
    _run_job_command(jobs["due"], sim, tmp_path / "job1")
    _run_job_command(jobs["passed"], sim, tmp_path / "job2")
    restarts = [r["path"] for r in sim.requests() if r["path"].endswith("/restart")]
    assert restarts == ["/api/spaces/alice/due/restart"]
