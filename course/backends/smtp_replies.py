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
