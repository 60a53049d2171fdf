"""The HTTP server: `HubSim` to run it in a thread, `serve_forever` for the CLI.

The server adds no latency of its own: accepted sockets get TCP_NODELAY and each
answer (status line, headers, body) goes out in one write, so Nagle's algorithm and
delayed ACKs never hold a request for ~40 ms on loopback. Every answer carries
exactly one `Date` header in GMT (huggingface_hub's log reader needs that) and an
`X-Request-Id`.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from spaces_scheduler.hubsim.common import Clock, HubError, new_id, wall_clock
from spaces_scheduler.hubsim.hub import Hub
from spaces_scheduler.hubsim.wire import Request, Response, error_response
from spaces_scheduler.hubsim.world import World, check_fault

HOST = "127.0.0.1"
logger = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, hub: Hub) -> None:
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def close_connections(self) -> None:
        """Cut every open connection so hanging or idle handlers end now."""
        with self.connections_lock:
            open_now = list(self.connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request log is the record."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        request = self._request()
        hub = self.server.hub
        try:
            response = hub.answer(request)
        except HubError as error:
            response = error_response(error)
        except Exception as error:  # a simulator bug must still answer
            logger.exception("hubsim failed on %s %s", request.method, request.path)
            response = error_response(HubError(500, f"hubsim bug: {error!r}"))

        if response is None or hub.stopping.is_set():
            # A hang: answer nothing until the server stops, then drop the line.
            hub.stopping.wait()
            self.close_connection = True
            return
        if not request.path.startswith("/_sim/") and hub.world.hub["latency"]:
            hub.stopping.wait(hub.world.hub["latency"])
        self._write(request, response)

    def _request(self) -> Request:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        port = self.server.server_address[1]
        return Request(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=body,
            client=self.client_address[0],
            base_url=f"http://{HOST}:{port}",
            request_id=f"Root=1-{new_id()[:8]}-{new_id()}",
        )

    def _write(self, request: Request, response: Response) -> None:
        reason = _reason(response.status)
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        headers = {
            "Date": formatdate(usegmt=True),
            "X-Request-Id": request.request_id,
            "Content-Length": str(len(response.body)),
            "Access-Control-Expose-Headers": "X-Repo-Commit,X-Request-Id,"
            "X-Error-Code,X-Error-Message,ETag,Link,RateLimit,RateLimit-Policy",
        }
        if response.content_type:
            headers["Content-Type"] = response.content_type
        headers.update(response.headers)
        if self.close_connection:
            headers["Connection"] = "close"
        lines += [f"{name}: {value}" for name, value in headers.items()]

        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if request.method == "HEAD" else response.body
        # One write: headers and body leave in a single segment (no Nagle stall).
        self.wfile.write(head + body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class HubSim:
    """A simulated Hub on 127.0.0.1, served from a daemon thread."""

    def __init__(
        self, world: World, *, port: int = 0, clock: Clock = wall_clock
    ) -> None:
        self.world = world
        self.port = port
        self._stopping = threading.Event()
        self.hub = Hub(world, stopping=self._stopping, clock=clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The simulated Hub is not started.")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> str:
        """Start serving in a daemon thread; return the base URL."""
        if self._server is not None:
            return self.url
        self._server = _Server(self.port, self.hub)
        self.hub.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="hubsim",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving; hanging requests are dropped, not waited for."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubSim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the control API, in process ----------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Return the request log, as `GET /_sim/requests` does."""
        with self.hub.lock:
            return [dict(row) for row in self.hub.log]

    def reset_log(self) -> None:
        with self.hub.lock:
            self.hub.log.clear()

    def commit(self, repo: str) -> str:
        """Commit to `datasets/o/n`, `models/o/n` or `spaces/o/n`; return the sha."""
        kinds, _, repo_id = repo.partition("/")
        kind = {"datasets": "dataset", "models": "model", "spaces": "space"}.get(kinds)
        if kind is None or repo_id.count("/") != 1:
            raise ValueError(
                f"Expected datasets/owner/name or models/owner/name: {repo}"
            )
        return self.hub.commit(kind, repo_id)

    def set_space(self, space_id: str, **changes: Any) -> dict[str, Any]:
        """Set [[space]] keys of a Space (creating it); return its state."""
        space = self.hub.set_space(space_id, changes)
        with self.hub.lock:
            return space.state(self.hub.clock())

    def space_state(self, space_id: str) -> dict[str, Any]:
        with self.hub.lock:
            return self.hub.spaces[space_id].state(self.hub.clock())

    def add_token(self, value: str, user: str, **keys: Any) -> None:
        """Add a [[token]] (role, orgs, deny...); raises WorldError when invalid."""
        self.hub.add_token({"value": value, "user": user, **keys})

    def add_fault(self, fault: dict[str, Any]) -> None:
        """Append a [[fault]]; raises WorldError when it is invalid."""
        self.hub.faults.add(check_fault(fault, where="fault"))

    def deliveries(self) -> list[dict[str, Any]]:
        """Return every webhook delivery attempt so far."""
        return self.hub.webhooks.deliveries()


def serve_forever(*, port: int, world_path: str | None) -> None:
    """Serve a world until SIGINT or SIGTERM; the first stdout line is the URL."""
    world = World.default() if world_path is None else World.load(world_path)
    sim = HubSim(world, port=port)
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Signal handlers can only be set from the main thread; elsewhere the caller
    # ends the process itself.
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        url = sim.start()
        sys.stdout.write(f"listening on {url}\n")
        sys.stdout.flush()
        while not done.wait(1.0):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
