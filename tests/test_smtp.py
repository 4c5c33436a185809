"""The SMTP backend against real aiosmtpd servers on 127.0.0.1: every row of the reply table."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.smtp import SMTP, Envelope, Session
from smtp_servers import CertChoice, ScriptedHandler, refusing_port, smtp_server
from smtp_servers import Stage as ServerStage
from support import run_course

from course.backends.base import OutgoingMessage, SendResult
from course.backends.rate_limit import RateLimiter
from course.backends.smtp import SendingPaused, SmtpBackend
from course.backends.smtp_connection import dot_stuff
from course.backends.smtp_replies import MalformedReply, Reply, ReplyParser, outcome_of
from course.backends.smtp_session import IN_DOUBT
from course.config import SmtpSettings, parse_settings
from course.errors import DeliveryError

SENDER = "course@example.org"
USER = "course"
PASSWORD = "pw-9f3Kq-never-printed"
PASSWORD_ENV = "DRIPCOURSE_TEST_SMTP_PASSWORD"
NOW = "2026-03-02T12:00:00+00:00"
CSV_HEAD = "email,first_name,timezone,subscribed_at\n"


class SlowHandler(ScriptedHandler):
    """Takes each message, then waits before answering: a slow server to kill a run against."""

    def __init__(self, delay: float) -> None:
        """Answer every final "." `delay` seconds after recording the message."""
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message first, so a client killed while waiting leaves it in doubt."""
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return reply


@pytest.fixture
def handler() -> ScriptedHandler:
    """A fresh handler per test."""
    return ScriptedHandler()


def smtp_settings(port: int, **options: Any) -> SmtpSettings:
    """delivery.smtp as an operator would write it in schedule.yaml."""
    node = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "max_connections": 1,
        "timeout": 5,
        **options,
    }
    text = yaml.safe_dump({"delivery": {"smtp": node}}, allow_unicode=True)
    return parse_settings(text, source=Path("/nonexistent/schedule.yaml")).delivery.smtp


def message(recipient: str, body: bytes = b"Hello.\r\n", number: int = 1) -> OutgoingMessage:
    """A small finished message to `recipient`."""
    head = (
        f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: Day {number}\r\n"
        f"Message-ID: <m{number}@example.org>\r\n\r\n"
    )
    return OutgoingMessage(SENDER, recipient, f"<m{number}@example.org>", head.encode() + body)


def numbered(count: int) -> list[OutgoingMessage]:
    """`count` messages to r0@example.com, r1@example.com, ..."""
    return [message(f"r{i}@example.com", number=i) for i in range(count)]


def send(
    settings: SmtpSettings, messages: Sequence[OutgoingMessage], password: str = ""
) -> list[SendResult]:
    """Open a backend, send one batch, close it."""
    with SmtpBackend(settings, password) as backend:
        return backend.send(messages)


def outcomes(results: Sequence[SendResult]) -> list[tuple[str, str]]:
    """(outcome, reply) of each result."""
    return [(r.outcome, r.reply) for r in results]


