"""The simulated Hub's own behaviour: stage machine keys, faults, the rate limiter,
webhook delivery, the control API, hangs, and its lack of latency."""

from __future__ import annotations

import os
import tempfile

# The client reads these at import: never let it reach huggingface.co.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hubsim-hf-home-"))
if not os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1"):
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"

import json  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from typing import Any  # noqa: E402

import httpx2  # noqa: E402
import pytest  # noqa: E402
from huggingface_hub import HfApi, WebhookPayload, constants  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError  # noqa: E402

from spaces_scheduler.hubsim import HubSim, World, WorldError  # noqa: E402

if not constants.HF_HUB_DISABLE_TELEMETRY:
    raise RuntimeError("huggingface_hub was imported with telemetry on: unsafe here.")

ALICE = "hf_test_alice_write"
BOB = "hf_test_bob_write"
FAST = {"build_seconds": 0.1, "start_seconds": 0.05}


def world(*spaces: dict[str, Any], **hub: Any) -> dict[str, Any]:
    return {
        "hub": {"requests_per_window": 10_000, **hub},
        "token": [
            {"value": ALICE, "user": "alice", "orgs": ["alice-org"]},
            {"value": BOB, "user": "bob"},
        ],
        "space": [{"id": "alice/app", **FAST}, *spaces],
        "dataset": [
            {"id": "alice/prompts"},
            {"id": "alice-org/secret-data", "private": True},
        ],
        "model": [{"id": "alice/tiny"}],
    }


@pytest.fixture
def make_sim() -> Iterator[Callable[..., HubSim]]:
    started: list[HubSim] = []

    def make(*spaces: dict[str, Any], **hub: Any) -> HubSim:
        sim = HubSim(World.from_dict(world(*spaces, **hub)), port=0)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def api_of(sim: HubSim, token: str = ALICE) -> HfApi:
    return HfApi(endpoint=sim.url, token=token)


