"""The shared example world file behaves as its comments say.

`/work/shared/hubsim-world.example.toml` is the simulator's contract; this loads that
very file and checks each Space and fault against the comment beside it.
"""

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

import time  # noqa: E402
import tomllib  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx2  # noqa: E402
import pytest  # noqa: E402
from huggingface_hub import (  # noqa: E402
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_url,
)
from huggingface_hub.errors import (  # noqa: E402
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)

from spaces_scheduler.hubsim import HubSim, World  # noqa: E402

if not constants.HF_HUB_DISABLE_TELEMETRY:
    raise RuntimeError("huggingface_hub was imported with telemetry on: unsafe here.")

EXAMPLE = Path("/work/shared/hubsim-world.example.toml")
TOKEN = "hf_exampleAliceToken"

pytestmark = pytest.mark.skipif(not EXAMPLE.exists(), reason="no shared example")


@pytest.fixture
def sim() -> Iterator[HubSim]:
    sim = HubSim(World.load(EXAMPLE), port=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def api(sim: HubSim) -> HfApi:
    return HfApi(endpoint=sim.url, token=TOKEN)


def runtime_raw(api: HfApi, space: str) -> dict[str, object]:
    return api.get_space_runtime(space).raw


def test_hub_table_and_token(sim: HubSim, api: HfApi) -> None:
    me = api.whoami()
    response = httpx2.get(f"{sim.url}/api/spaces/hardware")

    assert me["name"] == "alice" and me["orgs"][0]["name"] == "alice-org"
    assert me["auth"]["accessToken"]["role"] == "write"
    assert response.headers["RateLimit-Policy"] == '"fixed window";"api";q=1000;w=300'
    assert sim.world.hub["webhook_timeout"] == 30


def test_restart_faults_then_the_documented_timelines(sim: HubSim, api: HfApi) -> None:
    # The dashboard's first runtime read hangs (hang = true): the client's timeout.
    with pytest.raises(httpx2.TimeoutException):
        httpx2.get(
            f"{sim.url}/api/spaces/alice/dashboard/runtime",
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=0.1,
        )

    # The dashboard's restart meets the 429 fault twice (retry_after 1), then works.
    for _ in range(2):
        with pytest.raises(HfHubHTTPError, match="Retry after 1 seconds"):
            api.restart_space("alice/dashboard")
    started = time.monotonic()
    for space in ("alice/dashboard", "alice/broken", "alice/crashes"):
        api.restart_space(space)

    stale = runtime_raw(api, "alice/dashboard")["stage"]
    time.sleep(max(0.0, started + 0.3 - time.monotonic()))
    building = runtime_raw(api, "alice/dashboard")["stage"]
    time.sleep(max(0.0, started + 1.85 - time.monotonic()))
    starting = runtime_raw(api, "alice/dashboard")["stage"]
    time.sleep(max(0.0, started + 2.4 - time.monotonic()))

    assert (stale, building, starting) == ("RUNNING", "BUILDING", "APP_STARTING")
    assert runtime_raw(api, "alice/dashboard")["stage"] == "RUNNING"
    broken = runtime_raw(api, "alice/broken")
    assert broken["stage"] == "BUILD_ERROR"
    assert broken["errorMessage"] == "ERROR: No matching distribution found for foo==9"
    log = list(api.fetch_space_logs("alice/broken", build=True))
    assert log[1:] == [
        "Step 3/9 : RUN pip install -r requirements.txt\n",
        "ERROR: No matching distribution found for foo==9\n",
    ]
    crashes = runtime_raw(api, "alice/crashes")
    assert crashes["stage"] == "RUNTIME_ERROR"
    assert crashes["errorMessage"] == "Exit code: 1. Reason: KeyError: 'DATA_URL'"


def test_factory_rebuild_fixes_broken(api: HfApi) -> None:
    api.restart_space("alice/broken", factory_reboot=True)
    time.sleep(1.6)

    assert runtime_raw(api, "alice/broken")["stage"] == "RUNNING"


def test_hangs_is_slow_once_and_builds_for_ever(api: HfApi) -> None:
    started = time.monotonic()
    api.restart_space("alice/hangs")
    late = time.monotonic() - started
    time.sleep(1.2)

    assert late >= 2.0
    assert runtime_raw(api, "alice/hangs")["stage"] == "BUILDING"


def test_hardware_needs_a_payment_method_once(api: HfApi) -> None:
    with pytest.raises(HfHubHTTPError, match="A payment method is required") as caught:
        api.request_space_hardware("alice/dashboard", "t4-small")

    assert caught.value.response.status_code == 402
    assert caught.value.response.json() == {
        "error": "A payment method is required to upgrade hardware."
    }


def test_private_demo_is_404_for_a_token_without_access(
    sim: HubSim, api: HfApi
) -> None:
    sim.add_token("hf_exampleBobToken", "bob")
    bob = HfApi(endpoint=sim.url, token="hf_exampleBobToken")

    assert api.get_space_runtime("alice-org/private-demo").stage == "RUNNING"
    with pytest.raises(RepositoryNotFoundError) as caught:
        bob.get_space_runtime("alice-org/private-demo")

    assert caught.value.response.status_code == 404


def test_flaky_keys(sim: HubSim, api: HfApi) -> None:
    state = sim.space_state("alice/flaky")
    since = datetime.strptime(state["stage_since"], "%Y-%m-%dT%H:%M:%S.%fZ")
    age = time.time() - since.replace(tzinfo=UTC).timestamp()
    app = httpx2.get(f"{sim.url}/_sim/app/alice/flaky")

    api.restart_space("alice/flaky")
    time.sleep(1.3)

    assert abs(age - 43200) < 5
    assert app.status_code == 200
    assert runtime_raw(api, "alice/flaky")["stage"] == "APP_STARTING"
    assert state["settings"]["runtime_errors"] == [
        "Scheduling failure: unable to schedule"
    ]
    assert list(api.fetch_space_logs("alice/flaky", build=True))


def test_datasets_and_models(sim: HubSim, api: HfApi) -> None:
    url = hf_hub_url(
        "alice/prompts", "README.md", repo_type="dataset", endpoint=sim.url
    )

    assert get_hf_file_metadata(url, token=TOKEN).commit_hash == "1" * 40
    assert api.model_info("alice/tiny-model", expand=["sha"]).sha == "2" * 40
    sim.set_space("alice/dashboard", stage="RUNNING")
    new = sim.commit("datasets/alice/prompts")
    assert get_hf_file_metadata(url, token=TOKEN).commit_hash == new


def test_readme_false_answers_entry_not_found() -> None:
    text = EXAMPLE.read_text().replace("readme = true", "readme = false")
    world = World.from_dict(tomllib.loads(text))
    with HubSim(world) as sim:
        url = hf_hub_url(
            "alice/prompts", "README.md", repo_type="dataset", endpoint=sim.url
        )
        with pytest.raises(RemoteEntryNotFoundError):
            get_hf_file_metadata(url, token=TOKEN)
