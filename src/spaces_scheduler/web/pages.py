"""The HTML pages: the Space list, one page per Space, schedules, sign-in.

Handlers that only read are plain functions (Starlette runs them on its thread
pool, as the store is synchronous); those that read a form body are async and
hand the blocking part to the pool.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from spaces_scheduler.action import SIMPLE_ACTIONS
from spaces_scheduler.outcome import OutcomeKind
from spaces_scheduler.reports import iso_utc, next_rows, run_row
from spaces_scheduler.web.app import WebContext, context_of
from spaces_scheduler.web.chart import buckets, span_days, timeline_svg
from spaces_scheduler.web.security import SESSION_COOKIE, SESSION_TTL
from spaces_scheduler.web.views import (
    OUTCOMES,
    Coverage,
    Filters,
    NextFires,
    human_ago,
    human_span,
    known_spaces,
    schedule_rows,
    space_row,
    space_rows,
    window_rows,
)

MAX_FORM = 16 * 1024
HISTORY_PAGE = 50
COLUMNS = (
    ("space", "Space", ""),
    ("stage", "Stage", "opt"),
    ("outcome", "Last run", ""),
    ("last", "When", ""),
    ("duration", "Took", "opt num"),
    ("late", "Late", "opt num"),
    ("next", "Next run", ""),
    ("failures", "Failures", "num"),
)


def routes() -> list[Route]:
    return [
        Route("/", index),
        Route("/spaces/{owner}/{name}", space_page),
        Route("/spaces/{owner}/{name}/run", run_space, methods=["POST"]),
        Route("/schedules", schedules_page),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/docs", docs_page),
    ]


def render(
    request: Request, template: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render `template` with what every page needs."""
    context = context_of(request)
    now = context.clock()
    common = {
        "csrf": context.security.new_csrf(),
        "signed_in": request.scope.get("auth") == "session",
        "read_only": context.run_now is None,
        "now_text": now.strftime("%Y-%m-%d %H:%M:%S"),
        "ago": lambda moment: human_ago(moment, now),
        "span": human_span,
        "refresh": None,
        "notice": None,
    }
    html = context.templates.get_template(template).render({**common, **values})
    headers = {"cache-control": "no-store"}
    return HTMLResponse(html, status_code=status, headers=headers)


# -- the Space list ----------------------------------------------------------------


def index(request: Request) -> Response:
    context = context_of(request)
    now = context.clock()
    query = request.query_params
    filters = Filters.from_query(query)
    days = span_days(query.get("days"))

    view = context.ledger.view()
    rows = space_rows(
        context.config, view, context.store.stages(), now=now, filters=filters
    )
    spaces = known_spaces(context.config, view.latest)
    chart = buckets(
        view.points,
        now=now,
        days=days,
        schedule=filters.schedule,
        owner=filters.owner,
        outcome=filters.outcome if filters.outcome in _FINAL else "",
    )
    return render(
        request,
        "index.html",
        rows=rows,
        total=len(spaces),
        filtered=bool(filters.schedule or filters.outcome or filters.owner),
        failing=sum(row["outcome"] in ("failed", "timed-out") for row in rows),
        in_flight=view.in_flight,
        daemon_text=_daemon_text(context, now),
        filters=filters,
        days=days,
        schedule_names=_schedule_names(context, view.latest),
        owners=sorted({space.partition("/")[0] for space in spaces}),
        outcomes=OUTCOMES,
        timeline=timeline_svg(chart, days=days),
        columns=COLUMNS,
        sort_links=_sort_links(query, filters),
        sort_value=("-" if filters.descending else "") + filters.sort,
        refresh=60,
    )


_FINAL = {kind.value for kind in OutcomeKind}


def _schedule_names(context: WebContext, latest: dict[Any, Any]) -> list[str]:
    names = [schedule.name for schedule in context.config.schedules]
    names += [schedule for schedule, _ in latest]
    return sorted(set(names))


