"""sync(): the ledger follows the subscriber CSV, a million rows in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from sys import intern
from typing import Any, Final, NamedTuple

from sqlalchemy import Connection, bindparam, select, update

from course.ledger.chunks import IN_CHUNK, in_chunks
from course.ledger.fastpath import bind_processor, insert_rows
from course.ledger.records import SubscriberRecord, SyncSummary, fields_to_json
from course.ledger.schema import (
    ACTIVE,
    REASON_ADDED,
    REASON_REJOINED,
    REASON_REMOVED,
    REMOVED,
    SUBSCRIBERS,
    UTCDateTime,
)
from course.ledger.status import resume, stopped_values

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
    status: str
    next_day: int


def _csv_digest(email: str, name: str, timezone: str, fields_json: str) -> int:
    return hash((email, name, timezone, fields_json))


def by_email_key(subscribers: Iterable[SubscriberRecord]) -> dict[str, SubscriberRecord]:
    wanted: dict[str, SubscriberRecord] = {}
    for record in subscribers:
        wanted.setdefault(record.email.lower(), record)
    return wanted


def load_known(conn: Connection) -> dict[str, _Known]:
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
        key: _Known(subscriber_id, _csv_digest(email, name, zone, fields), intern(status), day)
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


class CsvSync:
    """One sync() pass inside one transaction: classifies each CSV row, writes in chunks."""

    def __init__(
        self, conn: Connection, now: datetime, first_due: Callable[[str, datetime], datetime]
    ) -> None:
        self._conn = conn
        self._now = now
        self._first_due = first_due
        # New rows skip SQLAlchemy's per-row processing (see insert_rows): their times are
        # converted here, by the same bind processor a Core statement would use.
        self._to_db = bind_processor(UTCDateTime(), conn.dialect)
        self._now_db = self._to_db(now)
        self._inserts: list[tuple[Any, ...]] = []
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
        if old.status == REMOVED:
            self._rejoin(old, record)
            self._counts["rejoined"] += 1
        else:
            self._counts["updated" if changed else "unchanged"] += 1

    def _add(self, key: str, record: SubscriberRecord, fields_json: str) -> None:
        now_db, to_db = self._now_db, self._to_db
        joined_at = record.subscribed_at or self._now
        joined_db = now_db if joined_at is self._now else to_db(joined_at)
        next_due_db = to_db(self._first_due(record.timezone, joined_at))
        self._inserts.append(  # in _NEW_SUBSCRIBER_COLUMNS order
            (
                record.email,
                key,
                record.name,
                record.timezone,
                fields_json,
                joined_db,
                ACTIVE,
                now_db,  # status_at
                REASON_ADDED,
                1,  # next_day
                next_due_db,
                now_db,  # created_at
                now_db,  # updated_at
            )
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
        resume(self._conn, old.id, old.next_day, due, self._now, REASON_REJOINED)

    def _remove_missing(
        self, wanted: Mapping[str, SubscriberRecord], known: Mapping[str, _Known]
    ) -> None:
        s = SUBSCRIBERS
        gone = [old.id for key, old in known.items() if old.status == ACTIVE and key not in wanted]
        removed = stopped_values(REMOVED, REASON_REMOVED, self._now)
        for ids in in_chunks(gone, IN_CHUNK):
            self._conn.execute(update(s).where(s.c.id.in_(ids)).values(removed))
        self._counts["removed"] = len(gone)

    def _flush_inserts(self) -> None:
        if self._inserts:
            insert_rows(self._conn, SUBSCRIBERS, _NEW_SUBSCRIBER_COLUMNS, self._inserts)
            self._inserts = []

    def _flush_updates(self) -> None:
        if self._updates:
            s = SUBSCRIBERS
            self._conn.execute(update(s).where(s.c.id == bindparam("b_id")), self._updates)
            self._updates = []
