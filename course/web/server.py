"""Run an ASGI app with uvicorn, in the foreground or on a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

from course.errors import CourseError


def check_port_free(host: str, port: int) -> None:
    """Fail with a clear message before uvicorn would log and exit on its own."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CourseError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another port with --port"
            ) from None


def serve_forever(app: ASGIApp, host: str, port: int) -> None:
    """Blocking; Ctrl-C or SIGTERM stops it cleanly."""
    check_port_free(host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class BackgroundServer:
    """uvicorn on a daemon thread, for `course run`; `stop()` shuts it down."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        check_port_free(host, port)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        # Off the main thread uvicorn installs no signal handlers: the scheduler keeps them.
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self.url = f"http://{host}:{port}/"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise CourseError(f"the web server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
