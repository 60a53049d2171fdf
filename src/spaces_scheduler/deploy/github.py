"""`deploy github`: a GitHub Actions workflow that runs `run --once` on schedule.

What GitHub gives and what we add:

- `on.schedule` takes five-field crons with a `timezone:`; a run learns which
  cron fired from `github.event.schedule`, which is the cron string alone. One
  cron string in two zones would be ambiguous, so such configs get one workflow
  per zone, each mapping the fired cron to its own schedules.
- GitHub delivers late or drops runs under load; the state kept between runs
  (the Actions cache by default) lets the next `run --once` catch up the newest
  missed slot once and record the others as coalesced.
- A failed run exits 1 and so fails the job: no green runs that did nothing.
- GitHub disables scheduled workflows after 60 days without repository
  activity; each scheduled run re-enables its own workflow through the API and
  warns when the last commit is older than 50 days.
"""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spaces_scheduler.deploy.base import (
    STATE_ENV,
    Entry,
    Options,
    Rendered,
    Target,
    entries,
    header,
    refusal,
    slug,
    window_notes,
)
from spaces_scheduler.deploy.cron_translate import Untranslatable, plain_cron
from spaces_scheduler.deploy.files import generated, to_yaml
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.plan import next_slots

if TYPE_CHECKING:
    from spaces_scheduler.config import Config

CHECKOUT = "actions/checkout@v5"
SETUP_PYTHON = "actions/setup-python@v6"
CACHE_RESTORE = "actions/cache/restore@v4"
CACHE_SAVE = "actions/cache/save@v4"
PYTHON = "3.12"
TOKEN_SECRET = "HF_TOKEN"
ALL = "all due schedules"
CACHE_KEY = "spaces-scheduler-state"
# GitHub runs scheduled workflows at most every five minutes.
SHORTEST = timedelta(minutes=5)
# Warn this long before GitHub's 60 days without activity are up.
WARN_DAYS = 50


class GitHubTarget(Target):
    """A workflow file (or one per time zone) under `.github/workflows/`."""

    name = "github"
    default_output = ".github/workflows/spaces-scheduler.yml"

    def render(self, config: Config, options: Options) -> Rendered:
        items = entries(config, target=self.name)
        crons = _github_crons(config, items)
        root = _repository_root(options.output)
        config_path = _config_in_repository(config, root)

        groups = _workflow_groups(items, crons)
        files = []
        for zone, members in groups:
            path = _workflow_path(options.output, zone if len(groups) > 1 else None)
            layout = _Layout(
                config_path=config_path,
                workflow_path=path.resolve().relative_to(root).as_posix(),
                token_env=_token_env(config),
                names=[entry.name for entry in items],
                mapped=len(groups) > 1
                or any(crons[e.name] != e.spec.text for e in members),
            )
            workflow = _workflow(members, crons, layout, options, zone=zone)
            text = header(options) + "\n" + to_yaml(workflow)
            files.append(generated(path, text))

        notes = window_notes(config, self.name) + _frequency_notes(config, items)
        return Rendered(tuple(files), options.output.parent, notes)


class _Layout:
    """Where things are in the repository and how the run step picks schedules."""

    def __init__(
        self,
        *,
        config_path: str,
        workflow_path: str,
        token_env: str,
        names: list[str],
        mapped: bool,
    ) -> None:
        self.config_path = config_path
        self.workflow_path = workflow_path
        self.token_env = token_env
        self.names = names
        self.mapped = mapped

    @property
    def state_folder(self) -> str:
        folder = os.path.dirname(self.config_path)
        return f"{folder}/.spaces-scheduler" if folder else ".spaces-scheduler"


def _github_crons(config: Config, items: list[Entry]) -> dict[str, str]:
    crons, problems = {}, []
    for entry in items:
        try:
            crons[entry.name] = plain_cron(entry.spec)
        except Untranslatable as exc:
            problems.append(refusal(config, entry, "github", str(exc)))
    if problems:
        raise ConfigError(problems)
    return crons


def _repository_root(output: Path) -> Path:
    """Return the repository root: above `.github/workflows`, else the cwd."""
    folder = output.resolve().parent
    if folder.name == "workflows" and folder.parent.name == ".github":
        return folder.parent.parent
    return Path.cwd().resolve()


def _config_in_repository(config: Config, root: Path) -> str:
    path = Path(config.path).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(
            [
                f"{config.path}: the config must be inside the repository ({root}) "
                "for the workflow to read it; move it there or pass --output."
            ]
        ) from None


def _token_env(config: Config) -> str:
    hub = getattr(config, "hub", None)
    return getattr(hub, "token_env", None) or TOKEN_SECRET


