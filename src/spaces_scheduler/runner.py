"""Verified actions: act on one Space, then watch it until the Hub says how it went.

A run is `ok` only when the Space reached the state the action asked for: RUNNING
after a restart (having first been seen to leave the RUNNING it had before, since
the Hub can report the old stage for a moment), PAUSED after a pause, the new
flavor in `hardware.current` after a hardware change. An action the Hub accepted
but the Space never reacted to fails with a reason that says so.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.errors import HubError
from spaces_scheduler.hub import (
    ASLEEP_STAGES,
    BUSY_STAGES,
    ERROR_STAGES,
    HubCalls,
    Runtime,
)
from spaces_scheduler.outcome import Outcome, OutcomeKind

if TYPE_CHECKING:
    from spaces_scheduler.config import RunPolicy

log = logging.getLogger(__name__)

# Errors of the platform, not of the Space: no capacity for the hardware. A plain
# restart later can succeed; a factory rebuild changes nothing.
PLATFORM_FAULT = re.compile(
    r"scheduling failure|unable to schedule|not enough hardware|capacity", re.I
)
POLL_GROWTH = 1.5
LEAVE_BOUND_CAP = 60.0


@dataclass(frozen=True)
class RunOptions:
    """How to run one action: the `[defaults]` keys that matter here, in seconds.

    `wait` None means `--no-wait`: the run is ok once the Hub accepted it.
    `poll_first` is the first pause between runtime reads; each next one is
    half as long again, up to `poll_cap`, so a long build costs few requests.
    """

    wait: float | None = 1200.0
    if_busy: str = "skip"
    escalate: str = "rebuild-once"
    poll_first: float = 2.0
    poll_cap: float = 15.0

    @classmethod
    def of(cls, policy: RunPolicy, *, poll_first: float) -> RunOptions:
        """Return the options a schedule's (or `[defaults]`) policy sets."""
        return cls(
            wait=policy.wait.total_seconds(),
            if_busy=policy.if_busy,
            escalate=policy.escalate,
            poll_first=poll_first,
        )

    @property
    def leave_bound(self) -> float:
        """How long a restarted Space may still say RUNNING before we call it inert."""
        return min(LEAVE_BOUND_CAP, (self.wait or LEAVE_BOUND_CAP) / 4)


@dataclass
class _Run:
    """What one run has seen so far."""

    calls: HubCalls
    space: str
    action: Action
    options: RunOptions
    sleep: Callable[[float], None]
    stages: list[str] = field(default_factory=list)
    escalated: bool = False
    retried: bool = False
    second_try: str = ""  # "one factory rebuild" or "one more restart"
    first_failure: str = ""

    def saw(self, runtime: Runtime) -> Runtime:
        if not self.stages or self.stages[-1] != runtime.stage:
            self.stages.append(runtime.stage)
        return runtime

    def read(self) -> Runtime:
        return self.saw(self.calls.runtime(self.space))


class _Verdict(Exception):
    """Ends a run early with its outcome."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def execute(
    calls: HubCalls,
    space: str,
    action: Action,
    options: RunOptions,
    *,
    before: Runtime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Act on `space` and return the verified outcome; never raises HubError.

    `before` is the runtime when the caller read it already (from a listing of
    many Spaces at once); otherwise the run reads it first.
    """
    started = time.monotonic()
    run = _Run(calls, space, action, options, sleep)
    try:
        outcome = _act(run, before)
    except _Verdict as verdict:
        outcome = verdict.outcome
    except HubError as exc:
        outcome = Outcome(OutcomeKind.FAILED, reason=str(exc))

    return Outcome(
        outcome.kind,
        reason=outcome.reason,
        summary=outcome.summary,
        stages=tuple(run.stages),
        duration=time.monotonic() - started,
        requests=calls.requests,
        log_tail=outcome.log_tail,
        escalated=run.escalated,
    )


def needs_runtime(action: Action, options: RunOptions) -> bool:
    """Whether a run must read the Space's runtime before acting.

    Only an unverified restart or rebuild that acts whatever the Space is
    doing can do without: everything else decides on the stage (if_busy,
    wake), compares the state (pause, hardware) or must see the old stage end.
    """
    blind = options.wait is None and options.if_busy == "act"
    return not (blind and action.kind in (ActionKind.RESTART, ActionKind.REBUILD))


