"""The SMTP backend and `course send` against a real Postfix 3.7 smtpd (tests/postfix_server.py).

One private Postfix serves the module, one listener per scenario: sender and HELO
restrictions, a connection limit, a message rate limit, forbidden unauthenticated
pipelining, recipient maps, STARTTLS, implicit TLS, no STARTTLS, no SMTPUTF8. After every
test its log must hold no complaint about our client, and every session must end in QUIT.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from postfix_server import Listener, Postfix, postfix_server, unavailable
from support import run_course

from course.backends.base import OutgoingMessage, SendResult
from course.backends.smtp import SmtpBackend
from course.build import CourseBuild, build_course
from course.config import SmtpSettings, load_settings, parse_settings
from course.errors import DeliveryError
from course.ledger import Ledger
from course.message import Recipient

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

NOW = "2026-03-02T12:00:00+00:00"
FROM = "hello@example.com"
CSV_HEAD = "email,first_name,timezone,subscribed_at\n"
LISTENERS = [
    Listener("starttls"),
    Listener("implicit", tls="implicit"),
    Listener("plain", tls="none"),
    Listener("unlisted_sender", {"smtpd_reject_unlisted_sender": "yes"}),
    Listener(
        "sender_access",
        {"smtpd_sender_restrictions": "check_sender_access texthash:$config_directory/senders"},
    ),
    Listener(
        "helo",
        {"smtpd_helo_required": "yes", "smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname"},
    ),
    Listener("two_connections", {"smtpd_client_connection_count_limit": "2"}),
    Listener("rate", {"smtpd_client_message_rate_limit": "3"}),
    Listener("strict_pipelining", {"smtpd_forbid_unauth_pipelining": "yes"}),
    Listener(
        "recipients",
        {
            "smtpd_recipient_restrictions": (
                "check_recipient_access texthash:$config_directory/recipients"
            )
        },
    ),
    Listener("no_smtputf8", {"smtputf8_enable": "no"}),
]
TABLES = {
    "senders": {"news@example.org": "REJECT"},
    "recipients": {
        "gone@example.com": "550 5.1.1 Mailbox unavailable",
        "busy@example.com": "450 4.2.1 Mailbox busy",
    },
}
# Rates are counted per two seconds, so a rate-limit test takes seconds, not minutes.
MAIN = {"anvil_rate_time_unit": "2s"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def postfix() -> Iterator[Postfix]:
    """The module's Postfix, every listener on its own port."""
    with postfix_server(LISTENERS, main=MAIN, tables=TABLES) as server:
        yield server


@dataclass
class LogCheck:
    """What the Postfix log may say about our client during one test."""

    mark: int
    expected: list[str] = field(default_factory=list)
    """Regexes of complaints this test provokes on purpose."""
    quit_always: bool = True


@pytest.fixture(autouse=True)
def postfix_log(postfix: Postfix) -> Iterator[LogCheck]:
    """After each test: no complaint about our client, and every session ended in QUIT."""
    check = LogCheck(postfix.log_size())
    yield check
    settle(postfix, check.mark)
    problems = [
        line
        for line in postfix.client_problems(check.mark)
        if not any(re.search(pattern, line) for pattern in check.expected)
    ]
    assert problems == []
    if check.quit_always:
        assert [d.line for d in postfix.disconnects(check.mark) if not d.said_quit] == []


