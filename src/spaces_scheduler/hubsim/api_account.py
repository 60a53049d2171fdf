"""Account endpoints: whoami, the hardware list, webhooks, scheduled Jobs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from spaces_scheduler.hubsim.access import require_namespace, require_token
from spaces_scheduler.hubsim.common import HubError, iso_z, object_id
from spaces_scheduler.hubsim.hardware import price_list
from spaces_scheduler.hubsim.wire import Request, Response, Route, json_response

if TYPE_CHECKING:
    from spaces_scheduler.hubsim.hub import Hub

Match = re.Match[str]


def whoami(hub: Hub, request: Request, match: Match) -> Response:
    caller = request.who()
    require_token(caller, request.path)
    token = caller.token or {}
    user = str(token["user"])

    orgs = [
        {
            "type": "org",
            "id": object_id("org", org),
            "name": org,
            "fullname": org,
            "email": None,
            "canPay": False,
            "avatarUrl": "/avatars/org.svg",
            "periodEnd": None,
            "roleInOrg": "admin" if token["role"] != "read" else "read",
        }
        for org in token["orgs"]
    ]
    return json_response(
        {
            "type": "user",
            "id": object_id("user", user),
            "name": user,
            "fullname": token.get("fullname", user),
            "email": f"{user}@example.com",
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "periodEnd": None,
            "billingMode": "prepaid",
            "avatarUrl": "/avatars/user.svg",
            "orgs": orgs,
            "auth": _auth(token, hub.clock()),
        }
    )


def _auth(token: dict[str, Any], now: float) -> dict[str, Any]:
    if token["role"] == "oauth":
        return {"type": "oauth", "expiresAt": iso_z(now + 8 * 3600)}
    return {
        "type": "access_token",
        "accessToken": {
            "displayName": "hubsim",
            "role": token["role"],
            "createdAt": iso_z(now - 86400),
        },
    }


def agent_harnesses(hub: Hub, request: Request, match: Match) -> Response:
    return json_response({"standardEnvVars": [], "harnesses": {}})


def hardware_list(hub: Hub, request: Request, match: Match) -> Response:
    return json_response(price_list())


# -- webhooks (user-scoped) -------------------------------------------------------


def _user(request: Request, *, write: bool = False) -> str:
    caller = request.who()
    require_token(caller, request.path)
    if write and caller.role == "read":
        raise HubError(403, "This token has the read role; webhooks need write access.")
    return str(caller.user)


def list_webhooks(hub: Hub, request: Request, match: Match) -> Response:
    return json_response(hub.webhooks.listing(_user(request)))


def get_webhook(hub: Hub, request: Request, match: Match) -> Response:
    hook = hub.webhooks.get(_user(request), match["hook"])
    return json_response({"webhook": hook})


def create_webhook(hub: Hub, request: Request, match: Match) -> Response:
    user = _user(request, write=True)
    hook = hub.webhooks.create(user, request.json_object())
    return json_response({"webhook": hook})


def update_webhook(hub: Hub, request: Request, match: Match) -> Response:
    user = _user(request, write=True)
    hook = hub.webhooks.update(user, match["hook"], request.json_object())
    return json_response({"webhook": hook})


def enable_webhook(hub: Hub, request: Request, match: Match) -> Response:
    user = _user(request, write=True)
    hook = hub.webhooks.set_disabled(user, match["hook"], False)
    return json_response({"webhook": hook})


def disable_webhook(hub: Hub, request: Request, match: Match) -> Response:
    user = _user(request, write=True)
    hook = hub.webhooks.set_disabled(user, match["hook"], True)
    return json_response({"webhook": hook})


def delete_webhook(hub: Hub, request: Request, match: Match) -> Response:
    hub.webhooks.delete(_user(request, write=True), match["hook"])
    return json_response({})


# -- scheduled Jobs (stored, never run) -------------------------------------------


def _namespace(hub: Hub, request: Request, match: Match, *, write: bool) -> str:
    namespace = match["ns"]
    require_namespace(request.who(), request.path, namespace, write=write)
    return namespace


def create_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    owner_type = "org" if hub.is_org(namespace) else "user"
    job = hub.jobs.create(namespace, owner_type, request.json_object())
    return json_response(job)


def list_scheduled_jobs(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=False)
    return json_response(hub.jobs.listing(namespace, request.param("label")))


def inspect_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=False)
    return json_response(hub.jobs.get(namespace, match["job"]))


def delete_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    hub.jobs.delete(namespace, match["job"])
    return json_response({})


def suspend_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    return json_response(hub.jobs.change(namespace, match["job"], suspend=True))


def resume_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    return json_response(hub.jobs.change(namespace, match["job"], suspend=False))


def reschedule_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    schedule = request.json_object().get("schedule")
    if not isinstance(schedule, str):
        raise HubError(400, "'schedule' is required.")
    job = hub.jobs.change(namespace, match["job"], schedule=schedule)
    return json_response(job)


def label_scheduled_job(hub: Hub, request: Request, match: Match) -> Response:
    namespace = _namespace(hub, request, match, write=True)
    labels = request.json_object().get("labels")
    if not isinstance(labels, dict):
        raise HubError(400, "'labels' must be an object.")
    job = hub.jobs.change(namespace, match["job"], labels=dict(labels))
    return json_response(job)


def routes() -> list[Route]:
    hooks = "/api/settings/webhooks"
    jobs = "/api/scheduled-jobs/{ns}"
    return [
        Route("GET", "/api/whoami-v2", whoami),
        Route("GET", "/api/agent-harnesses", agent_harnesses),
        Route("GET", "/api/spaces/hardware", hardware_list),
        Route("GET", hooks, list_webhooks),
        Route("POST", hooks, create_webhook),
        Route("GET", f"{hooks}/{{hook}}", get_webhook),
        Route("POST", f"{hooks}/{{hook}}", update_webhook),
        Route("DELETE", f"{hooks}/{{hook}}", delete_webhook),
        Route("POST", f"{hooks}/{{hook}}/enable", enable_webhook),
        Route("POST", f"{hooks}/{{hook}}/disable", disable_webhook),
        Route("GET", jobs, list_scheduled_jobs),
        Route("POST", jobs, create_scheduled_job),
        Route("GET", f"{jobs}/{{job}}", inspect_scheduled_job),
        Route("DELETE", f"{jobs}/{{job}}", delete_scheduled_job),
        Route("POST", f"{jobs}/{{job}}/suspend", suspend_scheduled_job),
        Route("POST", f"{jobs}/{{job}}/resume", resume_scheduled_job),
        Route("POST", f"{jobs}/{{job}}/schedule", reschedule_scheduled_job),
        Route("PUT", f"{jobs}/{{job}}/labels", label_scheduled_job),
    ]
