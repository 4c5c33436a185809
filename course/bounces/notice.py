"""What one bounce, complaint or provider event means for one subscriber.

The bounce mailbox and every provider webhook end in the same few verdicts, so the ledger
changes the same way whichever way the news came.
"""

from __future__ import annotations

from dataclasses import dataclass

from course.ledger.schema import Verdict

__all__ = ["Notice", "Verdict"]


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
