"""Space endpoints: runtime, actions, variables, secrets, logs, info, listing.

Decisions where the Hub's behaviour is not documented:

- a sleep time on cpu-basic (`/sleeptime`, or `/hardware` with `sleepTimeSeconds`) is
  refused with 400: the Hub fixes cpu-basic's sleep time at 48 hours (gcTimeout
  172800). `seconds = -1` ("never sleep") reads back as `gcTimeout: null`, the
  default of upgraded hardware;
- a change of hardware, variables or secrets restarts the Space like `/restart`,
  except that a PAUSED Space stays paused (the change applies at its next restart);
- `/restart` and `/pause` on a static Space answer 400, as the client documents;
- a Space's `host` is its app on this simulator (`{endpoint}/_sim/app/{id}`), never
  `*.hf.space`, so a health probe stays on loopback.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode

from spaces_scheduler.hubsim.common import HubError, iso_z, object_id
from spaces_scheduler.hubsim.hardware import flavor_names
from spaces_scheduler.hubsim.repos import EXPAND_KEYS, select_expanded
from spaces_scheduler.hubsim.spaces import FREE_FLAVORS, SpaceState
from spaces_scheduler.hubsim.wire import Request, Response, Route, json_response

Match = re.Match[str]
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

if TYPE_CHECKING:
    from spaces_scheduler.hubsim.hub import Hub


def _id(match: Match) -> str:
    return f"{match['owner']}/{match['name']}"


def get_runtime(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match))
    return json_response(space.runtime(hub.clock()))


def restart(hub: Hub, request: Request, match: Match) -> Response:
    space = _actionable(hub, request, match)
    if not space.settings["ignore_restart"]:
        factory = request.param("factory") in ("true", "1", "True")
        space.restart(now=hub.clock(), factory=factory)
    return json_response(space.runtime(hub.clock()))


def pause(hub: Hub, request: Request, match: Match) -> Response:
    space = _actionable(hub, request, match)
    space.pause(now=hub.clock())
    return json_response(space.runtime(hub.clock()))


def _actionable(hub: Hub, request: Request, match: Match) -> SpaceState:
    space = hub.space(request, _id(match), manage=True)
    if space.settings["sdk"] == "static":
        raise HubError(400, f"{space.id} is a static Space: it cannot be restarted.")
    return space


def hardware(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    body = request.json_object()

    flavor = body.get("flavor")
    if flavor not in flavor_names():
        raise HubError(400, f"Invalid hardware flavor: {flavor!r}.")
    sleep = body.get("sleepTimeSeconds")
    if sleep is not None:
        sleep = _sleep_seconds(sleep, flavor)

    space.change_hardware(flavor, sleep, now=hub.clock())
    return json_response(space.runtime(hub.clock()))


def sleeptime(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    body = request.json_object()

    space.sleep_time = _sleep_seconds(body.get("seconds"), space.requested)
    return json_response(space.runtime(hub.clock()))


def _sleep_seconds(value: Any, flavor: str) -> int | None:
    if flavor in FREE_FLAVORS:
        raise HubError(
            400,
            "The sleep time of a Space on cpu-basic hardware cannot be configured: "
            "it sleeps after 48 hours of inactivity. Upgrade the hardware first.",
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise HubError(400, "'seconds' must be a whole number of seconds or -1.")
    return None if value == -1 else value


def get_variables(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match))
    return json_response(space.variables)


def add_variable(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    key, body = _env_key(request)

    entry: dict[str, Any] = {"value": str(body.get("value", ""))}
    if body.get("description") is not None:
        entry["description"] = str(body["description"])
    entry["updatedAt"] = iso_z(hub.clock())
    space.variables[key] = entry

    space.env_changed(now=hub.clock())
    return json_response(space.variables)


def delete_variable(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    key, _ = _env_key(request)
    if space.variables.pop(key, None) is not None:
        space.env_changed(now=hub.clock())
    return json_response(space.variables)


def get_secrets(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match))
    if not request.who().member_of(space.owner):
        raise HubError(403, f"Only members of {space.owner} may list its secrets.")
    return json_response(space.secrets)


def add_secret(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    key, body = _env_key(request)

    entry: dict[str, Any] = {"updatedAt": iso_z(hub.clock())}
    if body.get("description") is not None:
        entry["description"] = str(body["description"])
    space.secrets[key] = entry

    space.env_changed(now=hub.clock())
    return json_response({})


def delete_secret(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), manage=True)
    key, _ = _env_key(request)
    if space.secrets.pop(key, None) is not None:
        space.env_changed(now=hub.clock())
    return json_response({})


def _env_key(request: Request) -> tuple[str, dict[str, Any]]:
    body = request.json_object()
    key = body.get("key")
    if not isinstance(key, str) or not _ENV_KEY.match(key):
        raise HubError(400, f"Invalid key {key!r}: use letters, digits and _.")
    return key, body


def logs(hub: Hub, request: Request, match: Match) -> Response:
    if match["kind"] not in ("build", "run"):
        raise HubError(404, f"Cannot GET {request.path}")
    space = hub.space(request, _id(match))
    if not space.settings["logs_available"]:
        raise HubError(404, f"Logs are not available for {space.id}.")

    now = hub.clock()
    lines = space.build_log(now) if match["kind"] == "build" else space.run_log(now)
    tail = request.param("tail")
    if tail and tail.isdigit():
        lines = lines[-int(tail) :] if int(tail) else []

    events = [": keep-alive\n\n"]
    for when, text in lines:
        event = {"data": text, "timestamp": iso_z(when)}
        events.append(f"data: {json.dumps(event)}\n\n")
    body = "".join(events).encode()
    return Response(status=200, body=body, content_type="text/event-stream")


def info(hub: Hub, request: Request, match: Match) -> Response:
    space = hub.space(request, _id(match), anonymous_ok=True)
    revision = match.groupdict().get("revision")
    revision = None if revision is None else unquote(revision)
    if revision is not None and revision not in ("main", space.sha):
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")

    expand = expand_of(request, "space")
    return json_response(select_expanded(space_info(hub, request, space), expand))


def space_info(hub: Hub, request: Request, space: SpaceState) -> dict[str, Any]:
    """Return the full `/api/spaces/{id}` body of a Space."""
    return {
        "_id": object_id("space", space.id),
        "id": space.id,
        "author": space.owner,
        "sha": space.sha,
        "lastModified": iso_z(space.last_modified),
        "createdAt": iso_z(space.created),
        "private": space.private,
        "gated": False,
        "disabled": False,
        "subdomain": space.subdomain,
        "host": f"{request.base_url}/_sim/app/{space.id}",
        "likes": 0,
        "trendingScore": 0,
        "sdk": space.settings["sdk"],
        "tags": [space.settings["sdk"]],
        "siblings": [{"rfilename": "README.md"}, {"rfilename": "app.py"}],
        "cardData": {"title": space.id.split("/")[1], "sdk": space.settings["sdk"]},
        "runtime": space.runtime(hub.clock()),
        "models": [],
        "datasets": [],
    }


def expand_of(request: Request, kind: str) -> list[str] | None:
    params = request.params()
    values = params.get("expand", []) + params.get("expand[]", [])
    unknown = [v for v in values if v not in EXPAND_KEYS[kind]]
    if unknown:
        allowed = ", ".join(sorted(EXPAND_KEYS[kind]))
        raise HubError(400, f'"expand" must be one of [{allowed}], got {unknown[0]}.')
    return values or None


def listing(hub: Hub, request: Request, match: Match) -> Response:
    caller = request.who()
    author, search = request.param("author"), request.param("search")
    spaces = sorted(hub.spaces.values(), key=lambda s: s.id)
    visible = [
        s
        for s in spaces
        if (not s.private or caller.member_of(s.owner))
        and (author is None or s.owner == author)
        and (search is None or search.lower() in s.id.lower())
    ]
    return _page(hub, request, visible)


def _page(hub: Hub, request: Request, spaces: list[SpaceState]) -> Response:
    skip = int(request.param("skip") or 0)
    size = hub.world.hub["page_size"] or len(spaces) or 1
    limit = request.param("limit")
    if limit and limit.isdigit():
        size = min(size, int(limit))
    expand = expand_of(request, "space")
    full = request.param("full") in ("true", "True", "1")

    rows = [_listed(hub, request, s, expand, full) for s in spaces[skip : skip + size]]
    response = json_response(rows)
    if skip + size < len(spaces):
        query = [(k, v) for k, v in parse_qsl(request.query) if k != "skip"]
        query.append(("skip", str(skip + size)))
        next_url = f"{request.base_url}{request.path}?{urlencode(query)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


def _listed(
    hub: Hub,
    request: Request,
    space: SpaceState,
    expand: list[str] | None,
    full: bool,
) -> dict[str, Any]:
    body = space_info(hub, request, space)
    if expand or full:
        return select_expanded(body, expand)
    short = ("_id", "id", "author", "likes", "trendingScore", "private", "sdk")
    return {k: body[k] for k in (*short, "tags", "createdAt", "lastModified")}


def routes() -> list[Route]:
    base = "/api/spaces/{owner}/{name}"
    return [
        Route("GET", "/api/spaces", listing),
        Route("GET", f"{base}/runtime", get_runtime),
        Route("POST", f"{base}/restart", restart),
        Route("POST", f"{base}/pause", pause),
        Route("POST", f"{base}/hardware", hardware),
        Route("POST", f"{base}/sleeptime", sleeptime),
        Route("GET", f"{base}/variables", get_variables),
        Route("POST", f"{base}/variables", add_variable),
        Route("DELETE", f"{base}/variables", delete_variable),
        Route("GET", f"{base}/secrets", get_secrets),
        Route("POST", f"{base}/secrets", add_secret),
        Route("DELETE", f"{base}/secrets", delete_secret),
        Route("GET", f"{base}/logs/{{kind}}", logs),
        Route("GET", base, info),
        Route("GET", f"{base}/revision/{{revision}}", info),
    ]
