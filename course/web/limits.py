"""Limits that let a public endpoint hold without a reverse proxy in front of it.

uvicorn bounds the header size and the keep-alive wait, but nothing else: a client that
connects and sends nothing, or trickles a request a byte at a time, keeps its connection
forever, and enough of them starve everyone (20,000 idle connections made legitimate
requests time out). `guarded_protocol()` wraps uvicorn's h11 protocol (through uvicorn's
own `http=` setting) with:

- a request deadline: from the moment a connection is ready for a request, the whole
  request (headers and body) must arrive within `request_seconds`, or it is closed;
- a connection cap: at the cap, a new connection evicts the one that has waited longest
  without sending a complete request (an idle or slow client, never a request in
  progress), if it has waited at least `evict_after_seconds`: a client accepted a moment
  ago has usually sent its request already, it is just not read yet. When nobody can be
  evicted, the new connection is closed at once.

`read_body()` bounds what an endpoint reads of a body.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Final

import h11
from starlette.requests import Request
from starlette.types import Receive, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

LOG = logging.getLogger("course.web")
# File descriptors kept back for the ledger, the log, the listening socket and the like.
RESERVED_FDS: Final = 64


@dataclass(frozen=True)
class ConnectionLimits:
    """How much one server lets its clients hold."""

    max_connections: int = 4000
    request_seconds: float = 10.0
    keep_alive_seconds: int = 5
    max_header_bytes: int = 8192
    evict_after_seconds: float = 1.0

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


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (BodyTooLarge) as soon as it is known to pass `limit` bytes."""
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
            return body  # the client went away: nothing more is coming
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return body


# h11 states of a client that has not yet sent all of its request.
_WAITING_STATES: Final = (h11.IDLE, h11.SEND_BODY)


class _Waiting:
    """The server's connections that are waiting for a request, oldest first."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[Any] = set()
        # connection -> when it started waiting for a request (the event loop's clock)
        self.waiting: OrderedDict[Any, float] = OrderedDict()
        self.evicted = 0
        self.refused = 0


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """An h11 protocol class with the deadline and cap; pass it as uvicorn.Config(http=…)."""
    shared = _Waiting(limits)

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            at_cap = len(shared.open) >= limits.max_connections
            if at_cap and not _evict_one(shared, asyncio.get_running_loop().time()):
                shared.refused += 1
                self._refused = True
                transport.close()
                return
            shared.open.add(self)
            super().connection_made(transport)  # type: ignore[arg-type]
            self._await_request()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # h11's state for the client: DONE once the whole request (body too) is in.
            if self.conn.their_state not in _WAITING_STATES:
                self._request_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
                # Answered (a 413, say) before the body was read: reading the rest only to
                # throw it away is what a 300 MB upload wants us to do. Hang up instead.
                self.transport.close()
            elif self.conn.their_state in _WAITING_STATES and self.conn.our_state is h11.IDLE:
                # Keep-alive: the next request gets the same deadline (unless it arrived).
                self._await_request()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._request_complete()
            shared.open.discard(self)
            super().connection_lost(exc)

        def _await_request(self) -> None:
            self._request_complete()
            shared.waiting[self] = self.loop.time()
            self._deadline = self.loop.call_later(limits.request_seconds, self._too_slow)

        def _request_complete(self) -> None:
            shared.waiting.pop(self, None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            shared.waiting.pop(self, None)
            self.transport.close()

    return GuardedH11Protocol


def _evict_one(shared: _Waiting, now: float) -> bool:
    """Close the connection that has waited longest for a request (and long enough); False
    if there is none."""
    if not shared.waiting:
        return False
    oldest, since = next(iter(shared.waiting.items()))
    if now - since < shared.limits.evict_after_seconds:
        return False
    del shared.waiting[oldest]
    shared.evicted += 1
    oldest.transport.close()
    shared.open.discard(oldest)
    return True
