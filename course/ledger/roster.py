"""The roster: who is on the course. CSV sync, unsubscribe, resubscribe, the suppression list.

Every change here is one transaction; a stopped subscriber keeps their row and history, so an
address that left never comes back by accident (only `reactivate` brings someone back).
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final, NamedTuple

from sqlalchemy import (
    Connection,
    Insert,
    Update,
    and_,
    bindparam,
    func,
    null,
    or_,
    select,
    update,
)

from course.errors import LedgerError
from course.ledger.chunks import IN_CHUNK, in_chunks
from course.ledger.database import Database
from course.ledger.records import (
    Departure,
    ListRow,
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
    SUBSCRIBER_REFS,
    SUBSCRIBERS,
    DeliveryState,
    SubscriberStatus,
    UTCDateTime,
    require_utc,
)

# Statuses as stored -> the enum member, so a million loaded rows share a few objects.
_STATUS: Final = {status.value: status for status in SubscriberStatus}
_STOPPED: Final = frozenset(SubscriberStatus) - {SubscriberStatus.ACTIVE}


# Stands in for a time while a statement's parameters are named; never stored.
_PLACEHOLDER_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)


class Stop(NamedTuple):
    """One address to suppress: as which status, why, and when it happened."""

    email: str
    status: SubscriberStatus
    reason: str
    at: datetime


# (timezone, now, when their last lesson went out or None) -> when their next lesson is due.
ResumeDue = Callable[[str, datetime, datetime | None], datetime]


class Roster:
    """The subscribers of one ledger."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def sync(
        self,
        rows: Iterable[ListRow],
        *,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
        before_suppressing: Callable[[Sequence[Departure]], None] | None = None,
        resume_due: ResumeDue | None = None,
    ) -> SyncSummary:
        """Make the ledger follow the list's current rows, in one transaction.

        `rows` is streamed in batches: neither the list nor the roster is ever held whole.

        A SubscriberRecord is someone the list has as subscribed. A new address becomes active
        from day 1, joined at its subscribed_at (or now), due at first_due(timezone, joined_at).
        A known one gets a changed email spelling, name, timezone or fields; a removed
        subscriber who is listed again is active again from their next_day, due at
        resume_due(timezone, now, last lesson's time) when given (never a second lesson on
        one local date), else at first_due(timezone, now). Unsubscribed, bounced and
        completed subscribers are never reactivated here (unsubscribed and bounced ones are
        counted as `held`). Duplicate addresses: the first row wins.

        A Departure is a row that says its address is not to be mailed: an active subscriber
        stops with the row's reason. One that says `unsubscribed` or `bounced` puts the
        address on the suppression list, even if the ledger never knew it.
        `before_suppressing` is called, inside the transaction and before the ledger changes
        them, with those of a batch that were known here and not suppressed yet (the runtime
        logs them to the suppression log first); if it raises, the sync changes nothing.

        Active subscribers the list no longer names become `removed` (never deleted: their
        history stays).
        """
        now = require_utc(now)
        with self._db.writing() as conn:
            # Syncs take turns (on PostgreSQL, the leader syncs, but a `course send` may
            # too): each reads what the previous one wrote. Unsubscribes do not wait for a
            # sync; the statements below are conditional on what they may overwrite.
            self._db.lock_for_transaction(conn, "roster")
            return _ListSync(self._db, conn, now, first_due, before_suppressing, resume_due).run(
                rows
            )

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

    def suppress(self, stops: Sequence[Stop]) -> int:
        """Stop mail to each address as its status says (unsubscribed or bounced), known or
        not, in one transaction; return how many changed.

        An address already unsubscribed or bounced keeps its first time and reason, except
        that a bounce replaces an unsubscribe (the address is gone, which says more). An
        unknown address gets a row, so a CSV that brings it later cannot make it active.
        One upsert per address (as unsubscribe_in(): concurrent writers never collide),
        sent as one executemany per status.
        """
        s = SUBSCRIBERS
        for stop in stops:
            if stop.status not in SUPPRESSED:
                raise ValueError(f"cannot suppress as {stop.status!r}")
        changed = 0
        with self._db.writing() as conn:
            for status in SUPPRESSED:
                group = {stop.email.lower(): stop for stop in stops if stop.status == status}
                if not group:
                    continue
                # Which of them the upsert will change: unknown, or not yet this far stopped.
                kept = (
                    {SubscriberStatus.BOUNCED} if status == SubscriberStatus.BOUNCED else SUPPRESSED
                )
                for keys in in_chunks(sorted(group), IN_CHUNK):
                    found = select(s.c.email_key, s.c.status).where(s.c.email_key.in_(keys))
                    changed -= sum(current in kept for _, current in conn.execute(found))
                changed += len(group)
                stopped = stopped_values(status, "", _PLACEHOLDER_TIME)
                values: dict[str, Any] = {
                    name: bindparam(f"p_{name}")
                    for name in suppressed_row("", "", _PLACEHOLDER_TIME, status)
                }
                upsert = self._db.upsert(
                    s,
                    values,
                    key=("email_key",),
                    changed={name: values[name] for name in stopped},
                    # Not NOT IN (...): its expanding parameter cannot go in an executemany.
                    where=and_(*(s.c.status != stopped_status for stopped_status in kept)),
                )
                rows = [
                    {
                        f"p_{name}": value
                        for name, value in suppressed_row(
                            stop.email, stop.reason, require_utc(stop.at), status
                        ).items()
                    }
                    for stop in group.values()
                ]
                conn.execute(upsert, rows)
        return changed

    def give_refs(self, refs: Mapping[int, str]) -> None:
        """Record opaque ids (subscriber id -> ref) for subscribers about to be mailed; an id
        already recorded stays."""
        if not refs:
            return
        values = [{"ref": ref, "subscriber_id": sid} for sid, ref in refs.items()]
        with self._db.writing() as conn:
            conn.execute(self._db.insert_or_skip(SUBSCRIBER_REFS), values)

    def fill_refs(self, ref_of: Callable[[str], str]) -> int:
        """Give every subscriber without an opaque id theirs (`ref_of(email_key)`); return how
        many. A scan of the whole roster: for a link or report whose id is not recorded."""
        s, r = SUBSCRIBERS, SUBSCRIBER_REFS
        missing = select(s.c.id, s.c.email_key).where(
            ~select(r.c.subscriber_id).where(r.c.subscriber_id == s.c.id).exists()
        )
        last = filled = 0
        while True:
            # A transaction per chunk: a million new rows never hold the write lock for long.
            with self._db.writing() as conn:
                page = missing.where(s.c.id > last).order_by(s.c.id).limit(_SYNC_CHUNK)
                rows = conn.execute(page).all()
                if not rows:
                    return filled
                values = [{"ref": ref_of(key), "subscriber_id": sid} for sid, key in rows]
                conn.execute(self._db.insert_or_skip(r), values)
            filled += len(values)
            last = rows[-1].id

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
        self,
        email: str,
        *,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
        resume_due: ResumeDue | None = None,
    ) -> bool:
        """The operator re-subscribes someone: active again from their next_day.

        Due at resume_due(timezone, now, last lesson's time) when given (so the planner can
        keep them from a second lesson on one local date), else at first_due(timezone, now).
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
                if resume_due is None:
                    due = first_due(row.timezone, now)
                else:
                    due = resume_due(row.timezone, now, last_lesson_at(conn, row.id))
                resume(conn, row.id, row.status, row.next_day, due, now, REASON_REACTIVATED)
        return True

    def set_meta(self, key: str, value: str) -> None:
        """Store a fact about the roster's source, e.g. the fingerprint of the CSV last synced."""
        with self._db.writing() as conn:
            conn.execute(self._db.upsert(META, {"key": key, "value": value}, key=("key",)))

    def first_meta(self, key: str, value: str) -> str:
        """Store `value` under `key` unless the key holds one already; return what it holds.

        For facts set once, such as the ledger's identity: of two processes starting at the
        same moment, both come away with the same value.
        """
        with self._db.writing() as conn:
            conn.execute(self._db.insert_or_skip(META).values(key=key, value=value))
            held: str = conn.execute(select(META.c.value).where(META.c.key == key)).scalar_one()
        return held


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


