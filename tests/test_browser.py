"""The dashboard in real headless Chromium (Debian's package), over real HTTP.

Skipped, with the reason shown, when /usr/bin/chromium is absent; CI installs it
with `apt-get install -y chromium chromium-driver`. Screenshots of the main
pages go to tests/screenshots/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from spaces_scheduler.hub import HubClient
from spaces_scheduler.hubsim import HubSim, World
from spaces_scheduler.store import Store, open_store
from spaces_scheduler.web import WebServer, build_app
from spaces_scheduler.web.runnow import InProcessRuns
from test_web import fill_history, make_config

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"
TOKEN = "hf_browserTestAliceToken"
# Every flag that keeps the browser from reaching anything but 127.0.0.1.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: apt-get install -y chromium chromium-driver",
)

WORLD = {
    "token": [{"value": TOKEN, "user": "alice", "role": "write", "orgs": ["bob"]}],
    "space": [
        {
            "id": "alice/dashboard",
            "stage": "RUNNING",
            "build_seconds": 0.4,
            "start_seconds": 0.2,
            "stale_running_seconds": 0.1,
        },
        {"id": "alice/broken", "build_error": "ERROR: No matching distribution"},
        {"id": "bob/x-demo", "stage": "SLEEPING"},
        {"id": "carol/gpu", "stage": "RUNNING"},
    ],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The simulated Hub, a store with 300 runs, and the dashboard over both."""
    folder = tmp_path_factory.mktemp("browser")
    sim = HubSim(World.from_dict(WORLD), port=0)
    hub_url = sim.start()
    store: Store = open_store(f"sqlite:///{folder}/state.db", config_path=None)
    fill_history(store, datetime.now(UTC).replace(microsecond=0), hours=100)

    config = make_config(folder)
    client = HubClient(token=TOKEN, endpoint=hub_url)
    runner = InProcessRuns(config, store, client, answer_wait=20, poll_first=0.1)
    server = WebServer(build_app(config=config, store=store, run_now=runner))
    server.listen = "127.0.0.1:0"
    url = server.start()
    try:
        yield {"url": url, "store": store, "hub": hub_url}
    finally:
        server.stop()
        runner.close()
        store.close()
        client.close()
        sim.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path_factory.mktemp("chromium-profile")
    SHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def test_dashboard_renders_hundreds_of_runs_with_a_timeline(
    site: dict[str, Any], browser_context: Any
) -> None:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(site["url"] + "/")

    rows = page.locator("table.spaces tbody tr")
    assert rows.count() == 4
    assert page.locator("svg.timeline g.bar rect.ok").count() >= 50
    assert page.locator("svg.timeline g.bar rect.failed").count() >= 50
    page.locator("svg.timeline g.bar").nth(60).hover()
    tooltip = page.locator(".tooltip")
    assert tooltip.is_visible()
    assert "ok" in tooltip.inner_text() and "UTC" in tooltip.inner_text()
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    assert errors == []  # no CSP violation, no script error


def test_filter_by_outcome_narrows_the_list(
    site: dict[str, Any], browser_context: Any
) -> None:
    page = browser_context.new_page()
    page.goto(site["url"] + "/")
    page.select_option("select[name=outcome]", "failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(lambda url: "outcome=failed" in url)

    spaces = page.locator("table.spaces tbody tr td:first-child a").all_inner_texts()
    assert spaces == ["alice/broken"]
    page.screenshot(path=str(SHOTS / "dashboard-failed.png"), full_page=True)


def test_run_now_acts_on_the_simulated_hub_and_shows_the_outcome(
    site: dict[str, Any], browser_context: Any
) -> None:
    page = browser_context.new_page()
    page.goto(site["url"] + "/spaces/alice/dashboard")
    page.click("button[data-action=restart] >> nth=0")
    page.wait_for_url(lambda url: "run=" in url)

    result = page.locator("section.result")
    assert "ok" in result.inner_text()
    assert "RUNNING" in result.inner_text()
    page.screenshot(path=str(SHOTS / "space-after-run-now.png"), full_page=True)

    runs = site["store"].runs(space="alice/dashboard", limit=1)
    assert runs[0].trigger.value == "manual" and runs[0].outcome.value == "ok"
    requests = httpx.get(site["hub"] + "/_sim/requests", timeout=10).json()
    restarts = [r for r in requests if r["path"].endswith("/restart")]
    assert len(restarts) == 1


def test_space_page_shows_failures_and_reads_on_a_phone(
    site: dict[str, Any], browser_context: Any
) -> None:
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site["url"] + "/spaces/alice/broken")
    assert page.locator("article.failure").count() >= 1
    assert (
        "No matching distribution" in page.locator("article.failure").first.inner_text()
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling of the page itself
    page.screenshot(path=str(SHOTS / "space-failing-phone.png"), full_page=True)

    page.goto(site["url"] + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SHOTS / "dashboard-phone.png"), full_page=True)


def test_pages_work_without_javascript(
    site: dict[str, Any], browser_context: Any
) -> None:
    # The pages' only script is app.js: without it the browser has none to run.
    page = browser_context.new_page()
    page.route("**/static/app.js", lambda route: route.abort())
    page.goto(site["url"] + "/?owner=alice")
    names = page.locator("table.spaces tbody tr td:first-child a").all_inner_texts()
    assert names == ["alice/broken", "alice/dashboard"]
    page.select_option("select[name=owner]", "bob")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(lambda url: "owner=bob" in url)
    assert page.locator("svg.timeline title").count() > 0  # native tooltips