def _act(run: _Run, before: Runtime | None) -> Outcome:
    if before is None and not needs_runtime(run.action, run.options):
        return _restart_blind(run)
    before = run.saw(before) if before is not None else run.read()
    kind = run.action.kind

    if kind is ActionKind.WAKE:
        skip = _wake_skip(before)
        if skip is not None:
            return skip
    if kind is not ActionKind.PAUSE and before.stage in BUSY_STAGES:
        before = _busy_on_hub(run, before)

    if kind is ActionKind.PAUSE:
        return _pause(run, before)
    if kind is ActionKind.HARDWARE:
        return _hardware(run, before)
    if kind is ActionKind.SLEEP_TIME:
        return _sleep_time(run)
    if kind is ActionKind.VARIABLES:
        return _variables(run, before)
    return _restart(run, before, factory=kind is ActionKind.REBUILD)


def _wake_skip(before: Runtime) -> Outcome | None:
    """Return why `wake` leaves the Space alone, or None when it must restart it."""
    if before.stage in ASLEEP_STAGES:
        return None
    if before.stage == "PAUSED":
        return Outcome.skipped("paused", summary="a paused Space stays paused")
    if before.stage in BUSY_STAGES:
        return Outcome.skipped("waking", summary=f"already {before.stage}")
    return Outcome.skipped("awake", summary=f"already {before.stage}")


def _busy_on_hub(run: _Run, before: Runtime) -> Runtime:
    """Apply `if_busy` to a Space the Hub shows building or starting."""
    policy = run.options.if_busy
    if policy == "act":
        return before
    if policy == "skip" or run.options.wait is None:
        raise _Verdict(
            Outcome.skipped("building", summary=f"the Hub shows it {before.stage}")
        )

    settled = _poll(run, until=lambda rt: rt.stage not in BUSY_STAGES)
    if settled is None:
        raise _Verdict(
            Outcome(
                OutcomeKind.TIMED_OUT,
                reason=f"still {run.stages[-1]} when the wait ended; nothing sent",
            )
        )
    return settled


# -- restart, rebuild, wake ------------------------------------------------------


def _restart(run: _Run, before: Runtime, *, factory: bool) -> Outcome:
    after = run.saw(run.calls.restart(run.space, factory=factory))
    if run.options.wait is None:
        return Outcome(OutcomeKind.OK, summary="triggered")
    return _until_running(run, before, after, time.monotonic())


def _restart_blind(run: _Run) -> Outcome:
    factory = run.action.kind is ActionKind.REBUILD
    run.saw(run.calls.restart(run.space, factory=factory))
    return Outcome(OutcomeKind.OK, summary="triggered")


def _until_running(
    run: _Run, before: Runtime, after: Runtime, acted_at: float
) -> Outcome:
    wait = run.options.wait or 0.0
    flavor = run.action.hardware if run.action.kind is ActionKind.HARDWARE else None
    # The Hub may answer with the stage the Space had before acting; that one
    # must be seen to end. A build restarted while building is no such echo.
    echoed = after.stage == before.stage and after.stage not in BUSY_STAGES
    stale = after.stage if echoed else None

    def settled(rt: Runtime) -> bool:
        nonlocal stale
        if stale is not None and rt.stage != stale:
            stale = None
        if stale is not None:
            return time.monotonic() - acted_at > run.options.leave_bound
        return rt.stage not in BUSY_STAGES

    final = _poll(run, until=settled, start=after, deadline=acted_at + wait)
    if stale is not None:
        return _inert(run, before)
    if final is None:
        return _stuck(run, acted_at)
    if final.stage == "RUNNING":
        return _running(run, final, flavor, acted_at)
    if final.stage in ERROR_STAGES:
        return _errored(run, final)
    return Outcome(
        OutcomeKind.FAILED,
        reason=f"the Space went to {final.stage} instead of RUNNING",
    )


