"""Contract tests: the real huggingface_hub client against the simulated Hub.

Every HfApi method spaces-scheduler uses is called here, and the client's own results
and exception types are checked, so the simulator cannot drift from the Hub API as
huggingface_hub sees it.
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
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import httpx2  # noqa: E402
import pytest  # noqa: E402
from huggingface_hub import (  # noqa: E402
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_url,
)
from huggingface_hub.errors import (  # noqa: E402
    BadRequestError,
    HfHubHTTPError,
    JobNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from spaces_scheduler.hubsim import HubSim, World  # noqa: E402

if not constants.HF_HUB_DISABLE_TELEMETRY:
    raise RuntimeError("huggingface_hub was imported with telemetry on: unsafe here.")

ALICE = "hf_test_alice_write"
ALICE_READ = "hf_test_alice_read"
BOB = "hf_test_bob_write"
OAUTH = "hf_test_alice_oauth"

FAST = {"build_seconds": 0.15, "start_seconds": 0.1}


def base_world(**hub: Any) -> dict[str, Any]:
    """Return a small world with fast builds; tests add their own keys."""
    return {
        "hub": {"requests_per_window": 10_000, "window_seconds": 300, **hub},
        "token": [
            {"value": ALICE, "user": "alice", "orgs": ["alice-org"]},
            {"value": ALICE_READ, "user": "alice", "role": "read"},
            {"value": BOB, "user": "bob"},
            {
                "value": OAUTH,
                "user": "alice",
                "role": "oauth",
                "deny": ["/api/spaces/{id}/restart"],
            },
        ],
        "space": [
            {"id": "alice/app", **FAST},
            {"id": "alice/gpu", "hardware": "t4-small", **FAST},
            {"id": "alice-org/private", "private": True, **FAST},
            {"id": "bob/app", **FAST},
        ],
        "dataset": [
            {"id": "alice/prompts", "sha": "1" * 40},
            {"id": "alice/no-readme", "readme": False},
        ],
        "model": [{"id": "alice/tiny", "sha": "2" * 40}],
    }


@pytest.fixture
def make_sim() -> Iterator[Callable[[dict[str, Any]], HubSim]]:
    started: list[HubSim] = []

    def make(world: dict[str, Any]) -> HubSim:
        sim = HubSim(World.from_dict(world), port=0)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[[dict[str, Any]], HubSim]) -> HubSim:
    return make_sim(base_world())


def client(sim: HubSim, token: str | bool = ALICE) -> HfApi:
    return HfApi(endpoint=sim.url, token=token)


def stages_until(
    api: HfApi, space: str, final: str, *, timeout: float = 5.0
) -> list[str]:
    """Poll the runtime until `final`; return the distinct stages seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stage = api.get_space_runtime(space).stage
        if not seen or seen[-1] != stage:
            seen.append(stage)
        if stage == final:
            return seen
        time.sleep(0.01)
    raise AssertionError(f"{space} never reached {final}; saw {seen}")


# -- whoami ---------------------------------------------------------------------------


def test_whoami_returns_user_orgs_and_token_role(sim: HubSim) -> None:
    me = client(sim).whoami()

    assert me["name"] == "alice"
    assert me["type"] == "user"
    assert [org["name"] for org in me["orgs"]] == ["alice-org"]
    assert me["auth"]["accessToken"]["role"] == "write"


def test_whoami_with_oauth_token_has_no_access_token(sim: HubSim) -> None:
    assert client(sim, OAUTH).whoami()["auth"]["type"] == "oauth"


def test_whoami_with_bad_token_is_401_invalid_user_token(sim: HubSim) -> None:
    with pytest.raises(HfHubHTTPError, match="Invalid user token") as caught:
        client(sim, "hf_nope").whoami()

    assert caught.value.response.status_code == 401
    header = caught.value.response.headers["X-Error-Message"]
    assert header == "Invalid credentials in Authorization header"


# -- runtime and actions --------------------------------------------------------------


def test_runtime_has_the_hub_fields(sim: HubSim) -> None:
    runtime = client(sim).get_space_runtime("alice/app")

    assert runtime.stage == "RUNNING"
    assert runtime.hardware == "cpu-basic"
    assert runtime.requested_hardware == "cpu-basic"
    assert runtime.sleep_time == 172800
    assert runtime.raw["replicas"]["requested"] == 1
    assert runtime.raw["domains"][0]["domain"] == "alice-app.hf.space"
    assert len(runtime.raw["sha"]) == 40
    assert "errorMessage" not in runtime.raw


