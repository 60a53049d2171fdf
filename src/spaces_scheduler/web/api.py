"""The JSON API, `/healthz` and `/metrics`, and the API's OpenAPI description.

Every answer is JSON (errors too: `{"error": code, "detail": text}`), every run
has the shape of `history --json` (`reports.run_row`). Query values are checked
here and refused with 400, so a bad one never reaches the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.reports import next_rows, run_row
from spaces_scheduler.web import metrics
from spaces_scheduler.web.app import context_of
from spaces_scheduler.web.pages import csrf_ok
from spaces_scheduler.web.schema import RunRequest, openapi
from spaces_scheduler.web.security import CSRF_HEADER
from spaces_scheduler.web.views import (
    SORT_KEYS,
    Coverage,
    Filters,
    NextFires,
    known_spaces,
    schedule_rows,
    space_row,
    space_rows,
    window_rows,
)

MAX_BODY = 16 * 1024
RUNS_LIMIT = 500

__all__ = ["openapi", "routes"]


def routes() -> list[Route]:
    return [
        Route("/api/openapi.json", openapi_json),
        Route("/api/spaces", list_spaces),
        Route("/api/spaces/{owner}/{name}", get_space),
        Route("/api/schedules", list_schedules),
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs", create_run, methods=["POST"]),
        Route("/api/next", list_next),
        Route("/api/csrf", csrf_token),
        Route("/healthz", healthz),
        Route("/metrics", metrics_text),
    ]


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"cache-control": "no-store"})


def error(status: int, code: str, detail: str) -> JSONResponse:
    return _json({"error": code, "detail": detail}, status)


def openapi_json(request: Request) -> Response:
    return _json(openapi())


# -- reading ---------------------------------------------------------------------------


def list_spaces(request: Request) -> Response:
    context = context_of(request)
    query = request.query_params
    _only(query, {"schedule", "outcome", "owner", "sort"})
    sort = query.get("sort", "space")
    if sort.lstrip("-") not in SORT_KEYS:
        raise HTTPException(400, f"sort must be one of {', '.join(SORT_KEYS)}")
    rows = space_rows(
        context.config,
        context.ledger.view(),
        context.store.stages(),
        now=context.clock(),
        filters=Filters.from_query(query),
    )
    return _json({"spaces": rows})


def get_space(request: Request) -> Response:
    context = context_of(request)
    now = context.clock()
    space = f"{request.path_params['owner']}/{request.path_params['name']}"
    view = context.ledger.view()
    if space not in known_spaces(context.config, view.latest):
        raise HTTPException(404, f"No schedule, window or run names {space}.")

    schedules = Coverage(context.config.schedules).of(space)
    mine = [r for (_, s), r in view.latest.items() if s == space]
    stages = context.store.stages()
    row = space_row(
        space, schedules, mine, stages, view, NextFires(context.config, now)
    )
    runs = context.store.runs(space=space, limit=20)
    return _json(
        {
            **row,
            "windows": window_rows(context.config, space),
            "runs": [run_row(r) for r in runs],
        }
    )


def list_schedules(request: Request) -> Response:
    context = context_of(request)
    return _json(
        {
            "schedules": schedule_rows(context.config, now=context.clock()),
            "windows": window_rows(context.config),
        }
    )


def list_runs(request: Request) -> Response:
    context = context_of(request)
    query = request.query_params
    _only(query, {"space", "schedule", "outcome", "before_id", "limit"})
    outcome = query.get("outcome")
    if outcome is not None and outcome not in {kind.value for kind in OutcomeKind}:
        raise HTTPException(400, "outcome must be one of " + ", ".join(OutcomeKind))
    limit = _bounded(query, "limit", 1, RUNS_LIMIT, 50) or 50
    before = _bounded(query, "before_id", 1, 2**62, None)

    runs = context.store.runs(
        space=query.get("space") or None,
        schedule=query.get("schedule") or None,
        outcome=OutcomeKind(outcome) if outcome else None,
        before_id=before,
        limit=limit,
    )
    more = len(runs) == limit and runs[-1].id > 1
    return _json(
        {
            "runs": [run_row(r) for r in runs],
            "next_before_id": runs[-1].id if more else None,
        }
    )


def list_next(request: Request) -> Response:
    context = context_of(request)
    _only(request.query_params, {"count"})
    count = _bounded(request.query_params, "count", 1, 50, 5)
    assert count is not None
    return _json(
        {"next": next_rows(context.config, after=context.clock(), count=count)}
    )


def csrf_token(request: Request) -> Response:
    return _json({"csrf": context_of(request).security.new_csrf()})


def _only(query: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise HTTPException(400, f"unknown query parameter {unknown[0]!r}")


def _bounded(
    query: Mapping[str, str], name: str, low: int, high: int, default: int | None
) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HTTPException(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)


# -- run now ---------------------------------------------------------------------------


async def create_run(request: Request) -> Response:
    """Trigger a run now; the same request id gives the same answer, once."""
    context = context_of(request)
    if not csrf_ok(request, context, request.headers.get(CSRF_HEADER, "")):
        return error(
            403, "csrf", f"Send {CSRF_HEADER} (see /api/csrf) or a bearer token."
        )
    if context.run_now is None:
        return error(403, "read-only", '"Run now" is off on this server.')
    if (
        request.headers.get("content-type", "").split(";")[0].strip()
        != "application/json"
    ):
        return error(415, "content-type", "Send the body as application/json.")

    body = await _body(request)
    try:
        wanted = RunRequest.model_validate_json(body)
    except ValidationError as exc:
        return error(400, "invalid", _first_error(exc))

    action = wanted.action or _schedule_action(context, wanted.schedule)
    key = request.headers.get("idempotency-key") or wanted.request_id
    request_id = key or uuid.uuid4().hex
    try:
        result = await run_in_threadpool(
            context.run_now, wanted.space, wanted.schedule, action, request_id
        )
    except ValueError as exc:
        return error(400, "not-run", str(exc))
    return _json({**result, "request_id": request_id})


async def _body(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, "The body is too large.")
    return body


def _schedule_action(context: Any, schedule: str | None) -> str:
    if schedule is None:
        raise HTTPException(400, "Name an action, a schedule, or both.")
    for entry in context.config.schedules:
        if entry.name == schedule:
            return str(entry.action)
    raise HTTPException(400, f"No schedule is named {schedule!r}.")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


# -- health and metrics ---------------------------------------------------------


def healthz(request: Request) -> Response:
    """200 when the host's loop is alive and the store answers, else 503."""
    context = context_of(request)
    try:
        daemons = context.store.daemons()
        store_ok = True
    except Exception:  # any store failure means "not healthy", never a 500
        daemons, store_ok = [], False

    try:
        info = dict(context.health()) if context.health else {"loop_alive": True}
    except Exception as exc:  # a broken probe is an unhealthy host
        info = {"loop_alive": False, "error": str(exc)}
    ok = store_ok and bool(info.get("loop_alive"))
    body = {**info, "ok": ok, "store": store_ok, "daemons": len(daemons)}
    return _json(body, 200 if ok else 503)


def metrics_text(request: Request) -> Response:
    context = context_of(request)
    now = context.clock()
    text = metrics.render(
        context.ledger.view(),
        next_fires=NextFires(context.config, now).slots,
        daemons=context.store.daemons(),
        now=now,
    )
    return Response(text, media_type=metrics.CONTENT_TYPE)
