"""The transactions in progress on one connection: which reply answers what, what goes next.

With PIPELINING (RFC 2920) a message's MAIL, RCPT and DATA go out in one write, and the
next message's envelope goes in the same write as this message's content, after its
final "." (as in the RFC's own example, where QUIT follows the "."). So a connection
carries at most two messages: one whose content is out and whose answer is awaited, and
the next, whose envelope is. The next one's content waits until the first one's answer
has been recorded: the crash rule allows one message per connection in doubt, never two.

After a refused MAIL or RCPT the connection turns cautious: each command waits for the
answer to the one before, so a refusal is not followed by RCPT and DATA that can only
draw more errors (Postfix slows down after ten and hangs up after twenty). The first
message the server accepts makes it pipeline again.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from course.backends.base import OutgoingMessage, SendResult
from course.backends.smtp_connection import ConnectionLost, SmtpConnection, dot_stuff
from course.backends.smtp_replies import Reply, Stage, outcome_of

Step = Literal["mail", "rcpt", "data", "message", "reset"]
ENVELOPE: tuple[Stage, Stage, Stage] = ("mail", "rcpt", "data")
IN_DOUBT = (
    "connection lost after the message was sent, before the server answered; "
    "it may have been delivered, so it is sent again (the crash rule)"
)


@dataclass(eq=False)
class Flight:
    """One message on its way over one connection."""

    index: int  # in the batch being sent
    attempt: int
    message: OutgoingMessage
    commands: tuple[bytes, bytes, bytes]  # MAIL, RCPT, DATA
    behind: bool = False  # its envelope followed another message's content
    pipelined: bool = False  # MAIL, RCPT and DATA went out in one write
    replies: list[Reply] = field(default_factory=list)
    accepted: bool = False  # MAIL, RCPT and DATA accepted: the content may go
    content_sent: bool = False  # all of it, with the final ".", is in the socket


@dataclass(frozen=True, slots=True)
class Answer:
    """How one message's transaction ended on one connection."""

    index: int  # in the batch being sent
    attempt: int
    result: SendResult
    session: Session
    stage: Stage | None = None  # where the server said no (None: it said yes, or went away)
    reply: Reply | None = None  # what it said then


@dataclass
class Finished:
    """What the sessions finished since the driver last looked."""

    answers: list[Answer] = field(default_factory=list)
    resend: list[tuple[int, int]] = field(default_factory=list)  # (index, attempt)