def smtp_threads() -> list[threading.Thread]:
    """The backend's worker threads still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("smtp_")]


def sent(queue_id: int) -> tuple[str, str]:
    """The outcome of a message the test server accepted as its `queue_id`-th."""
    return ("sent", f"250 2.0.0 OK queued as DC{queue_id:06d}")


# --- a plain server ---------------------------------------------------------------------


def test_messages_arrive_byte_exact_in_order(handler: ScriptedHandler) -> None:
    bodies = [
        b".starts with a dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n",
        b"no line end at the very end",
        b"caf\xc3\xa9 \xe2\x80\x94 8bit\r\n\r\n.\r\n",
    ]
    messages = [message(f"r{i}@example.com", body, i) for i, body in enumerate(bodies)]
    seen: list[tuple[SendResult, int]] = []
    with smtp_server(handler) as info, SmtpBackend(smtp_settings(info.port), "") as backend:
        # The server count inside the hook proves each result is reported before the
        # connection sends the next message (the crash rule).
        results = backend.send(
            messages, on_result=lambda rs: seen.extend((r, len(handler.received)) for r in rs)
        )
    assert outcomes(results) == [sent(1), sent(2), sent(3)]
    assert [r.message for r in results] == messages
    assert seen == [(result, n) for n, result in enumerate(results, 1)]
    received = handler.messages
    for got, want in zip(received, messages, strict=True):
        # The server adds nothing but the CRLF that must end the last line.
        assert got.content == (want.data if want.data.endswith(b"\r\n") else want.data + b"\r\n")
        assert (got.mail_from, got.rcpt_tos) == (SENDER, (want.recipient,))
        # 8-bit content is announced (RFC 6152); 7-bit goes without a parameter.
        assert got.mail_options == (() if want.data.isascii() else ("BODY=8BITMIME",))
    assert handler.connection_count == 1
    # MAIL and RCPT arrived pipelined behind each other, DATA last in the write.
    verbs = [(c.verb, c.more_buffered) for c in handler.commands() if c.verb in ("MAIL", "RCPT")]
    assert verbs == [("MAIL", True), ("RCPT", True)] * len(messages)


def test_a_server_without_pipelining_gets_one_command_at_a_time(handler: ScriptedHandler) -> None:
    handler.advertise_pipelining = False
    handler.rcpt_reply["gone@example.com"] = "550 5.1.1 User unknown"
    messages = [message("a@example.com"), message("gone@example.com"), message("b@example.com")]
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), messages)
    assert outcomes(results) == [sent(1), ("bounced", "550 5.1.1 User unknown"), sent(2)]
    assert [m.rcpt_tos for m in handler.messages] == [("a@example.com",), ("b@example.com",)]
    assert not any(c.more_buffered for c in handler.commands())
    assert (handler.connection_count, handler.command_count("RSET")) == (1, 1)


# --- TLS --------------------------------------------------------------------------------


def test_starttls_with_the_test_ca(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="starttls", require_starttls=True) as info:
        settings = smtp_settings(info.port, security="starttls", ca_file=str(info.ca_file))
        results = send(settings, [message("a@example.com")])
    assert outcomes(results) == [sent(1)]
    assert handler.messages[0].tls
    assert handler.commands()[1].verb == "STARTTLS"


def test_starttls_required_but_not_offered_sends_nothing(handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info:
        settings = smtp_settings(info.port, security="starttls", ca_file=str(info.ca_file))
        with pytest.raises(DeliveryError) as refused:
            send(settings, numbered(3))
    assert str(refused.value).startswith(
        f"SMTP server 127.0.0.1:{info.port} does not offer STARTTLS; refusing to send in plain text"
    )
    assert handler.command_count("MAIL") == 0
    assert handler.received == []


@pytest.mark.parametrize(
    ("cert", "complaint"),
    [
        ("untrusted", "TLS certificate not trusted: unable to get local issuer certificate"),
        ("wrong_host", "TLS certificate not trusted: IP address mismatch"),
        ("expired", "TLS certificate not trusted: certificate has expired"),
    ],
)
def test_bad_certificates_are_refused(
    handler: ScriptedHandler, cert: CertChoice, complaint: str
) -> None:
    with smtp_server(handler, tls="starttls", cert=cert) as info:
        settings = smtp_settings(info.port, security="starttls", ca_file=str(info.ca_file))
        with pytest.raises(DeliveryError) as refused:
            send(settings, numbered(2))
    assert str(refused.value).startswith(f"SMTP server 127.0.0.1:{info.port}: {complaint}")
    assert handler.command_count("MAIL") == 0


def test_implicit_tls(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="implicit") as info:
        settings = smtp_settings(info.port, security="tls", ca_file=str(info.ca_file))
        results = send(settings, [message("a@example.com")])
        # Without the test CA only the system store is trusted, which does not know it.
        with pytest.raises(DeliveryError, match="TLS certificate not trusted"):
            send(smtp_settings(info.port, security="tls"), [message("b@example.com")])
    assert outcomes(results) == [sent(1)]
    assert [(m.rcpt_tos, m.tls) for m in handler.messages] == [(("a@example.com",), True)]


# --- AUTH -------------------------------------------------------------------------------


def test_login_with_the_right_password(handler: ScriptedHandler) -> None:
    users = {USER: PASSWORD}
    with smtp_server(handler, tls="starttls", auth=users, auth_required=True) as info:
        settings = smtp_settings(
            info.port, security="starttls", ca_file=str(info.ca_file), username=USER
        )
        results = send(settings, numbered(2), PASSWORD)
    assert outcomes(results) == [sent(1), sent(2)]
    assert [(m.authenticated_as, m.tls) for m in handler.messages] == [(USER, True)] * 2


def test_a_refused_login_names_server_user_and_variable_never_the_password(
    handler: ScriptedHandler,
) -> None:
    with smtp_server(handler, auth={USER: "the-real-one"}, auth_required=True) as info:
        settings = smtp_settings(info.port, username=USER, password_env=PASSWORD_ENV)
        with pytest.raises(DeliveryError) as refused:
            send(settings, numbered(2), PASSWORD)
    text = str(refused.value)
    assert text.startswith(f"SMTP server 127.0.0.1:{info.port} refused the login for user 'course'")
    assert "535" in text
    assert f"${PASSWORD_ENV}" in text
    everything = "".join(traceback.format_exception(refused.value))
    assert PASSWORD not in everything
    assert handler.received == []


# --- connecting -------------------------------------------------------------------------


def test_connection_refused_names_the_server() -> None:
    with refusing_port() as port, pytest.raises(DeliveryError) as refused:
        send(smtp_settings(port), numbered(2))
    assert str(refused.value) == f"SMTP server 127.0.0.1:{port}: connection refused"


# --- replies ----------------------------------------------------------------------------

TARGET = "target@example.com"
NEXT = "next@example.com"


@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        ("MAIL", "451 4.7.1 Greylisted, try again later", "retry"),
        ("MAIL", "501 5.5.4 Syntax error in parameters", "failed"),
        ("RCPT", "450 4.2.1 Mailbox busy", "retry"),
        ("RCPT", "451 4.3.0 Local error in processing", "retry"),
        ("RCPT", "452 4.2.2 Mailbox full", "retry"),
        ("RCPT", "550 5.1.1 User unknown", "bounced"),
        ("RCPT", "550 5.7.1 Relaying denied", "failed"),
        ("DATA", "450 4.2.1 Try later", "retry"),
        ("DATA", "451 4.3.0 Temporary failure", "retry"),
        ("DATA", "452 4.2.2 Mailbox full", "retry"),
        ("DATA", "550 5.1.1 Mailbox unavailable", "bounced"),
        ("DATA", "554 5.7.1 Message rejected as spam", "failed"),
    ],
)
def test_reply_outcomes(
    handler: ScriptedHandler, stage: ServerStage, reply: str, outcome: str
) -> None:
    if stage == "MAIL":
        handler.script(stage, reply=reply)  # no recipient known yet: the first MAIL only
    else:
        handler.script(stage, reply=reply, rcpt=TARGET, times=None)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [message(TARGET), message(NEXT)])
    queue_id = 2 if stage == "DATA" else 1  # the refused message still reached the "."
    assert outcomes(results) == [(outcome, reply), sent(queue_id)]
    assert [m.rcpt_tos for m in handler.messages] == [(NEXT,)]
    # The refusal is reset (RSET) and the same connection carries on.
    assert handler.connection_count == 1
    assert handler.command_count("RSET") == (0 if stage == "DATA" else 1)


def test_a_rejected_recipient_does_not_cost_the_connection(handler: ScriptedHandler) -> None:
    for address in ("gone1@example.com", "gone2@example.com"):
        handler.rcpt_reply[address] = "550 5.1.1 User unknown"
    messages = [
        message("gone1@example.com"),
        message("a@example.com"),
        message("gone2@example.com"),
        message("b@example.com"),
    ]
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), messages)
    bounced = ("bounced", "550 5.1.1 User unknown")
    assert outcomes(results) == [bounced, sent(1), bounced, sent(2)]
    assert handler.connection_count == 1
    assert handler.command_count("RSET") == 2


def test_outcome_table_is_not_fooled_by_non_final_replies() -> None:
    # A 2xx before the message was taken is no acceptance; unknown 5xx at MAIL is failed.
    assert outcome_of("rcpt", Reply(250, "2.1.5 OK")) == "retry"
    assert outcome_of("message", Reply(251, "2.1.5 will forward")) == "sent"
    assert outcome_of("mail", Reply(501, "5.5.4 Syntax error")) == "failed"
    assert outcome_of("data", Reply(554, "5.5.1 No valid recipients")) == "failed"
    assert outcome_of("message", Reply(552, "5.3.4 Message too big")) == "failed"


def test_replies_are_parsed_across_reads_and_lines() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250 2.0.0 OK queued\r\n250 2.1.0 O") == [Reply(250, "2.0.0 OK queued")]
    assert parser.feed(b"K\r\n354 go ahead\r\n") == [Reply(250, "2.1.0 OK"), Reply(354, "go ahead")]
    # A multiline reply is one reply, its lines joined; a bare code is a reply too.
    assert parser.feed(b"550-5.1.1 no such\r\n") == []
    assert parser.feed(b"550  user  here\r\n221\n") == [
        Reply(550, "5.1.1 no such user here"),
        Reply(221, ""),
    ]


@pytest.mark.parametrize(
    "garbage", [b"hello there\r\n", b"25 short\r\n", b"250x2.0.0\r\n", b"250 " + b"x" * 9000]
)
def test_anything_but_a_reply_is_refused(garbage: bytes) -> None:
    with pytest.raises(MalformedReply):
        ReplyParser().feed(garbage)


# --- lost connections -------------------------------------------------------------------

BIG_BODY = (b"y" * 998 + b"\r\n") * 16_000
"""16 MB: more than the socket buffers hold, so a hang-up makes the write itself fail."""


def test_drop_mid_data_of_a_small_message_is_in_doubt(handler: ScriptedHandler) -> None:
    # The whole small message is already in the socket buffer when the server hangs up,
    # so the client cannot tell this from a drop after the "."; it is sent again later.
    handler.drop_mid_data(rcpt=TARGET)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [message(TARGET), message(NEXT)])
    assert [r.outcome for r in results] == ["retry", "sent"]
    assert results[0].reply.startswith(IN_DOUBT)
    assert handler.mid_data_drops == 1
    assert [(m.rcpt_tos, m.connection) for m in handler.messages] == [((NEXT,), 2)]


def test_drop_mid_data_of_a_large_message_is_resent_on_a_new_connection(
    handler: ScriptedHandler,
) -> None:
    # The write itself fails: the message was never sent, so it goes out again at once on
    # a fresh connection.
    big = message(TARGET, BIG_BODY)
    handler.drop_mid_data(rcpt=TARGET)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [big, message(NEXT)])
    assert [r.outcome for r in results] == ["sent", "sent"]
    assert [(m.rcpt_tos, m.connection) for m in handler.messages] == [((TARGET,), 2), ((NEXT,), 2)]
    assert handler.messages[0].content == big.data


def test_drop_mid_data_twice_is_a_retry_before_sending(handler: ScriptedHandler) -> None:
    big = message(TARGET, BIG_BODY)
    handler.drop_mid_data(rcpt=TARGET, times=2)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [big, message(NEXT)])
    assert results[0].outcome == "retry"
    assert results[0].reply.startswith("connection lost before the message was sent (")
    assert results[0].reply.endswith("); will retry")
    assert (results[1].message, outcomes(results)[1]) == (message(NEXT), sent(1))
    assert [m.connection for m in handler.messages] == [3]


def test_drop_before_reply_is_in_doubt_and_retried(handler: ScriptedHandler) -> None:
    handler.drop_before_reply(rcpt=TARGET)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [message(TARGET), message(NEXT)])
    assert results[0].outcome == "retry"
    assert results[0].reply.startswith(f"{IN_DOUBT} (")
    assert outcomes(results)[1] == sent(2)
    # The server did get the whole message: a duplicate is possible, a loss is not.
    assert [(m.rcpt_tos, m.reply, m.connection) for m in handler.received] == [
        ((TARGET,), None, 1),
        ((NEXT,), "250 2.0.0 OK queued as DC000002", 2),
    ]


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        # Before the message: one reconnect is tried, so two timeouts.
        (
            "RCPT",
            "connection lost before the message was sent (no reply within 1 s); will retry",
        ),
        # After the message: in doubt, never tried again in the same run.
        ("DATA", f"{IN_DOUBT} (no reply within 1 s)"),
    ],
)
def test_a_stalled_server_times_out(
    handler: ScriptedHandler, stage: ServerStage, reply: str
) -> None:
    handler.stall(stage, rcpt=TARGET, times=None)
    with smtp_server(handler) as info:
        started = time.monotonic()
        results = send(smtp_settings(info.port, timeout=1), [message(TARGET), message(NEXT)])
        elapsed = time.monotonic() - started
        assert not smtp_threads(), "a worker thread outlived close()"
        # Hanging up ended the stall on the server too: nothing is left waiting.
        handler.wait_until(lambda: handler.open_connection_count == 0, what="hang-ups")
    assert outcomes(results)[0] == ("retry", reply)
    assert results[1].outcome == "sent"
    assert elapsed < 5


# --- the pool ---------------------------------------------------------------------------


def test_a_pool_of_four_reuses_its_connections(handler: ScriptedHandler) -> None:
    messages = numbered(100)
    reported: list[SendResult] = []
    with (
        smtp_server(handler) as info,
        SmtpBackend(smtp_settings(info.port, max_connections=4), "") as backend,
    ):
        results = backend.send(messages, on_result=reported.extend)
    assert [r.message for r in results] == messages
    assert {r.outcome for r in results} == {"sent"}
    # Reported as they finished (so not in order across connections), each exactly once.
    assert sorted(reported, key=lambda r: messages.index(r.message)) == results
    assert Counter(m.rcpt_tos[0] for m in handler.messages) == Counter(
        m.recipient for m in messages
    )
    assert handler.peak_connections <= 4
    assert handler.connection_count <= 4


@pytest.mark.parametrize("connections", [1, 3])
def test_no_content_goes_out_before_the_answer_ahead_of_it_is_recorded(
    handler: ScriptedHandler, connections: int
) -> None:
    # The crash rule: beyond what is recorded, the server holds at most one message per
    # connection, the one whose answer is on its way. Pipelining sends the next envelope
    # early, never the next content.
    recorded = 0
    excess: list[int] = []

    def record(results: Sequence[SendResult]) -> None:
        nonlocal recorded
        recorded += len(results)
        time.sleep(0.005)  # time for the server to take anything already sent
        excess.append(len(handler.received) - recorded - (connections - len(results)))

    with (
        smtp_server(handler) as info,
        SmtpBackend(smtp_settings(info.port, max_connections=connections), "") as backend,
    ):
        results = backend.send(numbered(40), on_result=record)
    assert {r.outcome for r in results} == {"sent"}
    assert max(excess) <= 0


def test_a_server_closing_after_n_messages_is_reconnected_transparently(
    handler: ScriptedHandler,
) -> None:
    handler.close_after = 7
    messages = numbered(30)
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port, max_connections=2), messages)
    assert {r.outcome for r in results} == {"sent"}
    # Each message reached the server exactly once: the reconnect resends nothing twice.
    assert sorted(m.rcpt_tos[0] for m in handler.received) == sorted(m.recipient for m in messages)
    assert handler.connection_count >= 5  # 30 messages, at most 7 per connection


def test_a_connection_dead_before_the_envelope_is_replaced(handler: ScriptedHandler) -> None:
    first, second = numbered(2)
    with smtp_server(handler) as info, SmtpBackend(smtp_settings(info.port), "") as backend:
        assert outcomes(backend.send([first])) == [sent(1)]
        # Our side of the socket dies while idle: the next envelope cannot even be written.
        connection = backend._sessions[0].connection
        assert connection._smtp is not None
        sock = connection._smtp.sock
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        assert outcomes(backend.send([second])) == [sent(2)]
    assert [m.rcpt_tos[0] for m in handler.received] == [first.recipient, second.recipient]
    handler.wait_until(lambda: handler.connection_count == 2)


# --- rate limit -------------------------------------------------------------------------


def test_rate_limit_is_kept_across_the_pool(handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info:
        settings = smtp_settings(info.port, max_connections=4, rate_per_second=20)
        started = time.monotonic()
        results = send(settings, numbered(45))
        elapsed = time.monotonic() - started
    assert {r.outcome for r in results} == {"sent"}
    # The limiter spaces the moments messages start; the server stamps their arrival a
    # moment later, so its one-second window is checked less 50 ms of transit jitter.
    assert handler.max_in_window(1.0) <= 20
    assert elapsed >= 2.0  # the 41st message may start 2 s after the first at the earliest


class FakeTime:
    """A clock that only moves when slept on (or told to)."""

    def __init__(self) -> None:
        """Start at 0."""
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Jump ahead instead of sleeping."""
        self.slept.append(seconds)
        self.now += seconds