def _running(run: _Run, final: Runtime, flavor: str | None, acted_at: float) -> Outcome:
    if flavor is not None and final.hardware != flavor:
        return Outcome(
            OutcomeKind.FAILED,
            reason=(
                f"the Hub accepted hardware={flavor} but the Space came back "
                f"on {final.hardware}"
            ),
        )
    took = time.monotonic() - acted_at
    summary = f"RUNNING after {took:.1f}s"
    if flavor is not None:
        summary = f"RUNNING on {flavor} after {took:.1f}s"
    return Outcome(OutcomeKind.OK, summary=_with_note(run, summary))


def _inert(run: _Run, before: Runtime) -> Outcome:
    """The Hub accepted the action, yet the Space never left its old stage."""
    bound = run.options.leave_bound
    if run.action.kind is ActionKind.HARDWARE:
        reason = (
            f"the Hub accepted hardware={run.action.hardware} but the Space "
            f"still runs on {before.hardware} after {bound:.0f}s"
        )
    else:
        reason = (
            f"the Hub accepted the {run.action} but the Space stayed "
            f"{before.stage} for {bound:.0f}s: nothing was restarted"
        )
    return Outcome(OutcomeKind.FAILED, reason=reason)


def _errored(run: _Run, final: Runtime) -> Outcome:
    message = final.error_message or "the Hub gave no reason"
    if final.stage == "BUILD_ERROR" and _may_escalate(run):
        return _escalate(run, f"{final.stage}: {message}")
    if final.stage == "RUNTIME_ERROR" and PLATFORM_FAULT.search(message):
        if not run.retried:
            return _retry_platform_fault(run, message)

    tail = run.calls.build_log_tail(run.space) if final.stage == "BUILD_ERROR" else ()
    return Outcome(
        OutcomeKind.FAILED,
        reason=_with_note(run, f"{final.stage}: {message}"),
        log_tail=tail,
    )


def _stuck(run: _Run, acted_at: float) -> Outcome:
    last = run.stages[-1] if run.stages else "?"
    if last in ("BUILDING", "RUNNING_BUILDING") and _may_escalate(run):
        return _escalate(run, f"still {last} after {run.options.wait:.0f}s")
    took = time.monotonic() - acted_at
    return Outcome(
        OutcomeKind.TIMED_OUT,
        reason=_with_note(run, f"still {last} after {took:.0f}s"),
    )


def _may_escalate(run: _Run) -> bool:
    return (
        run.options.escalate == "rebuild-once"
        and not run.escalated
        and run.action.kind is not ActionKind.REBUILD
    )


def _escalate(run: _Run, why: str) -> Outcome:
    """Rebuild from scratch once, with a fresh wait."""
    log.info("%s: %s; escalating to one factory rebuild", run.space, why)
    run.escalated = True
    run.second_try, run.first_failure = "one factory rebuild", why
    run.calls.deadline = time.monotonic() + (run.options.wait or 0.0)

    before = run.read()
    after = run.saw(run.calls.restart(run.space, factory=True))
    return _until_running(run, before, after, time.monotonic())


def _retry_platform_fault(run: _Run, message: str) -> Outcome:
    """Restart once more: the platform had no capacity, the Space is not at fault."""
    log.info("%s: %s; one plain restart more", run.space, message)
    run.retried = True
    run.second_try = "one more restart"
    run.first_failure = f"RUNTIME_ERROR: {message}"
    run.calls.deadline = time.monotonic() + (run.options.wait or 0.0)

    before = run.read()
    after = run.saw(run.calls.restart(run.space))
    return _until_running(run, before, after, time.monotonic())


def _with_note(run: _Run, text: str) -> str:
    """Say what the second try was, and the first failure if it differs."""
    if not run.second_try:
        return text
    if text == run.first_failure:
        return f"{text} (again after {run.second_try})"
    return f"{text} (after {run.second_try}; first {run.first_failure})"


# -- pause, hardware, sleep time, variables ------------------------------------------


