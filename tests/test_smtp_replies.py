"""The reply table: whose problem a refusal is, for replies shaped like real servers' own.

The fixtures follow the wording, codes and layout that Postfix, Exim, Microsoft 365 /
Exchange Online and Gmail really send (multiline where they are, with their session ids
and help links), with example.com/.org addresses and 192.0.2.x documentation addresses.
"""

from __future__ import annotations

import pytest

from course.backends.smtp_replies import (
    RULES,
    Reply,
    ReplyParser,
    Scope,
    is_throttling,
    outcome_of,
    same_words,
    scope_of,
    stops_the_run,
)


def reply(raw: str) -> Reply:
    """Parse a reply as it arrives on the wire; lines are separated by newlines here."""
    [parsed] = ReplyParser().feed(raw.replace("\n", "\r\n").encode() + b"\r\n")
    return parsed


# (server, wire text, scope) - one row per shape; every rule of the table is hit below.
REPLIES: list[tuple[str, str, Scope]] = [
    # --- Postfix ------------------------------------------------------------------------
    (
        "postfix reject_unlisted_sender",
        "550 5.1.0 <news@example.org>: Sender address rejected: "
        "User unknown in virtual mailbox table",
        Scope.SENDER,
    ),
    (
        "postfix check_sender_access REJECT",
        "554 5.7.1 <news@example.org>: Sender address rejected: Access denied",
        Scope.SENDER,
    ),
    (
        "postfix reject_unknown_sender_domain",
        "450 4.1.8 <news@example.org>: Sender address rejected: Domain not found",
        Scope.SENDER,
    ),
    (
        "postfix reject_sender_login_mismatch",
        "553 5.7.1 <news@example.org>: Sender address rejected: not owned by user course",
        Scope.SENDER,
    ),
    (
        "postfix reject_non_fqdn_helo_hostname",
        "504 5.5.2 <mailer>: Helo command rejected: need fully-qualified hostname",
        Scope.HELO,
    ),
    (
        "postfix reject_unknown_helo_hostname",
        "450 4.7.1 <mailer.example.net>: Helo command rejected: Host not found",
        Scope.HELO,
    ),
    (
        "postfix check_client_access REJECT",
        "554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied",
        Scope.CLIENT,
    ),
    (
        "postfix reject_unknown_client_hostname",
        "450 4.7.1 Client host rejected: cannot find your hostname, [192.0.2.10]",
        Scope.CLIENT,
    ),
    (
        "postfix reject_rbl_client",
        "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using "
        "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10",
        Scope.CLIENT,
    ),
    (
        "postfix virtual mailbox unknown",
        "550 5.1.1 <gone@example.com>: Recipient address rejected: "
        "User unknown in virtual mailbox table",
        Scope.RECIPIENT,
    ),
    (
        "postfix check_recipient_access 450",
        "450 4.2.0 <busy@example.com>: Recipient address rejected: Try again later",
        Scope.RECIPIENT,
    ),
    (
        "postgrey",
        "450 4.2.0 <new@example.com>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.com.html",
        Scope.RECIPIENT,
    ),
    (
        "postfix smtpd_client_connection_count_limit",
        "421 4.7.0 mx.example.net Error: too many connections from 192.0.2.10",
        Scope.THROTTLE,
    ),
    (
        "postfix smtpd_client_message_rate_limit",
        "450 4.7.1 Error: too much mail from 192.0.2.10",
        Scope.THROTTLE,
    ),
    (
        "postfix smtpd_client_recipient_rate_limit",
        "452 4.7.1 Error: too many recipients from 192.0.2.10",
        Scope.THROTTLE,
    ),
    (
        "postfix hard error limit",
        "421 4.7.0 mx.example.net Error: too many errors",
        Scope.THROTTLE,
    ),
    ("postfix relay denied", "554 5.7.1 <a@example.net>: Relay access denied", Scope.OTHER),
    ("postfix queue_minfree", "452 4.3.1 Insufficient system storage", Scope.OTHER),
    (
        "postfix message_size_limit",
        "552 5.3.4 Message size exceeds fixed limit",
        Scope.MESSAGE,
    ),
    ("postfix no valid recipients", "554 5.5.1 Error: no valid recipients", Scope.OTHER),
    # --- Exim ---------------------------------------------------------------------------
    (
        "exim verify = sender",
        "550-Verification failed for <news@example.org>\n"
        "550-Unrouteable address\n"
        "550 Sender verify failed",
        Scope.SENDER,
    ),
    ("exim unrouteable recipient", "550 Unrouteable address", Scope.RECIPIENT),
    ("exim (cPanel) unknown user", "550 No Such User Here", Scope.RECIPIENT),
    (
        "exim dnslists",
        "550 Rejected because 192.0.2.10 is in a black list at zen.spamhaus.org",
        Scope.CLIENT,
    ),
    (
        "exim (cPanel) RBL",
        "550-JunkMail rejected - mailer.example.net [192.0.2.10]:41234 is in an RBL, see\n"
        "550 https://www.spamhaus.org/query/ip/192.0.2.10",
        Scope.CLIENT,
    ),
    (
        "exim HELO ACL",
        "550 HELO/EHLO must contain a fully qualified domain name",
        Scope.HELO,
    ),
    (
        "exim smtp_accept_max_per_host",
        "421 Too many concurrent SMTP connections from this IP address; please try again later.",
        Scope.THROTTLE,
    ),
    ("exim ratelimit ACL", "451 Sender rate overlimit - 150.0 / 1h", Scope.THROTTLE),
    ("exim generic ACL deny", "550 Administrative prohibition", Scope.OTHER),
    # --- Microsoft 365 / Exchange Online ------------------------------------------------
    (
        "microsoft 365 unknown recipient",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        Scope.RECIPIENT,
    ),
    (
        "exchange unknown recipient",
        "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found",
        Scope.RECIPIENT,
    ),
    (
        "microsoft 365 directory based edge blocking",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
        "[AM4PEPF00012345.eurprd04.prod.outlook.com 2026-03-02T08:00:00.123Z 08DC1234ABCD5678]",
        Scope.RECIPIENT,
    ),
    (
        "microsoft 365 banned IP",
        "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from "
        "this list please visit https://sender.office.com/ and follow the directions. "
        "For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 "
        "AS(1430)",
        Scope.CLIENT,
    ),
    (
        "microsoft 365 IP not accepted",
        "550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. "
        "For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 "
        "AS(7171)",
        Scope.CLIENT,
    ),
    (
        "microsoft 365 blocklist",
        "550 5.7.1 Service unavailable, Client host [192.0.2.10] blocked using Spamhaus. "
        "To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.10 "
        "AS(1450)",
        Scope.CLIENT,
    ),
    (
        "microsoft 365 anonymous",
        "530 5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 "
        "Authentication unsuccessful [LO2P265CA0001.GBRP265.PROD.OUTLOOK.COM]",
        Scope.CLIENT,
    ),
    (
        "microsoft 365 bad outbound sender",
        "550 5.1.8 Access denied, bad outbound sender AS(42003)",
        Scope.SENDER,
    ),
    (
        "microsoft 365 send as",
        "554 5.2.252 SendAsDenied; news@example.org not allowed to send as "
        "hello@example.org; STOREDRV.Submit; "
        "Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        Scope.SENDER,
    ),
    (
        "microsoft 365 send as permission",
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        Scope.SENDER,
    ),
    (
        "microsoft 365 server busy",
        "451 4.7.500 Server busy. Please try again later from [192.0.2.10]. (S77719) "
        "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com]",
        Scope.THROTTLE,
    ),
    (
        "microsoft 365 reputation rate limit",
        "451 4.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to "
        "IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775)",
        Scope.THROTTLE,
    ),
    (
        "microsoft 365 spam",
        "550 5.7.350 Remote server returned message detected as spam",
        Scope.MESSAGE,
    ),
    ("exchange resources", "452 4.3.1 Insufficient system resources", Scope.OTHER),
    # --- Gmail / Google Workspace -------------------------------------------------------
    (
        "gmail no such user",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "550-5.1.1 double-checking the recipient's email address for typos or\n"
        "550-5.1.1 unnecessary spaces. For more information, go to\n"
        "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser "
        "d2e1a72fcca58-7e8b2a1c3c5si1234567pfb.123 - gsmtp",
        Scope.RECIPIENT,
    ),
    (
        "gmail over quota",
        "452-4.2.2 The recipient's inbox is out of storage space. Please direct the\n"
        "452-4.2.2 recipient to\n"
        "452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp "
        "a640c23a62f3a-a9a1b2c3d4esi123456.7 - gsmtp",
        Scope.RECIPIENT,
    ),
    (
        "gmail receiving too quickly",
        "450-4.2.1 The user you are trying to contact is receiving mail too quickly.\n"
        "450 4.2.1 Please resend your message at a later time. 5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.RECIPIENT,
    ),
    (
        "gmail blocked IP",
        "550-5.7.1 [192.0.2.10] Our system has detected an unusual rate of\n"
        "550-5.7.1 unsolicited mail originating from your IP address. To protect our\n"
        "550-5.7.1 users from spam, mail sent from your IP address has been blocked.\n"
        "550 5.7.1  https://support.google.com/mail/?p=UnsolicitedIPError "
        "5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.CLIENT,
    ),
    (
        "gmail rate limited IP",
        "421-4.7.28 [192.0.2.10] Gmail has detected an unusual rate of unsolicited mail\n"
        "421 4.7.28 from your IP address. 5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.THROTTLE,
    ),
    (
        "gmail no PTR",
        "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a\n"
        "550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
        "550 5.7.25 point to the sending IP. 5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.CLIENT,
    ),
    (
        "gmail DMARC",
        "550-5.7.26 Unauthenticated email from example.org is not accepted due to domain's\n"
        "550 5.7.26 DMARC policy. 5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.SENDER,
    ),
    (
        "gmail submission daily limit",
        "550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending "
        "limits go to https://support.google.com/a/answer/166852 "
        "5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.SENDER,
    ),
    (
        "gmail submission needs AUTH",
        "530-5.7.0 Authentication Required. For more information, go to\n"
        "530 5.7.0  https://support.google.com/mail/?p=WantAuthError "
        "5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.CLIENT,
    ),
    (
        "gmail too big",
        "552-5.2.3 Your message exceeded Google's message size limits. For more\n"
        "552 5.2.3 information, go to https://support.google.com/mail/?p=MaxSizeError - gsmtp",
        Scope.MESSAGE,
    ),
    (
        "gmail temporary",
        "451-4.3.0 Mail server temporarily rejected message.\n"
        "451 4.3.0 5b1f17b1804b1-4317d8e1234si - gsmtp",
        Scope.OTHER,
    ),
    # --- servers that say little --------------------------------------------------------
    ("bare 5.1.7", "553 5.1.7 Bad sender's mailbox address syntax", Scope.SENDER),
    ("bare 5.1.2", "550 5.1.2 Bad destination system address", Scope.RECIPIENT),
    ("bare 5.2.2", "552 5.2.2 Over the limit", Scope.RECIPIENT),
    ("bare 5.6.0", "554 5.6.0 Unreadable", Scope.MESSAGE),
    ("bare 4.7.1", "450 4.7.1 Please try again later", Scope.THROTTLE),
    ("bare policy", "550 5.7.1 Access denied", Scope.OTHER),
]