def starts(limiter: RateLimiter, fake: FakeTime, count: int) -> list[float]:
    """The fake time at which each of `count` back-to-back sends may start."""
    moments = []
    for _ in range(count):
        limiter.wait()
        moments.append(round(fake.now, 9))
    return moments


def test_rate_limiter_allows_a_burst_then_waits_for_the_window() -> None:
    fake = FakeTime()
    limiter = RateLimiter(3, margin=0, clock=fake.clock, sleep=fake.sleep)
    assert starts(limiter, fake, 7) == [0, 0, 0, 1, 1, 1, 2]


def test_rate_limiter_window_slides() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2, margin=0, clock=fake.clock, sleep=fake.sleep)
    limiter.wait()  # at 0.0
    fake.now = 0.75
    limiter.wait()  # at 0.75: two in the window is allowed
    assert starts(limiter, fake, 3) == [1.0, 1.75, 2.0]
    assert fake.slept == [0.25, 0.75, 0.25]


def test_rate_limiter_below_one_per_second_and_off() -> None:
    fake = FakeTime()
    assert starts(RateLimiter(0.5, margin=0, clock=fake.clock, sleep=fake.sleep), fake, 3) == [
        0,
        2,
        4,
    ]
    fake = FakeTime()
    assert (
        starts(RateLimiter(0, margin=0, clock=fake.clock, sleep=fake.sleep), fake, 50) == [0] * 50
    )
    assert fake.slept == []


