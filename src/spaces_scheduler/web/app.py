"""The web application: dashboard pages, JSON API, /metrics, /healthz, webhooks.

`build_app()` is all a host process needs: the daemon passes its own "run now",
health and webhook handler; `serve` builds an in-process "run now" itself.
Pages and API read the store (through a `RunLedger` for history) and never the
Hub.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from spaces_scheduler.web.ledger import RunLedger
from spaces_scheduler.web.security import Guard, Security

if TYPE_CHECKING:
    from spaces_scheduler.config import Config
    from spaces_scheduler.store.base import Store

RunNow = Callable[[str, str | None, str, str], dict[str, Any]]
Health = Callable[[], dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
STATIC = Path(__file__).parent / "static"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    """What every handler reads: the config, the store and the host's hooks."""

    config: Config
    store: Store
    ledger: RunLedger
    security: Security
    templates: Environment
    run_now: RunNow | None = None
    health: Health | None = None
    clock: Callable[[], datetime] = field(default=utc_now)


class Idempotent:
    """Wraps a `run_now`: the same request id gets the same answer, one run.

    A second call with an id in flight waits for the first one's answer. The
    last `remembered` answers are kept; a failed call (ValueError) is not kept,
    so it can be retried with the same id.
    """

    def __init__(self, run_now: RunNow, *, remembered: int = 1024) -> None:
        self.run_now = run_now
        self.remembered = remembered
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._busy: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(
        self, space: str, schedule: str | None, action: str, request_id: str
    ) -> dict[str, Any]:
        mine = self._claim(request_id)
        if isinstance(mine, dict):
            return mine
        try:
            answer = self.run_now(space, schedule, action, request_id)
        except BaseException:
            self._release(request_id, mine, None)
            raise
        self._release(request_id, mine, answer)
        return answer

    def _claim(self, request_id: str) -> dict[str, Any] | threading.Event:
        """Return the answer given to `request_id` already, or claim the id."""
        while True:
            with self._lock:
                if request_id in self._answers:
                    return self._answers[request_id]
                waiting = self._busy.get(request_id)
                if waiting is None:
                    event = threading.Event()
                    self._busy[request_id] = event
                    return event
            waiting.wait()

    def _release(
        self, request_id: str, event: threading.Event, answer: dict[str, Any] | None
    ) -> None:
        with self._lock:
            if answer is not None:
                self._answers[request_id] = answer
                while len(self._answers) > self.remembered:
                    self._answers.popitem(last=False)
            del self._busy[request_id]
        event.set()


def context_of(request: Request) -> WebContext:
    context = request.app.state.web
    assert isinstance(context, WebContext)
    return context


def build_app(
    *,
    config: Config,
    store: Store,
    run_now: RunNow | None = None,
    health: Health | None = None,
    webhook: Endpoint | None = None,
    access_token: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Starlette:
    """Return the ASGI app over `store`, as `config` describes the schedules.

    `run_now(space, schedule or None, action, request_id)` triggers a run and
    returns at least `{"run_id", "outcome"}`; it raises ValueError for bad input.
    It is called once per request id (see `Idempotent`).
    Without it the pages and API are read-only. `health()` says whether the
    host's loop is alive. `webhook` answers `POST /webhooks/hub`. The access
    token is usually set by `WebServer`; pass it here to test the app alone.
    """
    from spaces_scheduler.web import api, pages

    security = Security(access_token=access_token)
    context = WebContext(
        config=config,
        store=store,
        ledger=RunLedger(store, clock=clock),
        security=security,
        templates=_templates(),
        run_now=Idempotent(run_now) if run_now is not None else None,
        health=health,
        clock=clock,
    )
    routes: list[BaseRoute] = [
        *pages.routes(),
        *api.routes(),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    if webhook is not None:
        routes.append(Route("/webhooks/hub", webhook, methods=["POST"]))

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, security=security)],
        exception_handlers={HTTPException: pages.http_error},
    )
    app.state.web = context
    return app


def _templates() -> Environment:
    environment = Environment(
        loader=PackageLoader("spaces_scheduler.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment
