"""Delivery over SMTP: a pool of verified, reused connections, driven by one thread.

Each connection carries its own transactions (smtp_session.py); this loop feeds them
messages, waits for whichever answers first, hands each batch of answers to `on_result`
(one ledger commit), and only then lets those connections send their next message's
content. While the server works on one connection's message, the others are read,
recorded and fed: nothing waits for the slowest. Threads cost more in GIL hand-offs and
per-message commits than they saved (bench/send.py).

What an answer means is smtp_replies.py's table; what this loop does with it:

- a refusal of our sender, HELO name or host (or the same unexplained refusal for
  several different recipients in a row on one connection) would be every message's
  fate: the run stops, and those answers are not recorded, so nobody is marked;
- "slow down" (421, 4.7.x, "too much mail") puts the message back in the queue and
  backs off, then probes with one message before going on at full speed;
- bounces are recorded when the batch ends, unless more than `max_bounce_share` of the
  batch bounced with the same words: then delivery pauses and asks the operator;
- a server that refuses one more connection (a connection limit) shrinks the pool for
  the rest of the run instead of stopping it.
"""

from __future__ import annotations

import logging
import math
import select
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from course.backends.base import Backend, OutgoingMessage, ResultHook, SendResult
from course.backends.rate_limit import Backoff, RateLimiter
from course.backends.smtp_connection import ServerRefused, SmtpConnection, tls_context
from course.backends.smtp_replies import (
    Reply,
    Scope,
    Stage,
    is_error,
    is_throttling,
    same_words,
    scope_of,
    stops_the_run,
)
from course.backends.smtp_session import Answer, Finished, Flight, Session
from course.backends.wire import check_batch
from course.config import SmtpSettings
from course.errors import DeliveryError

LOG = logging.getLogger("course.smtp")
# The same unexplained refusal for this many different recipients in a row on one
# connection is about us, not about them.
SAME_REFUSAL_IN_A_ROW = 3
# A message asked to wait ("slow down") this many times in one run is left to the
# ledger's retry schedule instead.
MAX_THROTTLED = 5
# The bounce guard needs at least this many alike before it judges a share.
MIN_BOUNCES_ALIKE = 5
STAGE_NAMES: dict[Stage, str] = {
    "mail": "MAIL FROM",
    "rcpt": "RCPT TO",
    "data": "DATA",
    "message": "the end of the message",
}


class SmtpStopped(DeliveryError):
    """Sending stopped before the batch was done; `results` holds what did finish."""

    def __init__(self, message: str, results: list[SendResult]) -> None:
        super().__init__(message)
        self.results = results


class SendingPaused(SmtpStopped):
    """Too many errors in a row: the run pauses instead of burning through the list."""


class EnvelopeRefused(SmtpStopped):
    """The server refused our sender, HELO name or host: every message would be refused
    alike, so the run stops with nobody marked (like a refused login)."""


class BouncesPaused(SendingPaused):
    """Too much of one batch bounced with the same words: the server's problem, most
    likely, so nobody is marked bounced and delivery pauses for the operator to look."""


@dataclass
class _Streak:
    """The same unexplained refusal, for different recipients in a row on one connection."""

    key: tuple[Stage, str]
    answers: list[Answer]


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
    backoff: Backoff = field(default_factory=Backoff)
    throttled: Counter[int] = field(default_factory=Counter)  # times asked to wait, by index
    streaks: dict[Session, _Streak] = field(default_factory=dict)
    bounces: list[Answer] = field(default_factory=list)  # recorded when the batch ends