def test_rate_limiter_never_exceeds_the_rate_in_any_window() -> None:
    fake = FakeTime()
    limiter = RateLimiter(5, margin=0, clock=fake.clock, sleep=fake.sleep)
    moments = []
    for step in range(60):
        # Irregular gaps; binary fractions keep the fake clock's sums exact.
        fake.now += (step % 7) * 0.0625
        limiter.wait()
        moments.append(fake.now)
    ordered = sorted(moments)
    assert all(ordered[i + 5] - ordered[i] >= 1.0 for i in range(len(ordered) - 5))
    assert fake.slept, "the rate was never reached: the test proved nothing"


# --- pausing ----------------------------------------------------------------------------


def test_errors_in_a_row_pause_the_run(handler: ScriptedHandler) -> None:
    handler.script("MAIL", reply="451 4.3.0 Try again later", times=None)
    with smtp_server(handler) as info:
        settings = smtp_settings(info.port, max_send_errors=3)
        with pytest.raises(SendingPaused) as paused:
            send(settings, numbered(10))
    assert str(paused.value) == (
        f"pausing: 3 errors in a row from SMTP server 127.0.0.1:{info.port}; the last was "
        "'451 4.3.0 Try again later' for r2@example.com"
    )
    assert outcomes(paused.value.results) == [("retry", "451 4.3.0 Try again later")] * 3
    assert [r.message for r in paused.value.results] == numbered(3)
    assert handler.command_count("MAIL") == 3  # nothing more was tried


