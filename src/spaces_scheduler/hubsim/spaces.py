"""One simulated Space: its settings and the stage machine, computed lazily.

A restart starts an *attempt*. Its stage at any instant follows from the time since
the restart, so nothing ticks in the background:

    restart ─> old stage (`stale_running_seconds`) ─> BUILDING (`build_seconds`)
            ─> APP_STARTING (`start_seconds`) ─> RUNNING
                 │ build_error            │ runtime error of this attempt
                 └> BUILD_ERROR           └> RUNTIME_ERROR

`stuck` keeps BUILDING for ever, `stuck_stage` keeps that stage for ever,
`pause_after_queue` shows BUILDING (with an empty build log) that long, then PAUSED,
on every restart until it is set back to 0. During `stale_running_seconds` the
runtime still shows the stage the Space had before the restart (RUNNING, for a
running Space). `stage_since` (seconds, either sign) dates the initial stage that
long before the simulator started.
A new hardware flavor becomes `hardware.current` when the build ends. When an attempt
reaches an end (RUNNING, an error, PAUSED) it settles into the plain stage with the
instant it began, which `stage_since` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spaces_scheduler.hubsim.common import (
    ASLEEP_STAGES,
    ERROR_STAGES,
    fake_sha,
    iso_z,
)

# The Hub keeps cpu-basic's sleep time at 48 hours; it cannot be configured.
CPU_BASIC_SLEEP = 172800
FREE_FLAVORS = frozenset({"cpu-basic"})


@dataclass
class Attempt:
    """One restart and what it will meet, fixed when the restart happens."""

    started: float
    stale: float
    build: float
    start: float
    old_stage: str
    build_error: str | None
    build_log: list[str]
    runtime_error: str | None
    stuck: bool
    stuck_stage: str | None
    queue_then_pause: float
    new_hardware: str | None

    def build_end(self) -> float:
        return self.started + self.stale + self.build

    def start_end(self) -> float:
        return self.build_end() + self.start


class SpaceState:
    """A Space's settings (the world's [[space]] keys) and its current attempt."""

    def __init__(self, settings: dict[str, Any], *, now: float) -> None:
        self.id: str = settings["id"]
        self.settings = dict(settings)
        self.stage: str = settings["stage"]
        self.since = now - abs(settings["stage_since"])
        self.error_message: str | None = settings["error_message"]
        self.hardware: str = settings["hardware"]
        self.requested: str = settings["hardware"]
        self.sleep_time = _initial_sleep(settings)
        self.sha: str = settings["sha"] or fake_sha("space", self.id)
        self.created = now - 86400 * 30
        self.last_modified = now - 86400
        self.variables: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.attempt: Attempt | None = None
        self.last_attempt: Attempt | None = None
        self.attempts = 0
        self._seed_env(settings, now=now)
        if self.stage in ERROR_STAGES and self.error_message is None:
            self.error_message = settings["build_error"] or settings["runtime_error"]

    @property
    def owner(self) -> str:
        return self.id.split("/")[0]

    @property
    def private(self) -> bool:
        return bool(self.settings["private"])

    def _seed_env(self, settings: dict[str, Any], *, now: float) -> None:
        for key, value in settings["variables"].items():
            self.variables[key] = {"value": value, "updatedAt": iso_z(now)}
        for key in settings["secrets"]:
            self.secrets[key] = {"updatedAt": iso_z(now)}

    def update(self, changes: dict[str, Any], *, now: float) -> None:
        """Apply [[space]] keys at run time; a new `stage` ends any attempt."""
        self.settings.update(changes)
        if "stage" in changes:
            self.attempt = self.last_attempt = None
            self.stage = changes["stage"]
            self.since = now - abs(changes.get("stage_since", 0.0))
            self.error_message = changes.get("error_message")
            if self.stage in ERROR_STAGES and self.error_message is None:
                self.error_message = (
                    self.settings["build_error"] or self.settings["runtime_error"]
                )
        elif "error_message" in changes:
            self.error_message = changes["error_message"]
        if "hardware" in changes:
            self.hardware = self.requested = changes["hardware"]
        if "sleep_time" in changes:
            self.sleep_time = _initial_sleep(self.settings)
        if "sha" in changes:
            self.sha = changes["sha"]
        if "variables" in changes or "secrets" in changes:
            self._seed_env(self.settings, now=now)

    # -- the stage machine ------------------------------------------------------

    def current(self, now: float) -> tuple[str, str | None]:
        """Return (stage, errorMessage) at `now`, settling a finished attempt."""
        attempt = self.attempt
        if attempt is None:
            return self.stage, self.error_message

        elapsed = now - attempt.started
        if elapsed < attempt.stale:
            return attempt.old_stage, None
        if attempt.queue_then_pause > 0:
            return self._queued(attempt, now)
        if attempt.stuck or attempt.stuck_stage == "BUILDING":
            return "BUILDING", None
        if now < attempt.build_end():
            return "BUILDING", None
        if attempt.build_error is not None:
            return self._settle("BUILD_ERROR", attempt.build_end(), attempt.build_error)

        self._take_new_hardware(attempt)
        if attempt.stuck_stage is not None:
            return attempt.stuck_stage, None
        if now < attempt.start_end():
            return "APP_STARTING", None
        if attempt.runtime_error is not None:
            end = attempt.start_end()
            return self._settle("RUNTIME_ERROR", end, attempt.runtime_error)
        return self._settle("RUNNING", attempt.start_end(), None)

    def _queued(self, attempt: Attempt, now: float) -> tuple[str, str | None]:
        end = attempt.started + attempt.stale + attempt.queue_then_pause
        if now < end:
            return "BUILDING", None
        return self._settle("PAUSED", end, None)

    def _take_new_hardware(self, attempt: Attempt) -> None:
        if attempt.new_hardware is not None:
            self.hardware = attempt.new_hardware
            attempt.new_hardware = None

    def _settle(
        self, stage: str, since: float, message: str | None
    ) -> tuple[str, str | None]:
        self.attempt = None
        self.stage, self.since, self.error_message = stage, since, message
        return stage, message

    def restart(self, *, now: float, factory: bool = False) -> None:
        """Start a new attempt (a rebuild), un-pausing and waking the Space."""
        stage, _ = self.current(now)
        if factory and self.settings["fixed_by_factory"]:
            # The example world's promise: a factory rebuild clears a broken cache.
            self.settings["build_error"] = None
            self.settings["stuck"] = False

        pending = self.requested if self.requested != self.hardware else None
        if self.attempt is not None and self.attempt.new_hardware is not None:
            pending = self.attempt.new_hardware
        self.attempts += 1
        self.attempt = self._new_attempt(now=now, old_stage=stage, hardware=pending)
        self.last_attempt = self.attempt

    def _new_attempt(
        self, *, now: float, old_stage: str, hardware: str | None
    ) -> Attempt:
        settings = self.settings
        return Attempt(
            started=now,
            stale=settings["stale_running_seconds"],
            build=settings["build_seconds"],
            start=settings["start_seconds"],
            old_stage=old_stage,
            build_error=settings["build_error"],
            build_log=list(settings["build_log"]),
            runtime_error=self._next_runtime_error(),
            stuck=settings["stuck"],
            stuck_stage=settings["stuck_stage"],
            queue_then_pause=settings["pause_after_queue"],
            new_hardware=hardware,
        )

    def _next_runtime_error(self) -> str | None:
        # `runtime_errors` scripts attempts one by one; then `runtime_error` holds.
        queue = self.settings["runtime_errors"]
        if queue:
            self.settings["runtime_errors"] = queue[1:]
            return str(queue[0])
        error = self.settings["runtime_error"]
        return None if error is None else str(error)

    def pause(self, *, now: float) -> None:
        """Pause at once; only a restart un-pauses."""
        self.current(now)
        if self.attempt is not None:
            self._take_new_hardware(self.attempt)
        self.attempt = self.last_attempt = None
        self.stage, self.since, self.error_message = "PAUSED", now, None

    def change_hardware(self, flavor: str, sleep: int | None, *, now: float) -> None:
        """Request a flavor: it restarts the Space unless PAUSED or ignored."""
        self.current(now)
        self.sleep_time = _sleep_after_change(self.requested, flavor, self.sleep_time)
        if sleep is not None:
            self.sleep_time = sleep
        if flavor == self.requested and flavor == self.hardware:
            return

        self.requested = flavor
        if self.settings["ignore_hardware"]:
            return
        if self.stage == "PAUSED" and self.attempt is None:
            return
        self.restart(now=now)

    def env_changed(self, *, now: float) -> None:
        """Restart after a variable or secret change, as the Hub does."""
        stage, _ = self.current(now)
        if stage == "PAUSED" and self.attempt is None:
            return
        self.restart(now=now)

    # -- what the API shows -----------------------------------------------------

    def runtime(self, now: float) -> dict[str, Any]:
        """Return the SpaceRuntime JSON the Hub answers at `now`."""
        stage, message = self.current(now)
        body: dict[str, Any] = {
            "stage": stage,
            "hardware": {"current": self.hardware, "requested": self.requested},
            "storage": None,
            "gcTimeout": self.sleep_time,
            "replicas": {"requested": 1, "current": 1 if stage == "RUNNING" else 0},
            "devMode": False,
            "domains": [{"domain": f"{self.subdomain}.hf.space", "stage": "READY"}],
            "sha": self.sha,
            "sdk": self.settings["sdk"],
        }
        if message is not None:
            body["errorMessage"] = message
        return body

    @property
    def subdomain(self) -> str:
        return self.id.replace("/", "-").replace("_", "-").replace(".", "-").lower()

    def build_log(self, now: float) -> list[tuple[float, str]]:
        """Return the build log lines (time, text) written by `now`."""
        self.current(now)
        attempt = self.last_attempt
        if attempt is None:
            return self._settled_build_log()
        if attempt.queue_then_pause > 0:
            return []
        lines = _attempt_build_log(attempt, self.sha)
        return [(t, line) for t, line in lines if t <= now]

    def _settled_build_log(self) -> list[tuple[float, str]]:
        if self.stage in ASLEEP_STAGES | {"PAUSED"}:
            return []
        begin = self.since - self.settings["build_seconds"]
        lines = [(begin, f"===== Build Queued at {iso_z(begin)} =====\n")]
        lines += [(begin, f"{line}\n") for line in self.settings["build_log"]]
        if self.stage == "BUILD_ERROR":
            lines.append((self.since, f"{self.error_message}\n"))
        else:
            lines.append((self.since, "DONE\n"))
        return lines

    def run_log(self, now: float) -> list[tuple[float, str]]:
        """Return the run log lines (time, text) written by `now`."""
        stage, message = self.current(now)
        if stage not in ("RUNNING", "RUNTIME_ERROR", "APP_STARTING"):
            return []
        attempt = self.last_attempt
        begin = self.since if attempt is None else attempt.build_end()
        lines = [(begin, f"===== Application Startup at {iso_z(begin)} =====\n")]
        if stage == "RUNTIME_ERROR":
            lines.append((self.since, f"{message}\n"))
        elif stage == "RUNNING":
            lines.append((self.since, "Running on local URL:  http://0.0.0.0:7860\n"))
        return [(t, line) for t, line in lines if t <= now]

    def state(self, now: float) -> dict[str, Any]:
        """Return everything the simulator knows, for `GET /_sim/spaces/{id}`."""
        stage, message = self.current(now)
        return {
            "id": self.id,
            "stage": stage,
            "errorMessage": message,
            "stage_since": iso_z(self.since) if self.attempt is None else None,
            "hardware": self.hardware,
            "requested_hardware": self.requested,
            "sleep_time": self.sleep_time,
            "attempts": self.attempts,
            "in_attempt": self.attempt is not None,
            "sha": self.sha,
            "variables": {k: v["value"] for k, v in self.variables.items()},
            "secrets": sorted(self.secrets),
            "settings": dict(self.settings),
        }


def _attempt_build_log(attempt: Attempt, sha: str) -> list[tuple[float, str]]:
    begin = attempt.started + attempt.stale
    title = f"===== Build Queued at {iso_z(begin)} / Commit SHA: {sha[:7]} ====="
    lines = [(begin, f"{title}\n")]
    lines += [(begin, f"{line}\n") for line in attempt.build_log]
    if attempt.stuck or attempt.stuck_stage == "BUILDING":
        return lines
    end = attempt.build_end()
    if attempt.build_error is not None:
        return lines + [(end, f"{attempt.build_error}\n")]
    return lines + [(end, "--> Pushing image\n"), (end, "DONE\n")]


def _initial_sleep(settings: dict[str, Any]) -> int | None:
    if settings["hardware"] in FREE_FLAVORS:
        return CPU_BASIC_SLEEP
    sleep = settings["sleep_time"]
    return None if sleep is None else int(sleep)


def _sleep_after_change(old: str, new: str, sleep: int | None) -> int | None:
    # cpu-basic always sleeps after 48 h; upgraded hardware never sleeps by default.
    if new in FREE_FLAVORS:
        return CPU_BASIC_SLEEP
    if old in FREE_FLAVORS:
        return None
    return sleep
