"""What an SMTP server's answer means: whose problem it is, and what becomes of the message.

Pure, so every row is testable (tests/test_smtp_replies.py holds real servers' words).

Whose problem (`scope_of`, the first rule that matches wins; README "What each server
answer does" has the same table for operators):

| rule | matches                                                              | scope     |
|------|----------------------------------------------------------------------|-----------|
| 1    | 421, at any stage                                                    | throttle  |
| 2    | text names HELO/EHLO ("Helo command rejected")                       | helo      |
| 3    | text names the sender ("Sender address rejected", "Sender verify     | sender    |
|      | failed", "bad outbound sender", "send as", a sending limit, SPF,     |           |
|      | DKIM, DMARC, unauthenticated mail)                                   |           |
| 4    | text names our host ("Client host rejected", a blocklist, "your IP   | client    |
|      | address", a PTR record, "not authenticated", "Authentication         |           |
|      | required")                                                           |           |
| 5    | text names the recipient ("Recipient address rejected", "User        | recipient |
|      | unknown", "does not exist", "RecipientNotFound", "mailbox full",     |           |
|      | greylisting, "receiving mail too quickly")                           |           |
| 6    | 4xx whose text asks to slow down ("too much mail", "too many",       | throttle  |
|      | "rate", "busy")                                                      |           |
| 7    | text names the message (size, spam, virus, content)                  | message   |
| 8    | enhanced code X.1.0, X.1.7, X.1.8                                    | sender    |
| 9    | enhanced code X.1.1-X.1.6, X.1.10, X.2.x                             | recipient |
| 10   | enhanced code X.3.4, X.6.x                                           | message   |
| 11   | enhanced code 4.7.x                                                  | throttle  |
| -    | anything else                                                        | other     |

What becomes of the message (`outcome_of`, once the backend has handled the scopes that
concern the whole run: sender, helo and client stop the tick with nobody marked;
throttle slows the run down and tries the message again):

| answer                                         | outcome  |
|------------------------------------------------|----------|
| 2xx after the message                          | sent     |
| 4xx at any stage, or a dropped connection      | retry    |
| 5.7.x (policy) at any stage                    | failed   |
| 5xx about the message (size, content)          | failed   |
| other 5xx at RCPT or after the message         | bounced  |
| other 5xx at MAIL FROM or DATA                 | failed   |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from course.backends.base import Outcome

Stage = Literal["mail", "rcpt", "data", "message"]
ENHANCED_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
# smtplib's limit: a longer line is not an SMTP reply, whatever the server meant by it.
MAX_REPLY_LINE = 8192


class Scope(StrEnum):
    """Whose problem a refusal is."""

    RECIPIENT = "recipient"  # this address: bounced (5xx) or retried (4xx)
    MESSAGE = "message"  # this message: its size or content
    SENDER = "sender"  # our envelope sender, From or account: every message gets it
    HELO = "helo"  # the name we greet with: every message gets it
    CLIENT = "client"  # our IP address or session: every message gets it
    THROTTLE = "throttle"  # "slow down": the same message may pass in a moment
    OTHER = "other"  # the server did not say


ENVELOPE_SCOPES = frozenset({Scope.SENDER, Scope.HELO, Scope.CLIENT})


@dataclass(frozen=True, slots=True)
class Reply:
    """One server reply: the code and its (joined) text."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()

    @property
    def enhanced(self) -> str:
        """The RFC 3463 enhanced status code, e.g. "5.7.1", or ""."""
        match = ENHANCED_CODE.match(self.text)
        return match[0] if match else ""

    @property
    def is_policy(self) -> bool:
        return self.enhanced.startswith("5.7.")

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: a reply matching every given condition has `scope`."""

    scope: Scope
    text: re.Pattern[str] | None = None  # searched in the text, case-insensitively
    enhanced: re.Pattern[str] | None = None  # matched against the whole enhanced code
    code: re.Pattern[str] | None = None  # matched against the three-digit code

    def matches(self, reply: Reply) -> bool:
        return (
            (self.code is None or self.code.fullmatch(str(reply.code)) is not None)
            and (self.enhanced is None or self.enhanced.fullmatch(reply.enhanced) is not None)
            and (self.text is None or self.text.search(reply.text) is not None)
        )


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


RULES: tuple[Rule, ...] = (
    # 1. "Closing the transmission channel" (RFC 5321 3.8): too many connections, too many
    # errors, overloaded, or a provider's "slow down". Never a verdict on anyone's address.
    Rule(Scope.THROTTLE, code=re.compile("421")),
    # 2. The name we greet with (Postfix smtpd_helo_restrictions; Exim HELO ACLs).
    Rule(Scope.HELO, text=_words(r"\b(?:helo|ehlo)\b")),
    # 3. Our sender address, its domain's authentication, or the account's allowance.
    Rule(
        Scope.SENDER,
        text=_words(
            r"sender address rejected",  # Postfix smtpd_sender_restrictions
            r"sender verify failed",  # Exim verify = sender
            r"bad outbound sender",  # Microsoft 365, 5.1.8
            r"\bsender (?:address )?(?:denied|rejected|blocked|refused|not allowed)",
            r"not owned by (?:user|you)",  # Postfix reject_sender_login_mismatch
            r"send ?as ?denied|permissions? to send as",  # Microsoft 365, 5.2.252 / 5.7.60
            r"sending (?:limit|quota)",  # Gmail / Google Workspace, 5.4.5
            r"unauthenticated (?:e-?mail|mail|message)",  # Gmail, 5.7.26
            r"\b(?:spf|dkim|dmarc)\b|sender policy framework",
        ),
    ),
    # 4. Our host: its IP address, its reputation or DNS, or an unauthenticated session.
    Rule(
        Scope.CLIENT,
        text=_words(
            r"client host rejected",  # Postfix smtpd_client_restrictions
            r"client (?:host )?(?:\[[^\]]*\] )?blocked",  # Microsoft 365 5.7.1 / 5.7.750
            r"blocked using",  # Postfix reject_rbl_client
            r"\bin an rbl\b|\bis in a (?:black|block) ?list\b",  # Exim dnslists ACLs
            r"banned sending ip|traffic not accepted from this ip",  # Microsoft 365 5.7.6xx/708
            r"from your ip address|your ip address has been",  # Gmail 5.7.1
            r"\bptr record\b|reverse dns",  # Gmail 5.7.25
            r"not authenticated|authentication required",  # Microsoft 365 5.7.57, Gmail 5.7.0
        ),
    ),
    # 5. The recipient's address or mailbox.
    Rule(
        Scope.RECIPIENT,
        text=_words(
            r"recipient address rejected",  # Postfix smtpd_recipient_restrictions
            r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)",
            r"does not exist|recipient ?not ?found|unrouteable address",
            r"mailbox (?:unavailable|not found|disabled|busy|is full|full)|over quota",
            r"out of storage",
            r"greylist",
            r"the user you are trying to contact|receiving mail (?:too quickly|at a rate)",
        ),
    ),
    # 6. "Slow down", said as a temporary refusal.
    Rule(
        Scope.THROTTLE,
        code=re.compile(r"4\d\d"),
        text=_words(
            r"too (?:much|many) (?:mail|messages|connections|recipients|errors)",
            r"\brate\b|ratelimit|overlimit|\bbusy\b|throttl|slow down",
        ),
    ),
    # 7. This message, whoever it goes to.
    Rule(
        Scope.MESSAGE,
        text=_words(
            r"message (?:size|too (?:big|large))|exceeds? .*size|size limit",
            r"\bspam\b|\bvirus\b|malware|(?:message|invalid) content|content rejected",
        ),
    ),
    # 8-11. Servers that say little: the enhanced status code (RFC 3463).
    Rule(Scope.SENDER, enhanced=re.compile(r"[45]\.1\.[078]")),
    Rule(Scope.RECIPIENT, enhanced=re.compile(r"[45]\.(?:1\.(?:[1-6]|10)|2\.\d{1,3})")),
    Rule(Scope.MESSAGE, enhanced=re.compile(r"[45]\.(?:3\.4|6\.\d{1,3})")),
    Rule(Scope.THROTTLE, enhanced=re.compile(r"4\.7\.\d{1,3}")),
)


def scope_of(reply: Reply) -> Scope:
    """Whose problem a refusal is, by the first rule of `RULES` that matches it."""
    for rule in RULES:
        if rule.matches(reply):
            return rule.scope
    return Scope.OTHER


def stops_the_run(reply: Reply) -> bool:
    """A refusal that every message would get: of our sender, our HELO name, our host."""
    return reply.code >= 400 and scope_of(reply) in ENVELOPE_SCOPES


def is_throttling(reply: Reply) -> bool:
    """A temporary refusal that asks us to slow down, not to give up on anyone."""
    return reply.temporary and scope_of(reply) is Scope.THROTTLE


def outcome_of(stage: Stage, reply: Reply) -> Outcome:
    """The outcome of a message whose transaction ended with `reply` at `stage`."""
    if 200 <= reply.code < 300:
        return "sent" if stage == "message" else "retry"  # not a final answer: never 'sent'
    if reply.temporary:
        return "retry"
    if reply.is_policy or scope_of(reply) is Scope.MESSAGE:
        return "failed"
    if stage in ("rcpt", "message"):
        return "bounced"
    return "failed"


# A token with a digit in it and 10+ characters: a session or queue id that changes on
# every reply ("d2e1a72fcca58-7e8b2a1c3c5si1234567pfb.123 - gsmtp").
_SESSION_ID = re.compile(r"\b(?=[\w.-]*\d)[\w.-]{10,}\b")


def same_words(reply: Reply, recipient: str) -> str:
    """The reply with the recipient's address and per-session ids taken out: equal for
    two recipients exactly when the server told them the same thing."""
    text = str(reply)
    for address in {recipient, recipient.lower()}:
        text = re.sub(re.escape(address), "<recipient>", text, flags=re.IGNORECASE)
    return _SESSION_ID.sub("<id>", text)


class MalformedReply(ValueError):
    """The server sent something that is not an SMTP reply."""


class ReplyParser:
    """Bytes from the server in, complete replies out (RFC 5321 4.2.1: "250-" continues)."""

    def __init__(self) -> None:
        self._partial = b""
        self._texts: list[str] = []  # the lines so far of a multiline reply

    def feed(self, data: bytes) -> list[Reply]:
        """The replies `data` completes; an incomplete one waits for the next feed."""
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > MAX_REPLY_LINE:
            raise MalformedReply(f"a reply line longer than {MAX_REPLY_LINE} bytes")
        replies: list[Reply] = []
        for line in lines:
            code, separator, text = _parse_line(line.rstrip(b"\r"))
            self._texts.append(text)
            if separator != "-":
                replies.append(Reply(code, _join(self._texts)))
                self._texts = []
        return replies


def _join(texts: list[str]) -> str:
    """One text from a multiline reply: "550-5.1.1 The email account" + "550 5.1.1 that
    you tried…" reads "5.1.1 The email account that you tried…" (the repeated enhanced
    code on each continuation line, as Gmail sends it, is said once)."""
    first = ENHANCED_CODE.match(texts[0]) if texts else None
    if first is not None:
        prefix = first[0]
        texts = [texts[0]] + [t.removeprefix(prefix).lstrip() for t in texts[1:]]
    return " ".join(" ".join(texts).split())


def _parse_line(line: bytes) -> tuple[int, str, str]:
    """(code, "-" or " " or "", text) of one reply line."""
    code, separator = line[:3], line[3:4]
    if not (len(code) == 3 and code.isdigit() and separator in (b"", b" ", b"-")):
        raise MalformedReply(f"not an SMTP reply: {line[:80]!r}")
    if len(line) > MAX_REPLY_LINE:
        raise MalformedReply(f"a reply line longer than {MAX_REPLY_LINE} bytes")
    return int(code), separator.decode(), line[4:].decode("utf-8", "replace")


def is_error(outcome: Outcome) -> bool:
    """Outcomes that count toward pausing the run (a bounce is the address, not the server)."""
    return outcome in ("retry", "failed")