def test_restart_goes_building_then_app_starting_then_running(sim: HubSim) -> None:
    api = client(sim)

    answered = api.restart_space("alice/app")

    assert answered.stage == "BUILDING"
    assert stages_until(api, "alice/app", "RUNNING") in (
        ["BUILDING", "APP_STARTING", "RUNNING"],
        ["APP_STARTING", "RUNNING"],
    )
    assert sim.requests()[-1]["path"] == "/api/spaces/alice/app/runtime"


def test_restart_shows_stale_running_first(
    make_sim: Callable[[dict[str, Any]], HubSim],
) -> None:
    world = base_world()
    world["space"][0]["stale_running_seconds"] = 0.2
    api = client(make_sim(world))

    assert api.restart_space("alice/app").stage == "RUNNING"
    seen = stages_until(api, "alice/app", "BUILDING")
    time.sleep(0.05)

    assert seen[0] == "RUNNING"
    assert stages_until(api, "alice/app", "RUNNING")[-1] == "RUNNING"


def test_factory_reboot_sends_factory_true_and_fixes_a_broken_build(
    make_sim: Callable[[dict[str, Any]], HubSim],
) -> None:
    world = base_world()
    world["space"].append(
        {
            "id": "alice/broken",
            "build_error": "ERROR: No matching distribution found for foo==9",
            "build_log": ["Step 3/9 : RUN pip install"],
            "fixed_by_factory": True,
            **FAST,
        }
    )
    sim = make_sim(world)
    api = client(sim)

    api.restart_space("alice/broken")
    assert stages_until(api, "alice/broken", "BUILD_ERROR")[-1] == "BUILD_ERROR"
    failed = api.get_space_runtime("alice/broken")
    log = list(api.fetch_space_logs("alice/broken", build=True))
    api.restart_space("alice/broken", factory_reboot=True)

    assert failed.raw["errorMessage"].startswith("ERROR: No matching distribution")
    assert log[1:] == [
        "Step 3/9 : RUN pip install\n",
        "ERROR: No matching distribution found for foo==9\n",
    ]
    assert sim.requests()[-1]["query"] == "factory=true"
    assert stages_until(api, "alice/broken", "RUNNING")[-1] == "RUNNING"


def test_pause_then_only_restart_unpauses(sim: HubSim) -> None:
    api = client(sim)

    assert api.pause_space("alice/gpu").stage == "PAUSED"
    changed = api.request_space_hardware("alice/gpu", "a10g-small")
    assert changed.stage == "PAUSED"
    assert changed.requested_hardware == "a10g-small"
    api.restart_space("alice/gpu")

    assert stages_until(api, "alice/gpu", "RUNNING")[-1] == "RUNNING"
    assert api.get_space_runtime("alice/gpu").hardware == "a10g-small"


def test_sleeping_space_wakes_on_restart(sim: HubSim) -> None:
    sim.set_space("alice/app", stage="SLEEPING")
    api = client(sim)

    assert api.get_space_runtime("alice/app").stage == "SLEEPING"
    api.restart_space("alice/app")

    assert stages_until(api, "alice/app", "RUNNING")[-1] == "RUNNING"


def test_hardware_request_rebuilds_then_changes_current(sim: HubSim) -> None:
    api = client(sim)

    answered = api.request_space_hardware("alice/app", "t4-medium", sleep_time=3600)

    assert answered.requested_hardware == "t4-medium"
    assert answered.hardware == "cpu-basic"
    assert answered.sleep_time == 3600
    assert stages_until(api, "alice/app", "RUNNING")[0] == "BUILDING"
    assert api.get_space_runtime("alice/app").hardware == "t4-medium"


def test_ignore_hardware_never_changes_current(sim: HubSim) -> None:
    sim.set_space("alice/app", ignore_hardware=True)
    api = client(sim)

    api.request_space_hardware("alice/app", "t4-small")
    time.sleep(0.3)
    runtime = api.get_space_runtime("alice/app")

    assert (runtime.stage, runtime.hardware) == ("RUNNING", "cpu-basic")
    assert runtime.requested_hardware == "t4-small"


def test_unknown_flavor_is_bad_request(sim: HubSim) -> None:
    with pytest.raises(BadRequestError, match="Invalid hardware flavor"):
        client(sim).request_space_hardware("alice/app", "quantum-xl")


def test_sleep_time_sets_gc_timeout_on_upgraded_hardware(sim: HubSim) -> None:
    api = client(sim)

    assert api.set_space_sleep_time("alice/gpu", 900).sleep_time == 900
    assert api.set_space_sleep_time("alice/gpu", -1).sleep_time is None


