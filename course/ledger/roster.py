"""The roster: who is on the course. CSV sync, unsubscribe, resubscribe, the suppression list.

Every change here is one transaction; a stopped subscriber keeps their row and history, so an
address that left never comes back by accident (only `reactivate` brings someone back).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, Insert, bindparam, or_, select, update

from course.errors import LedgerError
from course.ledger.chunks import IN_CHUNK, in_chunks
from course.ledger.database import Database
from course.ledger.records import (
    SubscriberRecord,
    SubscriberView,
    SyncSummary,
    fields_to_json,
    subscriber_view,
)
from course.ledger.schema import (
    DELIVERIES,
    META,
    REASON_ADDED,
    REASON_REACTIVATED,
    REASON_REJOINED,
    REASON_REMOVED,
    SUBSCRIBERS,
    DeliveryState,
    SubscriberStatus,
    UTCDateTime,
    require_utc,
)

# Statuses as stored -> the enum member, so a million loaded rows share a few objects.
_STATUS: Final = {status.value: status for status in SubscriberStatus}
_STOPPED: Final = frozenset(SubscriberStatus) - {SubscriberStatus.ACTIVE}


class Roster:
    """The subscribers of one ledger."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def sync(
        self,
        subscribers: Sequence[SubscriberRecord],
        *,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
    ) -> SyncSummary:
        """Make the ledger follow the CSV's current rows, in one transaction.

        New addresses become active from day 1, joined at their subscribed_at (or now), due at
        first_due(timezone, joined_at). Known ones get a changed email spelling, name, timezone
        or fields. Active subscribers missing from the CSV become `removed` (never deleted:
        their history stays); a removed subscriber who reappears is active again from their
        next_day, due at first_due(timezone, now). Unsubscribed, bounced and completed
        subscribers are never reactivated here. Duplicate addresses: the first row wins.
        """
        now = require_utc(now)
        wanted = _by_email_key(subscribers)
        with self._db.writing() as conn:
            # Syncs take turns (on PostgreSQL, the leader syncs, but a `course send` may
            # too): each reads what the previous one wrote. Unsubscribes do not wait for a
            # sync; the statements below are conditional on what they may overwrite.
            self._db.lock_for_transaction(conn, "roster")
            known = _load_known(conn)
            return _CsvSync(self._db, conn, now, first_due).run(wanted, known)

    def set_status(
        self, email: str, status: SubscriberStatus, *, reason: str, now: datetime
    ) -> bool:
        """Stop a subscriber (e.g. unsubscribe by hand); False if the address is unknown."""
        now = require_utc(now)
        if status not in _STOPPED:
            raise ValueError(f"cannot set status {status!r}; use reactivate() to make active")
        s = SUBSCRIBERS
        with self._db.writing() as conn:
            result = conn.execute(
                update(s)
                .where(s.c.email_key == email.lower())
                .values(stopped_values(SubscriberStatus(status), reason, now))
            )
        return result.rowcount > 0

    def unsubscribe(self, email: str, *, how: str, now: datetime) -> bool:
        """Suppress an address from now on; True if this call changed anything.

        An address the ledger has never seen is recorded too, so it stays suppressed if it
        turns up in the CSV later. Unsubscribing twice keeps the first time and reason. One
        statement (an upsert), so concurrent unsubscribes and syncs never collide.
        """
        now = require_utc(now)
        with self._db.writing() as conn:
            return unsubscribe_in(self._db, conn, email, how, now)

    def suppressions(self) -> list[SubscriberView]:
        """Unsubscribed and bounced addresses: one list that nothing is ever sent to."""
        s = SUBSCRIBERS
        query = select(s).where(
            or_(s.c.status == SubscriberStatus.UNSUBSCRIBED, s.c.status == SubscriberStatus.BOUNCED)
        )
        with self._db.reading() as conn:
            rows = conn.execute(query.order_by(s.c.status_at, s.c.id)).all()
        return [subscriber_view(row) for row in rows]

    def reactivate(
        self, email: str, *, now: datetime, first_due: Callable[[str, datetime], datetime]
    ) -> bool:
        """The operator re-subscribes someone: active again from their next_day.

        False if the address is unknown; LedgerError if they completed the course (nothing is
        left to send). A lesson that had bounced or was waiting for a retry is sent again.
        """
        now = require_utc(now)
        s = SUBSCRIBERS
        with self._db.writing() as conn:
            row = conn.execute(
                select(s.c.id, s.c.status, s.c.timezone, s.c.next_day)
                .where(s.c.email_key == email.lower())
                .with_for_update()  # PostgreSQL: nobody changes them until this commits
            ).first()
            if row is None:
                return False
            if row.status == SubscriberStatus.COMPLETED:
                raise LedgerError(f"{email} has completed the course; there is nothing to resend")
            if row.status != SubscriberStatus.ACTIVE:
                due = first_due(row.timezone, now)
                resume(conn, row.id, row.status, row.next_day, due, now, REASON_REACTIVATED)
        return True

    def set_meta(self, key: str, value: str) -> None:
        """Store a fact about the roster's source, e.g. the fingerprint of the CSV last synced."""
        with self._db.writing() as conn:
            conn.execute(self._db.upsert(META, {"key": key, "value": value}, key=("key",)))


