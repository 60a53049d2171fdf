"""The web app in-process: pages, API, metrics, health, and who may do what."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from spaces_scheduler.config import Config, parse_config
from spaces_scheduler.errors import ConfigError, SchedulerError
from spaces_scheduler.outcome import Outcome, OutcomeKind
from spaces_scheduler.store import RunKey, Store, Trigger, open_store
from spaces_scheduler.store.base import Claim
from spaces_scheduler.web import WebServer, build_app
from spaces_scheduler.web.ledger import RunLedger
from spaces_scheduler.web.security import Security

HUB_TOKEN = "hf_webTestHubTokenNeverShown1234"
ACCESS = "web-access-token-for-tests"
LOCAL = "http://127.0.0.1"

CONFIG = """
[hub]
token_env = "WEB_TEST_HUB_TOKEN"

[[schedule]]
name = "nightly"
cron = "7 3 * * *"
spaces = ["alice/dashboard", "alice/broken", "bob/*-demo"]
action = "restart"

[[schedule]]
name = "office"
cron = "*/30 8-18 * * mon-fri"
timezone = "Europe/Berlin"
spaces = ["carol/gpu"]
action = { hardware = "t4-small" }

[[window]]
name = "nights"
spaces = ["carol/gpu"]
timezone = "Europe/Berlin"
days = "mon-fri"
hours = "19:00-08:00"
outside = { hardware = "cpu-basic" }
"""


def make_config(tmp_path: Path, text: str = CONFIG) -> Config:
    return parse_config(text, tmp_path / "spaces.toml")


def add_run(
    store: Store,
    schedule: str,
    space: str,
    slot: datetime,
    kind: OutcomeKind | None,
    *,
    reason: str = "",
    log_tail: tuple[str, ...] = (),
    duration: float = 30.0,
) -> Claim | None:
    """Claim a run at `slot` + 2s and finish it with `kind` (None: leave it running)."""
    claim = store.claim(
        RunKey(schedule, space, slot),
        owner="test",
        action="restart",
        trigger=Trigger.SCHEDULE,
        due_at=slot,
        lease=timedelta(minutes=5),
        now=slot + timedelta(seconds=2),
    )
    assert isinstance(claim, Claim)
    if kind is None:
        return claim
    outcome = Outcome(
        kind,
        reason=reason,
        summary="RUNNING after 30.0s" if kind is OutcomeKind.OK else "",
        stages=("BUILDING", "RUNNING") if kind is OutcomeKind.OK else ("BUILD_ERROR",),
        duration=duration,
        log_tail=log_tail,
    )
    store.finish(claim, outcome, now=slot + timedelta(seconds=2 + duration))
    return None


def fill_history(store: Store, now: datetime, *, hours: int = 100) -> None:
    """Give three Spaces a run per hour: one always ok, one failing, one skipped."""
    for index in range(hours, 0, -1):
        slot = now - timedelta(hours=index)
        add_run(store, "nightly", "alice/dashboard", slot, OutcomeKind.OK)
        add_run(
            store,
            "nightly",
            "alice/broken",
            slot,
            OutcomeKind.FAILED,
            reason="BUILD_ERROR: No matching distribution found for foo==9",
            log_tail=("Step 3/9 : RUN pip install -r requirements.txt",),
        )
        add_run(store, "nightly", "bob/x-demo", slot, OutcomeKind.SKIPPED)
    store.save_stage("alice/dashboard", "RUNNING", now)
    store.save_stage("alice/broken", "BUILD_ERROR", now)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/state.db", config_path=None)
    yield opened
    opened.close()


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def filled(store: Store, now: datetime) -> Store:
    fill_history(store, now)
    return store


class FakeRuns:
    """A `run_now` that records calls and answers like the real one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str, str]] = []

    def __call__(
        self, space: str, schedule: str | None, action: str, request_id: str
    ) -> dict[str, Any]:
        if not space.startswith(("alice/", "bob/", "carol/")):
            raise ValueError(f"{space} is in no schedule or window of the config.")
        self.calls.append((space, schedule, action, request_id))
        time.sleep(0.05)  # long enough for a concurrent duplicate to overlap
        return {"run_id": len(self.calls), "outcome": "ok"}


