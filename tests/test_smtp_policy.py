"""What the SMTP backend does with answers that concern the whole run, on real aiosmtpd.

A refused sender, HELO name or host stops the run with nobody marked; "slow down" is
waited out; a surge of identical bounces pauses instead of suppressing; idle connections
say QUIT; a TLS/plain-text mismatch fails fast. Real Postfix plays the same scenarios in
tests/test_smtp_postfix.py; these are the faults a test can script exactly.
"""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from smtp_servers import ScriptedHandler, smtp_server

from course.backends.base import OutgoingMessage, SendResult
from course.backends.smtp import (
    MAX_THROTTLED,
    BouncesPaused,
    EnvelopeRefused,
    SendingPaused,
    SmtpBackend,
)
from course.backends.smtp_connection import SEND_BUFFER, SmtpConnection, describe
from course.config import SmtpSettings, parse_settings
from course.errors import DeliveryError

SENDER = "course@example.org"


class SkipTime:
    """The real clock plus whatever the backend 'slept': back-offs pass at once."""

    def __init__(self) -> None:
        """Nothing slept yet."""
        self.offset = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        """time.monotonic(), moved on by every sleep."""
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock instead of waiting."""
        self.slept.append(seconds)
        self.offset += seconds


@pytest.fixture
def handler() -> ScriptedHandler:
    """A fresh handler per test."""
    return ScriptedHandler()


def settings(port: int, **options: Any) -> SmtpSettings:
    """delivery.smtp as an operator would write it."""
    node = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5, **options}
    node.setdefault("max_connections", 1)
    text = yaml.safe_dump({"delivery": {"smtp": node}})
    return parse_settings(text, source=Path("/nonexistent/schedule.yaml")).delivery.smtp


def message(number: int, recipient: str | None = None) -> OutgoingMessage:
    """A small valid message to r<number>@example.com (or `recipient`)."""
    to = recipient or f"r{number}@example.com"
    head = (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: Day 1\r\nMessage-ID: <m{number}@example.org>\r\n"
    )
    return OutgoingMessage(SENDER, to, f"<m{number}@example.org>", (head + "\r\nHi.\r\n").encode())


def batch(count: int) -> list[OutgoingMessage]:
    return [message(n) for n in range(count)]


def deliver(
    backend: SmtpBackend, messages: Sequence[OutgoingMessage]
) -> tuple[list[SendResult], list[SendResult]]:
    """(what send() returned, what it handed to on_result to record)."""
    recorded: list[SendResult] = []
    return backend.send(messages, on_result=recorded.extend), recorded


# --- the envelope's refusal, not the recipient's ------------------------------------


@pytest.mark.parametrize(
    ("reply", "names"),
    [
        (
            "550 5.1.0 <course@example.org>: Sender address rejected: "
            "User unknown in virtual mailbox table",
            "refused our sender course@example.org at RCPT TO",
        ),
        (
            "554 5.7.1 <course@example.org>: Sender address rejected: Access denied",
            "refused our sender course@example.org at RCPT TO",
        ),
        (
            "504 5.5.2 <mailer>: Helo command rejected: need fully-qualified hostname",
            "refused our HELO name 'mailer' at RCPT TO",
        ),
        (
            "554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied",
            "refused this host at RCPT TO",
        ),
        (
            "450 4.1.8 <course@example.org>: Sender address rejected: Domain not found",
            "refused our sender course@example.org at RCPT TO",
        ),
    ],
)
def test_a_refused_envelope_stops_the_run_and_marks_nobody(
    handler: ScriptedHandler, reply: str, names: str
) -> None:
    handler.script("RCPT", reply=reply, times=None)
    with smtp_server(handler) as info:
        backend = SmtpBackend(settings(info.port, helo="mailer", max_connections=2), "")
        with backend, pytest.raises(EnvelopeRefused) as stopped:
            deliver(backend, batch(20))
        # Each connection was reset after its refusal and closed with QUIT.
        handler.wait_until(lambda: handler.command_count("QUIT") == handler.connection_count)
    text = str(stopped.value)
    assert text.startswith(f"SMTP server 127.0.0.1:{info.port} {names}: '{reply}'. ")
    assert "nobody was marked" in text
    assert stopped.value.results == []
    assert handler.command_count("RCPT") <= 2  # the first refusal on each connection
    assert handler.received == []


def test_the_same_unexplained_refusal_for_recipients_in_a_row_stops_the_run(
    handler: ScriptedHandler,
) -> None:
    for n in range(10):
        handler.rcpt_reply[f"r{n}@example.com"] = (
            f"554 5.7.1 <r{n}@example.com>: Relay access denied"
        )
    with (
        smtp_server(handler) as info,
        SmtpBackend(settings(info.port), "") as backend,
        pytest.raises(EnvelopeRefused) as stopped,
    ):
        deliver(backend, batch(10))
    assert str(stopped.value).startswith(
        f"SMTP server 127.0.0.1:{info.port} refused 3 different recipients in a row at RCPT TO "
        "with the same words: '554 5.7.1 <r2@example.com>: Relay access denied'. That is about "
        "us, not them, so the run stopped and nobody was marked"
    )
    assert stopped.value.results == []
    assert handler.command_count("RCPT") == 3


def test_two_alike_refusals_are_the_recipients_own(handler: ScriptedHandler) -> None:
    for n in (1, 2):
        handler.rcpt_reply[f"r{n}@example.com"] = (
            f"554 5.7.1 <r{n}@example.com>: Relay access denied"
        )
    with smtp_server(handler) as info, SmtpBackend(settings(info.port), "") as backend:
        results, recorded = deliver(backend, batch(4))
    assert [r.outcome for r in results] == ["sent", "failed", "failed", "sent"]
    assert sorted(recorded, key=results.index) == results


# --- the last guard: a surge of identical bounces ----------------------------------------


def unknown_users(handler: ScriptedHandler, numbers: range) -> None:
    for n in numbers:
        handler.rcpt_reply[f"r{n}@example.com"] = (
            f"550 5.1.1 <r{n}@example.com>: Recipient address rejected: "
            "User unknown in virtual mailbox table"
        )


def test_a_surge_of_identical_bounces_pauses_instead_of_suppressing(
    handler: ScriptedHandler,
) -> None:
    unknown_users(handler, range(4, 10))  # 6 of 10, the same words but for the address
    with (
        smtp_server(handler) as info,
        SmtpBackend(settings(info.port), "") as backend,
        pytest.raises(BouncesPaused) as paused,
    ):
        deliver(backend, batch(10))
    assert isinstance(paused.value, SendingPaused)  # the run pauses, as after many errors
    assert str(paused.value).startswith(
        "pausing: 6 of 10 recipients in one batch (60%) bounced at RCPT TO with the same "
        f"answer from SMTP server 127.0.0.1:{info.port}: '550 5.1.1 <r4@example.com>: "
        "Recipient address rejected: User unknown in virtual mailbox table'. More than "
        "delivery.smtp.max_bounce_share (20%)"
    )
    assert [r.outcome for r in paused.value.results] == ["sent"] * 4


def test_bounces_below_the_share_or_with_the_guard_raised_are_recorded(
    handler: ScriptedHandler,
) -> None:
    unknown_users(handler, range(4, 10))
    with smtp_server(handler) as info:
        with SmtpBackend(settings(info.port, max_bounce_share=1), "") as backend:
            results, recorded = deliver(backend, batch(10))
        assert [r.outcome for r in results] == ["sent"] * 4 + ["bounced"] * 6
        assert len(recorded) == 10
        with SmtpBackend(settings(info.port), "") as backend:
            results, _ = deliver(backend, [message(n) for n in range(4, 8)] + batch(4) * 5)
    assert [r.outcome for r in results][:4] == ["bounced"] * 4  # 4: fewer than 5 alike


# --- "slow down" -------------------------------------------------------------------------


def test_a_throttling_refusal_backs_off_then_probes(handler: ScriptedHandler) -> None:
    handler.script("MAIL", reply="450 4.7.1 Error: too much mail from 127.0.0.1", times=2)
    skip = SkipTime()
    with (
        smtp_server(handler) as info,
        SmtpBackend(settings(info.port), "", clock=skip.clock, sleep=skip.sleep) as backend,
    ):
        results, _ = deliver(backend, batch(6))
    assert [r.outcome for r in results] == ["sent"] * 6  # paced, not failed
    assert skip.slept == pytest.approx([1.0, 2.0], abs=0.1)
    assert [m.rcpt_tos[0] for m in handler.messages] == [f"r{n}@example.com" for n in range(6)]
    # Only the first refusal had RCPT and DATA pipelined behind it (two errors); the probes
    # went one command at a time, so refusals do not snowball into "too many errors".
    assert handler.command_count("RCPT") == 7
    assert handler.command_count("DATA") == 7


def test_a_server_that_keeps_saying_slow_down_leaves_the_message_to_retry(
    handler: ScriptedHandler,
) -> None:
    handler.script("MAIL", reply="451 4.7.500 Server busy. Please try again later", times=None)
    skip = SkipTime()
    with smtp_server(handler) as info:
        options = {"max_send_errors": 1}
        backend = SmtpBackend(
            settings(info.port, **options), "", clock=skip.clock, sleep=skip.sleep
        )
        with backend, pytest.raises(SendingPaused) as paused:
            deliver(backend, batch(3))
    assert [(r.outcome, r.reply) for r in paused.value.results] == [
        ("retry", "451 4.7.500 Server busy. Please try again later")
    ]
    assert skip.slept == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0], abs=0.1)
    assert handler.command_count("MAIL") == MAX_THROTTLED + 1


def test_a_421_mid_transaction_is_waited_out_on_a_new_connection(
    handler: ScriptedHandler,
) -> None:
    handler.reply_421_then_close("RCPT", rcpt="r1@example.com")
    skip = SkipTime()
    with (
        smtp_server(handler) as info,
        SmtpBackend(settings(info.port), "", clock=skip.clock, sleep=skip.sleep) as backend,
    ):
        results, _ = deliver(backend, batch(3))
    assert [r.outcome for r in results] == ["sent"] * 3
    assert skip.slept == pytest.approx([1.0], abs=0.1)
    assert handler.connection_count == 2


# --- connections -------------------------------------------------------------------------


def test_idle_connections_say_quit(handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info:
        with SmtpBackend(settings(info.port, idle_seconds=0.2), "") as backend:
            deliver(backend, batch(1))
            time.sleep(0.3)
            deliver(backend, [message(5)])
        handler.wait_until(lambda: handler.open_connection_count == 0, what="hang-ups")
    assert handler.connection_count == 2
    assert handler.command_count("QUIT") == 2  # the idle one, then the one close() ended


def test_starttls_against_an_implicit_tls_port_fails_fast(handler: ScriptedHandler) -> None:
    with smtp_server(handler, tls="implicit") as info:
        options = {"security": "starttls", "ca_file": str(info.ca_file), "timeout": 30}
        started = time.monotonic()
        with pytest.raises(DeliveryError) as refused:
            SmtpBackend(settings(info.port, **options), "").send(batch(1))
    assert time.monotonic() - started < 10
    assert str(refused.value) == (
        f"SMTP server 127.0.0.1:{info.port} expects TLS from the first byte (implicit TLS, "
        "usually port 465) and security is 'starttls'; set delivery.smtp.security: tls"
    )


def test_implicit_tls_against_a_plain_port_fails_fast(handler: ScriptedHandler) -> None:
    with smtp_server(handler) as info, pytest.raises(DeliveryError) as refused:
        SmtpBackend(settings(info.port, security="tls", timeout=30), "").send(batch(1))
    assert str(refused.value) == (
        f"SMTP server 127.0.0.1:{info.port} answered in plain text, not TLS; if it offers "
        "STARTTLS (usually port 587), set delivery.smtp.security: starttls"
    )


def test_a_refused_ehlo_names_our_helo(handler: ScriptedHandler) -> None:
    handler.script("EHLO", reply="504 5.5.2 <mailer>: Helo command rejected: need FQDN", times=None)
    with smtp_server(handler) as info, pytest.raises(DeliveryError) as refused:
        SmtpBackend(settings(info.port, helo="mailer"), "").send(batch(1))
    assert str(refused.value) == (
        f"SMTP server 127.0.0.1:{info.port} refused our HELO name 'mailer': 504 5.5.2 "
        "<mailer>: Helo command rejected: need FQDN. Set delivery.smtp.helo to this host's "
        "fully-qualified name"
    )


def test_server_replies_are_described_as_text_never_a_tuple() -> None:
    refused = smtplib.SMTPConnectError(421, b"4.7.0 mx.example.net Error: too many connections")
    assert describe(refused) == "421 4.7.0 mx.example.net Error: too many connections"


def test_every_connection_has_nodelay_and_each_message_is_one_write(
    handler: ScriptedHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_write = SmtpConnection.write

    def counted(connection: SmtpConnection, data: bytes) -> None:
        writes.append(data)
        real_write(connection, data)

    monkeypatch.setattr(SmtpConnection, "write", counted)
    with (
        smtp_server(handler, tls="starttls") as info,
        SmtpBackend(
            settings(info.port, security="starttls", ca_file=str(info.ca_file)), ""
        ) as backend,
    ):
        deliver(backend, batch(3))
        sock = backend._sessions[0].connection._socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= SEND_BUFFER
    # One write for the first envelope, then one per message: its content (the TLS records
    # of one SSL_write) with the next message's envelope behind it.
    assert len(writes) == 4
    assert [w.count(b"\r\n.\r\n") for w in writes] == [0, 1, 1, 1]
    assert [w.count(b"MAIL FROM:") for w in writes] == [1, 1, 1, 0]
