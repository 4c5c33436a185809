"""The send ledger: the only truth about who got which lesson.

One row per subscriber (where they are in the course) and one row per (subscriber, day)
delivery (what happened to that lesson). Everything goes through SQLAlchemy Core with
portable statements, so the same ledger runs on SQLite (the default, in WAL mode) and on
PostgreSQL. No method reads the clock: every one takes `now`, an aware datetime.

A lesson goes out in three steps: `due()` lists what is due, `claim()` inserts a `claimed`
delivery row (the UNIQUE (subscriber_id, day) key lets exactly one process win it), the
message is handed to the mail server, and `record()` stores the outcome (or `journal()`
does, cheaply, for `apply_journal()` to record when the batch is done).

The crash rule (see `Ledger.recover_claims`): a delivery claimed by a runner that died
before recording the outcome is sent again, so a lesson is never skipped; at most that one
message is duplicated.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import (
    Connection,
    Engine,
    Insert,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from course.errors import LedgerError
from course.ledger.engine import (
    BUSY_TIMEOUT_MS,
    DEFAULT_URL,
    WRITE_OPTION,
    driver_transaction,
    ledger_transaction,
    open_engine,
    parse_url,
    resolve_sqlite,
)
from course.ledger.lease import (
    LEASE_NAME,
    lease_held_message,
    lease_is_live,
)
from course.ledger.records import (
    DELIVERY_VIEW_COLUMNS,
    DeliveryView,
    Outcome,
    Recipient,
    SubscriberRecord,
    SubscriberView,
    SyncSummary,
    delivery_view,
    recipient_of,
    subscriber_view,
)
from course.ledger.schema import (
    ACTIVE,
    BOUNCED,
    CLAIMED,
    COMPLETED,
    DELIVERIES,
    DELIVERY_STATES,
    FAILED,
    META,
    METADATA,
    MIGRATIONS,
    OUTCOME_JOURNAL,
    PROBLEM_STATES,
    REASON_ADDED,
    REASON_COMPLETED,
    REASON_REACTIVATED,
    REASON_REJOINED,
    REASON_REMOVED,
    REMOVED,
    REPLY_RECOVERED,
    RETRYING,
    RUNNER,
    SCHEMA_VERSION,
    SENT,
    STATUSES,
    SUBSCRIBERS,
    UNSUBSCRIBED,
    Migration,
    UTCDateTime,
    migrate,
    require_utc,
    schema_version_of,
)
from course.ledger.sending import (
    append_to_journal,
    check_outcome,
    claimable,
    claimed_with,
    fold_journal,
    fresh_lessons_due,
    retries_due,
)
from course.ledger.status import resume, stopped_values, suppressed_row
from course.ledger.sync import CsvSync, by_email_key, load_known

__all__ = [
    "ACTIVE",
    "BOUNCED",
    "BUSY_TIMEOUT_MS",
    "CLAIMED",
    "COMPLETED",
    "DEFAULT_URL",
    "DELIVERIES",
    "DELIVERY_STATES",
    "FAILED",
    "LEASE_NAME",
    "META",
    "METADATA",
    "MIGRATIONS",
    "OUTCOME_JOURNAL",
    "PROBLEM_STATES",
    "REASON_ADDED",
    "REASON_COMPLETED",
    "REASON_REACTIVATED",
    "REASON_REJOINED",
    "REASON_REMOVED",
    "REMOVED",
    "REPLY_RECOVERED",
    "RETRYING",
    "RUNNER",
    "SCHEMA_VERSION",
    "SENT",
    "STATUSES",
    "SUBSCRIBERS",
    "UNSUBSCRIBED",
    "DeliveryView",
    "Ledger",
    "Migration",
    "Outcome",
    "Recipient",
    "SubscriberRecord",
    "SubscriberView",
    "SyncSummary",
    "UTCDateTime",
    "require_utc",
]

# --- the ledger -------------------------------------------------------------------------------


class Ledger:
    """The send ledger on one database. Open it with `Ledger.open()`; `close()` when done."""

    def __init__(self, engine: Engine, label: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._label = label  # the database as the operator wrote it, for messages
        self._lease_owner = ""  # the runner lease this object holds; "" for none
        self._write_lock = threading.Lock()
        self._write_conn: Connection | None = None

    @classmethod
    def open(cls, url: str, *, base_dir: Path) -> Ledger:
        """Open the ledger at `url`, creating and migrating its schema as needed.

        A relative SQLite path is resolved against `base_dir`, and its directory is created.
        LedgerError names the URL or file when it is invalid, unreadable or too new.
        """
        parsed = parse_url(url)
        label = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite":
            parsed, label = resolve_sqlite(parsed, base_dir)
        ledger = cls(open_engine(parsed, label), label)
        try:
            ledger._upgrade()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _upgrade(self) -> None:
        # Look first without the write lock, so `course status` does not queue behind a sync.
        with self._reading() as conn:
            up_to_date = schema_version_of(conn) == len(MIGRATIONS)
        if not up_to_date:
            with self._writing() as conn:
                # MIGRATIONS as this package names it: tests replace course.ledger.MIGRATIONS.
                migrate(conn, self._label, MIGRATIONS)  # looks again, now under the write lock

    def close(self) -> None:
        with self._write_lock:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- subscribers -----------------------------------------------------------------------

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
        wanted = by_email_key(subscribers)
        with self._writing() as conn:
            known = load_known(conn)
            return CsvSync(conn, now, first_due).run(wanted, known)

    def set_status(self, email: str, status: str, *, reason: str, now: datetime) -> bool:
        """Stop a subscriber (e.g. unsubscribe by hand); False if the address is unknown."""
        now = require_utc(now)
        if status not in STATUSES or status == ACTIVE:
            raise ValueError(f"cannot set status {status!r}; use reactivate() to make active")
        s = SUBSCRIBERS
        with self._writing() as conn:
            result = conn.execute(
                update(s)
                .where(s.c.email_key == email.lower())
                .values(stopped_values(status, reason, now))
            )
        return result.rowcount > 0

    def unsubscribe(self, email: str, *, how: str, now: datetime) -> bool:
        """Suppress an address from now on; True if this call changed anything.

        An address the ledger has never seen is recorded too, so it stays suppressed if it
        turns up in the CSV later. Unsubscribing twice keeps the first time and reason.
        """
        now = require_utc(now)
        s = SUBSCRIBERS
        key = email.lower()
        with self._writing() as conn:
            status = conn.execute(select(s.c.status).where(s.c.email_key == key)).scalar()
            if status in (UNSUBSCRIBED, BOUNCED):
                return False
            if status is None:
                conn.execute(insert(s).values(suppressed_row(email, how, now)))
            else:
                conn.execute(
                    update(s)
                    .where(s.c.email_key == key)
                    .values(stopped_values(UNSUBSCRIBED, how, now))
                )
        return True

    def suppressions(self) -> list[SubscriberView]:
        """Unsubscribed and bounced addresses: one list that nothing is ever sent to."""
        s = SUBSCRIBERS
        query = select(s).where(or_(s.c.status == UNSUBSCRIBED, s.c.status == BOUNCED))
        with self._reading() as conn:
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
        with self._writing() as conn:
            row = conn.execute(
                select(s.c.id, s.c.status, s.c.timezone, s.c.next_day).where(
                    s.c.email_key == email.lower()
                )
            ).first()
            if row is None:
                return False
            if row.status == COMPLETED:
                raise LedgerError(f"{email} has completed the course; there is nothing to resend")
            if row.status != ACTIVE:
                due = first_due(row.timezone, now)
                resume(conn, row.id, row.next_day, due, now, REASON_REACTIVATED)
        return True

    # --- sending ---------------------------------------------------------------------------

    def due(self, now: datetime, *, limit: int = 1000) -> list[Recipient]:
        """Up to `limit` deliveries due at `now`, earliest first.

        These are active subscribers whose next lesson is due and has no delivery row yet,
        and `retrying` deliveries whose next attempt is due and whose subscriber is active.
        Both are index range scans, so "nothing due" costs milliseconds at any size.
        """
        now = require_utc(now)
        with self._reading() as conn:
            rows = [
                *conn.execute(fresh_lessons_due(now, limit)),
                *conn.execute(retries_due(now, limit)),
            ]
        rows.sort(key=lambda row: (row.due_at, row.subscriber_id))
        return [recipient_of(row) for row in rows[:limit]]

    def claim(self, recipients: Sequence[Recipient], *, now: datetime) -> list[Recipient]:
        """Claim these deliveries for sending; return only the ones this call won.

        A new lesson is claimed by inserting its `claimed` delivery row, a retry by flipping
        `retrying` to `claimed` with a conditional UPDATE. Whoever inserts or flips the row
        first wins it (UNIQUE (subscriber_id, day), and the state condition); every other
        claimer, in this process or another, gets nothing for it. Only an active
        subscriber's next lesson can be claimed, so an unsubscribe that landed after due()
        still stops the send. Send exactly what this returns, then record() the outcomes.
        """
        now = require_utc(now)
        by_lesson: dict[tuple[int, int], Recipient] = {}
        for recipient in recipients:
            by_lesson.setdefault((recipient.subscriber_id, recipient.day), recipient)
        token = uuid.uuid4().hex
        # due() reports a retry with its earlier attempts; a fresh lesson has none yet.
        retries = {lesson for lesson, r in by_lesson.items() if r.attempts > 0}
        with self._writing() as conn:
            lessons = claimable(conn, by_lesson.keys())
            self._claim_lessons(conn, lessons, retries, token, now)
            won = claimed_with(conn, token, lessons)
        return [recipient for lesson, recipient in by_lesson.items() if lesson in won]

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        """Store what happened to claimed deliveries, in one transaction.

        sent:     the delivery is `sent`; the subscriber moves to the next day, due at
                  outcome.next_due_at, or `completed` when that is None.
        failed:   the delivery is `failed` (given up, not retried forever); the subscriber
                  moves on exactly as for sent.
        retrying: the delivery waits until outcome.next_attempt_at; the subscriber is unchanged.
        bounced:  the delivery is `bounced`; the subscriber stops with status `bounced`.
        An outcome for a delivery that is not `claimed` (already recorded) is ignored, logged.
        """
        now = require_utc(now)
        for outcome in outcomes:
            check_outcome(outcome)
        # Through the journal, so recording and folding a journal are one code path.
        with self._writing() as conn:
            append_to_journal(conn, outcomes, now)
            fold_journal(conn)

    def journal(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        """Store outcomes durably now, to take effect at apply_journal(); one transaction.

        For recording message by message while a batch is sent: an outcome in the journal
        is as safe from a crash as a recorded one (recover_claims() applies it first), at a
        fraction of the cost. Until applied, its delivery still reads as `claimed`.
        """
        now = require_utc(now)
        for outcome in outcomes:
            check_outcome(outcome)
        if outcomes:
            with self._writing(lean=True) as conn:
                append_to_journal(conn, outcomes, now)

    def apply_journal(self) -> int:
        """Record the journal's outcomes, exactly as record() would have; return how many."""
        with self._writing() as conn:
            return fold_journal(conn)

    def release(self, recipients: Sequence[Recipient], *, now: datetime) -> int:
        """Give back claims that were never handed to the backend; return how many.

        A fresh lesson's claim row is deleted, so it is due again as if never claimed; a
        retry goes back to `retrying`, due at once. Only rows still `claimed` are touched.
        """
        now = require_utc(now)
        d = DELIVERIES
        fresh = [{"b_sid": r.subscriber_id, "b_day": r.day} for r in recipients if not r.attempts]
        retries = [{"b_sid": r.subscriber_id, "b_day": r.day} for r in recipients if r.attempts]
        lesson = (
            d.c.subscriber_id == bindparam("b_sid"),
            d.c.day == bindparam("b_day"),
            d.c.state == CLAIMED,
        )
        with self._writing() as conn:
            if fresh:
                conn.execute(sql_delete(d).where(*lesson), fresh)
            if retries:
                back = (
                    update(d)
                    .where(*lesson)
                    .values(state=RETRYING, next_attempt_at=now, updated_at=now)
                )
                conn.execute(back, retries)
        return len(fresh) + len(retries)

    def recover_claims(self, *, now: datetime) -> int:
        """Apply the crash rule; return how many deliveries it put back.

        The crash rule: a delivery is `claimed` before its message is handed to the mail
        server, and becomes `sent` only once the server has accepted it. A runner that dies
        in between leaves the row `claimed`, and nobody can know whether the server got the
        message. Such a row (one claimed by a runner that no longer holds the lease) is put
        back to `retrying`, due at once, and its lesson is sent again. So a lesson is never
        skipped; at worst, that subscriber receives that one lesson twice. A crash can
        duplicate at most the messages that were in flight, never more than one claim batch.

        Call it after acquire_runner(): claims of the runner holding the lease are left alone.
        """
        now = require_utc(now)
        d = DELIVERIES
        with self._writing() as conn:
            fold_journal(conn)  # what the runner did record is not in doubt
            orphaned = update(d).where(d.c.state == CLAIMED)
            holder = conn.execute(
                select(RUNNER.c.owner).where(RUNNER.c.name == LEASE_NAME)
            ).scalar_one_or_none()
            if holder is not None:
                orphaned = orphaned.where(d.c.claimed_by != holder)
            result = conn.execute(
                orphaned.values(
                    state=RETRYING,
                    next_attempt_at=now,
                    attempts=d.c.attempts + 1,  # it may well have been sent: it was an attempt
                    last_reply=REPLY_RECOVERED,
                    updated_at=now,
                )
            )
        return result.rowcount

    def _claim_lessons(
        self,
        conn: Connection,
        lessons: list[tuple[int, int]],
        retries: set[tuple[int, int]],
        token: str,
        now: datetime,
    ) -> None:
        """Flip the retries' rows to claimed and insert rows for the fresh lessons."""
        d = DELIVERIES
        claimed = {
            "state": CLAIMED,
            "claimed_at": now,
            "claimed_by": self._lease_owner,
            "claim_token": token,
            "updated_at": now,
        }
        keys = [{"b_sid": sid, "b_day": day} for sid, day in lessons if (sid, day) in retries]
        retry_of_lesson = update(d).where(
            d.c.subscriber_id == bindparam("b_sid"),
            d.c.day == bindparam("b_day"),
            d.c.state == RETRYING,
        )
        if keys:
            conn.execute(retry_of_lesson.values(claimed), keys)
        fresh = {"attempts": 0, "next_attempt_at": None, "message_id": "", "last_reply": ""}
        rows = [
            {"subscriber_id": sid, "day": day, **fresh, **claimed}
            for sid, day in lessons
            if (sid, day) not in retries
        ]
        if rows:
            conn.execute(self._insert_or_skip(DELIVERIES), rows)

    def _insert_or_skip(self, table: Table) -> Insert:
        # INSERT ... ON CONFLICT DO NOTHING reads the same on both databases, but SQLAlchemy
        # builds it only from each dialect's own insert().
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # --- the runner lease ------------------------------------------------------------------

    def acquire_runner(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        """Take the runner lease, so a second `course run` on this ledger refuses to start.

        `owner` must be unique per process run (e.g. a uuid4). A lease held by another owner is
        taken over when its heartbeat is older than `stale_after`, or when it names a pid on
        this host that is no longer alive; otherwise LedgerError says who holds it.
        """
        now = require_utc(now)
        try:
            self._take_lease(owner=owner, pid=pid, host=host, now=now, stale_after=stale_after)
        except IntegrityError:
            # Two runners inserted the first lease row at once; looking again names the winner.
            self._take_lease(owner=owner, pid=pid, host=host, now=now, stale_after=stale_after)
        self._lease_owner = owner

    def heartbeat(self, *, owner: str, now: datetime) -> None:
        """Show the lease holder is alive; LedgerError if another runner has taken it over."""
        now = require_utc(now)
        r = RUNNER
        with self._writing() as conn:
            result = conn.execute(
                update(r).where(r.c.name == LEASE_NAME, r.c.owner == owner).values(heartbeat_at=now)
            )
        if result.rowcount == 0:
            raise LedgerError(
                f"lost the lease on the ledger {self._label}: another `course run` took it over"
            )

    def release_runner(self, *, owner: str) -> None:
        """Give the lease up (if `owner` still holds it)."""
        r = RUNNER
        with self._writing() as conn:
            conn.execute(sql_delete(r).where(r.c.name == LEASE_NAME, r.c.owner == owner))
        if self._lease_owner == owner:
            self._lease_owner = ""

    def _take_lease(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        r = RUNNER
        lease = {"owner": owner, "pid": pid, "host": host, "started_at": now, "heartbeat_at": now}
        with self._writing() as conn:
            holder = conn.execute(select(r).where(r.c.name == LEASE_NAME)).first()
            if holder is None:
                conn.execute(insert(r).values(name=LEASE_NAME, **lease))
                return
            if holder.owner != owner and lease_is_live(holder, host, now, stale_after):
                raise LedgerError(lease_held_message(holder, self._label))
            conn.execute(update(r).where(r.c.name == LEASE_NAME).values(lease))

    # --- reports ---------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A stored fact about the ledger, or None."""
        with self._reading() as conn:
            value: str | None = conn.execute(
                select(META.c.value).where(META.c.key == key)
            ).scalar_one_or_none()
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self._writing() as conn:
            changed = conn.execute(update(META).where(META.c.key == key).values(value=value))
            if changed.rowcount == 0:
                conn.execute(insert(META).values(key=key, value=value))

    def state_counts(self) -> dict[tuple[int, str], int]:
        """(day, delivery state) -> number of deliveries."""
        d = DELIVERIES
        query = select(d.c.day, d.c.state, func.count()).group_by(d.c.day, d.c.state)
        with self._reading() as conn:
            return {(day, state): count for day, state, count in conn.execute(query)}

    def status_counts(self) -> dict[str, int]:
        """Subscriber status -> number of subscribers."""
        s = SUBSCRIBERS
        query = select(s.c.status, func.count()).group_by(s.c.status)
        with self._reading() as conn:
            return dict(conn.execute(query).all())

    def subscriber(self, email: str) -> SubscriberView | None:
        s = SUBSCRIBERS
        with self._reading() as conn:
            row = conn.execute(select(s).where(s.c.email_key == email.lower())).first()
        return None if row is None else subscriber_view(row)

    def history(self, email: str) -> list[DeliveryView]:
        """Every delivery row of this subscriber, by day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(*DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(s.c.email_key == email.lower())
            .order_by(d.c.day)
        )
        with self._reading() as conn:
            return [delivery_view(row) for row in conn.execute(query)]

    def problems(self, *, limit: int | None = None) -> list[tuple[str, DeliveryView]]:
        """(email, delivery) for every retrying, failed or bounced delivery, by email and day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(s.c.email, *DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(d.c.state.in_(PROBLEM_STATES))
            .order_by(s.c.email_key, d.c.day)
            .limit(limit)
        )
        with self._reading() as conn:
            return [(row.email, delivery_view(row)) for row in conn.execute(query)]

    def next_due_at(self) -> datetime | None:
        """The earliest instant at which due() will return something, or None if never.

        Lets a simulator jump straight to the next event.
        """
        far_future = datetime.max.replace(tzinfo=UTC)
        with self._reading() as conn:
            candidates = [
                conn.execute(fresh_lessons_due(far_future, 1)).first(),
                conn.execute(retries_due(far_future, 1)).first(),
            ]
        instants = [row.due_at for row in candidates if row is not None]
        return min(instants, default=None)

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def _writing(self, *, lean: bool = False) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), one per process at a time.

        Threads of one process queue on a lock rather than on SQLite's busy handler, which
        sleeps for milliseconds at a time; other processes still wait on busy_timeout.
        `lean` transactions may only run statements through execute_prepared().
        """
        with self._write_lock:
            # One connection kept for writing: checking one out of the pool for every
            # transaction cost more than the transaction when recording message by message.
            if self._write_conn is None or self._write_conn.invalidated:
                self._write_conn = self._writer.connect()
            if lean and self._write_conn.dialect.name == "sqlite":
                with driver_transaction(self._write_conn, self._label):
                    yield self._write_conn
            else:
                with ledger_transaction(self._write_conn, self._label) as conn:
                    yield conn

    def _reading(self) -> AbstractContextManager[Connection]:
        """A read transaction: one consistent snapshot; under WAL it never blocks writers."""
        return ledger_transaction(self._engine, self._label)