@pytest.mark.parametrize(("wire", "scope"), [r[1:] for r in REPLIES], ids=[r[0] for r in REPLIES])
def test_scope_of_real_replies(wire: str, scope: Scope) -> None:
    assert scope_of(reply(wire)) is scope


def test_every_rule_is_exercised() -> None:
    first_match = set()
    for _, wire, _ in REPLIES:
        parsed = reply(wire)
        first_match.add(next((i for i, rule in enumerate(RULES) if rule.matches(parsed)), None))
    assert first_match == {None, *range(len(RULES))}


@pytest.mark.parametrize(
    ("wire", "stops"),
    [
        ("550 5.1.0 <news@example.org>: Sender address rejected: User unknown", True),
        ("450 4.1.8 <news@example.org>: Sender address rejected: Domain not found", True),
        ("504 5.5.2 <mailer>: Helo command rejected: need fully-qualified hostname", True),
        ("554 5.7.1 <unknown[192.0.2.10]>: Client host rejected: Access denied", True),
        ("550 5.1.1 <a@example.com>: Recipient address rejected: User unknown", False),
        ("421 4.7.0 mx.example.net Error: too many connections from 192.0.2.10", False),
        ("554 5.7.1 <a@example.net>: Relay access denied", False),
        ("250 2.1.0 Ok", False),
    ],
)
def test_stops_the_run(wire: str, stops: bool) -> None:
    assert stops_the_run(reply(wire)) is stops