# --- status changes ---------------------------------------------------------------------------

SUPPRESSED: Final = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def unsubscribe_in(db: Database, conn: Connection, email: str, reason: str, now: datetime) -> bool:
    """Unsubscribe `email` in `conn`'s transaction unless it is already suppressed; whether
    that changed anything.

    One statement, an upsert: an address never seen is recorded as unsubscribed, a known
    one is stopped, and concurrent writers (a sync, another unsubscribe) never collide on
    the address.
    """
    s = SUBSCRIBERS
    upsert = db.upsert(
        s,
        suppressed_row(email, reason, now),
        key=("email_key",),
        changed=stopped_values(SubscriberStatus.UNSUBSCRIBED, reason, now),
        where=s.c.status.not_in(SUPPRESSED),
    )
    # A row comes back when one was inserted or updated. (Not rowcount: for an INSERT that
    # SQLAlchemy gives an implicit RETURNING, PostgreSQL's driver reports -1.)
    return conn.execute(upsert.returning(s.c.id)).first() is not None


def suppressed_row(email: str, how: str, now: datetime) -> dict[str, Any]:
    """A subscriber row for an address unsubscribed before it was ever synced."""
    return {
        "email": email,
        "email_key": email.lower(),
        "name": "",
        "timezone": "UTC",
        "fields": "{}",
        "joined_at": now,
        "next_day": 1,
        "created_at": now,
        **stopped_values(SubscriberStatus.UNSUBSCRIBED, how, now),
    }


def stopped_values(status: SubscriberStatus, reason: str, now: datetime) -> dict[str, Any]:
    """The column values of a subscriber who is no longer sent anything."""
    return {
        "status": status,
        "status_reason": reason,
        "status_at": now,
        "next_due_at": None,
        "updated_at": now,
    }


def resume(
    conn: Connection,
    subscriber_id: int,
    status: SubscriberStatus,
    next_day: int,
    due: datetime,
    now: datetime,
    reason: str,
) -> bool:
    """Make a subscriber active again from their next_day, due at `due`.

    Only if their status is still `status`, as read: an unsubscribe that landed meanwhile
    wins. False if it did.
    """
    s, d = SUBSCRIBERS, DELIVERIES
    resumed = conn.execute(
        update(s)
        .where(s.c.id == subscriber_id, s.c.status == status)
        .values(
            status=SubscriberStatus.ACTIVE,
            status_reason=reason,
            status_at=now,
            next_due_at=due,
            updated_at=now,
        )
    )
    if not resumed.rowcount:
        return False
    # A lesson left retrying or bounced when they stopped already has its delivery row, which
    # keeps due() from offering it as a fresh lesson: retry that row instead, at `due`.
    conn.execute(
        update(d)
        .where(
            d.c.subscriber_id == subscriber_id,
            d.c.day == next_day,
            d.c.state.in_((DeliveryState.RETRYING, DeliveryState.BOUNCED)),
        )
        .values(state=DeliveryState.RETRYING, next_attempt_at=due, updated_at=now)
    )
    return True


# --- sync -------------------------------------------------------------------------------------

# Rows per executemany() call during sync: big enough to amortise the round trip,
# small enough that the parameter lists of a 1,000,000-row import never sit in memory at once.
_SYNC_CHUNK: Final = 5_000


class _Known(NamedTuple):
    """An existing subscriber, as sync() needs it for diffing against the CSV."""

    id: int
    # _csv_digest() of what a CSV row can change. Keeping a million names and field sets
    # instead would double sync's memory; a 64-bit hash collision (odds about 1 in 10^19 per
    # changed row) would only hold one rename back until that row changes again.
    digest: int
    status: SubscriberStatus
    next_day: int


def _csv_digest(email: str, name: str, timezone: str, fields_json: str) -> int:
    return hash((email, name, timezone, fields_json))


def _by_email_key(subscribers: Iterable[SubscriberRecord]) -> dict[str, SubscriberRecord]:
    wanted: dict[str, SubscriberRecord] = {}
    for record in subscribers:
        wanted.setdefault(record.email.lower(), record)
    return wanted


def _load_known(conn: Connection) -> dict[str, _Known]:
    s = SUBSCRIBERS
    rows = conn.execute(
        select(
            s.c.email_key,
            s.c.id,
            s.c.email,
            s.c.name,
            s.c.timezone,
            s.c.fields,
            s.c.status,
            s.c.next_day,
        )
    )
    return {
        key: _Known(subscriber_id, _csv_digest(email, name, zone, fields), _STATUS[status], day)
        for key, subscriber_id, email, name, zone, fields, status, day in rows
    }


