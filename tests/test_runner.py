"""Verified actions against the simulated Hub over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from spaces_scheduler.action import Action, ActionKind
from spaces_scheduler.errors import CredentialsError, RateLimitedError
from spaces_scheduler.hub import HubClient, RequestBudget
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.runner import RunOptions, execute

from support import ALICE_TOKEN, alice_world, fast

RESTART = Action(ActionKind.RESTART)
REBUILD = Action(ActionKind.REBUILD)
OPTIONS = RunOptions(wait=6.0, poll_first=0.05, poll_cap=0.3)


def client_for(sim: Any, token: str = ALICE_TOKEN) -> HubClient:
    return HubClient(token=token, endpoint=sim.url, budget=RequestBudget(1000))


def run(sim: Any, space: str, action: Action, options: RunOptions = OPTIONS) -> Any:
    client = client_for(sim)
    calls = client.calls(deadline=time.monotonic() + (options.wait or 30))
    return execute(calls, space, action, options)


def posts(sim: Any, suffix: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sim.requests()
        if r["method"] == "POST" and r["path"].endswith(suffix)
    ]


def test_restart_is_ok_only_after_running_again(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))

    outcome = run(sim, "alice/dash", RESTART)

    assert outcome.kind is OutcomeKind.OK
    assert outcome.summary.startswith("RUNNING after ")
    # The stale RUNNING right after the restart does not count: it left first.
    assert outcome.stages[0] == "RUNNING"
    assert "BUILDING" in outcome.stages
    assert outcome.stages[-1] == "RUNNING"


def test_restart_spends_few_requests_besides_polls(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))

    outcome = run(sim, "alice/dash", RESTART)

    runtime_reads = [
        r for r in sim.requests() if r["path"] == "/api/spaces/alice/dash/runtime"
    ]
    assert len(posts(sim, "/restart")) == 1
    # One read before acting, the rest are polls; nothing else was sent.
    assert outcome.requests == len(runtime_reads) + 1


def test_polls_grow_so_a_long_build_costs_few_requests(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/slow", build_seconds=6.0)))
    options = RunOptions(wait=20.0, poll_first=0.5, poll_cap=4.0)

    outcome = run(sim, "alice/slow", RESTART, options)

    assert outcome.kind is OutcomeKind.OK
    polls = outcome.requests - 2  # the read before acting and the restart
    assert polls <= 8, outcome


def test_build_error_fails_with_the_hubs_reason_and_log(start_sim: Any) -> None:
    sim = start_sim(
        alice_world(
            fast(
                "alice/broken",
                build_error="ERROR: No matching distribution found for foo==9",
                build_log=["Step 3/9 : RUN pip install -r requirements.txt"],
            )
        )
    )

    outcome = run(sim, "alice/broken", RESTART)

    assert outcome.kind is OutcomeKind.FAILED
    assert "BUILD_ERROR: ERROR: No matching distribution found for foo==9" in (
        outcome.reason
    )
    assert any("pip install" in line for line in outcome.log_tail)
    # Escalated once to a factory rebuild, which did not help either.
    assert outcome.escalated
    assert [r["query"] for r in posts(sim, "/restart")] == ["", "factory=true"]


def test_build_error_fixed_by_factory_rebuild_is_ok(start_sim: Any) -> None:
    sim = start_sim(
        alice_world(
            fast("alice/broken", build_error="ERROR: bad cache", fixed_by_factory=True)
        )
    )

    outcome = run(sim, "alice/broken", RESTART)

    assert outcome.kind is OutcomeKind.OK
    assert "after one factory rebuild" in outcome.summary
    assert "BUILD_ERROR: ERROR: bad cache" in outcome.summary


def test_stuck_build_times_out_then_escalates(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/hangs", stuck=True)))
    options = RunOptions(wait=1.0, poll_first=0.05, poll_cap=0.2)

    outcome = run(sim, "alice/hangs", RESTART, options)

    assert outcome.kind is OutcomeKind.TIMED_OUT
    assert outcome.reason.startswith("still BUILDING after")
    assert "again after one factory rebuild" in outcome.reason
    assert [r["query"] for r in posts(sim, "/restart")] == ["", "factory=true"]


def test_stuck_build_without_escalation_only_times_out(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/hangs", stuck=True)))
    options = RunOptions(wait=0.8, poll_first=0.05, escalate="none")

    outcome = run(sim, "alice/hangs", RESTART, options)

    assert outcome.kind is OutcomeKind.TIMED_OUT
    assert len(posts(sim, "/restart")) == 1


def test_restart_the_space_never_reacts_to_fails(start_sim: Any) -> None:
    # Reported: a factory rebuild answered 200, the Space stayed RUNNING.
    sim = start_sim(alice_world(fast("alice/inert", ignore_restart=True)))
    options = RunOptions(wait=2.0, poll_first=0.05, poll_cap=0.2)

    outcome = run(sim, "alice/inert", REBUILD, options)

    assert outcome.kind is OutcomeKind.FAILED
    assert "stayed RUNNING" in outcome.reason
    assert "nothing was restarted" in outcome.reason


def test_hardware_that_never_changes_fails(start_sim: Any) -> None:
    # Reported: a hardware request answered 200, the Space kept cpu-basic.
    sim = start_sim(alice_world(fast("alice/gpu", ignore_hardware=True)))
    action = Action(ActionKind.HARDWARE, hardware="t4-small")
    options = RunOptions(wait=2.0, poll_first=0.05, poll_cap=0.2)

    outcome = run(sim, "alice/gpu", action, options)

    assert outcome.kind is OutcomeKind.FAILED
    assert "hardware=t4-small" in outcome.reason
    assert "cpu-basic" in outcome.reason


def test_hardware_is_ok_when_current_is_the_flavor(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/gpu")))
    action = Action(ActionKind.HARDWARE, hardware="t4-small")

    outcome = run(sim, "alice/gpu", action)

    assert outcome.kind is OutcomeKind.OK, outcome
    assert "t4-small" in outcome.summary
    runtime = client_for(sim).calls(deadline=time.monotonic() + 5).runtime("alice/gpu")
    assert runtime.hardware == "t4-small"


def test_platform_fault_is_retried_once_without_rebuild(start_sim: Any) -> None:
    # Reported: "Scheduling failure: unable to schedule", fixed by a restart.
    sim = start_sim(
        alice_world(
            fast(
                "alice/flaky", runtime_errors=["Scheduling failure: unable to schedule"]
            )
        )
    )

    outcome = run(sim, "alice/flaky", RESTART)

    assert outcome.kind is OutcomeKind.OK, outcome
    assert "after one more restart" in outcome.summary
    assert [r["query"] for r in posts(sim, "/restart")] == ["", ""]


def test_runtime_error_fails_with_its_message(start_sim: Any) -> None:
    sim = start_sim(
        alice_world(fast("alice/crashes", runtime_error="KeyError: 'DATA_URL'"))
    )

    outcome = run(sim, "alice/crashes", RESTART)

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "RUNTIME_ERROR: KeyError: 'DATA_URL'"
    assert not outcome.escalated


def test_rate_limited_restart_is_waited_out(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))
    sim.add_fault(
        {
            "path": "/api/spaces/alice/dash/restart",
            "status": 429,
            "times": 2,
            "retry_after": 1,
        }
    )

    started = time.monotonic()
    outcome = run(sim, "alice/dash", RESTART)

    assert outcome.kind is OutcomeKind.OK, outcome
    assert [r["status"] for r in posts(sim, "/restart")] == [429, 429, 200]
    assert time.monotonic() - started >= 2.0  # Retry-After was honoured


def test_503_on_restart_fails_with_message_and_request_id(start_sim: Any) -> None:
    # Reported: a paused Space's restart answered 503 with only a request id.
    sim = start_sim(alice_world(fast("alice/stuck-paused", stage="PAUSED")))
    sim.add_fault(
        {"path": "/api/spaces/alice/stuck-paused/restart", "status": 503, "times": 0}
    )
    options = RunOptions(wait=2.5, poll_first=0.05)

    outcome = run(sim, "alice/stuck-paused", RESTART, options)

    assert outcome.kind is OutcomeKind.FAILED
    assert "503" in outcome.reason
    assert "request id" in outcome.reason
    attempts = posts(sim, "/restart")
    assert len(attempts) >= 2  # plain retries
    assert all(r["query"] == "" for r in attempts)  # never a factory rebuild


def test_wake_leaves_a_paused_space_paused(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/paused", stage="PAUSED")))

    outcome = run(sim, "alice/paused", Action(ActionKind.WAKE))

    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.reason == "paused"
    assert posts(sim, "/restart") == []


def test_wake_restarts_a_sleeping_space(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/sleepy", stage="SLEEPING")))

    outcome = run(sim, "alice/sleepy", Action(ActionKind.WAKE))

    assert outcome.kind is OutcomeKind.OK
    assert outcome.stages[0] == "SLEEPING"
    assert len(posts(sim, "/restart")) == 1


def test_pause_is_verified(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/demo")))

    outcome = run(sim, "alice/demo", Action(ActionKind.PAUSE))

    assert outcome.kind is OutcomeKind.OK
    assert outcome.stages[-1] == "PAUSED"


def test_sleep_time_is_verified(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/gpu", hardware="t4-small")))
    action = Action(ActionKind.SLEEP_TIME, sleep_seconds=3600)

    outcome = run(sim, "alice/gpu", action)

    assert outcome.kind is OutcomeKind.OK, outcome


def test_variables_are_set_and_verified(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/demo")))
    action = Action.from_cli("variable=DATA_REVISION=abc123")

    outcome = run(sim, "alice/demo", action)

    assert outcome.kind is OutcomeKind.OK, outcome
    variables = [r for r in sim.requests() if r["path"].endswith("/variables")]
    assert [r["method"] for r in variables] == ["GET", "POST"]


@pytest.mark.parametrize(
    ("policy", "kind", "restarts"),
    [("skip", OutcomeKind.SKIPPED, 0), ("act", OutcomeKind.OK, 1)],
)
def test_if_busy_decides_for_a_space_building_on_the_hub(
    start_sim: Any, policy: str, kind: OutcomeKind, restarts: int
) -> None:
    sim = start_sim(
        alice_world(fast("alice/dash", stage="BUILDING", build_seconds=0.4))
    )
    options = RunOptions(wait=5.0, if_busy=policy, poll_first=0.05)

    outcome = run(sim, "alice/dash", RESTART, options)

    assert outcome.kind is kind, outcome
    assert len(posts(sim, "/restart")) == restarts


def test_if_busy_wait_acts_once_the_space_settled(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))
    client = client_for(sim)
    client.calls(deadline=time.monotonic() + 5).restart("alice/dash")
    options = RunOptions(wait=5.0, if_busy="wait", poll_first=0.05)

    outcome = execute(
        client.calls(deadline=time.monotonic() + 5), "alice/dash", RESTART, options
    )

    assert outcome.kind is OutcomeKind.OK
    assert outcome.stages[0] in ("BUILDING", "APP_STARTING", "RUNNING")
    assert len(posts(sim, "/restart")) == 2


def test_no_wait_is_ok_once_accepted(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash", build_seconds=5.0)))

    outcome = run(sim, "alice/dash", RESTART, RunOptions(wait=None))

    assert outcome.kind is OutcomeKind.OK
    assert outcome.summary == "triggered"
    assert outcome.requests == 2


def test_whoami_rate_limit_is_waited_out_not_called_invalid(start_sim: Any) -> None:
    # Reported: whoami answered 429 for hours and a tool said the token was bad.
    sim = start_sim(alice_world(fast("alice/dash")))
    sim.add_fault(
        {"path": "/api/whoami-v2", "status": 429, "times": 2, "retry_after": 1}
    )

    identity = client_for(sim).identity(deadline=time.monotonic() + 10)

    assert identity.name == "alice"


def test_whoami_rate_limit_past_deadline_is_a_rate_limit(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))
    sim.add_fault(
        {"path": "/api/whoami-v2", "status": 429, "times": 0, "retry_after": 60}
    )

    with pytest.raises(RateLimitedError) as raised:
        client_for(sim).identity(deadline=time.monotonic() + 3)

    assert not isinstance(raised.value, CredentialsError)
    assert "429" in str(raised.value)


def test_bad_token_is_a_credentials_error(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))

    with pytest.raises(CredentialsError, match="refused the token"):
        client_for(sim, "hf_notAKnownToken000000").identity(
            deadline=time.monotonic() + 5
        )


def test_budget_paces_requests_within_the_window() -> None:
    now = [0.0]
    budget = RequestBudget(3, window=10.0, clock=lambda: now[0])

    for _ in range(3):
        budget.acquire(deadline=100.0)

    with pytest.raises(RateLimitedError):
        budget.acquire(deadline=5.0)  # room again only at 10.0
    now[0] = 10.0
    budget.acquire(deadline=100.0)


def test_blind_restart_sends_only_the_restart(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))
    options = RunOptions(wait=None, if_busy="act")

    outcome = run(sim, "alice/dash", RESTART, options)

    assert outcome.kind is OutcomeKind.OK
    assert outcome.requests == 1
    assert [r["method"] for r in sim.requests()] == ["POST"]


def test_sleep_time_never_is_verified(start_sim: Any) -> None:
    # The Hub answers "never" with a null gcTimeout.
    sim = start_sim(alice_world(fast("alice/gpu", hardware="t4-small")))
    action = Action.from_cli("sleep_time=never")

    outcome = run(sim, "alice/gpu", action)

    assert outcome.kind is OutcomeKind.OK, outcome


def test_a_variable_change_is_verified_like_a_restart(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/demo")))
    action = Action.from_cli("variable=DATA_REVISION=abc123")

    outcome = run(sim, "alice/demo", action)

    # The Hub restarts a Space whose variables change: it must come back.
    assert outcome.kind is OutcomeKind.OK, outcome
    assert "RUNNING after" in outcome.summary
    assert "BUILDING" in outcome.stages


def test_variables_already_set_send_nothing(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/demo", variables={"MODE": "fast"})))

    outcome = run(sim, "alice/demo", Action.from_cli("variable=MODE=fast"))

    assert outcome.kind is OutcomeKind.OK
    assert outcome.summary == "1 already set"
    assert posts(sim, "/variables") == []


def test_an_action_that_got_no_answer_is_not_sent_again(
    start_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub.utils import close_session

    import spaces_scheduler.hub as hub

    monkeypatch.setattr(hub, "REQUEST_TIMEOUT", 0.5)
    close_session()  # the next request builds a client with the short timeout
    sim = start_sim(alice_world(fast("alice/dash")))
    sim.add_fault({"path": "/api/spaces/alice/dash/restart", "hang": True, "times": 0})

    try:
        outcome = run(sim, "alice/dash", RESTART, RunOptions(wait=None))
    finally:
        monkeypatch.undo()
        close_session()

    assert outcome.kind is OutcomeKind.FAILED
    assert "not sent again" in outcome.reason
    assert len(posts(sim, "/restart")) == 1


def test_a_rate_limit_longer_than_the_wait_says_so(start_sim: Any) -> None:
    sim = start_sim(alice_world(fast("alice/dash")))
    sim.add_fault(
        {
            "path": "/api/spaces/alice/dash/restart",
            "status": 429,
            "times": 0,
            "retry_after": 600,
        }
    )

    outcome = run(sim, "alice/dash", RESTART, RunOptions(wait=3.0, poll_first=0.05))

    assert outcome.kind is OutcomeKind.FAILED
    assert "asked to wait 600s" in outcome.reason
