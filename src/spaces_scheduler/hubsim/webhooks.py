"""Webhooks: the user-scoped management API's store, and delivery on commit.

Delivery follows the Hub's documented `repo.content` payload and sends the secret in
`X-Webhook-Secret`. It runs in a background thread per webhook. For safety the
simulator only ever connects to loopback: a webhook whose URL is not `http://` on
127.0.0.1, localhost or ::1 is not contacted, and its delivery is recorded as failed.
A receiver that does not answer within `webhook_timeout` is recorded as failed too;
there are no retries.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from spaces_scheduler.hubsim.common import Clock, HubError, iso_z, new_id, object_id

WATCH_KINDS = ("dataset", "model", "space", "user", "org", "bucket")
DOMAINS = ("repo", "discussion")
_LOOPBACK = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
_URL_PREFIX = {"dataset": "datasets/", "space": "spaces/", "model": ""}


class WebhookBook:
    """Webhooks per user, and the record of every delivery attempt."""

    def __init__(self, *, timeout: float, clock: Clock) -> None:
        self.timeout = timeout
        self._clock = clock
        self._hooks: dict[str, dict[str, Any]] = {}
        self._deliveries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # -- management --------------------------------------------------------------

    def listing(self, user: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_view(h) for h in self._hooks.values() if h["user"] == user]

    def get(self, user: str, hook_id: str) -> dict[str, Any]:
        with self._lock:
            return _view(self._own(user, hook_id))

    def create(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        hook: dict[str, Any] = {"id": new_id(), "user": user, "disabled": False}
        hook.update(_checked(body, creating=True))
        with self._lock:
            self._hooks[hook["id"]] = hook
            return _view(hook)

    def update(self, user: str, hook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        changes = _checked(body, creating=False)
        with self._lock:
            hook = self._own(user, hook_id)
            hook.update(changes)
            return _view(hook)

    def set_disabled(self, user: str, hook_id: str, disabled: bool) -> dict[str, Any]:
        with self._lock:
            hook = self._own(user, hook_id)
            hook["disabled"] = disabled
            return _view(hook)

    def delete(self, user: str, hook_id: str) -> None:
        with self._lock:
            self._own(user, hook_id)
            del self._hooks[hook_id]

    def _own(self, user: str, hook_id: str) -> dict[str, Any]:
        hook = self._hooks.get(hook_id)
        if hook is None or hook["user"] != user:
            raise HubError(404, f"Webhook {hook_id} not found.")
        return hook

    # -- delivery ----------------------------------------------------------------

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._deliveries]

    def deliver(
        self,
        *,
        kind: str,
        repo_id: str,
        private: bool,
        old_sha: str,
        new_sha: str,
        base_url: str,
        may_see: Callable[[str], bool],
    ) -> None:
        """Send the `repo.content` update to every webhook watching the repo."""
        owner = repo_id.split("/")[0]
        with self._lock:
            hooks = [
                dict(h)
                for h in self._hooks.values()
                if _watches(h, kind, repo_id, owner) and may_see(h["user"])
            ]

        for hook in hooks:
            payload = _payload(hook, kind, repo_id, private, old_sha, new_sha, base_url)
            thread = threading.Thread(
                target=self._send,
                args=(hook, payload, repo_id),
                name=f"hubsim-webhook-{hook['id']}",
                daemon=True,
            )
            thread.start()

    def _send(self, hook: dict[str, Any], payload: dict[str, Any], repo: str) -> None:
        row: dict[str, Any] = {
            "webhook_id": hook["id"],
            "url": hook["url"],
            "repo": repo,
            "new_sha": payload["updatedRefs"][0]["newSha"],
            "time": iso_z(self._clock()),
        }
        try:
            status = _post(hook["url"], payload, hook.get("secret"), self.timeout)
            row.update(status=status, ok=200 <= status < 300, error=None)
        except (OSError, http.client.HTTPException, ValueError) as error:
            row.update(status=None, ok=False, error=f"{type(error).__name__}: {error}")
        with self._lock:
            self._deliveries.append(row)


def _checked(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if creating or body.get("watched"):
        changes["watched"] = _watched(body.get("watched"))
    if creating or "domains" in body:
        changes["domains"] = _domains(body.get("domains", list(DOMAINS)))
    for key in ("url", "secret"):
        if key in body:
            if not isinstance(body[key], str):
                raise HubError(400, f"'{key}' must be a string.")
            changes[key] = body[key]
    if "jobSourceId" in body:
        changes["job"] = {"jobSourceId": str(body["jobSourceId"])}
    if creating and "url" not in changes and "job" not in changes:
        raise HubError(400, "A webhook needs a 'url' or a 'jobSourceId'.")
    return changes


def _watched(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise HubError(400, "'watched' must be a non-empty list of {type, name}.")
    for item in value:
        if not isinstance(item, dict) or item.get("type") not in WATCH_KINDS:
            raise HubError(400, f"'watched' items need a type among {WATCH_KINDS}.")
        if not isinstance(item.get("name"), str) or not item["name"]:
            raise HubError(400, "'watched' items need a name.")
    return [{"type": i["type"], "name": i["name"]} for i in value]


def _domains(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(d in DOMAINS for d in value):
        raise HubError(400, f"'domains' must be a list among {DOMAINS}.")
    return list(value)


def _view(hook: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in hook.items() if k != "user"}
    view.setdefault("url", None)
    view.setdefault("secret", None)
    return view


def _watches(hook: dict[str, Any], kind: str, repo_id: str, owner: str) -> bool:
    if hook["disabled"] or "repo" not in hook["domains"] or "url" not in hook:
        return False
    for item in hook["watched"]:
        if item["type"] == kind and item["name"] == repo_id:
            return True
        if item["type"] in ("user", "org") and item["name"] == owner:
            return True
    return False


def _payload(
    hook: dict[str, Any],
    kind: str,
    repo_id: str,
    private: bool,
    old_sha: str,
    new_sha: str,
    base_url: str,
) -> dict[str, Any]:
    owner = repo_id.split("/")[0]
    return {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": {
            "type": kind,
            "name": repo_id,
            "id": object_id(kind, repo_id),
            "private": private,
            "url": {
                "web": f"{base_url}/{_URL_PREFIX[kind]}{repo_id}",
                "api": f"{base_url}/api/{kind}s/{repo_id}",
            },
            "headSha": new_sha,
            "owner": {"id": object_id("user", owner)},
        },
        "updatedRefs": [
            {"ref": "refs/heads/main", "oldSha": old_sha, "newSha": new_sha}
        ],
        "webhook": {"id": hook["id"], "version": 3},
    }


def _post(url: str, payload: dict[str, Any], secret: str | None, timeout: float) -> int:
    """POST `payload` to a loopback `url`; return the status. Refuse other hosts."""
    parts = urlsplit(url)
    host = _LOOPBACK.get(parts.hostname or "")
    if parts.scheme != "http" or host is None:
        raise ValueError(f"refused to deliver outside loopback: {url}")

    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "hubsim-webhooks"}
    if secret is not None:
        headers["X-Webhook-Secret"] = secret
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"

    connection = http.client.HTTPConnection(host, parts.port or 80, timeout=timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()
