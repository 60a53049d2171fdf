"""Serve the app with uvicorn on a background thread, for the daemon and `serve`.

The socket is bound here, before uvicorn starts, so that a taken port or a
listen address beyond loopback without an access token fails `start()` with
one readable line instead of a log line on another thread.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from spaces_scheduler.errors import ConfigError
from spaces_scheduler.web.app import WebContext
from spaces_scheduler.web.security import is_loopback, split_listen

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its wake-up every 100 ms: it sleeps until `request_stop()`.

    The daemon's promise is no polling while nothing is due; uvicorn's tick
    alone cost a quarter of a percent of a core.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if self.should_exit:
            return
        await self.on_tick(0)  # sets the default headers once
        await self._stopped.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)


def checked_listen(listen: str, *, access_token: str | None) -> tuple[str, int]:
    """Return (host, port) of `listen`; ConfigError if it may not be served.

    Callers check this before anything else, so a daemon refused its address
    sends nothing to the Hub.
    """
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise ConfigError([f"[web] listen: {exc}."]) from None
    if not is_loopback(host) and not access_token:
        raise ConfigError(
            [
                f"[web] listen = {listen!r} reaches beyond this machine, "
                "and no access token is set: set [web] access_token_env to the "
                "name of a variable holding one, or listen on 127.0.0.1."
            ]
        )
    return host, port


class WebServer:
    """The app on `listen`, in a daemon thread; `start()`, `url`, `stop()`."""

    def __init__(
        self,
        app: Starlette,
        *,
        listen: str = "127.0.0.1:8473",
        access_token: str | None = None,
    ) -> None:
        self.app = app
        self.listen = listen
        self.access_token = access_token or None
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None

    def start(self) -> str:
        """Start serving; return the URL. Raise ConfigError when it cannot."""
        host, port = self._checked_address()
        sock = _bind(host, port, self.listen)
        self._address = (host, sock.getsockname()[1])

        context = self.app.state.web
        assert isinstance(context, WebContext)
        context.security.access_token = self.access_token
        # Read the run history now, not on the first page view.
        threading.Thread(target=context.ledger.view, daemon=True).start()

        config = uvicorn.Config(
            self.app,
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
            # Forwarded headers would let any local proxy claim a loopback client.
            proxy_headers=False,
            # The Date header is refreshed by uvicorn's tick, which we stop.
            date_header=False,
        )
        self._server = _QuietServer(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="web", daemon=True
        )
        self._thread.start()
        self._wait_started()
        log.info("web: serving on %s", self.url)
        return self.url

    def _checked_address(self) -> tuple[str, int]:
        return checked_listen(self.listen, access_token=self.access_token)

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self._server is not None and self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError([f"[web] the server on {self.listen} did not start."])
            time.sleep(0.01)

    @property
    def url(self) -> str:
        assert self._address is not None, "start() first"
        host, port = self._address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most STOP_TIMEOUT seconds)."""
        if self._server is None or self._thread is None:
            return
        self._server.request_stop()
        self._thread.join(STOP_TIMEOUT)
        self._server = None
        self._thread = None


def _bind(host: str, port: int, listen: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is taken by another process"
        else:
            reason = exc.strerror or str(exc)
        raise ConfigError(
            [f"[web] listen = {listen!r}: cannot listen there: {reason}."]
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
