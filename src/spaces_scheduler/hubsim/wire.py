"""Requests and answers as the simulator's handlers see them, and the router."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from spaces_scheduler.hubsim.common import HubError

if TYPE_CHECKING:
    from spaces_scheduler.hubsim.access import Caller
    from spaces_scheduler.hubsim.hub import Hub


@dataclass
class Request:
    """One HTTP request, decoded."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: str
    base_url: str
    request_id: str = ""
    caller: Caller | None = None

    def who(self) -> Caller:
        """Return the caller; a request not yet identified is anonymous."""
        from spaces_scheduler.hubsim.access import Caller

        return self.caller or Caller(token=None, attached=False)

    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        values = self.params().get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """Return the JSON body; a body that is not JSON is a 400, as on the Hub."""
        if not self.body:
            raise HubError(400, "A JSON body is required.")
        try:
            return json.loads(self.body)
        except ValueError:
            raise HubError(400, "The body is not valid JSON.") from None

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise HubError(400, "The JSON body must be an object.")
        return data


@dataclass
class Response:
    """One answer; `headers` come on top of the ones every answer carries."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status=status, body=body)


def error_response(error: HubError) -> Response:
    """Turn a HubError into the Hub's answer: headers, and `{"error": ...}`."""
    headers = dict(error.headers)
    if error.code is not None:
        headers["X-Error-Code"] = error.code
    if error.message is None:
        return Response(status=error.status, content_type=None, headers=headers)

    # Header values must be latin-1; the JSON body keeps the full text.
    headers["X-Error-Message"] = error.message.encode("ascii", "replace").decode()
    response = json_response({"error": error.message}, status=error.status)
    response.headers.update(headers)
    return response


# Segments that may only take these values: repo kinds in API and file paths.
_CHOICES = {
    "kinds": "datasets|models|spaces",
    "dm": "datasets|models",
    "prefix": "datasets|spaces",
}

Handler = Callable[["Hub", Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    """A method and a path pattern (`{name}` is one segment, `{rest}` the rest)."""

    method: str
    pattern: str
    handler: Handler

    def compiled(self) -> re.Pattern[str]:
        regex = re.escape(self.pattern)
        regex = regex.replace(r"\{rest\}", r"(?P<rest>.+)")
        for name, choices in _CHOICES.items():
            regex = regex.replace(rf"\{{{name}\}}", rf"(?P<{name}>{choices})")
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
        return re.compile(regex)


class Router:
    """Find the handler for a request; 404 or 405 when there is none."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(route, route.compiled()) for route in routes]

    def find(self, method: str, path: str) -> tuple[Handler, re.Match[str]]:
        allowed = False
        for route, regex in self._routes:
            match = regex.fullmatch(path)
            if match is None:
                continue
            if route.method == method or (route.method == "GET" and method == "HEAD"):
                return route.handler, match
            allowed = True
        if allowed:
            raise HubError(405, f"Method {method} is not allowed on {path}.")
        raise HubError(404, f"Cannot {method} {path}")