def test_bounces_and_successes_do_not_pause(handler: ScriptedHandler) -> None:
    for i in range(4):
        handler.rcpt_reply[f"r{i}@example.com"] = "550 5.1.1 User unknown"
    for i in (5, 6, 8, 9):
        handler.rcpt_reply[f"r{i}@example.com"] = "452 4.2.2 Mailbox full"
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port, max_send_errors=3), numbered(10))
    assert [r.outcome for r in results] == (
        ["bounced"] * 4 + ["sent"] + ["retry"] * 2 + ["sent"] + ["retry"] * 2
    )


# --- internationalised addresses --------------------------------------------------------


def test_a_non_ascii_local_part_uses_smtputf8(handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info:
        results = send(smtp_settings(info.port), [message("zoë@example.com")])
    assert outcomes(results) == [sent(1)]
    [received] = handler.messages
    assert received.rcpt_tos == ("zoë@example.com",)
    assert received.mail_options == ("SMTPUTF8", "BODY=8BITMIME")
    assert received.smtp_utf8


def test_a_non_ascii_local_part_fails_without_smtputf8(handler: ScriptedHandler) -> None:
    with smtp_server(handler, enable_SMTPUTF8=False) as info:
        results = send(smtp_settings(info.port), [message("zoë@example.com"), message(NEXT)])
    assert outcomes(results) == [
        (
            "failed",
            f"SMTP server 127.0.0.1:{info.port} does not support SMTPUTF8, "
            "needed for zoë@example.com",
        ),
        sent(1),
    ]
    assert handler.command_count("MAIL") == 1


@pytest.mark.parametrize("smtputf8", [True, False])
def test_an_idn_domain_goes_out_as_idna(handler: ScriptedHandler, smtputf8: bool) -> None:
    with smtp_server(handler, enable_SMTPUTF8=smtputf8) as info:
        results = send(smtp_settings(info.port), [message("jose@bücher.example")])
    assert outcomes(results) == [sent(1)]
    [received] = handler.messages
    assert received.rcpt_tos == ("jose@xn--bcher-kva.example",)
    # The envelope needs no SMTPUTF8; the test message's own To: line is 8-bit.
    assert received.mail_options == ("BODY=8BITMIME",)


# --- dot-stuffing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"Subject: x\r\n\r\nplain\r\n", b"Subject: x\r\n\r\nplain\r\n.\r\n"),
        (b".first line\r\n", b"..first line\r\n.\r\n"),
        (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"no line end", b"no line end\r\n.\r\n"),
        (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
        (b"", b"\r\n.\r\n"),
    ],
)
def test_dot_stuff(data: bytes, wire: bytes) -> None:
    assert dot_stuff(data) == wire


