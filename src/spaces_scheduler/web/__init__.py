"""The web side: dashboard, JSON API, /metrics, /healthz and the webhook route.

Hosts build the app with `build_app()` and serve it with `WebServer`; the
`serve` command does both for one-shot deployments.
"""

from __future__ import annotations

from spaces_scheduler.web.app import build_app
from spaces_scheduler.web.server import WebServer

__all__ = ["WebServer", "build_app"]
