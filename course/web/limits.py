"""Limits that let a public endpoint hold without a reverse proxy in front of it.

uvicorn bounds the keep-alive wait, but nothing else: a client that connects and sends
nothing, or trickles a request a byte at a time, keeps its connection forever, and enough
of them starve everyone (20,000 idle connections made legitimate requests time out).
`guarded_protocol()` wraps uvicorn's httptools protocol (the C parser; through uvicorn's own
`http=` setting) with:

- a request deadline: from the moment a connection is ready for a request, the whole
  request (headers and body) must arrive within `request_seconds`, or it is closed;
- a connection cap: at the cap, a new connection evicts the one that has waited longest
  without sending a complete request (an idle or slow client, never a request in
  progress), if it has waited at least `evict_after_seconds` and the kernel holds nothing
  it sent: in a burst, a client accepted a moment ago has usually sent its request
  already, it is just not read yet. When nobody can be evicted, the new connection is
  closed at once;
- a header limit: a request line and headers longer than `max_header_bytes` get a 431 and
  the connection is closed (the parser would otherwise keep whatever it is sent);
- a request answered before its body has arrived (a 413) closes the connection instead of
  reading the rest only to throw it away.

`read_body()` bounds what an endpoint reads of a body.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import resource
import struct
import termios
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Final

from starlette.requests import Request
from starlette.types import Receive, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LOG = logging.getLogger("course.web")
# File descriptors kept back for the ledger, the log, the listening socket and the like.
RESERVED_FDS: Final = 64
# How many of the longest-waiting connections an arrival at the cap looks at for one to
# evict: in a burst, the oldest ones may all have a request waiting to be read.
_EVICTION_SCAN: Final = 32


@dataclass(frozen=True)
class ConnectionLimits:
    """How much one server lets its clients hold."""

    max_connections: int = 4000
    request_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_header_bytes: int = 8192
    evict_after_seconds: float = 0.25

    def within_fd_limit(self) -> ConnectionLimits:
        """Raise the soft descriptor limit as far as allowed, and keep the cap below it.

        Running out of descriptors is what filled the log with "Too many open files".
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.max_connections + RESERVED_FDS
        if soft != resource.RLIM_INFINITY and soft < wanted:
            ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
                soft = ceiling
            except (ValueError, OSError):
                pass
        if soft == resource.RLIM_INFINITY:
            return self
        return replace(self, max_connections=max(1, min(self.max_connections, soft - RESERVED_FDS)))


class BodyTooLarge(Exception):
    """The request body is larger than the endpoint accepts."""


class ClientGone(Exception):
    """The client went away before its request's body was all here: the request is not
    whole, so nothing it asks for may be acted on (and nobody is left to answer)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (BodyTooLarge) as soon as it is known to pass `limit` bytes;
    ClientGone if the client left before sending all of it."""
    return await receive_body(request.scope, request.receive, limit)


async def receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """read_body() for a plain ASGI app."""
    declared: bytes = next((v for n, v in scope["headers"] if n == b"content-length"), b"")
    if declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise BodyTooLarge
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return body


class WaitingConnections:
    """The server's connections that are waiting for a request, oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[Any] = set()
        # connection -> when it started waiting for a request (the event loop's clock)
        self.waiting: OrderedDict[Any, float] = OrderedDict()
        self.evicted = 0
        self.refused = 0


_HEADERS_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An httptools protocol class with the limits; pass it as uvicorn.Config(http=…)."""
    shared = WaitingConnections(limits)

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _turned_away = False  # at the cap, closed before anything was set up
        _refused = False  # its headers were too large: answered 431, closing
        # Bytes received since the connection opened or the last request ended, until the
        # next request's headers are complete: what the parser may be holding.
        _header_bytes = 0
        _in_body = False  # a request's headers are complete, its body not yet all here

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            at_cap = len(shared.open) >= limits.max_connections
            if at_cap and not evict_one(shared, asyncio.get_running_loop().time()):
                shared.refused += 1
                self._turned_away = True
                transport.close()
                return
            shared.open.add(self)
            super().connection_made(transport)  # type: ignore[arg-type]
            self._await_request()

        def data_received(self, data: bytes) -> None:
            counting = not self._in_body
            if counting:
                self._header_bytes += len(data)
            super().data_received(data)
            if counting and not self._in_body and self._header_bytes > limits.max_header_bytes:
                self._refuse_headers()  # headers that do not end: stop reading them

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._refused:
                self._await_request()  # a request pipelined behind another gets one too

        def on_headers_complete(self) -> None:
            self._in_body, self._header_bytes = True, 0
            if self._refused:
                return
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > limits.max_header_bytes:
                self._refuse_headers()  # complete, but too large: they never reach the app
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_body = False
            self._request_complete()
            if not self._refused:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)
            super().on_response_complete()
            if self.transport.is_closing() or pipelined:
                return
            if self._in_body:
                # Answered (a 413, say) before the body was read: reading the rest only to
                # throw it away is what a 300 MB upload wants us to do. Hang up instead.
                self.transport.close()
            else:
                # Keep-alive: the next request gets the same deadline (unless it began).
                self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._turned_away:
                return
            self._request_complete()
            shared.open.discard(self)
            super().connection_lost(exc)

        def _await_request(self) -> None:
            if self._deadline is None:
                shared.waiting[self] = self.loop.time()
                self._deadline = self.loop.call_later(limits.request_seconds, self._too_slow)

        def _request_complete(self) -> None:
            shared.waiting.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _refuse_headers(self) -> None:
            if not self._refused:
                self._refused = True
                self._request_complete()
                self.transport.write(_HEADERS_TOO_LARGE)
                self.transport.close()

        def _too_slow(self) -> None:
            self._deadline = None
            shared.waiting.pop(self, None)
            self.transport.close()

    return GuardedHttpToolsProtocol


def evict_one(shared: WaitingConnections, now: float) -> bool:
    """Close the connection that has waited longest for a request (long enough, and with
    nothing unread in the kernel); False if there is none."""
    for candidate, since in itertools.islice(shared.waiting.items(), _EVICTION_SCAN):
        if now - since < shared.limits.evict_after_seconds:
            return False  # the rest waited less still
        if _unread_bytes(candidate.transport):
            continue  # its request is here, just not read yet: a burst, not an idle client
        del shared.waiting[candidate]
        shared.evicted += 1
        candidate.transport.close()
        shared.open.discard(candidate)
        return True
    return False


def _unread_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes the client sent that the kernel holds and the server has not read yet."""
    sock = transport.get_extra_info("socket")
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, AttributeError, ValueError):
        return 1  # cannot tell: leave it alone
    count: int = struct.unpack("i", raw)[0]
    return count