def suppressed_row(
    email: str,
    how: str,
    now: datetime,
    status: SubscriberStatus = SubscriberStatus.UNSUBSCRIBED,
) -> dict[str, Any]:
    """A subscriber row for an address suppressed before it was ever synced."""
    return {
        "email": email,
        "email_key": email.lower(),
        "name": "",
        "timezone": "UTC",
        "fields": "{}",
        "joined_at": now,
        "next_day": 1,
        "created_at": now,
        **stopped_values(status, how, now),
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


def last_lesson_at(conn: Connection, subscriber_id: int) -> datetime | None:
    """When the subscriber's latest lesson went out (or failed for good); None before day 1."""
    d = DELIVERIES
    moved_on = (DeliveryState.SENT, DeliveryState.FAILED)
    latest: datetime | None = conn.execute(
        select(func.max(func.coalesce(d.c.sent_at, d.c.updated_at))).where(
            d.c.subscriber_id == subscriber_id, d.c.state.in_(moved_on)
        )
    ).scalar()
    return latest


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

# List rows per batch: each batch looks up its addresses, then writes in one executemany() per
# kind of change. Big enough to amortise the round trips, small enough that a 1,000,000-row
# import never holds more than a batch of rows and parameters.
_SYNC_CHUNK: Final = 5_000
_ACTIVE: Final = SubscriberStatus.ACTIVE.value
# How strongly a departure keeps mail away: of two for one address, the stronger is applied.
_DEPARTURE_WEIGHT: Final = {
    SubscriberStatus.REMOVED: 1,
    SubscriberStatus.UNSUBSCRIBED: 2,
    SubscriberStatus.BOUNCED: 2,
}


class _Known(NamedTuple):
    """An existing subscriber, as sync() needs it for diffing against the list."""

    id: int
    # _csv_digest() of what a list row can change, rather than the row itself; a 64-bit hash
    # collision (odds about 1 in 10^19 per changed row) would only hold one rename back until
    # that row changes again.
    digest: int
    status: SubscriberStatus
    next_day: int


def _csv_digest(email: str, name: str, timezone: str, fields_json: str) -> int:
    return hash((email, name, timezone, fields_json))


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
    # ON CONFLICT DO NOTHING: an address recorded meanwhile (an unsubscribe, or an earlier
    # row of this list under another spelling) keeps its row. Inline: no RETURNING of the id.
    return db.insert_or_skip(SUBSCRIBERS).values(values).inline()


def _suppress_from_list(db: Database) -> Insert:
    """Put an address on the suppression list, known or not, unless it is on it already."""
    s = SUBSCRIBERS
    values: dict[str, Any] = {name: bindparam(name) for name in _NEW_SUBSCRIBER_COLUMNS}
    stopped = ("status", "status_reason", "status_at", "updated_at")
    changed: dict[str, Any] = {name: bindparam(name) for name in stopped}
    changed["next_due_at"] = null()
    # The statuses as parameters of their own: the statement goes to the driver as it is
    # (Database.driver_sql), and an IN list would need SQLAlchemy to expand it.
    suppressed = s.c.status.not_in([bindparam("unsubscribed"), bindparam("bounced")])
    return db.upsert(s, values, key=("email_key",), changed=changed, where=suppressed)


def _stop_from_list() -> Update:
    """Stop an active subscriber whose row says they are not subscribed now."""
    s = SUBSCRIBERS
    return (
        update(s)
        .where(s.c.email_key == bindparam("key"), s.c.status == bindparam("active"))
        .values(
            status=bindparam("removed"),
            status_reason=bindparam("reason"),
            status_at=bindparam("now"),
            next_due_at=null(),
            updated_at=bindparam("now"),
        )
    )


# The constant parameters of those two statements.
_SUPPRESS_CONSTANTS: Final = {status.value: status.value for status in SUPPRESSED}
_STOP_CONSTANTS: Final = {
    "active": SubscriberStatus.ACTIVE.value,
    "removed": SubscriberStatus.REMOVED.value,
}

_KNOWN_COLUMNS: Final = (
    SUBSCRIBERS.c.email_key,
    SUBSCRIBERS.c.id,
    SUBSCRIBERS.c.email,
    SUBSCRIBERS.c.name,
    SUBSCRIBERS.c.timezone,
    SUBSCRIBERS.c.fields,
    SUBSCRIBERS.c.status,
    SUBSCRIBERS.c.next_day,
)
_LOOKUP: Final = select(*_KNOWN_COLUMNS).where(
    SUBSCRIBERS.c.email_key.in_(bindparam("keys", expanding=True))
)


class _InsertWriter:
    """Runs the sync's bulk inserts on a thread of their own, one batch behind the reading.

    The database drivers release the GIL while the database works, so reading and preparing
    the next batch of the list overlaps writing this one, on a machine with a core to spare.
    At most one batch is in flight. Every other statement of the sync calls `wait()` first,
    so it sees every row inserted before it, and the connection is never used by two threads
    at once.
    """

    def __init__(self, conn: Connection, sql: str) -> None:
        self._conn = conn
        self._sql = sql
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="course-sync")
        self._pending: Future[int] | None = None
        self.inserted = 0

    def submit(self, rows: list[tuple[Any, ...]]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._insert, rows)

    def wait(self) -> None:
        """Until the batch in flight is written; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.inserted += pending.result()

    def close(self) -> None:
        """Wait for the batch in flight (after an error too), then end the thread."""
        try:
            if self._pending is not None:
                wait([self._pending])
        finally:
            self._pool.shutdown()

    def _insert(self, rows: list[tuple[Any, ...]]) -> int:
        added = self._conn.exec_driver_sql(self._sql, rows).rowcount
        # Rows an ON CONFLICT skipped were not added (a driver that cannot say counts all).
        return added if added >= 0 else len(rows)


class _ListSync:
    """One sync() inside one transaction: the list streamed through in batches.

    Which known subscribers the list still names is kept as one byte per subscriber id that
    existed when the sync began (the `ceiling`), so finding those it no longer names needs
    neither the list nor the roster in memory.
    """

    def __init__(
        self,
        db: Database,
        conn: Connection,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
        before_suppressing: Callable[[Sequence[Departure]], None] | None = None,
        resume_due: ResumeDue | None = None,
    ) -> None:
        self._conn = conn
        self._now = now
        self._first_due = first_due
        self._before_suppressing = before_suppressing
        self._resume_due = resume_due
        # New rows go straight to the driver, in its SQL (Database.driver_sql), with their
        # times converted by UTCDateTime itself: SQLAlchemy's per-row parameter processing
        # was 40% of a 1,000,000-row import.
        insert_sql, order = db.driver_sql_positional(_new_subscriber(db))
        if order != _NEW_SUBSCRIBER_COLUMNS:
            raise LedgerError(f"bug: the new-subscriber insert takes {order}")
        self._writer = _InsertWriter(conn, insert_sql)
        self._suppress_sql = db.driver_sql(_suppress_from_list(db))
        self._stop_sql = db.driver_sql(_stop_from_list())
        self._to_db = functools.partial(UTCDateTime().process_bind_param, dialect=conn.dialect)
        self._now_db = self._to_db(now)
        ceiling = conn.execute(select(func.max(SUBSCRIBERS.c.id))).scalar()
        self._ceiling: int = ceiling or 0
        self._named = bytearray(self._ceiling + 1)
        self._inserts: list[tuple[Any, ...]] = []
        self._due_now: dict[str, Any] = {}
        self._updates: list[dict[str, Any]] = []
        self._counts = dict.fromkeys(SyncSummary.__slots__, 0)

    def run(self, rows: Iterable[ListRow]) -> SyncSummary:
        stream = iter(rows)
        try:
            while batch := list(islice(stream, _SYNC_CHUNK)):
                self._batch(batch)
            self._writer.wait()
        finally:
            # Before the transaction ends, whatever ended the sync: no insert runs after it.
            self._writer.close()
        self._counts["added"] = self._writer.inserted
        self._remove_unnamed()
        return SyncSummary(**self._counts)

    def _batch(self, batch: list[ListRow]) -> None:
        records: dict[str, SubscriberRecord] = {}
        departures: dict[str, Departure] = {}
        # Into a ledger that was empty when the sync began, every record is new: an address
        # repeated under another spelling meets the insert's ON CONFLICT (the first wins).
        add = None if self._ceiling else self._add
        for row in batch:
            key = row.email.lower()
            if isinstance(row, SubscriberRecord):
                if add is not None:
                    add(key, row)
                else:
                    records.setdefault(key, row)
                continue
            earlier = departures.get(key)
            if earlier is None or _DEPARTURE_WEIGHT[row.status] > _DEPARTURE_WEIGHT[earlier.status]:
                departures[key] = row
        known = self._known([*records, *departures]) if self._ceiling else {}
        for key, record in records.items():
            self._record(key, record, known.get(key))
        self._flush_inserts()
        self._flush_updates()
        # After the records: a departure for an address also listed as subscribed wins.
        self._departures(departures, known)

    def _known(self, keys: list[str]) -> dict[str, _Known]:
        self._writer.wait()
        found: dict[str, _Known] = {}
        for chunk in in_chunks(keys, IN_CHUNK):
            rows = self._conn.execute(_LOOKUP, {"keys": chunk})
            for key, subscriber_id, email, name, zone, fields, status, day in rows:
                digest = _csv_digest(email, name, zone, fields)
                found[key] = _Known(subscriber_id, digest, _STATUS[status], day)
        return found

    def _record(self, key: str, record: SubscriberRecord, old: _Known | None) -> None:
        if old is None:
            self._add(key, record)
            return
        if old.id > self._ceiling or self._named[old.id]:
            return  # added or named by an earlier batch of this sync: the first row wins
        self._named[old.id] = 1
        if old.status in SUPPRESSED:
            self._counts["held"] += 1
        fields_json = fields_to_json(record.fields)
        changed = _csv_digest(record.email, record.name, record.timezone, fields_json) != old.digest
        if changed:
            self._update(old.id, record, fields_json)
        if old.status == SubscriberStatus.REMOVED:
            self._rejoin(old, record)
            self._counts["rejoined"] += 1
        else:
            self._counts["updated" if changed else "unchanged"] += 1

    def _add(self, key: str, record: SubscriberRecord) -> None:
        now_db, zone = self._now_db, record.timezone
        joined_at = record.subscribed_at
        if joined_at is None:
            # Joining now: day 1's due time depends only on the zone.
            joined_db = now_db
            due_db = self._due_now.get(zone)
            if due_db is None:
                due_db = self._due_now[zone] = self._to_db(self._first_due(zone, self._now))
        else:
            joined_db = self._to_db(joined_at)
            due_db = self._to_db(self._first_due(zone, joined_at))
        # In the order of _NEW_SUBSCRIBER_COLUMNS.
        self._inserts.append(
            (
                record.email,
                key,
                record.name,
                zone,
                fields_to_json(record.fields),
                joined_db,
                _ACTIVE,
                now_db,
                REASON_ADDED,
                1,
                due_db,
                now_db,
                now_db,
            )
        )

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

    def _rejoin(self, old: _Known, record: SubscriberRecord) -> None:
        self._writer.wait()
        if self._resume_due is None:
            due = self._first_due(record.timezone, self._now)
        else:
            last = last_lesson_at(self._conn, old.id)
            due = self._resume_due(record.timezone, self._now, last)
        resume(self._conn, old.id, old.status, old.next_day, due, self._now, REASON_REJOINED)

    def _departures(self, departures: Mapping[str, Departure], known: Mapping[str, _Known]) -> None:
        suppress: list[dict[str, Any]] = []
        known_suppressed: list[Departure] = []
        stop: list[dict[str, Any]] = []
        for key, departure in departures.items():
            old = known.get(key)
            if old is not None and old.id <= self._ceiling:
                self._named[old.id] = 1
            was_active = old is not None and old.status == SubscriberStatus.ACTIVE
            if departure.status in SUPPRESSED:
                if old is None or old.status not in SUPPRESSED:
                    suppress.append(self._suppressed_row(key, departure))
                    if old is not None:
                        known_suppressed.append(departure)
                    self._counts["suppressed"] += 1
                    self._counts["stopped"] += was_active
            else:
                # By key whatever the lookup said: an address added earlier in this sync
                # under another spelling stops too.
                stop.append(
                    {**_STOP_CONSTANTS, "key": key, "reason": departure.reason, "now": self._now_db}
                )
                self._counts["stopped"] += was_active
        if suppress or stop:
            self._writer.wait()
        if known_suppressed and self._before_suppressing is not None:
            self._before_suppressing(known_suppressed)
        if suppress:
            self._conn.exec_driver_sql(self._suppress_sql, suppress)
        if stop:
            self._conn.exec_driver_sql(self._stop_sql, stop)

    def _suppressed_row(self, key: str, departure: Departure) -> dict[str, Any]:
        now_db = self._now_db
        return {
            "email": departure.email,
            "email_key": key,
            "name": "",
            "timezone": "UTC",
            "fields": "{}",
            "joined_at": now_db,
            "status": departure.status.value,
            "status_at": now_db,
            "status_reason": departure.reason,
            "next_day": 1,
            "next_due_at": None,
            "created_at": now_db,
            "updated_at": now_db,
            **_SUPPRESS_CONSTANTS,
        }

    def _remove_unnamed(self) -> None:
        """Active subscribers who were in the ledger before this sync and the list no longer
        names become `removed`."""
        if not self._ceiling:
            return
        s = SUBSCRIBERS
        named = self._named
        # Streamed (a server-side cursor on PostgreSQL), not fetched whole.
        active = (
            select(s.c.id)
            .where(s.c.status == SubscriberStatus.ACTIVE, s.c.id <= self._ceiling)
            .execution_options(yield_per=10_000)
        )
        gone = array("q")
        streamed = self._conn.execute(active)
        for (subscriber_id,) in streamed:
            if not named[subscriber_id]:
                gone.append(subscriber_id)
        removed = stopped_values(SubscriberStatus.REMOVED, REASON_REMOVED, self._now)
        for ids in in_chunks(gone, IN_CHUNK):
            # Still active: someone who unsubscribed meanwhile stays unsubscribed.
            result = self._conn.execute(
                update(s)
                .where(s.c.id.in_(list(ids)), s.c.status == SubscriberStatus.ACTIVE)
                .values(removed)
            )
            self._counts["removed"] += result.rowcount

    def _flush_inserts(self) -> None:
        if self._inserts:
            self._writer.submit(self._inserts)
            self._inserts = []

    def _flush_updates(self) -> None:
        if self._updates:
            self._writer.wait()
            s = SUBSCRIBERS
            self._conn.execute(update(s).where(s.c.id == bindparam("b_id")), self._updates)
            self._updates = []
