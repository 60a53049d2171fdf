"""Acting on many Spaces at once: the checks before the first action, the pool of
runs, and the one line per run that commands print.

Before the first action every acting command checks the token (whoami, once per
process) and that it may manage each Space; a failure there raises
`CredentialsError` and nothing is sent.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from spaces_scheduler.action import Action
from spaces_scheduler.dispatch import DueRun, Finished
from spaces_scheduler.durations import format_duration
from spaces_scheduler.errors import CredentialsError, HubError
from spaces_scheduler.hub import (
    HubClient,
    Identity,
    RequestBudget,
    Runtime,
    resolve_token,
)
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.runner import RunOptions, execute, needs_runtime

if TYPE_CHECKING:
    from spaces_scheduler.config import Config
    from spaces_scheduler.watch import Watcher

log = logging.getLogger(__name__)

SPACE_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CHECK_DEADLINE = 120.0
NO_WAIT_DEADLINE = 60.0
PROGRESS_FROM = 5
PREFETCH_FROM = 8


@dataclass(frozen=True)
class Job:
    """One run to make now: an action on a Space, with its options."""

    space: str
    action: Action
    options: RunOptions


def open_hub(config: Config | None, *, token_env: str | None) -> HubClient:
    """Return a Hub client with the config's budget, concurrency and token."""
    env = token_env or (config.hub.token_env if config is not None else None)
    token = resolve_token(env)
    if not token:
        raise CredentialsError(
            "No Hub token found: set HF_TOKEN, pass --token-env NAME, set "
            "[hub] token_env in the config, or log in with `hf auth login`."
        )

    limit = config.hub.requests_per_5min if config is not None else 800
    concurrency = config.hub.concurrency if config is not None else 8
    return HubClient(token=token, budget=RequestBudget(limit), concurrency=concurrency)


def check_access(client: HubClient, spaces: Iterable[str]) -> Identity:
    """Check the token and that it may manage every Space; raise CredentialsError."""
    identity = client.identity(deadline=time.monotonic() + CHECK_DEADLINE)
    if identity.auth_type == "oauth":
        raise CredentialsError(
            f"The token of {identity.name} comes from `hf auth login` (OAuth); the "
            "Hub refuses restart, hardware and sleep time to such tokens "
            "(huggingface_hub#4972). Use a write or fine-grained token."
        )

    refused = sorted(space for space in spaces if not identity.may_manage(space))
    if refused and identity.role == "read":
        raise CredentialsError(
            f"The token of {identity.name} is read-only (role read): it may look "
            "at Spaces but not act on them. Create a write token (or a "
            "fine-grained one with write access to the Spaces) at "
            "https://huggingface.co/settings/tokens; nothing was sent."
        )
    if refused:
        raise CredentialsError(
            f"The token of {identity.name} (role {identity.role}) may not manage "
            f"{', '.join(refused)}: they belong to neither {identity.name} nor "
            "its organisations, or the token cannot write. Use a token of the "
            "owner with write access; nothing was sent."
        )
    return identity


def check_space_ids(spaces: Sequence[str]) -> None:
    bad = [space for space in spaces if not SPACE_ID.match(space)]
    if bad:
        raise click.BadParameter(
            f"{', '.join(map(repr, bad))} is not a Space id; write owner/name.",
            param_hint="SPACE",
        )


def run_jobs(
    client: HubClient,
    jobs: Sequence[Job],
    *,
    on_done: Callable[[Job, Outcome], None],
    workers: int | None = None,
) -> list[Outcome]:
    """Run `jobs` concurrently; call `on_done` as each finishes; keep job order."""
    outcomes: dict[int, Outcome] = {}
    lock = threading.Lock()
    reading = [job.space for job in jobs if needs_runtime(job.action, job.options)]
    known = prefetch_runtimes(client, reading)
    # Runs spend most of their time asleep between polls; requests themselves
    # are bounded by the client's slots, so the pool can be wider.
    size = workers or max(1, min(len(jobs), 256))

    with ThreadPoolExecutor(max_workers=size, thread_name_prefix="run") as pool:
        futures = {
            pool.submit(run_one, client, job, known.get(job.space)): index
            for index, job in enumerate(jobs)
        }
        for future in as_completed(futures):
            index = futures[future]
            outcome = future.result()
            with lock:
                outcomes[index] = outcome
            on_done(jobs[index], outcome)
    return [outcomes[index] for index in range(len(jobs))]


def run_one(client: HubClient, job: Job, before: Runtime | None = None) -> Outcome:
    """Run one job with its deadline; never raises for Hub trouble."""
    wait = job.options.wait
    deadline = time.monotonic() + (wait if wait is not None else NO_WAIT_DEADLINE)
    calls = client.calls(deadline=deadline)
    return execute(calls, job.space, job.action, job.options, before=before)


def prefetch_runtimes(client: HubClient, spaces: Sequence[str]) -> dict[str, Runtime]:
    """Read the runtimes of many Spaces of one owner with one listing.

    One listing page answers for hundreds of Spaces where each would cost a
    runtime read; owners with only a few Spaces are read one by one later.
    A listing that fails costs nothing but the reads it was meant to save.
    """
    owners: dict[str, int] = {}
    for space in spaces:
        owner = space.split("/", 1)[0]
        owners[owner] = owners.get(owner, 0) + 1

    found: dict[str, Runtime] = {}
    for owner, count in owners.items():
        if count < PREFETCH_FROM:
            continue
        calls = client.calls(deadline=time.monotonic() + CHECK_DEADLINE)
        try:
            listing = calls.list_spaces(owner, with_runtime=True)
        except HubError as exc:
            log.warning("could not list the Spaces of %s: %s", owner, exc)
            continue
        found.update({s: rt for s, rt in listing.items() if rt is not None})
    return found