def test_sleep_time_on_cpu_basic_is_refused_with_400(sim: HubSim) -> None:
    api = client(sim)

    with pytest.raises(BadRequestError, match="cannot be configured"):
        api.set_space_sleep_time("alice/app", 3600)
    with pytest.warns(UserWarning, match="cpu-basic"):
        with pytest.raises(BadRequestError):
            api.request_space_hardware("alice/app", "cpu-basic", sleep_time=60)


def test_variables_add_get_delete_and_restart(sim: HubSim) -> None:
    api = client(sim)

    added = api.add_space_variable("alice/app", "DATA", "v1", description="where")
    listed = api.get_space_variables("alice/app")
    restarted = api.get_space_runtime("alice/app").stage
    left = api.delete_space_variable("alice/app", "DATA")

    assert added["DATA"].value == "v1"
    assert added["DATA"].description == "where"
    assert listed["DATA"].updated_at is not None
    assert restarted in ("BUILDING", "APP_STARTING")
    assert left == {}
    assert sim.requests()[-1]["method"] == "DELETE"


def test_secrets_are_listed_without_values(sim: HubSim) -> None:
    api = client(sim)

    api.add_space_secret("alice/app", "TOKEN", "s3cret", description="for data")
    secrets = api.get_space_secrets("alice/app")
    api.delete_space_secret("alice/app", "TOKEN")

    assert secrets["TOKEN"].description == "for data"
    assert not hasattr(secrets["TOKEN"], "value")
    assert api.get_space_secrets("alice/app") == {}


# -- info, refs, files, listing -------------------------------------------------------


def test_space_info_with_expand_returns_sha_and_runtime(sim: HubSim) -> None:
    info = client(sim).space_info("alice/app", expand=["sha", "runtime"])

    assert len(info.sha or "") == 40
    assert info.runtime is not None and info.runtime.stage == "RUNNING"
    assert info.private is None
    assert sim.requests()[-1]["query"] == "expand=sha&expand=runtime"


def test_space_info_host_is_the_simulated_app(sim: HubSim) -> None:
    info = client(sim).space_info("alice/app")

    assert info.host == f"{sim.url}/_sim/app/alice/app"
    assert httpx2.get(info.host).status_code == 200


def test_dataset_info_with_expand_and_revision(sim: HubSim) -> None:
    api = client(sim)

    info = api.dataset_info("alice/prompts", expand=["sha", "lastModified"])
    pinned = api.dataset_info("alice/prompts", revision="main")

    assert info.sha == "1" * 40
    assert info.last_modified is not None and info.last_modified.tzinfo is not None
    assert info.tags is None
    assert pinned.sha == "1" * 40
    assert pinned.siblings is not None


def test_model_info_with_expand(sim: HubSim) -> None:
    assert client(sim).model_info("alice/tiny", expand=["sha"]).sha == "2" * 40


def test_unknown_revision_is_revision_not_found(sim: HubSim) -> None:
    with pytest.raises(RevisionNotFoundError):
        client(sim).dataset_info("alice/prompts", revision="nope")


def test_unknown_expand_is_bad_request(sim: HubSim) -> None:
    with pytest.raises(BadRequestError, match="expand"):
        client(sim).dataset_info("alice/prompts", expand=["nonsense"])  # type: ignore[list-item]


def test_file_metadata_gives_the_commit_and_follows_commits(sim: HubSim) -> None:
    url = hf_hub_url(
        "alice/prompts", "README.md", repo_type="dataset", endpoint=sim.url
    )

    before = get_hf_file_metadata(url, token=ALICE)
    new_sha = sim.commit("datasets/alice/prompts")
    after = get_hf_file_metadata(url, token=ALICE)

    assert before.commit_hash == "1" * 40
    assert after.commit_hash == new_sha
    assert before.etag == after.etag
    assert before.size is not None and before.size > 0
    assert sim.requests()[-1]["method"] == "HEAD"


def test_model_and_space_files_resolve_too(sim: HubSim) -> None:
    model = hf_hub_url("alice/tiny", "README.md", endpoint=sim.url)
    space = hf_hub_url("alice/app", "app.py", repo_type="space", endpoint=sim.url)

    assert get_hf_file_metadata(model, token=ALICE).commit_hash == "2" * 40
    assert get_hf_file_metadata(space, token=ALICE).commit_hash is not None


def test_missing_readme_is_remote_entry_not_found(sim: HubSim) -> None:
    url = hf_hub_url(
        "alice/no-readme", "README.md", repo_type="dataset", endpoint=sim.url
    )

    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(url, token=ALICE)


