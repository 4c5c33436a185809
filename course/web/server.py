"""Serve an ASGI app with uvicorn on a socket bound up front, in a background thread."""

from __future__ import annotations

import errno
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from course.errors import CourseError
from course.web.limits import ConnectionLimits, guarded_protocol

START_TIMEOUT = 10.0
# Connections the kernel queues before we accept them: a burst of one-click POSTs from a
# mailbox provider must not overflow it (an overflowed SYN is retried a second later).
BACKLOG = 4096


class ServerError(CourseError):
    """A web server cannot start, e.g. its port is taken."""


class WebServer:
    """A running server; `url` to open, `stop()` to shut it down, `wait()` to block."""

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int
    ) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to finish the requests in hand and wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C arrives here as KeyboardInterrupt)."""
        while self._thread.is_alive():
            self._thread.join(0.5)


def serve_in_background(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    what: str,
    limits: ConnectionLimits | None = None,
    sock: socket.socket | None = None,
) -> WebServer:
    """Bind host:port (0 = any free port) and return once uvicorn accepts requests.

    `sock`: a socket already bound to host:port by bind(), for a command that refuses an
    address it cannot listen on before it opens anything else.
    Off the main thread uvicorn installs no signal handlers, so `course run` keeps its own.
    """
    limits = (limits or ConnectionLimits()).within_fd_limit()
    if sock is None:
        sock = bind(host, port, what=what)
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_seconds,
        loop="auto",  # uvloop where it is installed
        proxy_headers=False,  # no proxy in front to trust: take no X-Forwarded-For from anyone
        server_header=False,
        backlog=BACKLOG,
        log_config=None,  # leave the host program's logging alone
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"course-{what}", daemon=True
    )
    thread.start()
    _wait_until_started(server, thread, what)
    return WebServer(server, thread, host, sock.getsockname()[1])


def bind(host: str, port: int, *, what: str) -> socket.socket:
    """A listening socket bound before uvicorn starts, so a taken port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except (OSError, OverflowError) as exc:
        sock.close()
        raise ServerError(f"{what}: cannot listen on {host}:{port}: {_advice(exc, host)}") from None
    return sock


def _advice(exc: OSError | OverflowError, host: str) -> str:
    """What went wrong binding, and the fix that fits it."""
    if isinstance(exc, OverflowError):
        return "expected a port number 1-65535"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host {host!r}; use an IP address such as 127.0.0.1"
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}; stop what uses it, or choose another port"
    if exc.errno == errno.EACCES:
        return f"{reason}; ports below 1024 need privileges: choose a port from 1024 up"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{reason}; {host} is not an address of this machine"
    return reason


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            raise ServerError(f"{what}: the web server stopped while starting (see above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServerError(f"{what}: the web server did not start in {START_TIMEOUT:.0f} s")
        time.sleep(0.01)