class Session:
    """One pooled connection and the (at most two) messages it carries."""

    def __init__(
        self, connection: SmtpConnection, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.connection = connection
        self.flights: deque[Flight] = deque()
        self._expected: deque[tuple[Flight, Step]] = deque()
        self._clock = clock
        self.deadline = math.inf
        self.cautious = False  # since a refused MAIL or RCPT: one command at a time
        self.last_active = clock()

    @property
    def waiting(self) -> bool:
        """Replies are due."""
        return bool(self._expected)

    @property
    def idle(self) -> bool:
        """Free to start a message (behind a pending RSET, if the server pipelines)."""
        return not self.flights and (self.pipelines or not self._expected)

    @property
    def pipelines(self) -> bool:
        """Whether the next envelope goes out in one write (the server offers PIPELINING
        and has not refused a MAIL or RCPT since it last accepted a message)."""
        return self.connection.pipelining and not self.cautious

    def idle_for(self, now: float) -> float:
        """How long an open connection has carried nothing; 0 while it carries something."""
        if self.flights or self._expected or not self.connection.is_open:
            return 0.0
        return now - self.last_active

    @property
    def ready(self) -> Flight | None:
        """The message whose envelope was accepted: its content goes once the one ahead
        of it on this connection (if any) has been recorded."""
        head = self.flights[0] if self.flights else None
        return head if head is not None and head.accepted and not head.content_sent else None

    @property
    def carrying_content(self) -> bool:
        return any(flight.content_sent for flight in self.flights)

    def start(self, flight: Flight, done: Finished) -> None:
        """Send a message's envelope on a connection that carries nothing."""
        self.flights.append(flight)
        flight.pipelined = self.pipelines
        if flight.pipelined:
            self._write(b"".join(flight.commands), done, [(flight, s) for s in ENVELOPE])
        else:
            self._write(flight.commands[0], done, [(flight, "mail")])

    def send_content(self, following: Flight | None, done: Finished) -> None:
        """Send the ready message, and the following message's envelope right after it."""
        flight = self.ready
        assert flight is not None, "send_content() without a ready message"
        content = dot_stuff(flight.message.data)
        expected: list[tuple[Flight, Step]] = [(flight, "message")]
        data = content
        if following is not None:
            following.behind = following.pipelined = True
            self.flights.append(following)
            data += b"".join(following.commands)
            expected += [(following, s) for s in ENVELOPE]
        self._write(data, done, expected, content_of=flight, content_size=len(content))

    def on_readable(self, done: Finished) -> None:
        """Read what the server said and act on each reply."""
        try:
            replies = self.connection.receive()
        except ConnectionLost as lost:
            self._die(str(lost), done)
            return
        self.last_active = self._clock()
        self.deadline = self.last_active + self.connection.settings.timeout
        for reply in replies:
            if not self._expected:
                self._die(f"the server said {str(reply)!r} unasked", done)
                return
            self._answer(reply, done)
            if not self.connection.is_open:
                return

    def expire(self, now: float, done: Finished) -> None:
        """Give up on a server that has not answered within the timeout."""
        if self.waiting and now >= self.deadline:
            self._die(f"no reply within {self.connection.settings.timeout:g} s", done)

    def abandon(self) -> None:
        """Hang up on messages whose content was never sent; they are not results."""
        assert not self.carrying_content, "a message in doubt cannot be abandoned"
        self._hang_up()

    def close(self) -> None:
        """Say QUIT between transactions (after any RSET still being answered); in the
        middle of one, hang up: after a 354 even QUIT would be taken as message content."""
        if self.flights:
            self._hang_up()
            return
        deadline = self._clock() + self.connection.settings.timeout
        try:
            while self._expected:
                if not self.connection.wait_readable(deadline - self._clock()):
                    raise ConnectionLost("no reply to RSET")
                for _ in self.connection.receive():
                    if self._expected:
                        self._expected.popleft()
        except ConnectionLost:
            self._hang_up()
            return
        self.connection.close()
        self.deadline = math.inf

    def _answer(self, reply: Reply, done: Finished) -> None:
        flight, step = self._expected.popleft()
        if step == "message":
            accepted = 200 <= reply.code < 300
            if accepted:
                self.cautious = False
            self._finish(flight, done, "message", reply, refused=not accepted)
        elif step != "reset":
            self._envelope_reply(flight, step, reply, done)
        if reply.code == 421 and self.connection.is_open:
            # The server is closing the session (RFC 5321 3.8); whatever else it carried
            # goes again on a fresh connection.
            self._die(f"the server is closing the connection: {reply}", done)

    def _envelope_reply(self, flight: Flight, stage: Stage, reply: Reply, done: Finished) -> None:
        flight.replies.append(reply)
        if flight.pipelined:
            if len(flight.replies) < len(ENVELOPE) and reply.code != 421:
                return
        elif _positive(stage, reply) and stage != "data":
            following = ENVELOPE.index(stage) + 1
            command, step = flight.commands[following], ENVELOPE[following]
            self._write(command, done, [(flight, step)])
            return
        refusal = _refusal(flight.replies)
        if refusal is None:
            flight.accepted = True
            return
        refused_at, refused = refusal
        if refused_at in ("mail", "rcpt"):
            self.cautious = True
        self._finish(flight, done, refused_at, refused, refused=True)
        if reply.code != 421:  # after a 421 there is no session left to reset
            self._reset(flight, done)

    def _reset(self, flight: Flight, done: Finished) -> None:
        """End a refused transaction so the connection can carry the next message."""
        if flight.replies[-1].code == 354:
            # A pipelining server accepted DATA although MAIL or RCPT failed: an empty
            # message closes DATA, and with no valid recipient it goes to nobody.
            self._write(b".\r\nRSET\r\n", done, [(flight, "reset"), (flight, "reset")])
        else:
            self._write(b"RSET\r\n", done, [(flight, "reset")])

    def _finish(
        self, flight: Flight, done: Finished, stage: Stage, reply: Reply, *, refused: bool
    ) -> None:
        self.flights.remove(flight)
        result = SendResult(flight.message, outcome_of(stage, reply), str(reply))
        where = (stage, reply) if refused else (None, None)
        done.answers.append(Answer(flight.index, flight.attempt, result, self, *where))

    def _write(
        self,
        data: bytes,
        done: Finished,
        expected: Iterable[tuple[Flight, Step]],
        *,
        content_of: Flight | None = None,
        content_size: int = 0,
    ) -> None:
        try:
            self.connection.write(data)
        except ConnectionLost as lost:
            if content_of is not None and lost.written >= content_size:
                content_of.content_sent = True  # the "." went out: the server may have it
            self._die(str(lost), done)
            return
        if content_of is not None:
            content_of.content_sent = True
        self._expected.extend(expected)
        self.last_active = self._clock()
        self.deadline = self.last_active + self.connection.settings.timeout

    def _die(self, detail: str, done: Finished) -> None:
        """The connection is gone: settle every message it carried."""
        for flight in self.flights:
            self._settle_lost(flight, detail, done)
        self._hang_up()

    def _hang_up(self) -> None:
        """Close the socket without a word and forget what it carried."""
        self.connection.abort()
        self.flights.clear()
        self._expected.clear()
        self.deadline = math.inf
        self.cautious = False

    def _settle_lost(self, flight: Flight, detail: str, done: Finished) -> None:
        """In doubt if its content went; otherwise sent again, at most twice by its fault."""
        if flight.content_sent:
            result = SendResult(flight.message, "retry", f"{IN_DOUBT} ({detail})")
            done.answers.append(Answer(flight.index, flight.attempt, result, self))
        elif flight.behind and not flight.replies:
            # Lost with the message ahead of it, before the server said a word about it.
            done.resend.append((flight.index, flight.attempt))
        elif flight.attempt == 1:
            # Nothing was sent: the server may have closed an idle connection. Once more,
            # on a fresh one.
            done.resend.append((flight.index, 2))
        else:
            reply = f"connection lost before the message was sent ({detail}); will retry"
            result = SendResult(flight.message, "retry", reply)
            done.answers.append(Answer(flight.index, flight.attempt, result, self))


def _refusal(replies: list[Reply]) -> tuple[Stage, Reply] | None:
    """The first envelope reply that refuses the message, if any."""
    for stage, reply in zip(ENVELOPE, replies, strict=False):
        if not _positive(stage, reply):
            return stage, reply
    return None


def _positive(stage: Stage, reply: Reply) -> bool:
    """The answer that lets the transaction go on (251: will forward, RFC 5321 3.4)."""
    return reply.code == 354 if stage == "data" else reply.code in (250, 251)