def test_refs_list_main(sim: HubSim) -> None:
    refs = client(sim).list_repo_refs("alice/prompts", repo_type="dataset")

    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", "1" * 40)]
    assert refs.tags == [] and refs.converts == []
    prs = client(sim).list_repo_refs("alice/tiny", include_pull_requests=True)
    assert prs.pull_requests == []


def test_list_spaces_by_author_follows_link_pages(
    make_sim: Callable[[dict[str, Any]], HubSim],
) -> None:
    world = base_world(page_size=2)
    world["space"] += [{"id": f"alice/extra-{i}"} for i in range(3)]
    sim = make_sim(world)

    ids = [space.id for space in client(sim).list_spaces(author="alice")]
    pages = [row for row in sim.requests() if row["path"] == "/api/spaces"]

    assert ids == sorted(
        ["alice/app", "alice/gpu", "alice/extra-0", "alice/extra-1", "alice/extra-2"]
    )
    assert len(pages) == 3
    assert pages[0]["query"] == "author=alice"


def test_list_spaces_hides_private_spaces_of_others(sim: HubSim) -> None:
    mine = [s.id for s in client(sim).list_spaces(author="alice-org")]
    theirs = [s.id for s in client(sim, BOB).list_spaces(author="alice-org")]

    assert mine == ["alice-org/private"]
    assert theirs == []


def test_run_log_and_build_log_stream_as_sse(sim: HubSim) -> None:
    api = client(sim)

    api.restart_space("alice/app")
    stages_until(api, "alice/app", "RUNNING")
    build = list(api.fetch_space_logs("alice/app", build=True))
    run = list(api.fetch_space_logs("alice/app"))

    assert build[0].startswith("===== Build Queued at ")
    assert build[-1] == "DONE\n"
    assert run[0].startswith("===== Application Startup at ")


def test_logs_unavailable_answer_an_error(sim: HubSim) -> None:
    sim.set_space("alice/app", logs_available=False)

    with pytest.raises(HfHubHTTPError) as caught:
        list(client(sim).fetch_space_logs("alice/app", build=True))

    assert caught.value.response.status_code == 404


def test_hardware_price_list(sim: HubSim) -> None:
    prices = {h.name: h for h in client(sim).list_spaces_hardware()}

    assert prices["cpu-basic"].unit_cost_usd == 0
    assert prices["t4-small"].unit_cost_usd == pytest.approx(0.40)
    assert prices["t4-small"].unit_cost_micro_usd == 400_000
    assert prices["a100-large"].unit_label == "hour"
    assert prices["t4-small"].accelerator is not None


# -- errors as the client maps them -----------------------------------------------


def test_private_space_without_access_is_repository_not_found(sim: HubSim) -> None:
    with pytest.raises(RepositoryNotFoundError) as caught:
        client(sim, BOB).get_space_runtime("alice-org/private")

    assert caught.value.response.status_code == 404
    assert caught.value.response.headers["X-Error-Code"] == "RepoNotFound"


def test_missing_space_is_repository_not_found(sim: HubSim) -> None:
    with pytest.raises(RepositoryNotFoundError):
        client(sim).restart_space("alice/nothing-here")


def test_anonymous_runtime_is_401_repository_not_found(sim: HubSim) -> None:
    with pytest.raises(RepositoryNotFoundError) as caught:
        client(sim, token=False).get_space_runtime("alice/app")

    assert caught.value.response.status_code == 401


def test_anonymous_may_read_public_dataset_info(sim: HubSim) -> None:
    assert client(sim, token=False).dataset_info("alice/prompts").sha == "1" * 40
    assert sim.requests()[-1]["authorized"] is False


def test_restart_of_someone_elses_space_is_403(sim: HubSim) -> None:
    with pytest.raises(HfHubHTTPError, match="403 Forbidden") as caught:
        client(sim, BOB).restart_space("alice/app")

    assert not isinstance(caught.value, RepositoryNotFoundError)
    assert caught.value.response.status_code == 403
    assert "X-Error-Message" in caught.value.response.headers


def test_read_token_may_look_but_not_act(sim: HubSim) -> None:
    api = client(sim, ALICE_READ)

    assert api.get_space_runtime("alice/app").stage == "RUNNING"
    with pytest.raises(HfHubHTTPError) as caught:
        api.pause_space("alice/app")

    assert caught.value.response.status_code == 403


def test_denied_path_gets_the_anonymous_401(sim: HubSim) -> None:
    api = client(sim, OAUTH)

    assert api.pause_space("alice/app").stage == "PAUSED"
    with pytest.raises(RepositoryNotFoundError) as caught:
        api.restart_space("alice/app")

    assert caught.value.response.status_code == 401
    assert sim.requests()[-1]["token_user"] == "alice"


