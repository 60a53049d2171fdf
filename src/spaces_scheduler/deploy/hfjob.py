"""`deploy hf-job`: one Hugging Face scheduled Job per schedule.

Each Job runs `run --once --schedule NAME` on a stock Python image: the config
travels base64-encoded in the Job's environment (`SPACES_SCHEDULER_CONFIG_B64`)
and is written to a file by the Job's command; the token is a Job secret.

A scheduled Job's cron has no documented time zone, so it is taken as UTC. A
schedule in another zone gets a UTC cron that fires at every minute a local slot
can fall on (`utc_cover`); `run --once`, with no state, acts only when the
newest slot of the schedule is at most `misfire_grace` old, so the other firings
do nothing. That holds only if no two firings fall within one grace of a slot
and none misses it, which is checked near every DST change before anything is
created. With `--state-secret` the Job keeps its state in the store whose URL is
in SPACES_SCHEDULER_STATE, and missed slots are caught up as on GitHub.

The Jobs are found again by their labels: `managed-by=spaces-scheduler` and the
schedule's name; a hash of the Job's spec in a third label tells whether it
changed (the Hub cannot edit a Job's spec, so a changed one is recreated).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from spaces_scheduler.deploy.base import (
    STATE_ENV,
    Entry,
    config_text,
    entries,
    refusal,
    unique_slugs,
    window_notes,
)
from spaces_scheduler.deploy.cron_translate import (
    Untranslatable,
    cover_problems,
    utc_cover,
)
from spaces_scheduler.errors import ConfigError, CredentialsError

if TYPE_CHECKING:
    from spaces_scheduler.config import Config
    from spaces_scheduler.hub import HubCalls

APP = "spaces-scheduler"
MANAGED = {"managed-by": APP}
SCHEDULE_LABEL = "spaces-scheduler-schedule"
SPEC_LABEL = "spaces-scheduler-spec"
CONFIG_B64 = "SPACES_SCHEDULER_CONFIG_B64"
INSTALL_ENV = "SPACES_SCHEDULER_INSTALL"
# A Job takes a while to start (image, pip install); a shorter grace would let
# every firing find its slot already too old.
SHORTEST_GRACE = timedelta(minutes=2)
APPLY_DEADLINE = 300.0


@dataclass(frozen=True)
class WantedJob:
    """A scheduled Job as this config wants it."""

    entry: Entry
    slug: str
    schedule: str
    image: str
    command: list[str]
    env: dict[str, str]
    secret_names: tuple[str, ...]
    flavor: str
    timeout: int

    @property
    def spec_hash(self) -> str:
        """Return a digest of everything but the schedule and the secret values."""
        body = json.dumps(
            [
                self.image,
                self.command,
                self.env,
                self.secret_names,
                self.flavor,
                self.timeout,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @property
    def labels(self) -> dict[str, str]:
        return {**MANAGED, SCHEDULE_LABEL: self.slug, SPEC_LABEL: self.spec_hash}


def wanted_jobs(
    config: Config,
    *,
    image: str,
    flavor: str,
    install: str,
    state_secret: bool,
    now: datetime,
) -> list[WantedJob]:
    """Return the Jobs for `config`; ConfigError lists every schedule refused."""
    items = entries(config, target="hf-job")
    slugs = unique_slugs([entry.name for entry in items], limit=40)
    encoded = base64.b64encode(config_text(config).encode()).decode()
    token_env = config.hub.token_env or "HF_TOKEN"
    secrets = (token_env, STATE_ENV) if state_secret else (token_env,)

    jobs, problems = [], []
    for entry in items:
        try:
            cover = _checked_cover(entry, state_secret=state_secret, now=now)
        except Untranslatable as exc:
            problems.append(refusal(config, entry, "hf-job", str(exc)))
            continue
        jobs.append(
            WantedJob(
                entry=entry,
                slug=slugs[entry.name],
                schedule=cover,
                image=image,
                command=_command(entry, Path(config.path).name, install),
                env={CONFIG_B64: encoded, INSTALL_ENV: install},
                secret_names=secrets,
                flavor=flavor,
                timeout=int((2 * entry.wait + timedelta(minutes=10)).total_seconds()),
            )
        )
    if problems:
        raise ConfigError(problems)
    return jobs


def _checked_cover(entry: Entry, *, state_secret: bool, now: datetime) -> str:
    cover = utc_cover(entry.spec, entry.timezone, now=now)
    if state_secret:
        return cover  # recorded slots never run twice; missed ones catch up
    if entry.misfire_grace < SHORTEST_GRACE:
        raise Untranslatable(
            f"misfire_grace {entry.misfire_grace} is shorter than a Job takes to "
            f"start; give it {SHORTEST_GRACE} or more, or keep state (--state-secret)"
        )
    problems = cover_problems(
        entry.spec, entry.timezone, cover, grace=entry.misfire_grace, now=now
    )
    if problems:
        raise Untranslatable(
            f"the Job's UTC cron {cover!r} with no state: {problems[0]}"
            f"{f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''}; "
            "shorten misfire_grace or keep state in PostgreSQL (--state-secret)"
        )
    return cover


def _command(entry: Entry, filename: str, install: str) -> list[str]:
    path = f"/tmp/{filename}"
    decode = (
        'python -c "import base64, os, sys; sys.stdout.buffer.write('
        f"base64.b64decode(os.environ['{CONFIG_B64}']))\" > {path} || exit 3"
    )
    steps = [decode]
    if install:
        steps.append(f'pip install --quiet --no-cache-dir "${INSTALL_ENV}" || exit 3')
    steps.append(f'exec spaces-scheduler run --once --config {path} --schedule "$1"')
    return ["sh", "-c", "\n".join(steps) + "\n", "sh", entry.name]


# ---------------------------------------------------------------------------
# The command


def run_hf_job(
    config: Config,
    *,
    apply: bool,
    namespace: str | None,
    flavor: str,
    image: str,
    prune: bool,
    install: str,
    token_env: str | None,
    state_secret: bool,
) -> int:
    """Print the Jobs, and with `apply` create or update them; return the status."""
    jobs = wanted_jobs(
        config,
        image=image,
        flavor=flavor,
        install=install,
        state_secret=state_secret,
        now=datetime.now(UTC),
    )
    for note in window_notes(config, "hf-job"):
        click.echo(note, err=True)
    for job in jobs:
        for line in describe(job, state_secret=state_secret):
            click.echo(line)
    if not apply:
        click.echo("dry run: nothing was sent; pass --apply to create or update.")
        return 0

    secrets = _secret_values(config, token_env, state_secret=state_secret)
    calls = _hub_calls(config, token_env)
    for line in apply_jobs(calls, namespace, jobs, secrets, prune=prune):
        click.echo(line)
    return 0


def describe(job: WantedJob, *, state_secret: bool) -> list[str]:
    """Return the lines that say what the Job is and when it acts."""
    entry = job.entry
    lines = [
        f"schedule {entry.name!r}: scheduled Job {APP}-{job.slug}, cron "
        f"{job.schedule!r} (UTC), {job.image} on {job.flavor}, "
        f"secrets {', '.join(job.secret_names)}"
    ]
    if entry.timezone != "UTC":
        lines.append(
            f"  {entry.spec.text!r} is in {entry.timezone}; a Job's cron has no "
            "time zone, so this one fires at every UTC minute a slot can fall on "
            "and `run --once` acts only when a slot is due."
        )
    if state_secret:
        lines.append(
            "  state: the store in SPACES_SCHEDULER_STATE; missed slots "
            "are caught up once at the next firing."
        )
    else:
        lines.append(
            f"  no state: a firing acts on the newest slot at most "
            f"{_duration(entry.misfire_grace)} old (misfire_grace); a slot the Hub "
            "does not fire in time is not caught up."
        )
    return lines


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _secret_values(
    config: Config, token_env: str | None, *, state_secret: bool
) -> dict[str, str]:
    import os

    from spaces_scheduler.hub import resolve_token

    name = config.hub.token_env or "HF_TOKEN"
    token = resolve_token(token_env or config.hub.token_env)
    if not token:
        raise CredentialsError(
            "No Hub token found for the Jobs' secret: set HF_TOKEN or pass "
            "--token-env NAME."
        )
    values = {name: token}
    if state_secret:
        state = os.environ.get(STATE_ENV, "").strip()
        if not state:
            raise CredentialsError(
                f"--state-secret: put the state store URL in {STATE_ENV}; it "
                "becomes the Jobs' secret of that name."
            )
        values[STATE_ENV] = state
    return values


def _hub_calls(config: Config, token_env: str | None) -> HubCalls:
    from spaces_scheduler.acting import open_hub

    client = open_hub(config, token_env=token_env)
    return client.calls(deadline=time.monotonic() + APPLY_DEADLINE)


def apply_jobs(
    calls: HubCalls,
    namespace: str | None,
    jobs: list[WantedJob],
    secrets: dict[str, str],
    *,
    prune: bool,
) -> list[str]:
    """Create, reschedule or recreate the Jobs; return a line per Job."""
    existing = calls.list_scheduled_jobs(namespace, labels=dict(MANAGED))
    by_slug: dict[str, list[dict[str, Any]]] = {}
    for found in existing:
        by_slug.setdefault(found["labels"].get(SCHEDULE_LABEL, ""), []).append(found)

    lines = []
    for job in jobs:
        lines += _apply_one(calls, namespace, job, by_slug.pop(job.slug, []), secrets)
    for slug_, stale in sorted(by_slug.items()):
        for found in stale:
            if prune:
                calls.delete_scheduled_job(namespace, found["id"])
                lines.append(f"deleted {found['id']} ({slug_}): no such schedule")
            else:
                lines.append(
                    f"left {found['id']} ({slug_}): no such schedule; --prune "
                    "deletes it"
                )
    return lines


def _apply_one(
    calls: HubCalls,
    namespace: str | None,
    job: WantedJob,
    found: list[dict[str, Any]],
    secrets: dict[str, str],
) -> list[str]:
    name = job.entry.name
    same = [f for f in found if f["labels"].get(SPEC_LABEL) == job.spec_hash]
    keep = same[0] if same else None

    lines = []
    # Outdated specs and duplicates (a create retried after a lost answer).
    for other in found:
        if other is not keep:
            calls.delete_scheduled_job(namespace, other["id"])
            lines.append(f"deleted {other['id']} ({name}): outdated or duplicate")

    if keep is None:
        created = calls.create_scheduled_job(
            namespace,
            image=job.image,
            command=job.command,
            schedule=job.schedule,
            env=job.env,
            secrets={key: secrets[key] for key in job.secret_names},
            flavor=job.flavor,
            timeout=job.timeout,
            labels=job.labels,
        )
        return [*lines, f"created {created['id']} ({name}): {job.schedule!r} UTC"]
    if keep["schedule"] != job.schedule:
        calls.update_scheduled_job_schedule(namespace, keep["id"], job.schedule)
        return [*lines, f"rescheduled {keep['id']} ({name}): {job.schedule!r} UTC"]
    return [*lines, f"unchanged {keep['id']} ({name})"]


def shell_line(job: WantedJob) -> str:
    """Return the Job's command as one shell line, for people reading along."""
    return " ".join(shlex.quote(word) for word in job.command)