def _sort_links(query: Any, filters: Filters) -> dict[str, str]:
    links = {}
    kept = {k: v for k, v in query.items() if k != "sort" and v}
    for key, _, _ in COLUMNS:
        ascending_now = filters.sort == key and not filters.descending
        value = f"-{key}" if ascending_now else key
        links[key] = "/?" + urlencode({**kept, "sort": value})
    return links


def _daemon_text(context: WebContext, now: datetime) -> str:
    rows = context.store.daemons()
    if not rows:
        return "no daemon has written to this store"
    age = human_span(now - rows[0].heartbeat_at)
    alive = (now - rows[0].heartbeat_at).total_seconds() < 60
    state = "daemon alive" if alive else "daemon silent"
    return f"{state}, heartbeat {age} ago"


# -- one Space -----------------------------------------------------------------------


def space_page(request: Request) -> Response:
    context = context_of(request)
    now = context.clock()
    space = _space_of(request)
    view = context.ledger.view()
    if space not in known_spaces(context.config, view.latest):
        raise HTTPException(404, f"No schedule, window or run names {space}.")

    before = _int(request.query_params.get("before_id"))
    runs = context.store.runs(space=space, before_id=before, limit=HISTORY_PAGE)
    recent = runs if before is None else context.store.runs(space=space, limit=200)
    highlight = _highlight(context, space, _int(request.query_params.get("run")))

    schedules = Coverage(context.config.schedules).of(space)
    mine = [r for (_, s), r in view.latest.items() if s == space]
    row = space_row(
        space,
        schedules,
        mine,
        context.store.stages(),
        view,
        NextFires(context.config, now),
    )
    running = any(r.outcome is None for r in runs[:5])
    running |= highlight is not None and highlight["outcome"] == "running"
    chart = buckets(view.points, now=now, days=7, space=space)
    return render(
        request,
        "space.html",
        space=space,
        row=row,
        runs=[run_row(r) for r in runs],
        older=runs[-1].id if len(runs) == HISTORY_PAGE else None,
        failures=[run_row(r) for r in recent if r.outcome and r.outcome.is_failure][:5],
        highlight=highlight,
        buttons=_buttons(schedules),
        schedules=_schedules_of(context, schedules, space, now),
        windows=window_rows(context.config, space),
        timeline=timeline_svg(chart, days=7),
        days=7,
        refresh=5 if running else 30,
    )


def _space_of(request: Request) -> str:
    return f"{request.path_params['owner']}/{request.path_params['name']}"


def _int(text: str | None) -> int | None:
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _highlight(
    context: WebContext, space: str, run_id: int | None
) -> dict[str, Any] | None:
    if run_id is None:
        return None
    found = context.store.runs(space=space, before_id=run_id + 1, limit=1)
    if not found or found[0].id != run_id:
        return None
    return run_row(found[0])


def _buttons(schedules: list[Any]) -> list[dict[str, str]]:
    buttons = [
        {
            "schedule": schedule.name,
            "action": str(schedule.action),
            "label": f"{schedule.name}: {schedule.action}",
            "request_id": uuid.uuid4().hex,
        }
        for schedule in schedules
    ]
    for action in SIMPLE_ACTIONS:
        buttons.append(
            {
                "schedule": "",
                "action": action,
                "label": action,
                "request_id": uuid.uuid4().hex,
            }
        )
    return buttons


def _schedules_of(
    context: WebContext, schedules: list[Any], space: str, now: datetime
) -> list[dict[str, Any]]:
    fires = NextFires(context.config, now)
    rows = []
    for schedule in schedules:
        due = fires.of_space(schedule, space)
        rows.append(
            {
                "name": schedule.name,
                "cron": schedule.cron,
                "timezone": schedule.policy.timezone,
                "action": str(schedule.action),
                "next_due": iso_utc(due) if due else None,
            }
        )
    return rows