_NEW_SUBSCRIBER_COLUMNS: Final = (
    "email",
    "email_key",
    "name",
    "timezone",
    "fields",
    "joined_at",
    "status",
    "status_at",
    "status_reason",
    "next_day",
    "next_due_at",
    "created_at",
    "updated_at",
)


def _new_subscriber(db: Database) -> Insert:
    values: dict[str, Any] = {name: bindparam(name) for name in _NEW_SUBSCRIBER_COLUMNS}
    # inline: no RETURNING of the new id, which nothing reads.
    return db.insert_or_skip(SUBSCRIBERS).values(values).inline()


class _CsvSync:
    """One sync() pass inside one transaction: classifies each CSV row, writes in chunks."""

    def __init__(
        self,
        db: Database,
        conn: Connection,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
    ) -> None:
        self._conn = conn
        self._now = now
        self._first_due = first_due
        # New rows go straight to the driver, in its SQL (Database.driver_sql), with their
        # times converted by UTCDateTime itself: SQLAlchemy's per-row parameter processing
        # was 40% of a 1,000,000-row import.
        # ON CONFLICT DO NOTHING: an address an unsubscribe recorded since this sync read the
        # roster is theirs, not a collision.
        self._insert_sql = db.driver_sql(_new_subscriber(db))
        self._to_db = functools.partial(UTCDateTime().process_bind_param, dialect=conn.dialect)
        self._now_db = self._to_db(now)
        self._inserts: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._counts = dict.fromkeys(("added", "updated", "removed", "rejoined", "unchanged"), 0)

    def run(
        self, wanted: Mapping[str, SubscriberRecord], known: Mapping[str, _Known]
    ) -> SyncSummary:
        for key, record in wanted.items():
            self._apply(key, record, known.get(key))
        self._flush_inserts()
        self._flush_updates()
        self._remove_missing(wanted, known)
        return SyncSummary(**self._counts)

    def _apply(self, key: str, record: SubscriberRecord, old: _Known | None) -> None:
        fields_json = fields_to_json(record.fields)
        if old is None:
            self._add(key, record, fields_json)
            return
        changed = _csv_digest(record.email, record.name, record.timezone, fields_json) != old.digest
        if changed:
            self._update(old.id, record, fields_json)
        if old.status == SubscriberStatus.REMOVED:
            self._rejoin(old, record)
            self._counts["rejoined"] += 1
        else:
            self._counts["updated" if changed else "unchanged"] += 1

    def _add(self, key: str, record: SubscriberRecord, fields_json: str) -> None:
        now, now_db, to_db = self._now, self._now_db, self._to_db
        joined_at = record.subscribed_at or now
        self._inserts.append(
            {
                "email": record.email,
                "email_key": key,
                "name": record.name,
                "timezone": record.timezone,
                "fields": fields_json,
                "joined_at": now_db if joined_at is now else to_db(joined_at),
                "status": SubscriberStatus.ACTIVE.value,
                "status_at": now_db,
                "status_reason": REASON_ADDED,
                "next_day": 1,
                "next_due_at": to_db(self._first_due(record.timezone, joined_at)),
                "created_at": now_db,
                "updated_at": now_db,
            }
        )
        self._counts["added"] += 1
        if len(self._inserts) >= _SYNC_CHUNK:
            self._flush_inserts()

    def _update(self, subscriber_id: int, record: SubscriberRecord, fields_json: str) -> None:
        self._updates.append(
            {
                "b_id": subscriber_id,
                "email": record.email,
                "name": record.name,
                "timezone": record.timezone,
                "fields": fields_json,
                "updated_at": self._now,
            }
        )
        if len(self._updates) >= _SYNC_CHUNK:
            self._flush_updates()

    def _rejoin(self, old: _Known, record: SubscriberRecord) -> None:
        due = self._first_due(record.timezone, self._now)
        resume(self._conn, old.id, old.status, old.next_day, due, self._now, REASON_REJOINED)

    def _remove_missing(
        self, wanted: Mapping[str, SubscriberRecord], known: Mapping[str, _Known]
    ) -> None:
        s = SUBSCRIBERS
        gone = [
            old.id
            for key, old in known.items()
            if old.status == SubscriberStatus.ACTIVE and key not in wanted
        ]
        removed = stopped_values(SubscriberStatus.REMOVED, REASON_REMOVED, self._now)
        for ids in in_chunks(gone, IN_CHUNK):
            # Still active: someone who unsubscribed meanwhile stays unsubscribed.
            self._conn.execute(
                update(s)
                .where(s.c.id.in_(ids), s.c.status == SubscriberStatus.ACTIVE)
                .values(removed)
            )
        self._counts["removed"] = len(gone)

    def _flush_inserts(self) -> None:
        if self._inserts:
            self._conn.exec_driver_sql(self._insert_sql, self._inserts)
            self._inserts = []

    def _flush_updates(self) -> None:
        if self._updates:
            s = SUBSCRIBERS
            self._conn.execute(update(s).where(s.c.id == bindparam("b_id")), self._updates)
            self._updates = []