def client_for(app: Any, **kwargs: Any) -> TestClient:
    return TestClient(app, base_url=LOCAL, **kwargs)


# -- pages -------------------------------------------------------------------------


def test_space_list_shows_every_space_with_last_and_next_run(
    tmp_path: Path, filled: Store
) -> None:
    app = build_app(config=make_config(tmp_path), store=filled)
    page = client_for(app).get("/")

    assert page.status_code == 200
    for space in ("alice/dashboard", "alice/broken", "bob/x-demo", "carol/gpu"):
        assert f'href="/spaces/{space}"' in page.text
    assert 'class="timeline"' in page.text
    assert "BUILD_ERROR" in page.text
    assert "never" in page.text  # carol/gpu has not run yet


def test_filters_and_sorting_narrow_the_list(tmp_path: Path, filled: Store) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=filled))

    failed = client.get("/", params={"outcome": "failed"}).text
    assert "/spaces/alice/broken" in failed
    assert "/spaces/alice/dashboard" not in failed

    by_owner = client.get("/", params={"owner": "bob"}).text
    assert "/spaces/bob/x-demo" in by_owner and "/spaces/alice/" not in by_owner

    office = client.get("/", params={"schedule": "office"}).text
    assert "/spaces/carol/gpu" in office and "/spaces/alice/" not in office

    spaces = client.get("/api/spaces", params={"sort": "-space"}).json()["spaces"]
    names = [row["space"] for row in spaces]
    assert names == sorted(names, reverse=True)


def test_space_page_shows_failures_with_log_schedules_and_windows(
    tmp_path: Path, filled: Store
) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=filled))

    broken = client.get("/spaces/alice/broken").text
    assert "No matching distribution found for foo==9" in broken
    assert "Step 3/9 : RUN pip install" in broken
    assert "consecutive failure" in broken
    assert "7 3 * * *" in broken

    gpu = client.get("/spaces/carol/gpu").text
    assert "nights" in gpu and "19:00-08:00" in gpu and "hardware=cpu-basic" in gpu


def test_unknown_space_is_404(tmp_path: Path, store: Store) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=store))
    assert client.get("/spaces/nobody/nothing").status_code == 404
    assert client.get("/api/spaces/nobody/nothing").json()["error"] == "not-found"


def test_read_only_app_offers_no_run_now(tmp_path: Path, filled: Store) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=filled))
    page = client.get("/spaces/alice/dashboard").text
    assert 'action="/spaces/alice/dashboard/run"' not in page

    csrf = client.get("/api/csrf").json()["csrf"]
    answer = client.post(
        "/api/runs", json={"space": "alice/dashboard"}, headers={"x-csrf-token": csrf}
    )
    assert answer.status_code == 403


# -- run now -----------------------------------------------------------------------


def test_run_now_button_runs_once_per_request_id(tmp_path: Path, filled: Store) -> None:
    runs = FakeRuns()
    app = build_app(config=make_config(tmp_path), store=filled, run_now=runs)
    client = client_for(app, follow_redirects=False)
    page = client.get("/spaces/alice/dashboard").text
    form = _form_of(page, "nightly")

    first = client.post("/spaces/alice/dashboard/run", data=form)
    again = client.post("/spaces/alice/dashboard/run", data=form)

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert runs.calls == [("alice/dashboard", "nightly", "restart", form["request_id"])]


def test_run_now_without_csrf_token_is_refused(tmp_path: Path, filled: Store) -> None:
    runs = FakeRuns()
    app = build_app(config=make_config(tmp_path), store=filled, run_now=runs)
    client = client_for(app)
    form = {"schedule": "nightly", "action": "restart", "request_id": "x"}

    assert client.post("/spaces/alice/dashboard/run", data=form).status_code == 403
    forged = {**form, "csrf": "9999999999.abcd.0000"}
    assert client.post("/spaces/alice/dashboard/run", data=forged).status_code == 403
    assert runs.calls == []