def test_every_answer_has_request_id_ratelimit_and_one_date(sim: HubSim) -> None:
    for path in ("/api/spaces/alice/app/runtime", "/api/spaces/bob/nope/runtime"):
        response = httpx2.get(
            f"{sim.url}{path}", headers={"authorization": f"Bearer {ALICE}"}
        )

        assert response.headers["X-Request-Id"]
        assert response.headers["RateLimit"].startswith('"api";r=')
        assert response.headers["RateLimit-Policy"] == (
            '"fixed window";"api";q=10000;w=300'
        )
        assert len(response.headers.get_list("date")) == 1
        assert response.headers["date"].endswith("GMT")


# -- webhooks ---------------------------------------------------------------------


def test_webhook_management_round_trip(sim: HubSim) -> None:
    api = client(sim)
    watched = [{"type": "dataset", "name": "alice/prompts"}]

    created = api.create_webhook(
        url="http://127.0.0.1:9/hook", watched=watched, secret="s"
    )
    listed = api.list_webhooks()
    updated = api.update_webhook(
        created.id, url="http://127.0.0.1:9/other", watched=watched
    )
    disabled = api.disable_webhook(created.id)
    enabled = api.enable_webhook(created.id)
    fetched = api.get_webhook(created.id)
    api.delete_webhook(created.id)

    assert created.watched[0].name == "alice/prompts"
    assert created.domains == ["repo", "discussion"]
    assert created.secret == "s" and created.disabled is False
    assert [hook.id for hook in listed] == [created.id]
    assert updated.url == "http://127.0.0.1:9/other"
    assert disabled.disabled is True and enabled.disabled is False
    assert fetched.url == "http://127.0.0.1:9/other"
    assert api.list_webhooks() == []
    assert client(sim, BOB).list_webhooks() == []


def test_get_missing_webhook_is_404(sim: HubSim) -> None:
    with pytest.raises(HfHubHTTPError) as caught:
        client(sim).get_webhook("0" * 24)

    assert caught.value.response.status_code == 404


# -- scheduled Jobs ---------------------------------------------------------------


def test_scheduled_jobs_are_stored_listed_and_changed(sim: HubSim) -> None:
    api = client(sim)
    command = ["python", "-c", "print(1)"]

    job = api.create_scheduled_job(
        image="python:3.12",
        command=command,
        schedule="@hourly",
        labels={"team": "data"},
        namespace="alice",
    )
    listed = api.list_scheduled_jobs(namespace="alice", labels={"team": "data"})
    other = api.list_scheduled_jobs(namespace="alice", labels={"team": "web"})
    api.suspend_scheduled_job(scheduled_job_id=job.id, namespace="alice")
    suspended = api.inspect_scheduled_job(scheduled_job_id=job.id, namespace="alice")
    api.resume_scheduled_job(scheduled_job_id=job.id, namespace="alice")
    moved = api.update_scheduled_job_schedule(
        scheduled_job_id=job.id, schedule="0 9 * * 1", namespace="alice"
    )
    relabelled = api.update_scheduled_job_labels(
        scheduled_job_id=job.id, labels={"team": "web"}, namespace="alice"
    )
    api.delete_scheduled_job(scheduled_job_id=job.id, namespace="alice")

    assert job.owner.name == "alice" and job.owner.type == "user"
    assert job.job_spec.command == command
    assert job.status.next_job_run_at is not None
    assert job.status.next_job_run_at.minute == 0
    assert [j.id for j in listed] == [job.id] and other == []
    assert suspended.suspend is True and suspended.status.next_job_run_at is None
    assert moved.schedule == "0 9 * * 1"
    assert relabelled.job_spec.labels == {"team": "web"}
    assert api.list_scheduled_jobs(namespace="alice") == []


def test_scheduled_job_errors(sim: HubSim) -> None:
    api = client(sim)

    with pytest.raises(JobNotFoundError):
        api.inspect_scheduled_job(scheduled_job_id="0" * 24, namespace="alice")
    with pytest.raises(BadRequestError, match="Invalid schedule"):
        api.create_scheduled_job(
            image="python:3.12", command=["true"], schedule="often", namespace="alice"
        )
    with pytest.raises(HfHubHTTPError) as caught:
        api.list_scheduled_jobs(namespace="bob")

    assert caught.value.response.status_code == 403


def test_scheduled_job_of_an_org_has_an_org_owner(sim: HubSim) -> None:
    job = client(sim).create_scheduled_job(
        image="python:3.12", command=["true"], schedule="@daily", namespace="alice-org"
    )

    assert (job.owner.name, job.owner.type) == ("alice-org", "org")
