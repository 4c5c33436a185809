"""Delivery over SMTP: a pool of verified, reused connections, pipelined transactions.

smtplib does what it does well and securely: connecting, EHLO, STARTTLS, AUTH and reading
replies. The per-message transaction is ours: with PIPELINING (RFC 2920) MAIL, RCPT and
DATA go out in one write, and the message, already CRLF and dot-stuffed with one
bytes.replace, in the next. smtplib's sendmail() would re-scan every message with two
regexes and wait for three round trips; bench/send.py shows the difference.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult
from course.backends.smtp_replies import Reply, Stage, is_error, outcome_of
from course.config import SmtpSettings
from course.errors import DeliveryError, RenderError
from course.message import ascii_domain

JITTER_MARGIN = 0.05
IN_DOUBT = (
    "connection lost after the message was sent, before the server answered; "
    "it may have been delivered, so it is sent again (the crash rule)"
)


class SmtpStopped(DeliveryError):
    """Sending stopped before the batch was done; `results` holds what did finish."""

    def __init__(self, message: str, results: list[SendResult]) -> None:
        super().__init__(message)
        self.results = results


class SendingPaused(SmtpStopped):
    """Too many errors in a row: the run pauses instead of burning through the list."""


class _Lost(Exception):
    """The connection dropped; `after_data` says whether the message had been sent."""

    def __init__(self, after_data: bool, detail: str) -> None:
        super().__init__(detail)
        self.after_data = after_data


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verify certificates and host names; trust the configured CA file when there is one."""
    cafile = str(settings.ca_file) if settings.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"delivery.smtp.ca_file: cannot load {cafile}: {exc}") from None


