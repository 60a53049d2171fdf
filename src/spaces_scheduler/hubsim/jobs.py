"""Scheduled Jobs: stored and shown like the Hub does, never run.

The schedule is checked as the Hub would (a 5-field cron or one of `@annually`,
`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`) and `nextJobRunAt` is computed
in UTC; `lastJob` stays empty because nothing ever runs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from cronsim import CronSim, CronSimError

from spaces_scheduler.hubsim.common import Clock, HubError, iso_z, new_id, object_id

ALIASES = {
    "@annually": "0 0 1 1 *",
    "@yearly": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def next_run(schedule: str, now: float) -> str:
    """Return the next fire time of `schedule` after `now`, Hub-formatted."""
    expression = ALIASES.get(schedule, schedule)
    try:
        moment = next(CronSim(expression, datetime.fromtimestamp(now, UTC)))
    except (CronSimError, StopIteration):
        raise HubError(400, f"Invalid schedule: {schedule!r}.") from None
    return iso_z(moment.timestamp())


class ScheduledJobBook:
    """Scheduled Jobs per namespace."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def create(
        self, namespace: str, owner_type: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        spec, schedule = _spec(body.get("jobSpec")), body.get("schedule")
        if not isinstance(schedule, str):
            raise HubError(400, "'schedule' is required.")
        next_run(schedule, self._clock())

        job_id = new_id()
        job: dict[str, Any] = {
            "id": job_id,
            "createdAt": iso_z(self._clock()),
            "jobSpec": spec,
            "schedule": schedule,
            "suspend": bool(body.get("suspend", False)),
            "concurrency": bool(body.get("concurrency", False)),
            "owner": {
                "id": object_id(owner_type, namespace),
                "name": namespace,
                "type": owner_type,
            },
        }
        with self._lock:
            self._jobs[(namespace, job_id)] = job
            return self._view(job)

    def listing(self, namespace: str, label: str | None) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [j for (ns, _), j in self._jobs.items() if ns == namespace]
            return [self._view(j) for j in jobs if _has_label(j, label)]

    def get(self, namespace: str, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._find(namespace, job_id))

    def delete(self, namespace: str, job_id: str) -> None:
        with self._lock:
            self._find(namespace, job_id)
            del self._jobs[(namespace, job_id)]

    def change(self, namespace: str, job_id: str, **changes: Any) -> dict[str, Any]:
        """Set `suspend`, `schedule` or the spec's `labels` of a scheduled Job."""
        if "schedule" in changes:
            next_run(changes["schedule"], self._clock())
        with self._lock:
            job = self._find(namespace, job_id)
            if "labels" in changes:
                job["jobSpec"]["labels"] = changes.pop("labels")
            job.update(changes)
            return self._view(job)

    def _find(self, namespace: str, job_id: str) -> dict[str, Any]:
        job = self._jobs.get((namespace, job_id))
        if job is None:
            raise HubError(404, f"Scheduled job {job_id} not found.")
        return job

    def _view(self, job: dict[str, Any]) -> dict[str, Any]:
        upcoming = None if job["suspend"] else next_run(job["schedule"], self._clock())
        status = {"lastJob": None, "nextJobRunAt": upcoming}
        return {**job, "jobSpec": dict(job["jobSpec"]), "status": status}


def _spec(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HubError(400, "'jobSpec' is required.")
    if not value.get("dockerImage") and not value.get("spaceId"):
        raise HubError(400, "'jobSpec' needs a 'dockerImage' or a 'spaceId'.")
    if not isinstance(value.get("command", []), list):
        raise HubError(400, "'jobSpec.command' must be a list.")
    return dict(value)


def _has_label(job: dict[str, Any], label: str | None) -> bool:
    if not label:
        return True
    key, _, value = label.partition("=")
    labels = job["jobSpec"].get("labels") or {}
    return bool(labels.get(key) == value)
