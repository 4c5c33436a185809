"""What one bounce, complaint or provider event means for one subscriber.

The bounce mailbox and every provider webhook end in the same few verdicts, so the ledger
changes the same way whichever way the news came.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    BOUNCED = "bounced"  # permanent failure: suppressed as bounced, with the diagnostic
    NOTED = "noted"  # delayed, temporary or policy: shown in `course status`, never suppresses
    COMPLAINED = "complaint"  # marked as spam: unsubscribed with the reason "complaint"
    UNSUBSCRIBED = "unsubscribed"  # unsubscribed at the provider
    IGNORED = "ignored"  # auto-replies, success notices, events we do not act on


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