async def run_space(request: Request) -> Response:
    """Trigger a run from a Space page's button, then show the page with its outcome."""
    context = context_of(request)
    form = await read_form(request)
    space = _space_of(request)
    if not csrf_ok(request, context, form.get("csrf", "")):
        return _message(request, 403, "Refused", "The form expired; reload the page.")
    if context.run_now is None:
        return _message(request, 403, "Read-only", '"Run now" is off on this server.')

    request_id = form.get("request_id") or uuid.uuid4().hex
    try:
        result = await run_in_threadpool(
            context.run_now,
            space,
            form.get("schedule") or None,
            form.get("action", ""),
            request_id,
        )
    except ValueError as exc:
        return _message(request, 400, "Not run", str(exc), back=f"/spaces/{space}")
    run_id = result.get("run_id")
    target = f"/spaces/{space}" + (f"?run={run_id}#result" if run_id else "")
    return RedirectResponse(target, status_code=303)


# -- schedules, docs, sign-in ---------------------------------------------------


def schedules_page(request: Request) -> Response:
    context = context_of(request)
    now = context.clock()
    return render(
        request,
        "schedules.html",
        schedules=schedule_rows(context.config, now=now),
        windows=window_rows(context.config),
        next=next_rows(context.config, after=now, count=3),
    )


def docs_page(request: Request) -> Response:
    from spaces_scheduler.web.api import openapi

    operations = []
    for path, item in openapi()["paths"].items():
        for method, operation in item.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation["summary"],
                }
            )
    return render(request, "docs.html", operations=operations)


def login_form(request: Request) -> Response:
    context = context_of(request)
    if not context.security.access_token:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", next=_local(request.query_params.get("next")))


async def login(request: Request) -> Response:
    context = context_of(request)
    form = await read_form(request)
    target = _local(form.get("next"))
    if not context.security.access_token:
        return RedirectResponse("/", status_code=303)
    if not csrf_ok(request, context, form.get("csrf", "")):
        return _message(
            request, 403, "Refused", "The form expired; sign in again.", back="/login"
        )
    if not context.security.check_token(form.get("token", "")):
        # A pause per wrong guess slows down anyone trying tokens in a loop.
        await asyncio.sleep(0.5)
        return render(
            request,
            "login.html",
            status=401,
            next=target,
            notice="That is not the access token.",
            notice_kind="error",
        )

    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        context.security.new_session(),
        max_age=SESSION_TTL,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    context = context_of(request)
    form = await read_form(request)
    if not csrf_ok(request, context, form.get("csrf", "")):
        return _message(request, 403, "Refused", "The form expired; reload the page.")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


def _local(target: str | None) -> str:
    """Return `target` if it is a path on this server, else "/" (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target


# -- helpers shared with the API -----------------------------------------------


async def read_form(request: Request) -> dict[str, str]:
    """Return an url-encoded form body as a dict (the last value of a key wins)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise HTTPException(413, "The form is too large.")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise HTTPException(400, "The form is not UTF-8.") from None


def csrf_ok(request: Request, context: WebContext, token: str) -> bool:
    """Whether a state-changing request may go on: bearer, or a valid CSRF token."""
    if request.scope.get("auth") == "bearer":
        return True
    return context.security.valid_csrf(token)


def _message(
    request: Request, status: int, heading: str, message: str, *, back: str = "/"
) -> Response:
    return render(
        request,
        "message.html",
        status=status,
        heading=heading,
        message=message,
        back=back,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer an HTTPException: JSON under /api, a page elsewhere."""
    status = getattr(exc, "status_code", 500)
    detail = str(getattr(exc, "detail", "") or "")
    if request.url.path.startswith("/api/") or status == 405:
        code = {400: "invalid", 404: "not-found", 405: "method-not-allowed"}
        body = {"error": code.get(status, "error"), "detail": detail}
        return JSONResponse(body, status_code=status)
    heading = "Not found" if status == 404 else "Refused"
    return await run_in_threadpool(_message, request, status, heading, detail)