def settle(postfix: Postfix, mark: int) -> None:
    """Wait until smtpd has logged the end of every session that began after `mark`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = postfix.smtpd_lines(mark)
        connects = sum(" connect from " in line for line in lines)
        if connects == sum(" disconnect from " in line for line in lines):
            return
        time.sleep(0.05)


def smtp_settings(postfix: Postfix, listener: str, **options: Any) -> SmtpSettings:
    """delivery.smtp for one listener, trusting the test CA."""
    security = {"implicit": "tls", "plain": "none"}.get(listener, "starttls")
    node = {
        "host": "127.0.0.1",
        "port": postfix.port(listener),
        "security": security,
        "ca_file": str(postfix.ca_file),
        "timeout": 10,
        **options,
    }
    text = yaml.safe_dump({"sender": {"from": f"Course <{FROM}>"}, "delivery": {"smtp": node}})
    return parse_settings(text, source=Path("/nonexistent/schedule.yaml")).delivery.smtp


@pytest.fixture(scope="module")
def built() -> CourseBuild:
    """The shipped course, built once."""
    return build_course(load_settings(ROOT / "schedule.yaml"))


def lessons(built: CourseBuild, emails: Sequence[str], day: int = 1) -> list[OutgoingMessage]:
    """Real lesson messages, as `course send` builds them."""
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    messages = []
    for address in emails:
        recipient = Recipient(address, address.split("@")[0].title(), "https://e.example.com/u", {})
        message_id, data = built.lesson(day).build(recipient, date=now)
        messages.append(OutgoingMessage(FROM, address, message_id, data))
    return messages


def send(settings: SmtpSettings, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
    with SmtpBackend(settings, "") as backend:
        return backend.send(messages)


def as_sent(stored: bytes) -> bytes:
    """A Maildir message as it crossed the wire: CRLF lines, without the trace lines the
    virtual agent puts on top (Return-Path, X-Original-To, Delivered-To, Received)."""
    head, _, _ = stored.partition(b"\n\n")
    lines = stored.split(b"\n")
    added = 0
    for number, line in enumerate(head.split(b"\n")):
        name = line.split(b":", 1)[0]
        if line[:1] in (b" ", b"\t") or name in (
            b"Return-Path",
            b"X-Original-To",
            b"Delivered-To",
            b"Received",
        ):
            added = number + 1
            continue
        break
    return b"\r\n".join(lines[added:])


# --- the basics, over TLS ----------------------------------------------------------------


def test_starttls_with_the_test_ca_delivers_byte_for_byte(
    postfix: Postfix, built: CourseBuild, postfix_log: LogCheck
) -> None:
    emails = [f"tls{n}@example.com" for n in range(24)]
    messages = lessons(built, emails)
    results = send(smtp_settings(postfix, "starttls", max_connections=4), messages)
    assert {r.outcome for r in results} == {"sent"}
    assert all(re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", r.reply) for r in results)
    postfix.wait_for_mail(emails)
    for message in messages:
        [stored] = postfix.mailbox(message.recipient)
        assert as_sent(stored) == message.data
    settle(postfix, postfix_log.mark)  # smtpd logs a session's end after the client has gone
    sessions = postfix.disconnects(postfix_log.mark, "starttls")
    assert sessions
    assert all(d.commands.get("starttls") == (1, 1) for d in sessions)


def test_implicit_tls(postfix: Postfix, built: CourseBuild) -> None:
    results = send(smtp_settings(postfix, "implicit"), lessons(built, ["wrapped@example.com"]))
    assert [r.outcome for r in results] == ["sent"]
    postfix.wait_for_mail(["wrapped@example.com"])


def test_a_listener_without_starttls_gets_nothing_in_plain_text(
    postfix: Postfix, built: CourseBuild, postfix_log: LogCheck
) -> None:
    settings = smtp_settings(postfix, "plain", security="starttls")
    with pytest.raises(DeliveryError) as refused:
        send(settings, lessons(built, ["clear@example.com"]))
    assert str(refused.value) == (
        f"SMTP server 127.0.0.1:{postfix.port('plain')} does not offer STARTTLS; refusing to "
        "send in plain text. Fix the server, or use security: tls for port 465"
    )
    settle(postfix, postfix_log.mark)
    [session] = postfix.disconnects(postfix_log.mark, "plain")
    assert "mail" not in session.commands


@pytest.mark.parametrize(
    ("listener", "security", "words"),
    [
        ("implicit", "starttls", "expects TLS from the first byte"),
        ("starttls", "tls", "answered in plain text, not TLS"),
    ],
)
def test_a_tls_mismatch_fails_fast_naming_the_other_mode(
    postfix: Postfix,
    built: CourseBuild,
    postfix_log: LogCheck,
    listener: str,
    security: str,
    words: str,
) -> None:
    # The server sees a session that never started properly: that is the mistake itself.
    postfix_log.expected = [r"SSL_accept error", r"lost connection after CONNECT"]
    postfix_log.expected += [r"improper command pipelining after CONNECT", r"bare <LF> received"]
    postfix_log.quit_always = False
    settings = smtp_settings(postfix, listener, security=security, timeout=30)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=words):
        send(settings, lessons(built, ["mixup@example.com"]))
    assert time.monotonic() - started < 10


# --- refusals of the envelope: nobody bounced, the tick stops ----------------------------


def configure(
    project: Path, postfix: Postfix, listener: str, emails: Sequence[str], **options: Any
) -> None:
    """Point the copied project at one listener, with these subscribers."""
    sender = options.pop("sender", FROM)
    config = project / "schedule.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["sender"]["from"] = f"Love Connection <{sender}>"
    data["delivery"] = {
        "backend": "smtp",
        "smtp": {
            "host": "127.0.0.1",
            "port": postfix.port(listener),
            "security": "starttls",
            "ca_file": str(postfix.ca_file),
            "timeout": 10,
            **options,
        },
    }
    data.setdefault("unsubscribe", {})["base_url"] = "https://courses.example.com/unsubscribe"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    rows = "".join(f"{e},{e.split('@')[0].title()},UTC,\n" for e in emails)
    (project / "examples" / "subscribers.csv").write_text(CSV_HEAD + rows, encoding="utf-8")


def day_one(project: Path) -> dict[str, int]:
    """Day 1's deliveries by state, from the project's ledger."""
    settings = load_settings(project / "schedule.yaml")
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        counts = ledger.state_counts()
    return {state.value: n for (day, state), n in counts.items() if day == 1 and n}


def last_reply(project: Path, email_address: str) -> str:
    settings = load_settings(project / "schedule.yaml")
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        return ledger.history(email_address)[-1].last_reply


EMAILS = [f"reader{n}@example.com" for n in range(6)]


@pytest.mark.parametrize(
    ("listener", "options", "reply"),
    [
        (
            "unlisted_sender",
            {"sender": "news@example.org"},
            "550 5.1.0 <news@example.org>: Sender address rejected: "
            "User unknown in virtual mailbox table",
        ),
        (
            "sender_access",
            {"sender": "news@example.org"},
            "554 5.7.1 <news@example.org>: Sender address rejected: Access denied",
        ),
        (
            "helo",
            {"helo": "mailer"},
            "504 5.5.2 <mailer>: Helo command rejected: need fully-qualified hostname",
        ),
    ],
)
def test_a_rejected_sender_or_helo_bounces_nobody_and_stops_the_tick(
    project: Path, postfix: Postfix, listener: str, options: dict[str, str], reply: str
) -> None:
    configure(project, postfix, listener, EMAILS, max_connections=2, **options)
    refused = run_course(project, "send", "--now", NOW)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    alert = [line for line in refused.stderr.splitlines() if "ALERT: " in line]
    assert len(alert) == 1
    assert f"'{reply}'" in alert[0]
    assert "nobody was marked" in alert[0]
    assert refused.stderr.splitlines()[-1].startswith("course: error: SMTP server 127.0.0.1:")
    assert day_one(project) == {}  # nothing sent, bounced, failed or left claimed
    assert 1 <= len(postfix.rejections(0, listener)) <= 2  # one per connection at most
    # Once the sender (or the HELO name) is fixed, the same lessons go out.
    configure(project, postfix, listener, EMAILS, max_connections=2)
    again = run_course(project, "send", "--now", NOW)
    assert again.returncode == 0, again.stderr
    assert day_one(project) == {"sent": len(EMAILS)}


# --- server limits -----------------------------------------------------------------------


def test_a_connection_limit_below_max_connections_delivers_every_lesson(
    postfix: Postfix,
    built: CourseBuild,
    postfix_log: LogCheck,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Postfix warns, once, about the one connection over its limit.
    postfix_log.expected = [r"warning: Connection concurrency limit exceeded: 3 from"]
    emails = [f"limit{n}@example.com" for n in range(40)]
    settings = smtp_settings(postfix, "two_connections", max_connections=4)
    with caplog.at_level(logging.WARNING, logger="course.smtp"):
        results = send(settings, lessons(built, emails))
    assert [r.outcome for r in results] == ["sent"] * 40
    postfix.wait_for_mail(emails)
    assert len(postfix.client_problems(postfix_log.mark)) == 1
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == (
        f"SMTP server 127.0.0.1:{postfix.port('two_connections')} refused connection 3 of 4: "
        "421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1; carrying on "
        "with 2 connections for this run (lower delivery.smtp.max_connections to match)"
    )


def test_a_message_rate_limit_paces_instead_of_failing(
    postfix: Postfix, built: CourseBuild, postfix_log: LogCheck
) -> None:
    postfix_log.expected = [r"warning: Message delivery request rate limit exceeded"]
    emails = [f"rate{n}@example.com" for n in range(8)]
    started = time.monotonic()
    results = send(smtp_settings(postfix, "rate", max_connections=1), lessons(built, emails))
    assert [r.outcome for r in results] == ["sent"] * 8
    assert time.monotonic() - started >= 2  # three per two seconds: it had to wait
    postfix.wait_for_mail(emails)
    # Refusals did not snowball: after a refused MAIL the probes went one command at a
    # time, so fewer RCPTs were wasted than MAILs refused (no "too many errors" either).
    settle(postfix, postfix_log.mark)
    [session] = postfix.disconnects(postfix_log.mark, "rate")
    mail_ok, mails = session.commands["mail"]
    rcpt_ok, rcpts = session.commands["rcpt"]
    assert (mail_ok, rcpt_ok) == (8, 8)
    assert 0 < rcpts - rcpt_ok < mails - mail_ok


def test_strict_pipelining_postfix_takes_our_pipelining(
    postfix: Postfix, built: CourseBuild
) -> None:
    emails = [f"pipe{n}@example.com" for n in range(20)]
    settings = smtp_settings(postfix, "strict_pipelining", max_connections=2)
    results = send(settings, lessons(built, emails))
    assert [r.outcome for r in results] == ["sent"] * 20
    postfix.wait_for_mail(emails)


def test_recipient_maps_bounce_and_defer(postfix: Postfix, built: CourseBuild) -> None:
    emails = ["ann@example.com", "gone@example.com", "busy@example.com", "cy@example.com"]
    results = send(smtp_settings(postfix, "recipients"), lessons(built, emails))
    assert [(r.outcome, r.reply if r.outcome != "sent" else "") for r in results] == [
        ("sent", ""),
        (
            "bounced",
            "550 5.1.1 <gone@example.com>: Recipient address rejected: Mailbox unavailable",
        ),
        ("retry", "450 4.2.1 <busy@example.com>: Recipient address rejected: Mailbox busy"),
        ("sent", ""),
    ]


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["starttls", "no_smtputf8"])
def test_a_non_ascii_local_part(project: Path, postfix: Postfix, listener: str) -> None:
    ann, jose, long = (f"{who}.{listener}@example.com" for who in ("ann", "josé", "long"))
    long_name = "Ann " * 250  # a display name far too long for one header line
    configure(project, postfix, listener, [ann])
    with (project / "examples" / "subscribers.csv").open("a", encoding="utf-8") as csv:
        csv.write(f"{jose},José,UTC,\n{long},{long_name.strip()},UTC,\n")
    result = run_course(project, "send", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    counts = day_one(project)
    if listener == "starttls":
        assert counts == {"sent": 3}
        postfix.wait_for_mail([ann, jose, long])
        [stored] = postfix.mailbox(jose)
        # RFC 6532: the address in the header is UTF-8; the message went with SMTPUTF8.
        message = email.message_from_string(stored.decode("utf-8"), policy=email.policy.SMTPUTF8)
        assert message["To"].addresses[0].addr_spec == jose
        assert b" with UTF8SMTPS" in stored
    else:
        # That one delivery fails with the reason; the others go out in the same tick.
        assert counts == {"sent": 2, "failed": 1}
        assert last_reply(project, jose) == (
            f"SMTP server 127.0.0.1:{postfix.port(listener)} does not support SMTPUTF8, "
            f"needed for {jose}"
        )
        postfix.wait_for_mail([ann, long])
    [stored] = postfix.mailbox(long)
    head = as_sent(stored).split(b"\r\n\r\n", 1)[0]
    # Every header line fits in 78 octets but the unsubscribe URL, which cannot be folded.
    long_lines = [line for line in head.split(b"\r\n") if len(line) > 78]
    assert [line for line in long_lines if not line.startswith(b"List-Unsubscribe: <")] == []