class SmtpBackend(Backend):
    """Sends through up to `max_connections` reused connections, pipelining where offered."""

    name = "smtp"
    remote = True

    def __init__(
        self,
        settings: SmtpSettings,
        password: str,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._password = password
        self._limiter = limiter or RateLimiter(settings.rate_per_second)
        self._clock = clock
        self._sleep = sleep
        self._sessions: list[Session] = []
        # The server's connection limit, once met, holds for the life of this backend.
        self._pool_size = settings.max_connections

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        """Prepare the pool; each connection is opened when it first carries a message."""
        if self._sessions:
            return
        context = tls_context(self.settings)
        self._sessions = [
            Session(SmtpConnection(self.settings, self._password, context), self._clock)
            for _ in range(self._pool_size)
        ]

    def close(self) -> None:
        """QUIT on every connection (the deliverer closes the pool between ticks)."""
        for session in self._sessions:
            session.close()
        self._sessions = []

    def send(
        self, messages: Sequence[OutgoingMessage], on_result: ResultHook | None = None
    ) -> list[SendResult]:
        """Deliver over the pool; every answer goes to `on_result` before its connection
        sends another message's content, so at most one message per connection is in doubt.
        """
        check_batch(messages)
        self.open()
        self._close_idle()
        todo = deque((i, 1) for i in range(len(messages)))
        run = _Run(messages, on_result, [None] * len(messages), todo)
        while True:
            self._record(run)
            started = self._start_idle(run)
            waiting = [session for session in self._sessions if session.waiting]
            if waiting:
                self._receive(waiting, run)
                self._record(run)
                self._send_contents(run)
            elif run.done.resend:  # a connection lost at its first write: go again
                continue
            elif run.todo and run.stop is None and not started:
                pause = run.backoff.remaining(self._clock())
                if pause <= 0:
                    break  # nothing can start and nothing is under way: never spin
                self._close_idle()
                self._sleep(pause)
            elif not run.todo or run.stop is not None:
                break
        self._record(run)
        self._conclude(run)
        done = [result for result in run.results if result is not None]
        if run.stop is not None:
            stop = run.stop if isinstance(run.stop, SmtpStopped) else SmtpStopped(str(run.stop), [])
            stop.results = done
            raise stop
        return done

    # --- feeding the connections -----------------------------------------------------

    def _start_idle(self, run: _Run) -> bool:
        """Give each connection that carries nothing a message, connecting it if need be."""
        started = False
        for session in list(self._sessions):
            if not run.todo or run.stop is not None:
                break
            if session not in self._sessions:  # dropped from a pool the server shrank
                continue
            if not session.idle:
                continue
            if not run.backoff.may_start(self._in_flight(), self._clock()):
                break
            if not self._connect(session, run):
                continue
            flight = self._next_flight(run, session)
            if flight is not None:
                session.start(flight, run.done)
                started = True
        return started

    def _in_flight(self) -> int:
        return sum(len(session.flights) for session in self._sessions)

    def _connect(self, session: Session, run: _Run) -> bool:
        connection = session.connection
        if connection.is_open and not session.waiting and connection.said_something():
            # Unasked, a server only closes the connection (idle too long) or says 421.
            connection.abort()
        if connection.is_open:
            return True
        try:
            connection.open()
        except ServerRefused as refused:
            others = [s for s in self._sessions if s is not session and s.connection.is_open]
            if others:
                self._shrink(refused, len(others))
            else:
                run.stop = refused  # not taking mail now: the next tick tries again
            return False
        except DeliveryError as exc:
            run.stop = exc
            return False
        return True

    def _shrink(self, refused: ServerRefused, working: int) -> None:
        """The server allows fewer connections than configured: carry on with those open."""
        wanted = self.settings.max_connections
        self._sessions = [s for s in self._sessions if s.connection.is_open]
        if working < self._pool_size:
            self._pool_size = working
            LOG.warning(
                "SMTP server %s refused connection %d of %d: %s; carrying on with %d "
                "connection%s for this run (lower delivery.smtp.max_connections to match)",
                self.server,
                working + 1,
                wanted,
                refused.reply or str(refused),
                working,
                "" if working == 1 else "s",
            )

    def _next_flight(self, run: _Run, session: Session) -> Flight | None:
        """The next message this connection can carry; ones it never could are failed."""
        while run.todo:
            index, attempt = run.todo.popleft()
            message = run.messages[index]
            commands = session.connection.envelope(message)
            if isinstance(commands, str):
                failed = SendResult(message, "failed", commands)
                run.done.answers.append(Answer(index, attempt, failed, session))
                continue
            # After connecting: a slow login must not bunch the next sends past the limit.
            self._limiter.wait()
            return Flight(index, attempt, message, commands)
        return None

    def _receive(self, waiting: list[Session], run: _Run) -> None:
        """Read every connection that has answered, waiting for the first if none has."""
        ready = [s for s in waiting if s.connection.has_buffered_replies()]
        if not ready:
            wake = min(s.deadline for s in waiting)
            if run.todo and run.stop is None and run.backoff.until > self._clock():
                wake = min(wake, run.backoff.until)  # an idle connection may start again
            ready = self._poll(waiting, wake)
        for session in ready:
            session.on_readable(run.done)
        now = self._clock()
        for session in waiting:
            if session not in ready:
                session.expire(now, run.done)

    def _poll(self, waiting: list[Session], wake: float) -> list[Session]:
        # poll(), not select(): a busy process may hold file descriptors above 1024.
        poller = select.poll()
        by_fd: dict[int, Session] = {}
        for session in waiting:
            fd = session.connection.fileno()
            poller.register(fd, select.POLLIN)
            by_fd[fd] = session
        timeout = max(0.0, wake - self._clock())
        return [by_fd[fd] for fd, _ in poller.poll(math.ceil(timeout * 1000))]

    def _send_contents(self, run: _Run) -> None:
        """Send each accepted message (its predecessor is recorded), the next envelope after."""
        for session in self._sessions:
            if run.stop is not None:
                # Never send the "." of a message not to be sent; after its 354 there is
                # no way out of DATA but hanging up. Envelopes still being answered are
                # read to the end (and reset), so those connections can say QUIT.
                if session.ready is not None and not session.carrying_content:
                    session.abandon()
                continue
            if session.ready is None:
                continue
            following = None
            # Under a rate limit, a message's content does not wait for the next one's turn.
            if (
                session.pipelines
                and self._limiter.ready()
                and run.backoff.may_start(self._in_flight(), self._clock())
            ):
                following = self._next_flight(run, session)
            session.send_content(following, run.done)

    def _close_idle(self) -> None:
        """QUIT on connections that carried nothing for `idle_seconds`."""
        now = self._clock()
        for session in self._sessions:
            if session.idle_for(now) >= self.settings.idle_seconds:
                session.close()

    # --- what the answers mean ---------------------------------------------------------

    def _record(self, run: _Run) -> None:
        """Judge the finished answers, hand the ones to record to `on_result` (one commit)
        and queue the resends."""
        done = run.done
        run.todo.extendleft(reversed(done.resend))
        done.resend = []
        answers, done.answers = done.answers, []
        keep: list[Answer] = []
        for answer in answers:
            self._judge(run, answer, keep)
        self._report(run, keep)

    def _judge(self, run: _Run, answer: Answer, keep: list[Answer]) -> None:
        reply, stage = answer.reply, answer.stage
        if reply is None or stage is None:  # accepted, or the connection went away
            if answer.result.outcome == "sent":
                run.backoff.passed()
            self._end_streak(run, answer.session, keep)
            keep.append(answer)
            return
        if stops_the_run(reply):
            run.streaks.pop(answer.session, None)  # not recorded either
            if run.stop is None:
                run.stop = EnvelopeRefused(self._refused_envelope(stage, reply, answer), [])
            return
        if is_throttling(reply) and run.throttled[answer.index] < MAX_THROTTLED:
            run.throttled[answer.index] += 1
            run.todo.appendleft((answer.index, answer.attempt))
            backing_off = run.backoff.until > self._clock()
            wait = run.backoff.throttled(self._clock())
            if not backing_off:
                LOG.info(
                    "SMTP server %s asks to slow down (%s): waiting %.3g s, then one message "
                    "at a time until one is accepted",
                    self.server,
                    reply,
                    wait,
                )
            return
        if stage in ("mail", "rcpt") and not reply.temporary and scope_of(reply) is Scope.OTHER:
            self._extend_streak(run, answer, stage, reply, keep)
            return
        self._end_streak(run, answer.session, keep)
        keep.append(answer)

    def _extend_streak(
        self, run: _Run, answer: Answer, stage: Stage, reply: Reply, keep: list[Answer]
    ) -> None:
        """Hold an unexplained refusal back while it repeats for different recipients."""
        key = (stage, same_words(reply, answer.result.message.recipient))
        streak = run.streaks.get(answer.session)
        recipients = {a.result.message.recipient for a in streak.answers} if streak else set()
        if streak is None or streak.key != key or answer.result.message.recipient in recipients:
            self._end_streak(run, answer.session, keep)
            streak = run.streaks[answer.session] = _Streak(key, [])
        streak.answers.append(answer)
        if len(streak.answers) >= SAME_REFUSAL_IN_A_ROW and run.stop is None:
            del run.streaks[answer.session]  # nobody is marked
            run.stop = EnvelopeRefused(
                f"SMTP server {self.server} refused {len(streak.answers)} different recipients "
                f"in a row at {STAGE_NAMES[stage]} with the same words: '{reply}'. That is about "
                "us, not them, so the run stopped and nobody was marked; check what the server "
                "allows this sender and this host, then run again",
                [],
            )

    def _end_streak(self, run: _Run, session: Session, keep: list[Answer]) -> None:
        streak = run.streaks.pop(session, None)
        if streak is not None:
            keep.extend(streak.answers)

    def _report(self, run: _Run, answers: list[Answer]) -> None:
        """Record what is final (bounces wait for the end of the batch)."""
        final: list[SendResult] = []
        for answer in answers:
            if answer.result.outcome == "bounced":
                run.bounces.append(answer)
                continue
            run.results[answer.index] = answer.result
            final.append(answer.result)
        if not final:
            return
        if run.on_result is not None:
            run.on_result(final)
        for result in final:
            self._count(run, result)

    def _conclude(self, run: _Run) -> None:
        """At the end of the batch: settle held refusals and record the bounces, unless
        too many are alike (or the run stopped because every message would be refused)."""
        if isinstance(run.stop, EnvelopeRefused):
            return  # nobody is marked: their claims are released
        held: list[Answer] = []
        for session in list(run.streaks):
            self._end_streak(run, session, held)
        self._report(run, held)
        bounces, run.bounces = run.bounces, []
        alike = self._bounces_alike(bounces)
        share = len(alike) / max(1, len(run.messages))
        if len(alike) >= MIN_BOUNCES_ALIKE and share > self.settings.max_bounce_share:
            first = alike[0]
            where = STAGE_NAMES[first.stage] if first.stage else "the server"
            if run.stop is None or isinstance(run.stop, SendingPaused):
                run.stop = BouncesPaused(
                    f"pausing: {len(alike)} of {len(run.messages)} recipients in one batch "
                    f"({share:.0%}) bounced at {where} with the same answer from SMTP "
                    f"server {self.server}: '{first.result.reply}'. More than "
                    f"delivery.smtp.max_bounce_share ({self.settings.max_bounce_share:.0%}) "
                    "looks like the server's problem, so nobody was marked bounced. Fix the "
                    "server; or, if these addresses really are gone, raise max_bounce_share "
                    "for one run",
                    [],
                )
            bounces = [b for b in bounces if b not in alike]
        for answer in bounces:
            run.results[answer.index] = answer.result
        if bounces and run.on_result is not None:
            run.on_result([answer.result for answer in bounces])

    def _bounces_alike(self, bounces: list[Answer]) -> list[Answer]:
        """The largest group of bounces with the same stage and the same words."""
        groups: dict[tuple[Stage | None, str], list[Answer]] = {}
        for answer in bounces:
            reply = answer.reply or Reply(0, answer.result.reply)
            words = same_words(reply, answer.result.message.recipient)
            groups.setdefault((answer.stage, words), []).append(answer)
        return max(groups.values(), key=len, default=[])

    def _refused_envelope(self, stage: Stage, reply: Reply, answer: Answer) -> str:
        scope = scope_of(reply)
        what, fix = {
            Scope.SENDER: (
                f"our sender {answer.result.message.sender}",
                "check sender.from and what this account may send as",
            ),
            Scope.HELO: (
                f"our HELO name {self.settings.helo!r}",
                "set delivery.smtp.helo to this host's fully-qualified name",
            ),
        }.get(
            scope,
            (
                "this host",
                "check its IP address, reverse DNS and login with the server's operator",
            ),
        )
        return (
            f"SMTP server {self.server} refused {what} at {STAGE_NAMES[stage]}: '{reply}'. "
            f"Every message would be refused alike, so the run stopped and nobody was "
            f"marked; {fix}, then run again"
        )

    def _count(self, run: _Run, result: SendResult) -> None:
        run.consecutive_errors = run.consecutive_errors + 1 if is_error(result.outcome) else 0
        if run.consecutive_errors >= self.settings.max_send_errors and run.stop is None:
            run.stop = SendingPaused(
                f"pausing: {run.consecutive_errors} errors in a row from SMTP server "
                f"{self.server}; the last was {result.reply!r} for {result.message.recipient}",
                [],
            )