def _pause(run: _Run, before: Runtime) -> Outcome:
    if before.stage == "PAUSED":
        return Outcome(OutcomeKind.OK, summary="already PAUSED")

    after = run.saw(run.calls.pause(run.space))
    if run.options.wait is None or after.stage == "PAUSED":
        return Outcome(
            OutcomeKind.OK, summary="PAUSED" if run.options.wait else "triggered"
        )

    final = _poll(run, until=lambda rt: rt.stage == "PAUSED", start=after)
    if final is None:
        return Outcome(
            OutcomeKind.TIMED_OUT,
            reason=f"the Hub accepted the pause but the Space is {run.stages[-1]}",
        )
    return Outcome(OutcomeKind.OK, summary="PAUSED")


def _hardware(run: _Run, before: Runtime) -> Outcome:
    flavor = run.action.hardware
    if before.hardware == flavor and before.requested_hardware in (None, flavor):
        return Outcome(OutcomeKind.OK, summary=f"already on {flavor}")

    after = run.saw(run.calls.request_hardware(run.space, str(flavor)))
    if run.options.wait is None:
        return Outcome(OutcomeKind.OK, summary="triggered")
    if before.stage in ("PAUSED", *ASLEEP_STAGES):
        # The Hub records the flavor; the Space starts on it when woken.
        if after.requested_hardware == flavor:
            return Outcome(
                OutcomeKind.OK, summary=f"{flavor} requested; {before.stage}"
            )
    return _until_running(run, before, after, time.monotonic())


def _sleep_time(run: _Run) -> Outcome:
    seconds = run.action.sleep_seconds
    after = run.saw(run.calls.set_sleep_time(run.space, int(seconds or -1)))
    if run.options.wait is None:
        return Outcome(OutcomeKind.OK, summary="triggered")
    if not _sleeps_after(after, seconds):
        after = run.read()
    if not _sleeps_after(after, seconds):
        return Outcome(
            OutcomeKind.FAILED,
            reason=(
                f"the Hub accepted {run.action} but reports a sleep time of "
                f"{after.sleep_time}"
            ),
        )
    return Outcome(OutcomeKind.OK, summary=f"sleep time {run.action}")


def _sleeps_after(runtime: Runtime, seconds: int | None) -> bool:
    """Whether the Space sleeps after `seconds` (-1: never) by the Hub's account.

    The Hub writes "never" as a missing or null `gcTimeout`.
    """
    if seconds == -1:
        return runtime.sleep_time in (None, -1)
    return runtime.sleep_time == seconds


def _variables(run: _Run, before: Runtime) -> Outcome:
    """Set the variables; a change restarts the Space, which must come back."""
    wanted = dict(run.action.variables)
    if all(run.calls.variables(run.space).get(k) == v for k, v in wanted.items()):
        return Outcome(OutcomeKind.OK, summary=f"{len(wanted)} already set")

    current = run.calls.set_variables(run.space, run.action.variables)
    missing = sorted(k for k, v in wanted.items() if current.get(k) != v)
    if missing:
        return Outcome(
            OutcomeKind.FAILED,
            reason=f"the Hub did not keep the variables {', '.join(missing)}",
        )
    if run.options.wait is None:
        return Outcome(OutcomeKind.OK, summary="triggered")
    if before.stage in ("PAUSED", *ASLEEP_STAGES):
        # The Hub keeps them; the Space reads them when it next starts.
        return Outcome(OutcomeKind.OK, summary=f"{len(wanted)} set; {before.stage}")

    outcome = _until_running(run, before, run.read(), time.monotonic())
    if outcome.kind is OutcomeKind.OK:
        return Outcome(OutcomeKind.OK, summary=f"{len(wanted)} set; {outcome.summary}")
    return outcome


# -- polling ------------------------------------------------------------------------


def _poll(
    run: _Run,
    *,
    until: Callable[[Runtime], bool],
    start: Runtime | None = None,
    deadline: float | None = None,
) -> Runtime | None:
    """Read the runtime with growing pauses until `until` holds; None at deadline."""
    if deadline is None:
        deadline = time.monotonic() + (run.options.wait or 0.0)
    runtime = start if start is not None else run.read()
    pause = run.options.poll_first

    while not until(runtime):
        if time.monotonic() + pause > deadline:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            pause = left
        run.sleep(pause)
        pause = min(run.options.poll_cap, pause * POLL_GROWTH)
        runtime = run.read()
    return runtime