def settle(api: HfApi, space: str, *, timeout: float = 3.0) -> tuple[str, Any]:
    """Poll until the stage stops being transient; return (stage, errorMessage)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = api.get_space_runtime(space).raw
        if raw["stage"] not in ("BUILDING", "APP_STARTING"):
            return raw["stage"], raw.get("errorMessage")
        time.sleep(0.01)
    return raw["stage"], raw.get("errorMessage")


# -- stage machine keys ---------------------------------------------------------------


def test_runtime_errors_are_used_one_per_attempt(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim(
        {"id": "alice/flaky", "runtime_errors": ["Scheduling failure"], **FAST}
    )
    api = api_of(sim)

    api.restart_space("alice/flaky")
    first = settle(api, "alice/flaky")
    api.restart_space("alice/flaky")
    second = settle(api, "alice/flaky")

    assert first == ("RUNTIME_ERROR", "Scheduling failure")
    assert second == ("RUNNING", None)


def test_runtime_error_fails_every_start(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim({"id": "alice/crash", "runtime_error": "Exit code: 1", **FAST})
    api = api_of(sim)

    for _ in range(2):
        api.restart_space("alice/crash")
        assert settle(api, "alice/crash") == ("RUNTIME_ERROR", "Exit code: 1")
    assert list(api.fetch_space_logs("alice/crash"))[-1] == "Exit code: 1\n"


def test_stuck_builds_for_ever_until_a_factory_rebuild(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim(
        {"id": "alice/stuck", "stuck": True, "fixed_by_factory": True, **FAST}
    )
    api = api_of(sim)

    api.restart_space("alice/stuck")
    time.sleep(0.3)
    stuck = api.get_space_runtime("alice/stuck").stage
    api.restart_space("alice/stuck", factory_reboot=True)

    assert stuck == "BUILDING"
    assert settle(api, "alice/stuck") == ("RUNNING", None)


def test_stuck_stage_holds_that_stage(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim({"id": "alice/slow", "stuck_stage": "APP_STARTING", **FAST})
    api = api_of(sim)

    api.restart_space("alice/slow")
    time.sleep(0.4)

    assert api.get_space_runtime("alice/slow").stage == "APP_STARTING"


def test_pause_after_queue_builds_with_empty_log_then_pauses(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim({"id": "alice/quota", "pause_after_queue": 0.15, **FAST})
    api = api_of(sim)

    api.restart_space("alice/quota")
    queued = api.get_space_runtime("alice/quota").stage
    log = list(api.fetch_space_logs("alice/quota", build=True))

    assert (queued, log) == ("BUILDING", [])
    assert settle(api, "alice/quota") == ("PAUSED", None)


def test_ignore_restart_answers_200_and_stays_running(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim({"id": "alice/deaf", "ignore_restart": True, **FAST})
    api = api_of(sim)

    assert api.restart_space("alice/deaf").stage == "RUNNING"
    time.sleep(0.2)

    assert api.get_space_runtime("alice/deaf").stage == "RUNNING"
    assert sim.space_state("alice/deaf")["attempts"] == 0


def test_app_status_is_what_the_app_answers_while_running(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim({"id": "alice/sick", "app_status": 500, **FAST})
    app = f"{sim.url}/_sim/app/alice/sick"

    assert httpx2.get(app).status_code == 500
    api_of(sim).pause_space("alice/sick")
    assert httpx2.get(app).status_code == 503
    assert sim.requests()[-1]["path"] == "/api/spaces/alice/sick/pause"


def test_stage_since_dates_the_initial_stage(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim({"id": "alice/old", "stage_since": -43200})

    since = sim.space_state("alice/old")["stage_since"]
    began = datetime.strptime(since, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    assert abs(time.time() - began.timestamp() - 43200) < 5


def test_commit_to_a_space_rebuilds_it(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    api = api_of(sim)

    sha = sim.commit("spaces/alice/app")

    assert api.get_space_runtime("alice/app").stage == "BUILDING"
    assert api.space_info("alice/app", expand=["sha"]).sha == sha


def test_pause_during_a_build_stops_it(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    api = api_of(sim)

    api.restart_space("alice/app")
    api.pause_space("alice/app")
    time.sleep(0.3)

    assert api.get_space_runtime("alice/app").stage == "PAUSED"


# -- faults -------------------------------------------------------------------------


def test_429_fault_with_retry_after_then_success(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()
    sim.add_fault(
        {
            "path": "/api/spaces/alice/app/restart",
            "status": 429,
            "times": 2,
            "retry_after": 1,
        }
    )
    api = api_of(sim)

    for _ in range(2):
        with pytest.raises(HfHubHTTPError, match="Retry after 1 seconds") as caught:
            api.restart_space("alice/app")
        headers = caught.value.response.headers
        assert headers["Retry-After"] == "1"
        assert headers["RateLimit"] == '"api";r=0;t=1'

    assert api.restart_space("alice/app").stage == "BUILDING"
    assert [r["status"] for r in sim.requests()] == [429, 429, 200]


def test_503_fault_sends_only_a_request_id(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    sim.add_fault({"space": "alice/app", "status": 503})

    with pytest.raises(HfHubHTTPError) as caught:
        api_of(sim).get_space_runtime("alice/app")

    response = caught.value.response
    assert response.status_code == 503
    assert response.content == b""
    assert "X-Error-Message" not in response.headers
    assert caught.value.request_id == response.headers["X-Request-Id"]


def test_fault_message_reaches_the_client(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    sim.add_fault(
        {
            "path": "/api/spaces/alice/app/hardware",
            "status": 402,
            "message": "A payment method is required to upgrade hardware.",
        }
    )

    with pytest.raises(HfHubHTTPError, match="A payment method is required"):
        api_of(sim).request_space_hardware("alice/app", "t4-small")

    assert api_of(sim).request_space_hardware("alice/app", "t4-small")


def test_fault_by_space_and_method_only_hits_that_method(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()
    sim.add_fault({"space": "alice/app", "method": "post", "status": 500, "times": 0})
    api = api_of(sim)

    assert api.get_space_runtime("alice/app").stage == "RUNNING"
    for _ in range(3):
        with pytest.raises(HfHubHTTPError):
            api.pause_space("alice/app")


def test_delay_fault_answers_late(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    sim.add_fault({"path": "/api/spaces/alice/app/runtime", "delay": 0.3})
    api = api_of(sim)

    started = time.monotonic()
    api.get_space_runtime("alice/app")
    slow = time.monotonic() - started
    started = time.monotonic()
    api.get_space_runtime("alice/app")

    assert slow >= 0.3
    assert time.monotonic() - started < 0.2


def test_hang_needs_the_client_timeout_and_blocks_nothing_else(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()
    sim.add_fault({"path": "/api/spaces/alice/app", "hang": True})
    api = api_of(sim)

    with pytest.raises(httpx2.TimeoutException):
        api.space_info("alice/app", timeout=0.3)

    assert api.get_space_runtime("alice/app").stage == "RUNNING"
    assert sim.requests()[0]["status"] is None


def test_stop_is_prompt_with_a_hanging_request(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()
    sim.add_fault({"path": "/api/spaces/alice/app/runtime", "hang": True})
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            httpx2.get(f"{sim.url}/api/spaces/alice/app/runtime", timeout=None)
        except httpx2.HTTPError as error:
            errors.append(error)

    thread = threading.Thread(target=hang)
    thread.start()
    while not sim.requests():
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    thread.join(timeout=2)

    assert time.monotonic() - started < 1.0
    assert not thread.is_alive() and errors


def test_fault_over_the_control_api_is_checked(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim()

    bad = httpx2.post(f"{sim.url}/_sim/faults", json={"path": "/x", "stauts": 500})
    good = httpx2.post(f"{sim.url}/_sim/faults", json={"status": 502, "times": 1})

    assert bad.status_code == 400 and "'stauts'" in bad.json()["error"]
    assert good.status_code == 200
    assert httpx2.get(f"{sim.url}/api/spaces/hardware").status_code == 502


# -- the rate limiter ---------------------------------------------------------------


def test_rate_limit_window_refuses_then_resets(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim(requests_per_window=3, window_seconds=0.5)
    api = api_of(sim)

    for _ in range(3):
        api.get_space_runtime("alice/app")
        httpx2.get(f"{sim.url}/_sim/requests")
    with pytest.raises(HfHubHTTPError) as caught:
        api.get_space_runtime("alice/app")
    time.sleep(0.55)

    message = str(caught.value)
    assert caught.value.response.status_code == 429
    assert "you have reached your 'api' rate limit" in message
    assert "(0/3 requests remaining in current 1s window)" in message
    assert api.get_space_runtime("alice/app").stage == "RUNNING"


def test_rate_limit_is_per_token_and_resolvers_have_their_own_bucket(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim(requests_per_window=2, window_seconds=60)
    api = api_of(sim)
    readme = f"{sim.url}/datasets/alice/prompts/resolve/main/README.md"

    api.get_space_runtime("alice/app")
    api.get_space_runtime("alice/app")
    with pytest.raises(HfHubHTTPError):
        api.get_space_runtime("alice/app")
    heads = [httpx2.head(readme, headers={"authorization": f"Bearer {ALICE}"})]
    heads += [httpx2.head(readme, headers={"authorization": f"Bearer {ALICE}"})]

    assert api_of(sim, BOB).get_space_runtime("alice/app").stage == "RUNNING"
    assert [h.status_code for h in heads] == [200, 200]
    assert heads[1].headers["RateLimit"].startswith('"resolvers";r=8;')
    assert heads[1].headers["RateLimit-Policy"].endswith("q=10;w=60")


def test_whoami_429_gets_the_client_whoami_message(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim(requests_per_window=1, window_seconds=60)
    api = api_of(sim)

    api.whoami()
    with pytest.raises(HfHubHTTPError, match="rate limit for the /whoami-v2"):
        api.whoami()


def test_latency_is_added_before_every_answer(make_sim: Callable[..., HubSim]) -> None:
    sim = make_sim(latency=0.1)

    started = time.monotonic()
    api_of(sim).get_space_runtime("alice/app")

    assert time.monotonic() - started >= 0.1


def test_no_latency_of_its_own(make_sim: Callable[..., HubSim]) -> None:
    # Not a benchmark: Nagle + delayed ACK would add ~40 ms to every request.
    sim = make_sim()
    api = api_of(sim)
    api.get_space_runtime("alice/app")

    started = time.perf_counter()
    for _ in range(200):
        api.get_space_runtime("alice/app")
    mean = (time.perf_counter() - started) / 200

    assert mean < 0.015


# -- webhook delivery ---------------------------------------------------------------


class Receiver:
    """A local webhook receiver that records every POST."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[tuple[dict[str, str], Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        serve = self.server.serve_forever
        threading.Thread(target=serve, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_commit_delivers_the_documented_payload_with_the_secret(
    make_sim: Callable[..., HubSim], receiver: Receiver
) -> None:
    sim = make_sim()
    api_of(sim).create_webhook(
        url=receiver.url,
        watched=[{"type": "dataset", "name": "alice/prompts"}],
        secret="s3cret",
    )
    old = api_of(sim).dataset_info("alice/prompts").sha

    new = sim.commit("datasets/alice/prompts")
    headers, body = wait_for(lambda: receiver.received)[0]
    payload = WebhookPayload.model_validate(body)

    assert headers["X-Webhook-Secret"] == "s3cret"
    assert (payload.event.action, payload.event.scope) == ("update", "repo.content")
    assert (payload.repo.type, payload.repo.name) == ("dataset", "alice/prompts")
    assert body["repo"]["headSha"] == new
    assert body["repo"]["owner"]["id"]
    assert payload.updatedRefs is not None
    assert payload.updatedRefs[0].ref == "refs/heads/main"
    assert (payload.updatedRefs[0].oldSha, payload.updatedRefs[0].newSha) == (old, new)
    assert payload.webhook.version == 3
    assert wait_for(sim.deliveries)[0]["ok"] is True


def test_owner_watch_fires_and_disabled_or_blind_webhooks_do_not(
    make_sim: Callable[..., HubSim], receiver: Receiver
) -> None:
    sim = make_sim()
    watch_org = [{"type": "org", "name": "alice-org"}]
    api_of(sim).create_webhook(url=receiver.url, watched=watch_org)
    off = api_of(sim).create_webhook(url=receiver.url, watched=watch_org)
    api_of(sim).disable_webhook(off.id)
    api_of(sim, BOB).create_webhook(url=receiver.url, watched=watch_org)

    sim.commit("datasets/alice-org/secret-data")
    wait_for(lambda: receiver.received)
    time.sleep(0.1)

    assert len(receiver.received) == 1
    assert receiver.received[0][1]["repo"]["private"] is True


def test_webhooks_outside_loopback_are_refused_and_recorded(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()
    watched = [{"type": "model", "name": "alice/tiny"}]
    for url in ("http://example.com/hook", "https://127.0.0.1:9/hook"):
        api_of(sim).create_webhook(url=url, watched=watched)

    sim.commit("models/alice/tiny")
    rows = wait_for(lambda: len(sim.deliveries()) == 2 and sim.deliveries())

    assert all(not row["ok"] and "refused" in row["error"] for row in rows)


def test_silent_receiver_is_given_up_after_webhook_timeout(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim(webhook_timeout=0.2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    api_of(sim).create_webhook(url=url, watched=[{"type": "user", "name": "alice"}])

    try:
        started = time.monotonic()
        sim.commit("datasets/alice/prompts")
        row = wait_for(sim.deliveries)[0]
    finally:
        silent.close()

    assert row["ok"] is False and "timed out" in row["error"]
    assert time.monotonic() - started < 1.5


# -- the control API ----------------------------------------------------------------


def test_control_api_sets_spaces_commits_and_is_not_logged(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()
    control = f"{sim.url}/_sim"

    created = httpx2.post(f"{control}/spaces/alice/new", json={"stage": "SLEEPING"})
    refused = httpx2.post(f"{control}/spaces/alice/new", json={"stagee": "RUNNING"})
    commit = httpx2.post(f"{control}/datasets/alice/prompts/commit")
    runtime = api_of(sim).get_space_runtime("alice/new")
    log = httpx2.get(f"{control}/requests").json()

    assert created.json()["stage"] == "SLEEPING"
    assert refused.status_code == 400 and "'stagee'" in refused.json()["error"]
    assert len(commit.json()["sha"]) == 40
    assert runtime.stage == "SLEEPING"
    assert [row["path"] for row in log] == ["/api/spaces/alice/new/runtime"]
    assert set(log[0]) >= {"method", "query", "status", "authorized", "time"}
    assert ALICE not in json.dumps(log)
    assert httpx2.post(f"{control}/reset-log").status_code == 200
    assert sim.requests() == []


def test_set_space_rejects_bad_values_naming_the_key(
    make_sim: Callable[..., HubSim],
) -> None:
    sim = make_sim()

    with pytest.raises(WorldError, match="'build_seconds'"):
        sim.set_space("alice/app", build_seconds="soon")
    with pytest.raises(WorldError, match="'stage'"):
        sim.set_space("alice/app", stage="NAPPING")