def _workflow_groups(
    items: list[Entry], crons: dict[str, str]
) -> list[tuple[str | None, list[Entry]]]:
    """Return (zone, entries) per workflow: one, or one per zone when needed."""
    zones_of: dict[str, set[str]] = {}
    for entry in items:
        zones_of.setdefault(crons[entry.name], set()).add(entry.timezone)
    if all(len(zones) == 1 for zones in zones_of.values()):
        return [(None, items)]

    zones = sorted({entry.timezone for entry in items})
    return [(zone, [e for e in items if e.timezone == zone]) for zone in zones]


def _workflow_path(output: Path, zone: str | None) -> Path:
    if zone is None:
        return output
    return output.with_name(f"{output.stem}-{slug(zone)}{output.suffix}")


def _workflow(
    members: list[Entry],
    crons: dict[str, str],
    layout: _Layout,
    options: Options,
    *,
    zone: str | None,
) -> dict[str, Any]:
    title = "spaces-scheduler" + (f" ({zone})" if zone else "")
    return {
        "name": title,
        "on": {
            "schedule": _schedule_entries(members, crons),
            "workflow_dispatch": {"inputs": _inputs(layout.names)},
        },
        "permissions": {"contents": "read", "actions": "write"},
        # One group for the whole repository: the runs of every workflow of
        # this config share one state, so none may overlap another.
        "concurrency": {"group": "spaces-scheduler", "cancel-in-progress": False},
        "jobs": {
            "run": {
                "runs-on": "ubuntu-latest",
                "timeout-minutes": _timeout_minutes(members),
                "steps": _steps(members, crons, layout, options),
            }
        },
    }


def _schedule_entries(members: list[Entry], crons: dict[str, str]) -> list[Any]:
    pairs = sorted({(crons[e.name], e.timezone) for e in members})
    return [{"cron": cron, "timezone": zone} for cron, zone in pairs]


def _inputs(names: list[str]) -> dict[str, Any]:
    return {
        "schedule": {
            "description": "The schedule to run (what is due of it)",
            "type": "choice",
            "options": [ALL, *names],
            "default": ALL,
        },
        "space": {
            "description": "Only this Space (owner/name); empty for all",
            "type": "string",
            "required": False,
            "default": "",
        },
    }


def _timeout_minutes(members: list[Entry]) -> int:
    # A run may wait for the Space, then escalate with a fresh wait.
    longest = max(entry.wait for entry in members)
    return int((2 * longest + timedelta(minutes=10)) / timedelta(minutes=1))


def _steps(
    members: list[Entry], crons: dict[str, str], layout: _Layout, options: Options
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"uses": CHECKOUT, "with": {"persist-credentials": False}},
        {
            "uses": SETUP_PYTHON,
            "with": {
                "python-version": PYTHON,
                "cache": "pip",
                # The install spec lives in this file, so it keys the pip cache.
                "cache-dependency-path": layout.workflow_path,
            },
        },
        {
            "name": "Install spaces-scheduler",
            "run": f"python -m pip install {shlex.quote(options.install)}",
        },
    ]
    if not options.state_secret:
        steps.append(_cache_step(CACHE_RESTORE, layout, restore=True))
    steps.append(_run_step(members, crons, layout, options))
    if not options.state_secret:
        steps.append(_cache_step(CACHE_SAVE, layout, restore=False))
    steps.append(_keep_enabled_step(layout))
    return steps


def _cache_step(action: str, layout: _Layout, *, restore: bool) -> dict[str, Any]:
    key = f"{CACHE_KEY}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}"
    inputs: dict[str, Any] = {"path": layout.state_folder, "key": key}
    if restore:
        # A cache entry is never overwritten: each run saves a new one and the
        # next run restores the newest by this prefix.
        inputs["restore-keys"] = f"{CACHE_KEY}-"
        return {"name": "Restore the state", "uses": action, "with": inputs}
    return {
        "name": "Save the state",
        "if": "always()",
        "uses": action,
        "with": inputs,
    }


def _run_step(
    members: list[Entry], crons: dict[str, str], layout: _Layout, options: Options
) -> dict[str, Any]:
    env = {
        layout.token_env: f"${{{{ secrets.{TOKEN_SECRET} }}}}",
        "FIRED_CRON": "${{ github.event.schedule }}",
        "INPUT_SCHEDULE": "${{ inputs.schedule }}",
        "INPUT_SPACE": "${{ inputs.space }}",
    }
    if options.state_secret:
        env[STATE_ENV] = f"${{{{ secrets.{STATE_ENV} }}}}"
    return {
        "name": "Run what is due",
        "env": env,
        "run": _run_script(members, crons, layout, options),
    }


