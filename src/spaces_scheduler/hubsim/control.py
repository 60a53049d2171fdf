"""The control API under `/_sim/`: not the Hub's, never logged nor rate-limited.

GET    /_sim/requests                      the request log (never a token)
POST   /_sim/reset-log                     empty the request log
GET    /_sim/spaces                        every Space's full internal state
GET    /_sim/spaces/{owner}/{name}         one Space's full internal state
POST   /_sim/spaces/{owner}/{name}         set [[space]] keys (creates the Space)
POST   /_sim/{datasets|models|spaces}/{owner}/{name}/commit
                                           -> {"sha": new sha}; delivers webhooks
GET    /_sim/faults                        the faults and how often each was used
POST   /_sim/faults                        append a [[fault]] given as JSON
DELETE /_sim/faults                        drop every fault
GET    /_sim/webhook-deliveries            every delivery attempt and its result
GET    /_sim/app/{owner}/{name}            the Space's own app (its `host`)
GET    /_sim/health                        {"ok": true}
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from spaces_scheduler.hubsim.common import HubError
from spaces_scheduler.hubsim.wire import Request, Response, Route, json_response
from spaces_scheduler.hubsim.world import WorldError, check_fault

if TYPE_CHECKING:
    from spaces_scheduler.hubsim.hub import Hub

Match = re.Match[str]
_KIND = {"datasets": "dataset", "models": "model", "spaces": "space"}


def _id(match: Match) -> str:
    return f"{match['owner']}/{match['name']}"


def requests(hub: Hub, request: Request, match: Match) -> Response:
    return json_response([dict(row) for row in hub.log])


def reset_log(hub: Hub, request: Request, match: Match) -> Response:
    hub.log.clear()
    return json_response({})


def spaces(hub: Hub, request: Request, match: Match) -> Response:
    now = hub.clock()
    return json_response([s.state(now) for s in hub.spaces.values()])


def space(hub: Hub, request: Request, match: Match) -> Response:
    found = hub.spaces.get(_id(match))
    if found is None:
        raise HubError(404, f"No Space {_id(match)} in this world.")
    return json_response(found.state(hub.clock()))


def set_space(hub: Hub, request: Request, match: Match) -> Response:
    try:
        changed = hub.set_space(_id(match), request.json_object())
    except WorldError as error:
        raise HubError(400, str(error)) from None
    return json_response(changed.state(hub.clock()))


def commit(hub: Hub, request: Request, match: Match) -> Response:
    return json_response({"sha": hub.commit(_KIND[match["kinds"]], _id(match))})


def add_token(hub: Hub, request: Request, match: Match) -> Response:
    try:
        token = hub.add_token(request.json_object())
    except WorldError as error:
        raise HubError(400, str(error)) from None
    return json_response({"user": token["user"], "role": token["role"]})


def faults(hub: Hub, request: Request, match: Match) -> Response:
    return json_response(hub.faults.listing())


def add_fault(hub: Hub, request: Request, match: Match) -> Response:
    try:
        fault = check_fault(request.json_object(), where="fault")
    except WorldError as error:
        raise HubError(400, str(error)) from None
    hub.faults.add(fault)
    return json_response(fault)


def clear_faults(hub: Hub, request: Request, match: Match) -> Response:
    hub.faults.clear()
    return json_response({})


def deliveries(hub: Hub, request: Request, match: Match) -> Response:
    return json_response(hub.webhooks.deliveries())


def app(hub: Hub, request: Request, match: Match) -> Response:
    found = hub.spaces.get(_id(match))
    if found is None:
        return Response(status=404, body=b"404: Space not found", content_type=None)
    stage, _ = found.current(hub.clock())
    if stage != "RUNNING":
        body = f"<h1>{found.id} is {stage}</h1>".encode()
        return Response(status=503, body=body, content_type="text/html")
    body = f"<h1>{found.id}</h1>".encode()
    return Response(
        status=found.settings["app_status"], body=body, content_type="text/html"
    )


def health(hub: Hub, request: Request, match: Match) -> Response:
    return json_response({"ok": True})


def routes() -> list[Route]:
    one = "/_sim/spaces/{owner}/{name}"
    return [
        Route("GET", "/_sim/requests", requests),
        Route("POST", "/_sim/reset-log", reset_log),
        Route("GET", "/_sim/spaces", spaces),
        Route("GET", one, space),
        Route("POST", one, set_space),
        Route("POST", "/_sim/{kinds}/{owner}/{name}/commit", commit),
        Route("POST", "/_sim/tokens", add_token),
        Route("GET", "/_sim/faults", faults),
        Route("POST", "/_sim/faults", add_fault),
        Route("DELETE", "/_sim/faults", clear_faults),
        Route("GET", "/_sim/webhook-deliveries", deliveries),
        Route("GET", "/_sim/app/{owner}/{name}", app),
        Route("GET", "/_sim/app/{owner}/{name}/{rest}", app),
        Route("GET", "/_sim/health", health),
    ]
