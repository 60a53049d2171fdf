"""The simulated Hub's state and the path every Hub API request takes.

A request to the Hub API goes: token check (bad token, `deny`) -> rate limiter ->
scripted fault -> handler; the answer gets `X-Request-Id` and the `RateLimit` headers,
and a row in the request log. Control requests (`/_sim/...`) skip all of that.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from spaces_scheduler.hubsim.access import (
    Caller,
    anonymous_error,
    bad_token_error,
    identify,
    not_found_error,
    require_manage,
    require_visible,
)
from spaces_scheduler.hubsim.common import Clock, HubError, iso_z, wall_clock
from spaces_scheduler.hubsim.faults import FaultBook
from spaces_scheduler.hubsim.jobs import ScheduledJobBook
from spaces_scheduler.hubsim.limiter import RateLimiter, Verdict
from spaces_scheduler.hubsim.repos import RepoState
from spaces_scheduler.hubsim.spaces import SpaceState
from spaces_scheduler.hubsim.tables import check_table
from spaces_scheduler.hubsim.webhooks import WebhookBook
from spaces_scheduler.hubsim.wire import (
    Request,
    Response,
    Router,
    error_response,
)
from spaces_scheduler.hubsim.world import SPACE, TOKEN, World

UNCOUNTED = ("/api/agent-harnesses",)


class Hub:
    """Everything the simulated Hub holds, behind one lock."""

    def __init__(
        self,
        world: World,
        *,
        stopping: threading.Event,
        clock: Clock = wall_clock,
    ) -> None:
        self.world = world
        self.clock = clock
        self.stopping = stopping
        self.lock = threading.RLock()
        self.base_url = ""
        self.log: list[dict[str, Any]] = []

        now = clock()
        self.tokens = {t["value"]: t for t in world.tokens}
        self.spaces = {s["id"]: SpaceState(s, now=now) for s in world.spaces}
        self.repos: dict[tuple[str, str], RepoState] = {}
        for kind, rows in (("dataset", world.datasets), ("model", world.models)):
            for row in rows:
                self.repos[(kind, row["id"])] = RepoState.from_settings(
                    kind, row, now=now
                )

        settings = world.hub
        self.faults = FaultBook(list(world.faults))
        self.limiter = RateLimiter(
            quota=settings["requests_per_window"],
            window=settings["window_seconds"],
            resolver_factor=settings["resolver_factor"],
            clock=clock,
        )
        self.webhooks = WebhookBook(timeout=settings["webhook_timeout"], clock=clock)
        for hook in world.webhooks:
            self.webhooks.create(hook["user"], _hook_body(hook))
        self.jobs = ScheduledJobBook(clock=clock)

        from spaces_scheduler.hubsim.routes import control_routes, hub_routes

        self.router = Router(hub_routes())
        self.control = Router(control_routes())

    # -- the request path -------------------------------------------------------

    def answer(self, request: Request) -> Response | None:
        """Answer one request; None means hang (answer nothing until stopped)."""
        if request.path.startswith("/_sim/"):
            return self._dispatch(self.control, request)

        request.caller = identify(request.headers.get("authorization"), self.tokens)
        response = self._answer_hub(request, request.caller)
        self._record(request, request.caller, response)
        return response

    def _answer_hub(self, request: Request, caller: Caller) -> Response | None:
        if request.path in UNCOUNTED:
            verdict = self.limiter.peek(request.path)
        else:
            verdict = self.limiter.hit(_limit_key(request, caller), request.path)

        response = self._screen(request, caller, verdict)
        if response is None:
            fault = self.faults.take(request.method, request.path)
            if fault is not None and fault["hang"]:
                return None
            if fault is not None:
                response = self._play(fault, verdict)
        if response is None:
            response = self._dispatch(self.router, request)

        if "RateLimit" not in response.headers:
            response.headers.update(verdict.headers())
        return response

    def _screen(
        self, request: Request, caller: Caller, verdict: Verdict
    ) -> Response | None:
        # Refusals that come before any fault or handler, in the Hub's order.
        if caller.attached and caller.token is None:
            return error_response(bad_token_error())
        if caller.denied(request.path):
            return error_response(anonymous_error(request.path))
        if not verdict.allowed:
            return _rate_limited(verdict)
        return None

    def _play(self, fault: dict[str, Any], verdict: Verdict) -> Response | None:
        """Apply a scripted fault's delay; return its answer if it has a status."""
        if fault["delay"]:
            self.stopping.wait(fault["delay"])
        if "status" not in fault:
            return None
        return _fault_response(fault, verdict)

    def _dispatch(self, router: Router, request: Request) -> Response:
        try:
            handler, match = router.find(request.method, request.path)
            with self.lock:
                return handler(self, request, match)
        except HubError as error:
            return error_response(error)

    def _record(
        self, request: Request, caller: Caller, response: Response | None
    ) -> None:
        row = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "status": None if response is None else response.status,
            "authorized": caller.attached,
            "token_user": caller.user,
            "time": iso_z(self.clock()),
            "request_id": request.request_id,
        }
        with self.lock:
            self.log.append(row)

    # -- lookups the handlers share ---------------------------------------------

    def space(
        self,
        request: Request,
        space_id: str,
        *,
        manage: bool = False,
        anonymous_ok: bool = False,
    ) -> SpaceState:
        """Return a Space the caller may see (and manage), or raise the Hub's error."""
        caller = _caller(request)
        space = self.spaces.get(space_id)
        if space is None:
            raise _missing(request, caller)
        require_visible(
            caller,
            request.path,
            owner=space.owner,
            private=space.private,
            anonymous_ok=anonymous_ok,
        )
        if manage:
            require_manage(caller, request.path, owner=space.owner, repo_id=space.id)
        return space

    def repo(self, request: Request, kind: str, repo_id: str) -> RepoState:
        """Return a dataset or model the caller may read, or raise."""
        caller = _caller(request)
        repo = self.repos.get((kind, repo_id))
        if repo is None:
            raise _missing(request, caller)
        require_visible(
            caller,
            request.path,
            owner=repo.owner,
            private=repo.private,
            anonymous_ok=True,
        )
        return repo

    def set_space(self, space_id: str, changes: dict[str, Any]) -> SpaceState:
        """Create or change a Space from [[space]] keys (the control API)."""
        where = f"space {space_id!r}"
        now = self.clock()
        with self.lock:
            space = self.spaces.get(space_id)
            if space is None:
                settings = check_table(SPACE, {**changes, "id": space_id}, where=where)
                space = self.spaces[space_id] = SpaceState(settings, now=now)
                return space
            checked = check_table(SPACE, changes, where=where, partial=True)
            checked.pop("id", None)
            space.update(checked, now=now)
            return space

    def add_token(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Add (or replace) a [[token]] at run time; return it checked."""
        token = check_table(TOKEN, raw, where="token")
        with self.lock:
            self.tokens[token["value"]] = token
        return token

    def commit(self, kind: str, repo_id: str) -> str:
        """Add a commit to a repo, deliver its webhooks, return the new sha."""
        now = self.clock()
        with self.lock:
            if kind == "space":
                space = self._space_or_error(repo_id)
                old = space.sha
                space.sha = new = secrets.token_hex(20)
                space.last_modified = now
                space.restart(now=now)
                private, owner = space.private, space.owner
            else:
                repo = self.repos.get((kind, repo_id))
                if repo is None:
                    raise HubError(404, f"No {kind} {repo_id} in this world.")
                old, new = repo.commit(now=now)
                private, owner = repo.private, repo.owner

        self.webhooks.deliver(
            kind=kind,
            repo_id=repo_id,
            private=private,
            old_sha=old,
            new_sha=new,
            base_url=self.base_url,
            may_see=lambda user: not private or self._member(user, owner),
        )
        return new

    def _space_or_error(self, space_id: str) -> SpaceState:
        space = self.spaces.get(space_id)
        if space is None:
            raise HubError(404, f"No Space {space_id} in this world.")
        return space

    def _member(self, user: str, owner: str) -> bool:
        return user == owner or any(
            t["user"] == user and owner in t["orgs"] for t in self.tokens.values()
        )

    def is_org(self, name: str) -> bool:
        return any(name in t["orgs"] for t in self.tokens.values())


def _missing(request: Request, caller: Caller) -> HubError:
    # Anonymous callers cannot tell a missing repository from a private one.
    return anonymous_error(request.path) if caller.token is None else not_found_error()


def _caller(request: Request) -> Caller:
    return request.caller or Caller(token=None, attached=False)


def _limit_key(request: Request, caller: Caller) -> str:
    # Per token like the Hub; anonymous requests share a bucket per address.
    if caller.token is not None:
        return f"token:{caller.token['value']}"
    return f"address:{request.client}"


def _rate_limited(verdict: Verdict) -> Response:
    message = (
        f"You have exceeded the rate limit of the '{verdict.bucket}' bucket "
        f"({verdict.quota} requests per {verdict.window}s); retry after "
        f"{verdict.reset}s."
    )
    response = error_response(HubError(429, message))
    response.headers.update(verdict.headers())
    response.headers["Retry-After"] = str(verdict.reset)
    return response


def _fault_response(fault: dict[str, Any], verdict: Verdict) -> Response:
    status = int(fault["status"])
    message = fault["message"]
    if message is None and status < 500:
        message = _reason(status)
    response = error_response(HubError(status, message, code=fault.get("error_code")))

    retry_after = fault.get("retry_after")
    if retry_after is not None:
        seconds = max(0, round(retry_after))
        response.headers["Retry-After"] = str(seconds)
        response.headers.update(verdict.headers(retry_after=seconds))
    elif status == 429:
        response.headers.update(verdict.headers(retry_after=verdict.reset))
    return response


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _hook_body(hook: dict[str, Any]) -> dict[str, Any]:
    body = {"url": hook["url"], "watched": hook["watched"], "domains": hook["domains"]}
    if hook["secret"] is not None:
        body["secret"] = hook["secret"]
    return body
