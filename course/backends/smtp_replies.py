"""What an SMTP server's answer means for one message: pure, so every row is testable.

| answer                                         | outcome  |
|------------------------------------------------|----------|
| 2xx after the message                          | sent     |
| 4xx at any stage, or a dropped connection      | retry    |
| 5.7.x (policy) at any stage                    | failed   |
| other 5xx at RCPT or after the message         | bounced  |
| other 5xx at MAIL FROM or DATA                 | failed   |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from course.backends.base import Outcome

Stage = Literal["mail", "rcpt", "data", "message"]
ENHANCED_CODE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
# smtplib's limit: a longer line is not an SMTP reply, whatever the server meant by it.
MAX_REPLY_LINE = 8192


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
                replies.append(Reply(code, " ".join(" ".join(self._texts).split())))
                self._texts = []
        return replies


def _parse_line(line: bytes) -> tuple[int, str, str]:
    """(code, "-" or " " or "", text) of one reply line."""
    code, separator = line[:3], line[3:4]
    if not (len(code) == 3 and code.isdigit() and separator in (b"", b" ", b"-")):
        raise MalformedReply(f"not an SMTP reply: {line[:80]!r}")
    if len(line) > MAX_REPLY_LINE:
        raise MalformedReply(f"a reply line longer than {MAX_REPLY_LINE} bytes")
    return int(code), separator.decode(), line[4:].decode("utf-8", "replace")


def outcome_of(stage: Stage, reply: Reply) -> Outcome:
    """The outcome of a message whose transaction ended with `reply` at `stage`."""
    if 200 <= reply.code < 300:
        return "sent" if stage == "message" else "retry"  # not a final answer: never 'sent'
    if 400 <= reply.code < 500:
        return "retry"
    if reply.is_policy:
        return "failed"
    if stage in ("rcpt", "message"):
        return "bounced"
    return "failed"


def is_error(outcome: Outcome) -> bool:
    """Outcomes that count toward pausing the run (a bounce is the address, not the server)."""
    return outcome in ("retry", "failed")
