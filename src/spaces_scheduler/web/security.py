"""Who may see and change what: the access token, sessions, CSRF, headers.

The rules (DESIGN.md, "The web side"):

- Without an access token the server listens on loopback only, and a request
  must name a loopback host (`Host: evil.example` that resolves to 127.0.0.1,
  a DNS-rebinding attack, is refused).
- With one, every page and API call needs it: `Authorization: Bearer TOKEN`,
  or the session cookie the login form sets (HMAC-signed with a key derived from
  the token, so changing the token ends every session).
- `/healthz` and `/metrics` answer without it to loopback clients only;
  `/webhooks/hub` is the webhook handler's business (it checks its secret);
  `/static` and `/login` are open.
- A state-changing request from a browser also needs a CSRF token: signed and
  short-lived, embedded in each form, or sent as `X-CSRF-Token`. A bearer
  request needs none: browsers never attach that header on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "spaces_scheduler_session"
SESSION_TTL = 12 * 3600
CSRF_TTL = 12 * 3600
CSRF_HEADER = "x-csrf-token"
OPEN_PREFIXES = ("/static/", "/login", "/webhooks/hub")
LOOPBACK_ONLY = ("/healthz", "/metrics")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is local."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(text: str) -> tuple[str, int]:
    """Return (host, port) of `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"{text!r} is not HOST:PORT; write e.g. 127.0.0.1:8473 or [::1]:8473"
        )
    return (host.strip("[]") or "127.0.0.1"), int(port)


@dataclass
class Security:
    """The access token and the keys derived from it; mutable until serving."""

    access_token: str | None = None
    _random_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def _key(self, purpose: str) -> bytes:
        # Derived from the token so sessions survive a restart and die with a
        # new token; a random key when there is no token to derive from.
        base = self.access_token.encode() if self.access_token else self._random_key
        return hmac.new(base, purpose.encode(), hashlib.sha256).digest()

    def _sign(self, purpose: str, text: str) -> str:
        mac = hmac.new(self._key(purpose), text.encode(), hashlib.sha256)
        return mac.hexdigest()

    def check_token(self, offered: str) -> bool:
        if not self.access_token:
            return False
        return hmac.compare_digest(offered.encode(), self.access_token.encode())

    def new_session(self, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + SESSION_TTL)
        body = f"{expires}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign('session', body)}"

    def valid_session(self, value: str, now: float | None = None) -> bool:
        return self._valid("session", value, now)

    def new_csrf(self, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + CSRF_TTL)
        body = f"{expires}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign('csrf', body)}"

    def valid_csrf(self, value: str, now: float | None = None) -> bool:
        return self._valid("csrf", value, now)

    def _valid(self, purpose: str, value: str, now: float | None) -> bool:
        body, _, mac = value.rpartition(".")
        expires = body.partition(".")[0]
        if not body or not expires.isdigit():
            return False
        if not hmac.compare_digest(mac, self._sign(purpose, body)):
            return False
        return int(expires) > (time.time() if now is None else now)


class Guard:
    """ASGI middleware: the host check, authentication and security headers."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        refusal = self._refusal(scope)
        sender = _with_headers(send)
        if refusal is not None:
            await refusal(scope, receive, sender)
            return
        await self.app(scope, receive, sender)

    def _refusal(self, scope: Scope) -> Response | None:
        """Return the answer that stops this request, or None to let it through."""
        headers = Headers(scope=scope)
        path: str = scope["path"]
        token_set = bool(self.security.access_token)

        if not token_set and not is_loopback(_host_name(headers.get("host", ""))):
            return _plain(421, "This server answers only to a loopback host name.")
        if scope["method"] in UNSAFE_METHODS and not _same_origin(headers):
            return _plain(403, "Cross-origin requests may not change anything.")

        scope["auth"] = self._authentication(headers)
        if path.startswith(OPEN_PREFIXES) or not token_set:
            return None
        if path in LOOPBACK_ONLY and _client_is_loopback(scope):
            return None
        if scope["auth"] is not None:
            return None
        return _unauthenticated(scope, path)

    def _authentication(self, headers: Headers) -> str | None:
        """Return how the request showed the token: bearer, session, or None."""
        scheme, _, offered = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.security.check_token(offered.strip()):
            return "bearer"
        cookie = _cookie(headers, SESSION_COOKIE)
        if cookie and self.security.access_token:
            if self.security.valid_session(cookie):
                return "session"
        return None


def _unauthenticated(scope: Scope, path: str) -> Response:
    wants_html = "text/html" in Headers(scope=scope).get("accept", "")
    if scope["method"] == "GET" and wants_html and not path.startswith("/api/"):
        target = path + (
            ("?" + scope["query_string"].decode()) if scope.get("query_string") else ""
        )
        return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)
    return JSONResponse(
        {"error": "unauthorized", "detail": "An access token is required."},
        status_code=401,
        headers={"www-authenticate": 'Bearer realm="spaces-scheduler"'},
    )


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain")


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _same_origin(headers: Headers) -> bool:
    """Whether the browser's Origin (when it sent one) is this server."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin.partition("://")[2] == headers.get("host", "")


def _client_is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is not None and is_loopback(str(client[0]))


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _with_headers(send: Send) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw: list[Any] = list(message.get("headers", []))
            present = {key.lower() for key, _ in raw}
            for key, value in HEADERS.items():
                if key.encode() not in present:
                    raw.append((key.encode(), value.encode()))
            message = {**message, "headers": raw}
        await send(message)

    return sender