def run_options(
    config: Config | None,
    *,
    wait: float | None,
    no_wait: bool,
    if_busy: str = "act",
) -> RunOptions:
    """Return the options of an immediate run: the config's defaults, then flags.

    A Space the Hub shows building is acted on (`if_busy` "act") unless the
    command says otherwise: the user asked for this action now.
    """
    base = RunOptions()
    if config is not None:
        poll = config.hub.poll.total_seconds()
        base = RunOptions.of(config.defaults, poll_first=poll)
    if no_wait:
        wait_seconds = None
    else:
        wait_seconds = wait if wait is not None else base.wait
    return RunOptions(
        wait=wait_seconds,
        if_busy=if_busy,
        escalate=base.escalate,
        poll_first=base.poll_first,
        poll_cap=base.poll_cap,
    )


def run_line(space: str, action: str, outcome: Outcome, *, width: int = 0) -> str:
    """Return the one line a run prints: Space, action, outcome and why."""
    return f"{space:<{width}}  {action}  {outcome.line()}"


def echo_log_tail(outcome: Outcome) -> None:
    """Print the build-log lines of a failed run to stderr, under its line."""
    for line in outcome.log_tail:
        click.echo(f"    | {line}", err=True)


class Printer:
    """Prints run lines as runs finish, with a progress line on a terminal."""

    def __init__(self, total: int, *, width: int) -> None:
        self.total = total
        self.width = width
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._progress = total >= PROGRESS_FROM and sys.stderr.isatty()

    def __call__(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            self.done += 1
            self.failed += outcome.kind.is_failure
            if self._progress:
                click.echo("\r\033[K", nl=False, err=True)
            click.echo(run_line(job.space, str(job.action), outcome, width=self.width))
            echo_log_tail(outcome)
            if self._progress and self.done < self.total:
                click.echo(
                    f"{self.done}/{self.total} done, {self.failed} failed",
                    nl=False,
                    err=True,
                )


def act_now(
    config: Config | None,
    action: Action,
    spaces: list[str],
    *,
    wait: object,
    no_wait: bool,
    token_env: str | None,
    if_busy: str = "act",
) -> bool:
    """Act on `spaces` now, verified; return whether any run failed."""
    check_space_ids(spaces)
    seconds = wait.total_seconds() if hasattr(wait, "total_seconds") else None
    options = run_options(config, wait=seconds, no_wait=no_wait, if_busy=if_busy)

    client = open_hub(config, token_env=token_env)
    check_access(client, spaces)

    jobs = [Job(space, action, options) for space in spaces]
    printer = Printer(len(jobs), width=max(len(space) for space in spaces))
    outcomes = run_jobs(client, jobs, on_done=printer)
    return any(outcome.kind.is_failure for outcome in outcomes)


# -- scheduled runs ---------------------------------------------------------------


class SpaceResolver:
    """Expands the `spaces` of schedules, patterns through the Hub's listing.

    Listings are cached per owner until `refresh()`, so fifty schedules over one
    organisation cost one listing.
    """

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self._listings: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            self._listings.clear()

    def expand(self, entries: Iterable[str]) -> list[str]:
        """Return the Space ids `entries` name, in order, without repeats."""
        found: list[str] = []
        for entry in entries:
            if "*" not in entry:
                found.append(entry)
                continue
            owner, _, pattern = entry.partition("/")
            names = self._listing(owner)
            found.extend(
                n for n in names if fnmatch.fnmatchcase(n.split("/")[1], pattern)
            )
        return list(dict.fromkeys(found))

    def _listing(self, owner: str) -> list[str]:
        with self._lock:
            if owner not in self._listings:
                deadline = time.monotonic() + CHECK_DEADLINE
                spaces = self.client.calls(deadline=deadline).list_spaces(owner)
                self._listings[owner] = sorted(spaces)
            return self._listings[owner]


def schedule_executor(
    client: HubClient, *, poll_first: float = 2.0, watcher: Watcher | None = None
) -> Callable[[DueRun], Outcome]:
    """Return the function that makes one scheduled run on the Hub.

    With a `watcher`, a schedule with `when_changed` acts only when a watched
    repository moved (see `spaces_scheduler.watch`).
    """

    def run(due: DueRun) -> Outcome:
        options = RunOptions.of(due.schedule.policy, poll_first=poll_first)
        job = Job(due.space, due.schedule.action, options)
        if watcher is not None:
            return watcher.run(due, lambda: run_one(client, job))
        return run_one(client, job)

    return run


def scheduled_line(finished: Finished, *, width: int = 0) -> str:
    """Return the line of a scheduled run: Space, schedule, action, outcome."""
    run = finished.run
    text = f"{run.space:<{width}}  {run.schedule.name}  {run.schedule.action}  "
    text += finished.outcome.line()
    acted = finished.outcome.kind is not OutcomeKind.SKIPPED
    if acted and finished.lateness >= 0.05:
        text += f"  late {format_duration(finished.lateness)}"
    return text