def test_cross_origin_post_is_refused(tmp_path: Path, filled: Store) -> None:
    runs = FakeRuns()
    app = build_app(config=make_config(tmp_path), store=filled, run_now=runs)
    client = client_for(app)
    form = _form_of(client.get("/spaces/alice/dashboard").text, "nightly")

    answer = client.post(
        "/spaces/alice/dashboard/run",
        data=form,
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert runs.calls == []


def test_api_run_now_is_idempotent_per_key_even_when_concurrent(
    tmp_path: Path, filled: Store
) -> None:
    runs = FakeRuns()
    app = build_app(config=make_config(tmp_path), store=filled, run_now=runs)
    client = client_for(app)
    headers = {"x-csrf-token": client.get("/api/csrf").json()["csrf"]}
    headers["idempotency-key"] = "key-1"
    answers: list[httpx.Response] = []

    def post() -> None:
        body = {"space": "alice/dashboard", "schedule": "nightly"}
        answers.append(client.post("/api/runs", json=body, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(runs.calls) == 1
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["run_id"] for a in answers} == {1}


def test_api_run_now_refuses_bad_input_with_400(tmp_path: Path, filled: Store) -> None:
    runs = FakeRuns()
    client = client_for(
        build_app(config=make_config(tmp_path), store=filled, run_now=runs)
    )
    headers = {"x-csrf-token": client.get("/api/csrf").json()["csrf"]}

    for body in (
        {"space": "not-a-space"},
        {"space": "alice/dashboard"},  # neither action nor schedule
        {"space": "alice/dashboard", "schedule": "nope"},
        {"space": "mallory/x", "action": "restart"},  # run_now raises ValueError
        {"space": "alice/dashboard", "action": "restart", "extra": 1},
    ):
        answer = client.post("/api/runs", json=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.json()["error"] in ("invalid", "not-run")


def _form_of(page: str, schedule: str) -> dict[str, str]:
    forms = re.findall(
        r"<form method=\"post\" action=\"[^\"]+/run\">(.*?)</form>", page, re.S
    )
    for form in forms:
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
        if fields.get("schedule") == schedule:
            return fields
    raise AssertionError(f"no run-now form for {schedule}")


# -- access ------------------------------------------------------------------------


def test_access_token_guards_pages_and_api(tmp_path: Path, filled: Store) -> None:
    app = build_app(config=make_config(tmp_path), store=filled, access_token=ACCESS)
    client = client_for(app, follow_redirects=False)

    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert client.get("/api/spaces").status_code == 401
    assert client.get("/api/spaces", headers=_bearer("wrong")).status_code == 401
    assert client.get("/api/spaces", headers=_bearer(ACCESS)).status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_login_form_sets_a_session_and_wrong_tokens_are_refused(
    tmp_path: Path, filled: Store
) -> None:
    app = build_app(config=make_config(tmp_path), store=filled, access_token=ACCESS)
    client = client_for(app, follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert csrf is not None

    wrong = {"csrf": csrf[1], "token": "guess", "next": "/"}
    assert client.post("/login", data=wrong).status_code == 401
    right = {"csrf": csrf[1], "token": ACCESS, "next": "//evil.example/"}
    answer = client.post("/login", data=right)

    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    assert client.get("/", headers={"accept": "text/html"}).status_code == 200


def test_sessions_signed_with_another_token_are_refused() -> None:
    mine, theirs = Security(access_token=ACCESS), Security(access_token="other")
    assert mine.valid_session(mine.new_session())
    assert not mine.valid_session(theirs.new_session())
    assert not mine.valid_session(mine.new_session(now=0))  # expired
    assert not mine.valid_csrf(mine.new_session())  # a session is no CSRF token


def test_health_and_metrics_need_the_token_beyond_loopback(
    tmp_path: Path, filled: Store
) -> None:
    app = build_app(config=make_config(tmp_path), store=filled, access_token=ACCESS)
    remote = client_for(app, client=("203.0.113.9", 5000))
    local = client_for(app, client=("127.0.0.1", 5000))

    for path in ("/healthz", "/metrics"):
        assert remote.get(path).status_code == 401
        assert remote.get(path, headers=_bearer(ACCESS)).status_code == 200
        assert local.get(path).status_code == 200


def test_without_token_only_loopback_host_names_are_served(
    tmp_path: Path, store: Store
) -> None:
    app = build_app(config=make_config(tmp_path), store=store)
    rebound = TestClient(app, base_url="http://evil.example:8473")
    assert rebound.get("/").status_code == 421
    assert TestClient(app, base_url="http://localhost:8473").get("/").status_code == 200
    assert TestClient(app, base_url="http://[::1]:8473").get("/").status_code == 200


def test_every_answer_carries_the_security_headers(
    tmp_path: Path, store: Store
) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=store))
    for path in ("/", "/api/spaces", "/metrics", "/nope", "/static/app.js"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_no_page_has_inline_script_or_style(tmp_path: Path, filled: Store) -> None:
    client = client_for(
        build_app(config=make_config(tmp_path), store=filled, run_now=FakeRuns())
    )
    for path in ("/", "/spaces/alice/broken", "/schedules", "/api/docs"):
        text = client.get(path).text
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, path
        assert " style=" not in text and "<style" not in text, path
        for tag in re.findall(r"<[^>]*>", text):
            assert re.search(r"\son[a-z]+=", tag) is None, tag


def test_the_hub_token_is_never_shown(
    tmp_path: Path, filled: Store, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_TEST_HUB_TOKEN", HUB_TOKEN)
    # The process's environment holds it, as in the daemon; no answer may.
    app = build_app(
        config=make_config(tmp_path),
        store=filled,
        run_now=FakeRuns(),
        access_token=ACCESS,
    )
    client = client_for(app, headers=_bearer(ACCESS))
    paths = [
        "/",
        "/?outcome=failed",
        "/spaces/alice/broken",
        "/spaces/carol/gpu",
        "/schedules",
        "/api/docs",
        "/api/spaces",
        "/api/spaces/alice/broken",
        "/api/schedules",
        "/api/runs?limit=500",
        "/api/next",
        "/api/openapi.json",
        "/metrics",
        "/healthz",
        "/login",
        "/nope",
    ]
    for path in paths:
        answer = client.get(path)
        assert HUB_TOKEN not in answer.text, path
        assert HUB_TOKEN not in str(answer.headers), path
        assert ACCESS not in answer.text, path


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- API ---------------------------------------------------------------------------


def test_runs_are_paged_by_before_id_and_filtered(
    tmp_path: Path, filled: Store
) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=filled))

    seen: list[int] = []
    params: dict[str, Any] = {"space": "alice/broken", "limit": 40}
    while True:
        page = client.get("/api/runs", params=params).json()
        seen += [run["id"] for run in page["runs"]]
        assert {run["outcome"] for run in page["runs"]} <= {"failed"}
        if page["next_before_id"] is None:
            break
        params["before_id"] = page["next_before_id"]

    assert len(seen) == 100 and seen == sorted(seen, reverse=True)
    assert client.get("/api/runs", params={"limit": 0}).status_code == 400
    assert client.get("/api/runs", params={"outcome": "great"}).status_code == 400


def test_next_fire_times_and_schedules(tmp_path: Path, store: Store) -> None:
    client = client_for(build_app(config=make_config(tmp_path), store=store))
    rows = client.get("/api/next", params={"count": 2}).json()["next"]
    assert [row["schedule"] for row in rows] == ["nightly"] * 2 + ["office"] * 2
    schedules = client.get("/api/schedules").json()
    assert schedules["schedules"][1]["action"] == "hardware=t4-small"
    assert schedules["windows"][0]["outside"] == "hardware=cpu-basic"


# -- health and metrics ------------------------------------------------------------


def test_healthz_follows_the_loop_and_the_store(tmp_path: Path, store: Store) -> None:
    alive = {"loop_alive": True, "last_step": "2026-12-04T10:00:00Z"}
    state = {"health": alive}
    app = build_app(
        config=make_config(tmp_path), store=store, health=lambda: state["health"]
    )
    client = client_for(app)

    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").json()["last_step"] == alive["last_step"]
    state["health"] = {"loop_alive": False}
    assert client.get("/healthz").status_code == 503
    state["health"] = alive
    store.close()
    store.engine.dispose()  # type: ignore[attr-defined]
    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()  # the file is gone and cannot come back
    assert client.get("/healthz").status_code == 503


def test_metrics_are_valid_prometheus_text_with_the_promised_families(
    tmp_path: Path, filled: Store, now: datetime
) -> None:
    add_run(filled, "nightly", "alice/dashboard", now, None)  # in flight
    client = client_for(build_app(config=make_config(tmp_path), store=filled))
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    runs = {
        (s.labels["schedule"], s.labels["outcome"]): s.value
        for s in families["spaces_scheduler_runs"].samples
    }
    assert runs[("nightly", "ok")] == 100 and runs[("nightly", "failed")] == 100
    assert families["spaces_scheduler_run_duration_seconds"].type == "histogram"
    assert families["spaces_scheduler_run_lateness_seconds"].type == "histogram"
    streaks = {
        s.labels["space"]: s.value
        for s in families["spaces_scheduler_consecutive_failures"].samples
    }
    assert streaks == {"alice/broken": 100, "alice/dashboard": 0, "bob/x-demo": 0}
    fires = families["spaces_scheduler_next_fire_seconds"].samples
    assert {s.labels["schedule"] for s in fires} == {"nightly", "office"}
    assert all(0 < s.value <= 7 * 86400 for s in fires)
    assert families["spaces_scheduler_runs_in_flight"].samples[0].value == 1
    assert "spaces_scheduler_hub_requests" in families
    assert "spaces_scheduler_hub_rate_limited" in families


# -- the ledger --------------------------------------------------------------------


def test_ledger_counts_each_run_once_and_picks_up_finished_claims(
    store: Store, now: datetime
) -> None:
    ledger = RunLedger(store, page=7, min_interval=0)
    old = now - timedelta(hours=2)
    add_run(store, "s", "a/b", old, OutcomeKind.OK)
    claim = add_run(store, "s", "a/b", old + timedelta(minutes=1), None)
    add_run(store, "s", "a/c", old + timedelta(minutes=2), OutcomeKind.FAILED)

    first = ledger.view()
    assert first.totals == {("s", "restart", "ok"): 1, ("s", "restart", "failed"): 1}
    assert first.in_flight == 1

    assert claim is not None
    store.finish(claim, Outcome(OutcomeKind.FAILED), now=now)
    for minute in range(20):
        add_run(store, "s", "a/c", old + timedelta(minutes=3 + minute), OutcomeKind.OK)
    second = ledger.view()
    third = ledger.view()

    assert (
        second.totals
        == third.totals
        == {
            ("s", "restart", "ok"): 21,
            ("s", "restart", "failed"): 2,
        }
    )
    assert second.in_flight == 0
    assert second.streaks == {"a/b": 1, "a/c": 0}
    assert len(third.points) == 23


# -- the server --------------------------------------------------------------------


def test_server_refuses_to_listen_beyond_loopback_without_token(
    tmp_path: Path, store: Store
) -> None:
    app = build_app(config=make_config(tmp_path), store=store)
    with pytest.raises(ConfigError, match="access_token_env"):
        WebServer(app, listen="0.0.0.0:0").start()


def test_server_reports_a_taken_port_in_one_line(tmp_path: Path, store: Store) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = build_app(config=make_config(tmp_path), store=store)
        with pytest.raises(SchedulerError, match="taken") as caught:
            WebServer(app, listen=f"127.0.0.1:{port}").start()
    assert "\n" not in str(caught.value)


def test_server_serves_over_http_and_stops(tmp_path: Path, filled: Store) -> None:
    app = build_app(config=make_config(tmp_path), store=filled)
    server = WebServer(app, listen="127.0.0.1:0")
    url = server.start()
    try:
        answer = httpx.get(f"{url}/api/spaces", timeout=10)
        assert answer.status_code == 200
        assert "server" not in answer.headers  # no version banner
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
