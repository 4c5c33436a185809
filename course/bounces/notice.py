"""What one bounce, complaint or provider event means for one subscriber.

The bounce mailbox and every provider webhook end in the same few verdicts, so the ledger
changes the same way whichever way the news came.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from course.ledger.schema import Verdict

__all__ = ["Notice", "Verdict", "lesson_day"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One verdict about one address, from one source, under a key that makes it idempotent.

    `key` is the same every time the same event is delivered (a provider's event id, a hash
    of a mailbox message), so a replayed event changes nothing twice.
    """

    verdict: Verdict
    email: str
    detail: str
    source: str  # "bounce mailbox", "mailgun", "sendgrid", "postmark", "ses"
    key: str
    evidence: str = ""  # what named the address: "VERP token", "Final-Recipient", ...
    message_id: str = ""  # the bounced message's Message-ID, when the source gives it
    day: int = 0  # the lesson it was about, when known (0: unknown)


def lesson_day(message_ids: Iterable[str], course_id: str) -> int:
    """The day in the first of our Message-IDs, `<course.dNN.hash@domain>`; 0 if none is ours."""
    ours = re.compile(rf"^<?{re.escape(course_id)}\.d(\d{{1,4}})\.[0-9a-f]+@[^<>\s]+>?$")
    for message_id in message_ids:
        match = ours.match(message_id.strip())
        if match:
            return int(match[1])
    return 0
