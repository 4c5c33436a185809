"""What a message in the bounce mailbox says, before anyone looks it up in the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReportKind(StrEnum):
    """What kind of message arrived at the bounce address."""

    DELIVERY = "delivery report"  # a DSN, or a bounce in an MTA's own format
    COMPLAINT = "complaint"  # an ARF feedback report (RFC 5965) of abuse
    AUTO_REPLY = "auto-reply"  # out of office, vacation (RFC 3834)
    NO_ACTION = "no action"  # a success DSN, a read receipt, a not-spam report
    UNKNOWN = "unrecognised"


class FailureKind(StrEnum):
    """How final one recipient's failure is."""

    PERMANENT = "permanent"  # 5.x.x: the address is dead
    TEMPORARY = "temporary"  # delayed, 4.x.x: it may still arrive
    POLICY = "policy"  # 5.7.x: refused for the sender's reasons, not the address's


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a report says was not (yet) delivered.

    `addresses` are the ones the report names for it, best first (Original-Recipient, then
    Final-Recipient); empty when the report names none it could read, so that only the VERP
    token of the address it was sent to can say whose failure it is.
    """

    kind: FailureKind
    addresses: tuple[str, ...]
    status: str = ""  # the RFC 3463 code, e.g. "5.1.1"
    diagnostic: str = ""  # the remote server's words, one line
    named_by: str = ""  # the field or detector that names the address


@dataclass(frozen=True, slots=True)
class Report:
    """The classification of one message; pure data, nothing looked up yet."""

    kind: ReportKind
    subject: str = ""
    sender: str = ""
    failures: tuple[Failure, ...] = ()
    # A complaint's recipients as the report names them (Original-Rcpt-To, the original To).
    complained: tuple[str, ...] = ()
    # Every address where our VERP envelope sender may show up: the bounce's own envelope
    # (Delivered-To, X-Original-To, To...), the DSN's X-Postfix-Sender, the ARF
    # Original-Mail-From, the returned message's Return-Path.
    envelope: tuple[str, ...] = ()
    # List-Unsubscribe URLs of the returned original message (our signed unsubscribe link).
    unsubscribe_urls: tuple[str, ...] = ()
    # Message-IDs the report refers to (the returned message's, In-Reply-To, References...):
    # ours say which day's lesson it was.
    message_ids: tuple[str, ...] = ()
    note: str = ""  # why it is unrecognised, or what kind of no-action it is

    @property
    def title(self) -> str:
        """One line for listings: who sent it and what it is called."""
        return f"{self.sender or '(no sender)'}: {self.subject or '(no subject)'}"
