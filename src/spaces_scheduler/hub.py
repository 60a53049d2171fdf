"""The Hub client: the only module that talks to the Hub.

It is the only place that imports `huggingface_hub` and the only place that turns
its exceptions into ours (`spaces_scheduler.errors`). Every call goes through one
path that:

1. waits for room in the request budget (`requests_per_5min`) and for one of the
   concurrency slots shared by all work in the process;
2. makes the call with a timeout (the client itself has none);
3. translates a failure into a transient or permanent `HubError`;
4. retries transient ones with jittered exponential backoff that honours the
   Hub's `RateLimit ... t=` and `Retry-After`, as long as the run's deadline
   allows.

The token is never put into a message: every error text is scrubbed of it.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

# The client fetches an agent registry from the endpoint on its first request
# unless telemetry is off; a scheduler that runs every few minutes has no use
# for it. Read by huggingface_hub at import, so it is set before the import.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import httpx2  # noqa: E402
from huggingface_hub import HfApi, get_token  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils._http import (  # noqa: E402
    hf_request_event_hook,
    parse_ratelimit_headers,
    set_client_factory,
)

from spaces_scheduler.budget import RequestBudget as RequestBudget
from spaces_scheduler.errors import (  # noqa: E402
    CredentialsError,
    HubError,
    NotFoundError,
    PermanentHubError,
    RateLimitedError,
    TransientHubError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Stages in which the Space is on its way somewhere (huggingface_hub's
# INTERMEDIATE_SPACE_STAGES); the Hub also reports SLEEPING, which the client's
# enum lacks.
BUSY_STAGES = frozenset(
    {"BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING"}
)
ERROR_STAGES = frozenset(
    {"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"}
)
ASLEEP_STAGES = frozenset({"SLEEPING", "STOPPED"})

REQUEST_TIMEOUT = 30.0
LOG_TIMEOUT = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0


@dataclass(frozen=True)
class Runtime:
    """What the Hub says of a Space's runtime; `raw` keeps the whole answer."""

    stage: str
    hardware: str | None = None
    requested_hardware: str | None = None
    sleep_time: int | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Runtime:
        hardware = data.get("hardware") or {}
        return cls(
            stage=str(data.get("stage", "")),
            hardware=hardware.get("current"),
            requested_hardware=hardware.get("requested"),
            sleep_time=data.get("gcTimeout"),
            error_message=data.get("errorMessage"),
            raw=data,
        )


@dataclass(frozen=True)
class Identity:
    """Who the token belongs to, from whoami."""

    name: str
    orgs: tuple[str, ...]
    role: str | None
    auth_type: str | None
    writable_owners: tuple[str, ...] | None  # fine-grained scopes, None = any

    def may_manage(self, space: str) -> bool:
        """Whether the token may act on `space`, judged by its owner alone."""
        owner = space.split("/", 1)[0]
        if self.role == "read":
            return False
        if self.writable_owners is not None:
            return owner in self.writable_owners
        return owner == self.name or owner in self.orgs


# -- the HTTP layer ------------------------------------------------------------

_local = threading.local()
_budgets: list[RequestBudget] = []


@dataclass
class HubStats:
    """Counts of this process's Hub traffic, for /metrics."""

    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


STATS = HubStats()
_stats_lock = threading.Lock()


def _count(status: int) -> None:
    with _stats_lock:
        STATS.requests += 1
        STATS.rate_limited += status == 429
        STATS.server_errors += status >= 500
        STATS.by_status[status] = STATS.by_status.get(status, 0) + 1


def _on_response(response: httpx2.Response) -> None:
    """Count every response for the current run and heed an empty quota."""
    _count(response.status_code)
    tally = getattr(_local, "tally", None)
    if tally is not None:
        tally.requests += 1

    info = parse_ratelimit_headers(response.headers)
    if info is None:
        return
    for budget in _budgets:
        # Up to `reserve` requests may be on their way already; stop before
        # them so that none of them meets a 429.
        if info.remaining <= budget.reserve:
            budget.pause_until_reset(float(info.reset_in_seconds))


