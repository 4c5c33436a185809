"""Bounce notices: late bounces, complaints and provider events, each taken in exactly once.

A notice carries a key that is the same every time the same event arrives (a provider's
event id, the hash of a mailbox message). Recording it and changing the subscriber happen in
one transaction, so a replayed event finds its key taken and changes nothing, and a crash
leaves either both or neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, select, update

from course.ledger.database import Database
from course.ledger.roster import SUPPRESSED, stopped_values, unsubscribe_in
from course.ledger.schema import (
    BOUNCE_NOTICES,
    DELIVERIES,
    SUBSCRIBERS,
    DeliveryState,
    SubscriberStatus,
    Verdict,
    require_utc,
)

MAX_DETAIL = 500


class NoticeResult(StrEnum):
    CHANGED = "changed"  # the subscriber is now bounced or unsubscribed
    RECORDED = "recorded"  # kept (a note, or nothing left to change), status as it was
    DUPLICATE = "duplicate"  # this event was taken in before: nothing done


@dataclass(frozen=True, slots=True)
class NoticeView:
    """One recorded notice, for `course status`."""

    email: str
    verdict: Verdict
    source: str
    detail: str
    received_at: datetime


class Notices:
    """Records notices and applies their verdicts to the roster."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def take(
        self,
        *,
        key: str,
        verdict: Verdict,
        email: str,
        detail: str,
        source: str,
        evidence: str,
        now: datetime,
        day: int = 0,
    ) -> NoticeResult:
        """Record the notice and apply its verdict, unless its key was taken before.

        bounced:      a known subscriber who is not already suppressed becomes `bounced`;
        complaint:    the address is unsubscribed with the reason "complaint: ..." (recorded
                      even if the ledger has never seen it, so it stays suppressed);
        unsubscribed: likewise, with the reason "unsubscribed at ...";
        noted:        kept for `course status`; ignored: kept as seen. Neither changes status.
        A bounce that says which day's lesson it was (`day`) also marks that delivery
        `bounced`, with the diagnostic as its reply.
        """
        now = require_utc(now)
        # Details come from strangers (bounce texts, webhook bodies) and end up on a terminal.
        detail = "".join(c if c.isprintable() else " " for c in " ".join(detail.split()))
        detail = detail[:MAX_DETAIL]
        row = {
            "event_key": key[:255],
            "source": source,
            "verdict": verdict,
            "email": email,
            "email_key": email.lower(),
            "detail": detail,
            "evidence": evidence,
            "changed": 0,
            "received_at": now,
        }
        # RETURNING says whether the row went in: rowcount does not, on PostgreSQL, for an
        # insert that returns its primary key.
        insert_new = self._db.insert_or_skip(BOUNCE_NOTICES).values(row)
        with self._db.writing() as conn:
            if conn.execute(insert_new.returning(BOUNCE_NOTICES.c.id)).first() is None:
                return NoticeResult.DUPLICATE
            reason = _reason(verdict, detail, source, evidence)
            if not _apply(self._db, conn, verdict, email, reason, now):
                return NoticeResult.RECORDED
            n = BOUNCE_NOTICES
            conn.execute(update(n).where(n.c.event_key == row["event_key"]).values(changed=1))
            if verdict == Verdict.BOUNCED and day > 0:
                _bounce_delivery(conn, email, day, f"{detail} ({source})", now)
        return NoticeResult.CHANGED

    def taken(self, key: str) -> bool:
        """Whether a notice with this key was taken in before."""
        n = BOUNCE_NOTICES
        with self._db.reading() as conn:
            found = conn.execute(select(n.c.id).where(n.c.event_key == key[:255])).first()
        return found is not None

    def bind(self, key: str, value: str, *, source: str, now: datetime) -> str:
        """Keep `value` under `key` if the key is new; return what the key holds now.

        For single-use proofs: a Mailgun signing token bound to the event it signed.
        """
        now = require_utc(now)
        n = BOUNCE_NOTICES
        row = {
            "event_key": key[:255],
            "source": source,
            "verdict": Verdict.IGNORED,
            "email": "",
            "email_key": "",
            "detail": value,
            "evidence": "single-use key",
            "changed": 0,
            "received_at": now,
        }
        with self._db.writing() as conn:
            conn.execute(self._db.insert_or_skip(n).values(row))
            held: str = conn.execute(
                select(n.c.detail).where(n.c.event_key == row["event_key"])
            ).scalar_one()
        return held

    def recent(self, verdicts: tuple[Verdict, ...], *, limit: int = 50) -> list[NoticeView]:
        """The latest notices with these verdicts, newest first."""
        n = BOUNCE_NOTICES
        query = (
            select(n.c.email, n.c.verdict, n.c.source, n.c.detail, n.c.received_at)
            .where(n.c.verdict.in_(verdicts), n.c.email != "")
            .order_by(n.c.received_at.desc(), n.c.id.desc())
            .limit(limit)
        )
        with self._db.reading() as conn:
            return [
                NoticeView(r.email, Verdict(r.verdict), r.source, r.detail, r.received_at)
                for r in conn.execute(query)
            ]


def _bounce_delivery(conn: Connection, email: str, day: int, reply: str, now: datetime) -> None:
    """The lesson went out (`sent`) and came back later: it is `bounced` after all."""
    s, d = SUBSCRIBERS, DELIVERIES
    subscriber = select(s.c.id).where(s.c.email_key == email.lower()).scalar_subquery()
    conn.execute(
        update(d)
        .where(d.c.subscriber_id == subscriber, d.c.day == day, d.c.state == DeliveryState.SENT)
        .values(state=DeliveryState.BOUNCED, last_reply=reply, updated_at=now)
    )


def _reason(verdict: Verdict, detail: str, source: str, evidence: str) -> str:
    where = f"{source}, {evidence}" if evidence else source
    if verdict == Verdict.COMPLAINED:
        return f"complaint: {detail} ({where})" if detail else f"complaint ({where})"
    if verdict == Verdict.UNSUBSCRIBED:
        return f"unsubscribed at {source}" + (f": {detail}" if detail else "")
    return f"{detail} ({where})" if detail else f"bounced ({where})"


def _apply(
    db: Database, conn: Connection, verdict: Verdict, email: str, reason: str, now: datetime
) -> bool:
    """Suppress the address as the verdict says; whether that changed its status.

    Each is one conditional statement, so a sync or an unsubscribe landing at the same
    moment (another worker, the unsubscribe endpoint) never collides with it.
    """
    s = SUBSCRIBERS
    if verdict == Verdict.BOUNCED:
        # A bounce says nothing about an address we never sent to: known ones only.
        bounced = conn.execute(
            update(s)
            .where(s.c.email_key == email.lower(), s.c.status.not_in(SUPPRESSED))
            .values(stopped_values(SubscriberStatus.BOUNCED, reason, now))
        )
        return bounced.rowcount > 0
    if verdict in (Verdict.COMPLAINED, Verdict.UNSUBSCRIBED):
        return unsubscribe_in(db, conn, email, reason, now)
    return False