def _run_script(
    members: list[Entry], crons: dict[str, str], layout: _Layout, options: Options
) -> str:
    run = f"spaces-scheduler run --once --config {shlex.quote(layout.config_path)}"
    lines = ["set -euo pipefail", *_guards(layout, options)]
    lines += ['if [ "$GITHUB_EVENT_NAME" = "schedule" ]; then']
    if layout.mapped:
        lines += [f"  {line}" for line in _mapped_scheduled(members, crons, run)]
    else:
        # --catch-up: GitHub keeps one pending run per concurrency group and
        # cancels older ones; the next run catches the cancelled slots up.
        lines += [f'  {run} --at "$FIRED_CRON" --catch-up']
    lines += [
        "else",
        "  set --",
        f'  if [ "$INPUT_SCHEDULE" != {shlex.quote(ALL)} ]; then',
        '    set -- "$@" --schedule "$INPUT_SCHEDULE"',
        "  fi",
        '  if [ -n "$INPUT_SPACE" ]; then set -- "$@" --space "$INPUT_SPACE"; fi',
        f'  {run} "$@"',
        "fi",
    ]
    return "\n".join(lines) + "\n"


def _guards(layout: _Layout, options: Options) -> list[str]:
    where = "Settings > Secrets and variables > Actions"
    lines = [
        f'if [ -z "${{{layout.token_env}:-}}" ]; then',
        f'  echo "::error::The {TOKEN_SECRET} repository secret is missing or '
        f'empty; add a Hub write token under {where}."',
        "  exit 2",
        "fi",
    ]
    if options.state_secret:
        lines += [
            f'if [ -z "${{{STATE_ENV}:-}}" ]; then',
            f'  echo "::error::The {STATE_ENV} repository secret is missing; '
            f'put the state store URL in it under {where}."',
            "  exit 2",
            "fi",
        ]
    return lines


def _mapped_scheduled(
    members: list[Entry], crons: dict[str, str], run: str
) -> list[str]:
    """Map the fired cron to the config's cron and the schedules it stands for."""
    by_cron: dict[str, list[Entry]] = {}
    for entry in members:
        by_cron.setdefault(crons[entry.name], []).append(entry)

    lines = ['case "$FIRED_CRON" in']
    for cron, group in sorted(by_cron.items()):
        lines.append(f"  {shlex.quote(cron)})")
        calls = [
            f"{run} --at {shlex.quote(e.spec.text)} --schedule {shlex.quote(e.name)}"
            for e in group
        ]
        # GitHub keeps one pending run per concurrency group and cancels older
        # ones: the last call also catches up what a cancelled run missed.
        calls[-1] += " --catch-up"
        lines += [f"    {call} || failed=1" for call in calls]
        lines.append("    ;;")
    lines += [
        "  *)",
        "    echo \"::error::No schedule has the cron '$FIRED_CRON'; regenerate "
        'this workflow."',
        "    exit 2",
        "    ;;",
        "esac",
        'exit "${failed:-0}"',
    ]
    return lines


def _keep_enabled_step(layout: _Layout) -> dict[str, Any]:
    workflow = os.path.basename(layout.workflow_path)
    script = "\n".join(
        [
            f'gh api --method PUT "repos/$GITHUB_REPOSITORY/actions/workflows/'
            f'{workflow}/enable" \\',
            '  || echo "::warning::Could not re-enable this workflow; GitHub '
            'disables schedules after 60 days without repository activity."',
            'last=$(gh api "repos/$GITHUB_REPOSITORY/commits?per_page=1" '
            "--jq '.[0].commit.committer.date' || true)",
            'if [ -n "$last" ]; then',
            '  age=$(( ($(date +%s) - $(date -d "$last" +%s)) / 86400 ))',
            f'  if [ "$age" -ge {WARN_DAYS} ]; then',
            '    echo "::warning::The last commit is $age days old; GitHub may '
            "disable this schedule at 60 days. Push a commit or re-enable it "
            'under Actions if runs stop."',
            "  fi",
            "fi",
        ]
    )
    return {
        "name": "Keep the schedule enabled",
        "if": "always() && github.event_name == 'schedule'",
        "env": {"GH_TOKEN": "${{ github.token }}"},
        "run": script + "\n",
    }


def _frequency_notes(config: Config, items: list[Entry]) -> tuple[str, ...]:
    notes = []
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for entry in items:
        slots = next_slots(entry.spec, entry.timezone, start, 13)
        gaps = [b.utc - a.utc for a, b in zip(slots, slots[1:], strict=False)]
        if gaps and min(gaps) < SHORTEST:
            notes.append(
                f"warning: {config.path}: schedule {entry.name!r} fires more often "
                "than every 5 minutes; GitHub runs schedules at most that often, "
                "and each run catches up the newest slot."
            )
    return tuple(notes)