def _client_factory() -> httpx2.Client:
    timeout = httpx2.Timeout(REQUEST_TIMEOUT, connect=10.0)
    return httpx2.Client(
        event_hooks={"request": [hf_request_event_hook], "response": [_on_response]},
        follow_redirects=True,
        timeout=timeout,
    )


set_client_factory(_client_factory)


# -- errors ----------------------------------------------------------------------


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "[token]")
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "[token]", text)


def _retry_after(response: httpx2.Response) -> float | None:
    info = parse_ratelimit_headers(response.headers)
    if info is not None and info.remaining == 0:
        return float(info.reset_in_seconds)
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _hub_message(exc: HfHubHTTPError) -> str:
    """Return the Hub's own words for an error, without the client's advice."""
    status = exc.response.status_code
    reason = exc.response.reason_phrase or ""
    words = exc.server_message or str(exc).split("\n", 1)[0]
    # The client appends the request id; ours is added once by the caller.
    words = re.sub(r"\s*\(Request ID: [^)]*\)", "", words).strip().rstrip(".")
    text = f"{status} {reason}".strip()
    return f"{text}: {words}" if words else text


def translate(exc: Exception, *, what: str, token: str | None) -> HubError:
    """Turn an exception of huggingface_hub or httpx2 into one of ours."""
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout):
        detail = _scrub(str(exc), token) or type(exc).__name__
        return TransientHubError(f"{what}: could not reach the Hub ({detail})")
    if isinstance(exc, httpx2.TimeoutException | httpx2.TransportError):
        # The request left: the Hub may have acted on it before going silent.
        error = TransientHubError(f"{what}: the Hub did not answer in time")
        error.maybe_applied = True
        return error
    if not isinstance(exc, HfHubHTTPError):
        return PermanentHubError(f"{what}: {_scrub(str(exc), token)}")

    status = exc.response.status_code
    request_id = exc.request_id
    suffix = f" (request id {request_id})" if request_id else ""
    message = _scrub(f"{what}: {_hub_message(exc)}{suffix}", token)
    if isinstance(exc, RepositoryNotFoundError | RemoteEntryNotFoundError):
        return NotFoundError(message, status=status, request_id=request_id)
    if status == 429:
        return RateLimitedError(
            message, retry_after=_retry_after(exc.response), request_id=request_id
        )
    if status >= 500 or status == 408:
        return TransientHubError(message, status=status, request_id=request_id)
    return PermanentHubError(message, status=status, request_id=request_id)


def backoff_delay(attempt: int, error: HubError) -> float:
    """Return how long to wait before retry number `attempt + 1`."""
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        # Everyone limited in the same window wakes at the same reset; a little
        # jitter keeps them from arriving in one burst.
        return error.retry_after + random.uniform(0.0, 1.0)
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2**attempt)
    return random.uniform(ceiling / 2, ceiling)


def _final(error: HubError, *, action: bool) -> HubError:
    """Add what to do to an error that ends a call."""
    if action and error.maybe_applied:
        return type(error)(
            f"{error}; it is not sent again, since the Hub may have acted on it",
            status=error.status,
            request_id=error.request_id,
        )
    if action and error.status in (401, 403):
        return type(error)(
            f"{error}; the token may not do this: give it write access to the "
            "Space (a write token, or a fine-grained one with repo.write on its "
            "owner)",
            status=error.status,
            request_id=error.request_id,
        )
    return error


def _beyond_deadline(error: HubError, delay: float) -> HubError:
    """Say why a retry was given up: the wait it needs passes the deadline."""
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        return RateLimitedError(
            f"{error}; the Hub asked to wait {error.retry_after:.0f}s, past this "
            "run's deadline (raise --wait or wait in the schedule)",
            retry_after=error.retry_after,
            status=error.status,
            request_id=error.request_id,
        )
    return error