@pytest.mark.parametrize(
    ("wire", "throttling"),
    [
        ("450 4.7.1 Error: too much mail from 192.0.2.10", True),
        ("421 4.7.0 mx.example.net Error: too many connections from 192.0.2.10", True),
        ("421 4.3.2 Service not available, closing transmission channel", True),
        ("451 4.7.500 Server busy. Please try again later from [192.0.2.10].", True),
        ("450 4.2.0 <a@example.com>: Recipient address rejected: Greylisted", False),
        ("451 4.3.0 Temporary lookup failure", False),
        ("550 5.7.1 Service unavailable; rate of spam too high", False),  # permanent
    ],
)
def test_is_throttling(wire: str, throttling: bool) -> None:
    assert is_throttling(reply(wire)) is throttling


@pytest.mark.parametrize(
    ("stage", "wire", "outcome"),
    [
        ("message", "250 2.0.0 Ok: queued as 4XYZ1234", "sent"),
        ("message", "251 2.1.5 will forward", "sent"),
        ("rcpt", "250 2.1.5 OK", "retry"),  # not the final answer: never 'sent'
        ("rcpt", "450 4.2.0 <a@example.com>: Recipient address rejected: Greylisted", "retry"),
        ("rcpt", "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown", "bounced"),
        ("message", "550 5.1.1 Mailbox unavailable", "bounced"),
        ("rcpt", "550 5.7.1 Relaying denied", "failed"),
        ("message", "552 5.3.4 Message size exceeds fixed limit", "failed"),
        ("message", "554 5.6.0 Unreadable", "failed"),
        ("mail", "501 5.5.4 Syntax error", "failed"),
        ("data", "554 5.5.1 No valid recipients", "failed"),
    ],
)
def test_outcome_of(stage: str, wire: str, outcome: str) -> None:
    assert outcome_of(stage, reply(wire)) == outcome  # type: ignore[arg-type]


def test_multiline_replies_read_as_one_sentence() -> None:
    parsed = reply(
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "550 5.1.1 double-checking the address - gsmtp"
    )
    assert parsed == Reply(
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the address - gsmtp",
    )


def test_same_words_ignores_the_recipient_and_session_ids() -> None:
    gmail = "550 5.1.1 The email account does not exist. {} - gsmtp"
    a = reply(gmail.format("d2e1a72fcca58-7e8b2a1c3c5si1234567pfb.123"))
    b = reply(gmail.format("a640c23a62f3a-a9a1b2c3d4esi123456.7"))
    assert same_words(a, "a@example.com") == same_words(b, "b@example.com")
    postfix = "550 5.1.1 <{}>: Recipient address rejected: User unknown"
    assert same_words(reply(postfix.format("Ann@Example.com")), "ann@example.com") == (
        same_words(reply(postfix.format("ben@example.com")), "ben@example.com")
    )
    assert same_words(reply("550 5.1.1 no such user"), "a@example.com") != (
        same_words(reply("550 5.1.1 mailbox disabled"), "a@example.com")
    )