def dot_stuff(data: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency, plus the terminating dot line."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SmtpConnection:
    """One SMTP session: opened verified and authenticated, then reused for many messages."""

    def __init__(self, settings: SmtpSettings, password: str, context: ssl.SSLContext) -> None:
        self.settings = settings
        self._password = password
        self._context = context
        self._smtp: smtplib.SMTP | None = None
        self.pipelining = False
        self.smtputf8 = False
        self._pending: OutgoingMessage
        self._content_sent = False

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Connect, secure and log in; DeliveryError names the server on any failure."""
        try:
            self._smtp = self._connect()
            self._secure_and_login(self._smtp)
        except DeliveryError:
            self.close()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise DeliveryError(f"SMTP server {self.server}: {_describe(exc)}") from None
        self.pipelining = self._smtp.has_extn("pipelining")
        self.smtputf8 = self._smtp.has_extn("smtputf8")

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        helo = s.helo or None
        if s.security == "tls":
            return smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=helo, timeout=s.timeout, context=self._context
            )
        return smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout)

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if self.settings.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"SMTP server {self.server} does not offer STARTTLS; refusing to send in "
                    "plain text. Fix the server, or use security: tls for port 465"
                )
            smtp.starttls(context=self._context)
            smtp.ehlo()
        if self.settings.username:
            self._login(smtp)

    def _login(self, smtp: smtplib.SMTP) -> None:
        try:
            smtp.login(self.settings.username, self._password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP server {self.server} refused the login for user "
                f"{self.settings.username!r}: {exc.smtp_code} {_text(exc.smtp_error)}. "
                f"Check the user and the password in ${self.settings.password_env}"
            ) from None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    @property
    def is_open(self) -> bool:
        # A 421 reply closes smtplib's socket (see _reply) while the object stays here.
        return self._smtp is not None and self._smtp.sock is not None

    def start(self, message: OutgoingMessage) -> SendResult | None:
        """Send MAIL, RCPT and DATA (in one write with PIPELINING).

        Returns a result when the transaction is already over (refused, or run to the end
        on a server without PIPELINING); None when `send_content` comes next. Raises _Lost
        if the connection drops (and closes it).
        """
        commands = self._envelope(message)
        if isinstance(commands, SendResult):
            return commands
        self._pending = message
        self._content_sent = not self.pipelining
        try:
            if not self.pipelining:
                return self._whole_transaction(message, commands)
            self._sock().send(b"".join(commands))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._lost(False, exc)
        return None

    def send_content(self) -> SendResult | None:
        """Read the envelope's answers, then send the message; a result if it was refused."""
        if self._content_sent:
            return None
        message, smtp = self._pending, self._sock()
        try:
            replies = _replies(smtp, 3)
            refused = self._refusal(smtp, message, replies)
            if refused is None:
                smtp.send(dot_stuff(message.data))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._lost(False, exc)
        return refused

    def final_reply(self) -> SendResult:
        """The server's answer to the message; _Lost(after_data=True) if it never comes."""
        message = self._pending
        try:
            return _result(message, "message", _reply(self._sock()))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._lost(True, exc)
        raise AssertionError("unreachable")

    def _envelope(self, message: OutgoingMessage) -> tuple[bytes, ...] | SendResult:
        """The three commands, or the reason they cannot be sent."""
        try:
            sender, recipient = ascii_domain(message.sender), ascii_domain(message.recipient)
        except RenderError as exc:  # a domain that cannot be IDNA-encoded
            return SendResult(message, "failed", str(exc))
        needs_utf8 = not (sender.isascii() and recipient.isascii())
        if needs_utf8 and not self.smtputf8:
            return SendResult(
                message,
                "failed",
                f"SMTP server {self.server} does not support "
                f"SMTPUTF8, needed for {message.recipient}",
            )
        mail = f"MAIL FROM:<{sender}>{' SMTPUTF8' if needs_utf8 else ''}\r\n"
        return tuple(c.encode() for c in (mail, f"RCPT TO:<{recipient}>\r\n", "DATA\r\n"))

    def _whole_transaction(
        self, message: OutgoingMessage, commands: tuple[bytes, ...]
    ) -> SendResult | None:
        """Without PIPELINING: one command at a time, stopping at the first refusal."""
        smtp = self._sock()
        replies: list[Reply] = []
        stages: tuple[Stage, ...] = ("mail", "rcpt", "data")
        for command, stage in zip(commands, stages, strict=True):
            smtp.send(command)
            replies.append(_reply(smtp))
            if not _positive(stage, replies[-1]):
                return self._refusal(smtp, message, replies)
        smtp.send(dot_stuff(message.data))
        return None

    def _refusal(
        self, smtp: smtplib.SMTP, message: OutgoingMessage, replies: list[Reply]
    ) -> SendResult | None:
        """The result of a refused envelope (after resetting the session), or None."""
        stages: tuple[Stage, ...] = ("mail", "rcpt", "data")
        for stage, reply in zip(stages, replies, strict=False):
            if not _positive(stage, reply):
                if reply.code != 421:  # after a 421 there is no session left to reset
                    self._abandon(smtp, replies)
                return _result(message, stage, reply)
        return None

    def _sock(self) -> smtplib.SMTP:
        assert self._smtp is not None
        return self._smtp

    def _lost(self, after_data: bool, exc: BaseException) -> None:
        self.close()
        raise _Lost(after_data, _describe(exc)) from None

    def _abandon(self, smtp: smtplib.SMTP, replies: list[Reply]) -> None:
        """End a refused transaction so the connection can carry the next message."""
        if replies[-1].code == 354:
            # A pipelining server accepted DATA although MAIL or RCPT failed: send an empty
            # message to close DATA; with no valid recipient it is delivered to nobody.
            smtp.send(".\r\n")
            _reply(smtp)
        smtp.send("RSET\r\n")
        _reply(smtp)


def _replies(smtp: smtplib.SMTP, count: int) -> list[Reply]:
    """Up to `count` pipelined replies; none are read after a 421 (the session is over)."""
    replies: list[Reply] = []
    while len(replies) < count and not (replies and replies[-1].code == 421):
        replies.append(_reply(smtp))
    return replies


def _positive(stage: Stage, reply: Reply) -> bool:
    """The answer that lets the transaction go on (251: will forward, RFC 5321 3.4)."""
    return reply.code == 354 if stage == "data" else reply.code in (250, 251)


def _reply(smtp: smtplib.SMTP) -> Reply:
    code, text = smtp.getreply()
    if code == 421:
        # The server is closing the session; a later message must reconnect.
        smtp.close()
    return Reply(code, _text(text))


def _result(message: OutgoingMessage, stage: Stage, reply: Reply) -> SendResult:
    return SendResult(message, outcome_of(stage, reply), str(reply))


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class RateLimiter:
    """At most `rate` sends in any one-second window (or one per 1/rate s when rate < 1)."""

    def __init__(
        self,
        rate: float,
        margin: float = JITTER_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, int(rate)) if rate >= 1 else 1
        base = 1.0 if rate >= 1 else 1.0 / rate if rate > 0 else 0.0
        # The limit is the server's to count: messages arrive there a few milliseconds
        # after they start here, and unevenly, so the window kept here is a little longer.
        self.period = base * (1 + margin)
        self._sent: deque[float] = deque()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        """Return when one more send fits in the window (one thread drives the pool)."""
        if self.period == 0:
            return
        now = self._clock()
        while True:
            while self._sent and now - self._sent[0] >= self.period:
                self._sent.popleft()
            if len(self._sent) < self.capacity:
                break
            # max(): float rounding must not turn the wait into a run of zero sleeps.
            self._sleep(max(self._sent[0] + self.period - now, 1e-6))
            now = self._clock()
        self._sent.append(now)


@dataclass
class _Run:
    """One send(): what is left to send, what came back, and when to stop."""

    messages: Sequence[OutgoingMessage]
    on_result: ResultHook | None
    results: list[SendResult | None]
    todo: deque[tuple[int, int]]  # (message index, attempt)
    consecutive_errors: int = 0
    stop: DeliveryError | None = None


@dataclass
class _InFlight:
    """A message whose envelope has gone out on `connection`."""

    connection: SmtpConnection
    index: int
    attempt: int
    result: SendResult | None = None
    requeued: bool = False  # the connection dropped before sending: next round, afresh

    @property
    def pending(self) -> bool:
        return self.result is None and not self.requeued


class SmtpBackend(Backend):
    """Sends through `max_connections` reused connections, driven in rounds by one thread."""

    name = "smtp"
    remote = True

    def __init__(
        self, settings: SmtpSettings, password: str, *, limiter: RateLimiter | None = None
    ) -> None:
        self.settings = settings
        self._password = password
        self._limiter = limiter or RateLimiter(settings.rate_per_second)
        self._connections: list[SmtpConnection] = []

    def open(self) -> None:
        """Prepare the pool; each connection is opened when it first carries a message."""
        if self._connections:
            return
        context = tls_context(self.settings)
        self._connections = [
            SmtpConnection(self.settings, self._password, context)
            for _ in range(self.settings.max_connections)
        ]

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections = []

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Deliver over the pool in rounds; each round's results go to `on_result` before any
        of those connections sends again, so at most one message per connection is in doubt.

        One thread drives every connection: in a round each connection gets one message,
        its envelope first, then its content, then its answer, so the server works on them
        side by side while the answers are read. Threads cost more in GIL hand-offs and
        per-message commits than they saved (bench/send.py).
        """
        self.open()
        run = _Run(
            messages, on_result, [None] * len(messages), deque((i, 1) for i in range(len(messages)))
        )
        while run.todo and run.stop is None:
            self._round(run)
        done = [result for result in run.results if result is not None]
        if run.stop is not None:
            stop = run.stop if isinstance(run.stop, SmtpStopped) else SmtpStopped(str(run.stop), [])
            stop.results = done
            raise stop
        return done

    def _round(self, run: _Run) -> None:
        flights = self._start_all(run)
        for flight in flights:
            if flight.pending:
                flight.result = self._step(run, flight, flight.connection.send_content)
        for flight in flights:
            if flight.pending:
                flight.result = self._step(run, flight, flight.connection.final_reply)
        finished = [(f.index, f.result) for f in flights if f.result is not None]
        for index, result in finished:
            run.results[index] = result
        if run.on_result is not None and finished:
            run.on_result([result for _, result in finished])
        for _, result in finished:
            self._count(run, result)

    def _start_all(self, run: _Run) -> list[_InFlight]:
        """One message per connection: open it if needed, respect the rate, send the envelope."""
        flights: list[_InFlight] = []
        for connection in self._connections:
            if not run.todo or run.stop is not None:
                break
            index, attempt = run.todo.popleft()
            flight = _InFlight(connection, index, attempt)
            try:
                if not connection.is_open:
                    connection.open()
            except DeliveryError as exc:
                run.stop = exc
                run.todo.appendleft((index, attempt))
                break
            # After connecting: a slow login must not bunch the next sends past the limit.
            self._limiter.wait()
            flight.result = self._step(run, flight, partial(connection.start, run.messages[index]))
            flights.append(flight)
        return flights

    def _step(
        self, run: _Run, flight: _InFlight, step: Callable[[], SendResult | None]
    ) -> SendResult | None:
        """Run one phase; a dropped connection becomes a retry now or on a fresh connection."""
        message = run.messages[flight.index]
        try:
            return step()
        except _Lost as lost:
            if lost.after_data:
                return SendResult(message, "retry", f"{IN_DOUBT} ({lost})")
            if flight.attempt == 1:
                # Nothing was sent: the server closed an idle connection. Try once more on
                # a fresh one, next round.
                run.todo.appendleft((flight.index, 2))
                flight.requeued = True
                return None
            return SendResult(
                message,
                "retry",
                f"connection lost before the message was sent ({lost}); will retry",
            )

    def _count(self, run: _Run, result: SendResult) -> None:
        run.consecutive_errors = run.consecutive_errors + 1 if is_error(result.outcome) else 0
        if run.consecutive_errors >= self.settings.max_send_errors and run.stop is None:
            run.stop = SendingPaused(
                f"pausing: {run.consecutive_errors} errors in a row from SMTP server "
                f"{self.settings.host}:{self.settings.port}; the last was "
                f"{result.reply!r} for {result.message.recipient}",
                [],
            )