# -- the client ------------------------------------------------------------------


@dataclass
class _Tally:
    requests: int = 0


class HubClient:
    """Hub access shared by all work in the process: budget, slots, identity."""

    def __init__(
        self,
        *,
        token: str | None,
        endpoint: str | None = None,
        budget: RequestBudget | None = None,
        concurrency: int = 8,
    ) -> None:
        self.token = token
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/")
        self.budget = budget or RequestBudget(800)
        self._slots = threading.BoundedSemaphore(concurrency)
        self.budget.reserve = max(self.budget.reserve, concurrency)
        self._api = HfApi(endpoint=self.endpoint or None, token=token or False)
        self._identity: Identity | None = None
        self._identity_lock = threading.Lock()
        _budgets.append(self.budget)

    def calls(self, *, deadline: float) -> HubCalls:
        """Return a view of the client for one run, which counts its requests."""
        return HubCalls(self, deadline=deadline)

    def identity(self, *, deadline: float) -> Identity:
        """Return who the token belongs to, asking the Hub once per process."""
        with self._identity_lock:
            if self._identity is None:
                self._identity = self.calls(deadline=deadline).whoami()
            return self._identity

    def close(self) -> None:
        if self.budget in _budgets:
            _budgets.remove(self.budget)


class HubCalls:
    """The Hub calls of one run, bounded by its deadline (a monotonic instant)."""

    def __init__(self, client: HubClient, *, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self._tally = _Tally()

    @property
    def requests(self) -> int:
        """How many HTTP requests this run sent, retries and pages included."""
        return self._tally.requests

    def _call(self, what: str, fn: Callable[[], T], *, action: bool = False) -> T:
        """Make one Hub call, retrying transient errors within the deadline.

        An `action` (restart, pause, ...) whose request left but got no answer
        is not sent again: the Hub may have applied it, and runs act at most
        once. An error answer (429, 5xx) means it was not applied: retried.
        """
        attempt = 0
        while True:
            error = self._attempt(what, fn)
            if not isinstance(error, HubError):
                return error

            if not error.transient or (action and error.maybe_applied):
                raise _final(error, action=action)
            delay = backoff_delay(attempt, error)
            if time.monotonic() + delay > self.deadline:
                raise _beyond_deadline(error, delay)
            log.warning("%s; retrying in %.1fs", error, delay)
            time.sleep(delay)
            attempt += 1

    def _attempt(self, what: str, fn: Callable[[], T]) -> T | HubError:
        _local.tally = self._tally
        try:
            # The budget is taken inside a slot: a pause the Hub asks for then
            # holds back every request not yet sent, not only later callers.
            with self.client._slots:
                self.client.budget.acquire(self.deadline)
                return fn()
        except Exception as exc:  # translated at this one boundary
            return translate(exc, what=what, token=self.client.token)
        finally:
            _local.tally = None

    # -- identity ----------------------------------------------------------------

    def whoami(self) -> Identity:
        api = self.client._api
        try:
            data = self._call("token check (whoami)", lambda: api.whoami())
        except PermanentHubError as exc:
            if exc.status == 401:
                raise CredentialsError(
                    "The Hub refused the token (401 Invalid credentials); create a "
                    "write token at https://huggingface.co/settings/tokens and put "
                    "it in HF_TOKEN or the variable named by [hub] token_env."
                ) from exc
            raise
        return _identity_from(data)

    # -- Space runtime and actions ---------------------------------------------------

    def runtime(self, space: str) -> Runtime:
        api = self.client._api
        raw = self._call(f"{space}: runtime", lambda: api.get_space_runtime(space).raw)
        return Runtime.from_json(raw)

    def restart(self, space: str, *, factory: bool = False) -> Runtime:
        api = self.client._api
        what = f"{space}: {'factory rebuild' if factory else 'restart'}"
        raw = self._call(
            what,
            lambda: api.restart_space(space, factory_reboot=factory).raw,
            action=True,
        )
        return Runtime.from_json(raw)

    def pause(self, space: str) -> Runtime:
        api = self.client._api
        raw = self._call(
            f"{space}: pause", lambda: api.pause_space(space).raw, action=True
        )
        return Runtime.from_json(raw)

    def request_hardware(self, space: str, flavor: str) -> Runtime:
        api = self.client._api
        raw = self._call(
            f"{space}: hardware={flavor}",
            lambda: api.request_space_hardware(space, flavor).raw,  # type: ignore[arg-type]
            action=True,
        )
        return Runtime.from_json(raw)

    def set_sleep_time(self, space: str, seconds: int) -> Runtime:
        api = self.client._api

        def send() -> dict[str, Any]:
            # The client warns about cpu-basic after the fact; the Hub's answer
            # (or the runtime we verify) is what we report.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return api.set_space_sleep_time(space, seconds).raw

        shown = "never" if seconds == -1 else f"{seconds}s"
        raw = self._call(f"{space}: sleep_time={shown}", send, action=True)
        return Runtime.from_json(raw)

    def set_variables(
        self, space: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[str, str]:
        api = self.client._api
        result: dict[str, str] = {}
        for key, value in pairs:
            answer = self._call(
                f"{space}: variable {key}",
                lambda key=key, value=value: api.add_space_variable(space, key, value),  # type: ignore[misc]
                action=True,
            )
            result = {name: var.value for name, var in answer.items()}
        return result

    def variables(self, space: str) -> dict[str, str]:
        """Return the Space's variables and their values."""
        api = self.client._api
        answer = self._call(
            f"{space}: variables", lambda: api.get_space_variables(space)
        )
        return {name: var.value for name, var in answer.items()}

    def build_log_tail(self, space: str, lines: int = 5) -> tuple[str, ...]:
        """Return the last lines of the build log; empty when it cannot be read."""
        api = self.client._api

        def read() -> list[str]:
            events = api.fetch_space_logs(space, build=True)
            return [line.rstrip("\n") for line in events]

        try:
            return tuple(self._call(f"{space}: build log", read)[-lines:])
        except HubError as exc:
            log.debug("%s", exc)
            return ()

    # -- listings and repositories ---------------------------------------------

    def list_spaces(
        self, owner: str, *, with_runtime: bool = False
    ) -> dict[str, Runtime | None]:
        """Return every Space of `owner`, with its runtime when asked."""
        api = self.client._api
        expand: Any = ["runtime"] if with_runtime else None

        def listing() -> dict[str, Runtime | None]:
            found: dict[str, Runtime | None] = {}
            for info in api.list_spaces(author=owner, expand=expand):
                runtime = info.runtime.raw if info.runtime is not None else None
                found[info.id] = Runtime.from_json(runtime) if runtime else None
            return found

        return self._call(f"Spaces of {owner}", listing)

    def repo_head(self, repo: str, *, revision: str = "main") -> str:
        """Return the commit at `revision` of `repo` (`datasets/owner/name`, ...).

        Asks the resolver first: its quota is several times the API's. A repo
        without a README falls back to the API's repository info.
        """
        kind, _, repo_id = repo.partition("/")
        repo_type = {"datasets": "dataset", "models": "model", "spaces": "space"}[kind]
        try:
            return self._resolver_head(repo_id, repo_type, revision)
        except NotFoundError:
            return self._info_head(repo_id, repo_type, revision)

    def _resolver_head(self, repo_id: str, repo_type: str, revision: str) -> str:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(
            repo_id,
            "README.md",
            repo_type=repo_type,
            revision=revision,
            endpoint=self.client.endpoint or None,
        )
        token = self.client.token or False
        meta = self._call(
            f"{repo_type} {repo_id}: head commit",
            lambda: get_hf_file_metadata(url, token=token),
        )
        if not meta.commit_hash:
            raise NotFoundError(f"{repo_type} {repo_id}: no commit in the answer")
        return meta.commit_hash

    def _info_head(self, repo_id: str, repo_type: str, revision: str) -> str:
        api = self.client._api
        expand: Any = ["sha"]
        info = self._call(
            f"{repo_type} {repo_id}: repository info",
            lambda: api.repo_info(
                repo_id,
                repo_type=repo_type,
                revision=None if revision == "main" else revision,
                expand=expand,
            ),
        )
        if not info.sha:
            raise NotFoundError(f"{repo_type} {repo_id}: the Hub gave no commit")
        return info.sha

    def hardware_prices(self) -> dict[str, float]:
        """Return the price per hour in USD of each Space hardware flavor."""
        api = self.client._api
        flavors = self._call("hardware prices", lambda: api.list_spaces_hardware())
        return {item.name: _hourly(item) for item in flavors}

    # -- scheduled Jobs ----------------------------------------------------------

    def list_scheduled_jobs(
        self, namespace: str | None, *, labels: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Return the scheduled Jobs of `namespace` that carry every label given.

        Each is a plain dict (`id`, `schedule`, `suspend`, `image`, `command`,
        `environment`, `secrets` (names only), `flavor`, `timeout`, `labels`).
        """
        api = self.client._api

        def listing() -> list[dict[str, Any]]:
            found = api.list_scheduled_jobs(labels=labels, namespace=namespace)
            return [self._job_view(job) for job in found]

        return self._call(f"scheduled Jobs of {namespace or 'the token'}", listing)

    def create_scheduled_job(
        self,
        namespace: str | None,
        *,
        image: str,
        command: list[str],
        schedule: str,
        env: dict[str, str],
        secrets: dict[str, str],
        flavor: str,
        timeout: int,
        labels: dict[str, str],
    ) -> dict[str, Any]:
        """Create a scheduled Job (no overlapping runs); return it as listed."""
        api = self.client._api

        def create() -> dict[str, Any]:
            job = api.create_scheduled_job(
                image=image,
                command=command,
                schedule=schedule,
                concurrency=False,
                env=env,
                secrets=secrets,
                flavor=flavor,
                timeout=timeout,
                labels=labels,
                namespace=namespace,
            )
            return self._job_view(job)

        # A retry after a lost answer may make a second Job; `deploy hf-job
        # --apply` finds both by their label and deletes the extra one.
        return self._call(f"create the scheduled Job {labels}", create)

    def update_scheduled_job_schedule(
        self, namespace: str | None, job_id: str, schedule: str
    ) -> None:
        api = self.client._api
        self._call(
            f"scheduled Job {job_id}: schedule",
            lambda: api.update_scheduled_job_schedule(
                scheduled_job_id=job_id, schedule=schedule, namespace=namespace
            ),
        )

    def delete_scheduled_job(self, namespace: str | None, job_id: str) -> None:
        api = self.client._api
        self._call(
            f"delete the scheduled Job {job_id}",
            lambda: api.delete_scheduled_job(
                scheduled_job_id=job_id, namespace=namespace
            ),
        )

    @staticmethod
    def _job_view(job: Any) -> dict[str, Any]:
        spec = job.job_spec
        return {
            "id": job.id,
            "schedule": job.schedule,
            "suspend": bool(job.suspend),
            "image": spec.docker_image if spec else None,
            "command": list(spec.command or []) if spec else [],
            "environment": dict(spec.environment or {}) if spec else {},
            "secrets": sorted(spec.secrets or {}) if spec else [],
            "flavor": str(spec.flavor) if spec and spec.flavor else None,
            "timeout": spec.timeout if spec else None,
            "labels": dict(spec.labels or {}) if spec else {},
        }

    # -- upstream commits and Hub webhooks ------------------------------------------

    def repo_head_from(self, repo: str, *, revision: str, resolver: bool) -> str:
        """Return the commit at `revision` of `repo` by one route only.

        `resolver=True` asks the resolver (HEAD of README.md: NotFoundError when
        there is no README); False asks the API's repository info.
        """
        kind, _, repo_id = repo.partition("/")
        repo_type = {"datasets": "dataset", "models": "model", "spaces": "space"}[kind]
        if resolver:
            return self._resolver_head(repo_id, repo_type, revision)
        return self._info_head(repo_id, repo_type, revision)

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Return the token owner's webhooks as dicts (`id`, `url`, `watched`, ...)."""
        api = self.client._api
        found = self._call("webhooks", lambda: api.list_webhooks())
        return [_webhook_view(hook) for hook in found]

    def create_webhook(
        self, *, url: str, watched: list[dict[str, str]], secret: str
    ) -> dict[str, Any]:
        """Create a webhook on repository events (not discussions) of `watched`."""
        api = self.client._api
        items: list[Any] = list(watched)
        hook = self._call(
            f"create the webhook for {url}",
            lambda: api.create_webhook(
                url=url, watched=items, domains=["repo"], secret=secret
            ),
        )
        return _webhook_view(hook)

    def update_webhook(
        self, hook_id: str, *, url: str, watched: list[dict[str, str]], secret: str
    ) -> dict[str, Any]:
        """Replace the webhook's URL, watched list, domains and secret."""
        api = self.client._api
        # The full `watched` list is always sent: the client sends [] otherwise.
        items: list[Any] = list(watched)
        hook = self._call(
            f"webhook {hook_id}: update",
            lambda: api.update_webhook(
                hook_id, url=url, watched=items, domains=["repo"], secret=secret
            ),
        )
        return _webhook_view(hook)

    def enable_webhook(self, hook_id: str) -> dict[str, Any]:
        api = self.client._api
        hook = self._call(
            f"webhook {hook_id}: enable", lambda: api.enable_webhook(hook_id)
        )
        return _webhook_view(hook)


def _webhook_view(hook: Any) -> dict[str, Any]:
    watched = [{"type": item.type, "name": item.name} for item in hook.watched or []]
    return {
        "id": hook.id,
        "url": hook.url,
        "watched": watched,
        "domains": list(hook.domains or []),
        "disabled": bool(hook.disabled),
        "has_secret": bool(hook.secret),
    }


def _hourly(item: Any) -> float:
    cost = float(getattr(item, "unit_cost_usd", 0.0) or 0.0)
    label = str(getattr(item, "unit_label", "hour") or "hour")
    return cost * 60 if label.startswith("min") else cost


def _identity_from(data: dict[str, Any]) -> Identity:
    auth = data.get("auth") or {}
    token = auth.get("accessToken") or {}
    role = token.get("role")
    orgs = tuple(org.get("name", "") for org in data.get("orgs") or [])
    return Identity(
        name=str(data.get("name", "")),
        orgs=orgs,
        role=role,
        auth_type=auth.get("type"),
        writable_owners=_fine_grained_owners(token) if role == "fineGrained" else None,
    )


def _fine_grained_owners(token: dict[str, Any]) -> tuple[str, ...] | None:
    """Return the owners a fine-grained token may write to; None if unknown."""
    grained = token.get("fineGrained")
    if not isinstance(grained, dict):
        return None
    if "repo.write" in (grained.get("global") or []):
        return None

    owners = []
    for scope in grained.get("scoped") or []:
        entity = scope.get("entity") or {}
        if "repo.write" in (scope.get("permissions") or []) and entity.get("name"):
            owners.append(str(entity["name"]))
    return tuple(owners)


def resolve_token(token_env: str | None) -> str | None:
    """Return the token: from `token_env`, else HF_TOKEN, else the client's lookup."""
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise CredentialsError(
                f"The environment variable {token_env} (named by --token-env or "
                "[hub] token_env) is empty or unset; put a Hub write token in it."
            )
        return value
    return get_token()