# --- end to end through `course` ---------------------------------------------------------


def course(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in `project` like an operator would."""
    return run_course(project, *args, env=env)


def configure(project: Path, port: int, emails: Sequence[str], **smtp: Any) -> None:
    """Point the project at the test server and give it these subscribers."""
    config = project / "schedule.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["delivery"] = {
        "backend": "smtp",
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5, **smtp},
    }
    # Real mail needs an https unsubscribe link (one-click unsubscribe).
    data.setdefault("unsubscribe", {})["base_url"] = "https://courses.example.com/unsubscribe"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rows = "".join(f"{e},{e.split('@')[0].title()},UTC,\n" for e in emails)
    (project / "examples" / "subscribers.csv").write_text(CSV_HEAD + rows, encoding="utf-8")


def day_one(project: Path) -> dict[str, int]:
    """The day-1 row of `course status` as {state: count}; {} when nothing was claimed."""
    result = course(project, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next((line.split() for line in lines if line.startswith("day ")), None)
    row = next((line.split() for line in lines if line.split()[:1] == ["1"]), None)
    if header is None or row is None:
        return {}
    return dict(zip(header[1:], map(int, row[1:]), strict=True))


EMAILS = ("ann@example.com", "ben@example.com", "cy@example.com")


def test_course_send_delivers_over_smtp(project: Path, handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info:
        configure(project, info.port, EMAILS)
        result = course(project, "send", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("3 sent, 0 to retry, 0 failed, 0 bounced (day 1: 3)")
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(EMAILS)
    assert {m.mail_from for m in handler.messages} == {"hello@example.com"}
    assert all(str(m.as_email()["Subject"]).startswith("Day 1 of 15") for m in handler.messages)
    assert day_one(project) == {"claimed": 0, "sent": 3, "retrying": 0, "failed": 0, "bounced": 0}
    for received in handler.messages:
        # What went over the wire carries the one-click unsubscribe headers too.
        headers = received.as_email()
        assert re.fullmatch(
            r"<https://[^\s<>,]+/unsubscribe/[\w.-]+>", str(headers["List-Unsubscribe"])
        )
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Id"]


def test_course_send_logs_in_with_the_password_from_the_environment(
    project: Path, handler: ScriptedHandler
) -> None:
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    with smtp_server(handler, auth={USER: PASSWORD}, auth_required=True) as info:
        configure(project, info.port, EMAILS, username=USER, password_env=PASSWORD_ENV)
        missing = course(project, "send", "--now", NOW)
        result = course(project, "send", "--now", NOW, env=env)
    assert missing.returncode == 1
    assert f"the environment variable {PASSWORD_ENV} is not set" in missing.stderr
    assert result.returncode == 0, result.stderr
    assert [m.authenticated_as for m in handler.messages] == [USER] * 3
    assert PASSWORD not in result.stdout + result.stderr
    assert day_one(project)["sent"] == 3


def test_a_bounced_address_shows_in_status(project: Path, handler: ScriptedHandler) -> None:
    rejection = "550 5.1.1 <ben@example.com>: Recipient address rejected: User unknown"
    handler.rcpt_reply["ben@example.com"] = rejection
    with smtp_server(handler) as info:
        configure(project, info.port, EMAILS)
        result = course(project, "send", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert "2 sent, 0 to retry, 0 failed, 1 bounced" in result.stdout
    ben = course(project, "status", "--subscriber", "ben@example.com").stdout
    assert ben.startswith("ben@example.com: bounced since ")
    assert rejection in ben
    assert day_one(project)["bounced"] == 1


def test_a_refused_login_stops_course_send_and_releases_the_claims(
    project: Path, handler: ScriptedHandler
) -> None:
    wrong = "pw-wrong-and-secret-too"
    with smtp_server(handler, auth={USER: PASSWORD}, auth_required=True) as info:
        configure(project, info.port, EMAILS, username=USER, password_env=PASSWORD_ENV)
        failed = course(project, "send", "--now", NOW, env={**os.environ, PASSWORD_ENV: wrong})
        assert failed.returncode == 1
        assert handler.received == []
        assert day_one(project) == {}  # nothing sent, nothing left claimed
        good = course(project, "send", "--now", NOW, env={**os.environ, PASSWORD_ENV: PASSWORD})
    errors = [line for line in failed.stderr.splitlines() if line.startswith("course: error:")]
    assert errors == [
        f"course: error: SMTP server 127.0.0.1:{info.port} refused the login for user "
        f"'course': 535 5.7.8 Authentication credentials invalid. Check the user and the "
        f"password in ${PASSWORD_ENV}"
    ]
    assert "Traceback" not in failed.stderr
    assert wrong not in failed.stdout + failed.stderr
    assert PASSWORD not in good.stdout + good.stderr
    assert good.returncode == 0, good.stderr
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(EMAILS)
    assert day_one(project)["sent"] == 3


# --- kill -9 in the middle of a run -------------------------------------------------------


@pytest.mark.parametrize(("connections", "delay"), [(1, 0.05), (4, 0.1)])
def test_sigkill_mid_run_duplicates_at_most_one_message_per_connection(
    project: Path, connections: int, delay: float
) -> None:
    emails = [f"s{i:02d}@example.com" for i in range(40)]
    handler = SlowHandler(delay)
    with smtp_server(handler) as info:
        configure(project, info.port, emails, max_connections=connections)
        run = subprocess.Popen(
            [sys.executable, "-m", "course.cli", "send", "--now", NOW],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            handler.wait_until(lambda: len(handler.received) >= 15, timeout=30, what="15 messages")
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
        assert run.returncode == -signal.SIGKILL
        assert len(handler.received) < len(emails), "the run finished before it was killed"
        again = course(project, "send", "--now", NOW)
        assert again.returncode == 0, again.stderr
    # The claims the killed run never recorded were put back, not left stuck.
    assert "were claimed by a run that stopped before recording them" in again.stderr
    copies = Counter(m.rcpt_tos[0] for m in handler.received)
    assert sorted(copies) == emails  # nobody skipped
    # Each connection has its result on record before it sends again, so a kill leaves
    # unrecorded only the one message each connection had in flight, which goes out
    # again: at most one duplicate with one connection, at most four with four.
    duplicates = {email: n for email, n in copies.items() if n > 1}
    assert sum(n - 1 for n in duplicates.values()) <= connections
    for email in duplicates:
        ids = {m.as_email()["Message-ID"] for m in handler.received if m.rcpt_tos[0] == email}
        assert len(ids) == 1  # the same Message-ID, so clients can fold the copies
    assert day_one(project) == {"claimed": 0, "sent": 40, "retrying": 0, "failed": 0, "bounced": 0}


def test_rate_limiter_keeps_a_margin_for_arrival_jitter() -> None:
    fake = FakeTime()
    limiter = RateLimiter(2, clock=fake.clock, sleep=fake.sleep)
    assert starts(limiter, fake, 3) == [0, 0, 1.05]
