"""Delivery over SMTP: a pool of verified, reused connections, driven by one thread.

Each connection carries its own transactions (smtp_session.py); this loop feeds them
messages, waits for whichever answers first, hands each batch of answers to `on_result`
(one ledger commit), and only then lets those connections send their next message's
content. While the server works on one connection's message, the others are read,
recorded and fed: nothing waits for the slowest. Threads cost more in GIL hand-offs and
per-message commits than they saved (bench/send.py).
"""

from __future__ import annotations

import math
import select
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult
from course.backends.rate_limit import RateLimiter
from course.backends.smtp_connection import SmtpConnection, tls_context
from course.backends.smtp_replies import is_error
from course.backends.smtp_session import Finished, Flight, Session
from course.config import SmtpSettings
from course.errors import DeliveryError


class SmtpStopped(DeliveryError):
    """Sending stopped before the batch was done; `results` holds what did finish."""

    def __init__(self, message: str, results: list[SendResult]) -> None:
        super().__init__(message)
        self.results = results


class SendingPaused(SmtpStopped):
    """Too many errors in a row: the run pauses instead of burning through the list."""


@dataclass
class _Run:
    """One send(): what is left to send, what came back, and when to stop."""

    messages: Sequence[OutgoingMessage]
    on_result: ResultHook | None
    results: list[SendResult | None]
    todo: deque[tuple[int, int]]  # (message index, attempt)
    done: Finished = field(default_factory=Finished)
    consecutive_errors: int = 0
    stop: DeliveryError | None = None


class SmtpBackend(Backend):
    """Sends through `max_connections` reused connections, pipelining where offered."""

    name = "smtp"
    remote = True

    def __init__(
        self,
        settings: SmtpSettings,
        password: str,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._password = password
        self._limiter = limiter or RateLimiter(settings.rate_per_second)
        self._clock = clock
        self._sessions: list[Session] = []

    def open(self) -> None:
        """Prepare the pool; each connection is opened when it first carries a message."""
        if self._sessions:
            return
        context = tls_context(self.settings)
        self._sessions = [
            Session(SmtpConnection(self.settings, self._password, context), self._clock)
            for _ in range(self.settings.max_connections)
        ]

    def close(self) -> None:
        for session in self._sessions:
            session.close()
        self._sessions = []

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Deliver over the pool; every answer goes to `on_result` before its connection
        sends another message's content, so at most one message per connection is in doubt.
        """
        self.open()
        todo = deque((i, 1) for i in range(len(messages)))
        run = _Run(messages, on_result, [None] * len(messages), todo)
        while True:
            self._record(run)
            self._start_idle(run)
            waiting = [session for session in self._sessions if session.waiting]
            if waiting:
                self._receive(waiting, run)
                self._record(run)
                self._send_contents(run)
            elif not run.done.resend:  # a connection lost at its first write: go again
                break
        self._record(run)
        done = [result for result in run.results if result is not None]
        if run.stop is not None:
            stop = run.stop if isinstance(run.stop, SmtpStopped) else SmtpStopped(str(run.stop), [])
            stop.results = done
            raise stop
        return done

    def _start_idle(self, run: _Run) -> None:
        """Give each connection that carries nothing a message, connecting it if need be."""
        for session in self._sessions:
            if not run.todo or run.stop is not None:
                return
            if not session.idle:
                continue
            if not self._connect(session, run):
                return
            flight = self._next_flight(run, session)
            if flight is not None:
                session.start(flight, run.done)

    def _connect(self, session: Session, run: _Run) -> bool:
        connection = session.connection
        if connection.is_open and not session.waiting and connection.said_something():
            # Unasked, a server only closes the connection (idle too long) or says 421.
            connection.abort()
        if connection.is_open:
            return True
        try:
            connection.open()
        except DeliveryError as exc:
            run.stop = exc
            return False
        return True

    def _next_flight(self, run: _Run, session: Session) -> Flight | None:
        """The next message this connection can carry; ones it never could are failed."""
        while run.todo:
            index, attempt = run.todo.popleft()
            message = run.messages[index]
            commands = session.connection.envelope(message)
            if isinstance(commands, str):
                run.done.results.append((index, SendResult(message, "failed", commands)))
                continue
            # After connecting: a slow login must not bunch the next sends past the limit.
            self._limiter.wait()
            return Flight(index, attempt, message, commands)
        return None

    def _receive(self, waiting: list[Session], run: _Run) -> None:
        """Read every connection that has answered, waiting for the first if none has."""
        ready = [s for s in waiting if s.connection.has_buffered_replies()] or self._poll(waiting)
        for session in ready:
            session.on_readable(run.done)
        now = self._clock()
        for session in waiting:
            if session not in ready:
                session.expire(now, run.done)

    def _poll(self, waiting: list[Session]) -> list[Session]:
        # poll(), not select(): a busy process may hold file descriptors above 1024.
        poller = select.poll()
        by_fd: dict[int, Session] = {}
        for session in waiting:
            fd = session.connection.fileno()
            poller.register(fd, select.POLLIN)
            by_fd[fd] = session
        timeout = max(0.0, min(s.deadline for s in waiting) - self._clock())
        return [by_fd[fd] for fd, _ in poller.poll(math.ceil(timeout * 1000))]

    def _record(self, run: _Run) -> None:
        """Hand the finished results to `on_result` (one commit) and queue the resends."""
        done = run.done
        run.todo.extendleft(reversed(done.resend))
        done.resend = []
        finished, done.results = done.results, []
        if not finished:
            return
        for index, result in finished:
            run.results[index] = result
        if run.on_result is not None:
            run.on_result([result for _, result in finished])
        for _, result in finished:
            self._count(run, result)

    def _send_contents(self, run: _Run) -> None:
        """Send each accepted message (its predecessor is recorded), the next envelope after."""
        for session in self._sessions:
            if run.stop is not None:
                if session.flights and not session.carrying_content:
                    session.abandon()  # never send the "." of a message not to be sent
                continue
            if session.ready is None:
                continue
            following = None
            # Under a rate limit, a message's content does not wait for the next one's turn.
            if session.connection.pipelining and self._limiter.ready():
                following = self._next_flight(run, session)
            session.send_content(following, run.done)

    def _count(self, run: _Run, result: SendResult) -> None:
        run.consecutive_errors = run.consecutive_errors + 1 if is_error(result.outcome) else 0
        if run.consecutive_errors >= self.settings.max_send_errors and run.stop is None:
            run.stop = SendingPaused(
                f"pausing: {run.consecutive_errors} errors in a row from SMTP server "
                f"{self.settings.host}:{self.settings.port}; the last was "
                f"{result.reply!r} for {result.message.recipient}",
                [],
            )
