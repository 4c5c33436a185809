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

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from sys import intern
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, Self, TypeVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Insert,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

from course.errors import LedgerError

_LOG = logging.getLogger(__name__)

# Subscriber statuses. Only `active` subscribers are ever sent anything.
ACTIVE: Final = "active"
COMPLETED: Final = "completed"
UNSUBSCRIBED: Final = "unsubscribed"
BOUNCED: Final = "bounced"
REMOVED: Final = "removed"
STATUSES: Final = (ACTIVE, COMPLETED, UNSUBSCRIBED, BOUNCED, REMOVED)

# Delivery states.
CLAIMED: Final = "claimed"
SENT: Final = "sent"
RETRYING: Final = "retrying"
FAILED: Final = "failed"
DELIVERY_STATES: Final = (CLAIMED, SENT, RETRYING, FAILED, BOUNCED)
PROBLEM_STATES: Final = (RETRYING, FAILED, BOUNCED)

DEFAULT_URL: Final = "sqlite:///state/course.db"
LEASE_NAME: Final = "course run"
BUSY_TIMEOUT_MS: Final = 30_000

REASON_ADDED: Final = "added from CSV"
REASON_REMOVED: Final = "removed from CSV"
REASON_REJOINED: Final = "back in the CSV"
REASON_REACTIVATED: Final = "reactivated by the operator"
REASON_COMPLETED: Final = "course complete"
REPLY_RECOVERED: Final = (
    "recovered: claimed by a runner that stopped before recording the outcome; sending again"
)

# Rows per executemany() call during sync: big enough to amortise the round trip,
# small enough that the parameter lists of a 1,000,000-row import never sit in memory at once.
_SYNC_CHUNK: Final = 5_000
# Ids per IN (...) list; far below SQLite's bound-parameter limit.
_IN_CHUNK: Final = 500
FEW_OUTCOMES: Final = 16
# Execution option that makes the SQLite `begin` hook emit BEGIN IMMEDIATE (see _begin_sqlite).
_WRITE_OPTION: Final = "ledger_write"
_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)


# --- time -------------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC (SQLite has no time zones); read back as aware UTC.

    Naive datetimes are refused: a naive value is ambiguous, and guessing is how lessons go out
    at 3 a.m.
    """

    impl = DateTime  # TIMESTAMP WITHOUT TIME ZONE, holding UTC
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # The very text SQLAlchemy's DateTime stores on SQLite ("2024-05-01 08:00:00.000000",
            # fixed width, so it sorts chronologically), but made and parsed by datetime's C
            # isoformat()/fromisoformat(): DateTime's own formatting was half of a big sync.
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return _sqlite_text(value)
        return require_utc(value, "a stored time").replace(tzinfo=None)

    def process_result_value(
        self, value: datetime | str | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


# A sync writes the same few instants (now, and each zone's first 08:00) a million times over.
# Cache keys compare as instants, so equal keys always mean the same UTC text; a naive value
# never equals an aware one, so it cannot hit the cache and is refused below.
@lru_cache(maxsize=4096)
def _sqlite_text(value: datetime) -> str:
    return require_utc(value, "a stored time").replace(tzinfo=None).isoformat(" ", "microseconds")


def require_utc(value: datetime, what: str = "now") -> datetime:
    """`value` converted to UTC; ValueError if it is naive."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


# --- schema -----------------------------------------------------------------------------------

# SQLite only aliases the rowid for exactly INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
_Id = BigInteger().with_variant(Integer(), "sqlite")

METADATA: Final = MetaData()

SCHEMA_VERSION: Final = Table(
    "schema_version",
    METADATA,
    # One row per applied migration; the highest is the database's version.
    Column("version", Integer, primary_key=True, autoincrement=False),
)

SUBSCRIBERS: Final = Table(
    "subscribers",
    METADATA,
    Column("id", _Id, primary_key=True),
    Column("email", String(320), nullable=False),
    # Lower-cased email: addresses are compared case-insensitively.
    Column("email_key", String(320), nullable=False),
    Column("name", Text, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("fields", Text, nullable=False),  # JSON object of the extra CSV columns
    Column("joined_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_at", UTCDateTime, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("next_day", Integer, nullable=False),
    Column("next_due_at", UTCDateTime, nullable=True),  # NULL unless active
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    CheckConstraint(
        "status IN ('active', 'completed', 'unsubscribed', 'bounced', 'removed')",
        name="ck_subscribers_status",
    ),
    # "What is due" is a range scan: status = 'active' AND next_due_at <= now.
    Index("ix_subscribers_status_due", "status", "next_due_at"),
)

DELIVERIES: Final = Table(
    "deliveries",
    METADATA,
    Column("id", _Id, primary_key=True),
    Column("subscriber_id", _Id, ForeignKey("subscribers.id"), nullable=False),
    Column("day", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("message_id", Text, nullable=False),
    Column("last_reply", Text, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    # Lease owner of the claiming runner ("" without a lease): recover_claims() leaves the
    # live runner's claims alone.
    Column("claimed_by", String(200), nullable=False),
    # Random per claim() call: tells that call which rows it actually won.
    Column("claim_token", String(32), nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # The double-send guard: one delivery row per lesson per subscriber, ever.
    UniqueConstraint("subscriber_id", "day", name="uq_deliveries_subscriber_day"),
    CheckConstraint(
        "state IN ('claimed', 'sent', 'retrying', 'failed', 'bounced')",
        name="ck_deliveries_state",
    ),
    Index("ix_deliveries_state_next_attempt", "state", "next_attempt_at"),
)

RUNNER: Final = Table(
    "runner",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# Small facts about the ledger itself, e.g. the fingerprint of the CSV it last synced, so a
# restarted run does not re-import an unchanged million-row file.
META: Final = Table(
    "meta",
    METADATA,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


# Outcomes recorded while a batch is being sent, applied to deliveries and subscribers when
# it ends. Appending a row here costs a tenth of updating both tables and their indexes, and
# a remote backend records every round of a few messages (the crash rule), so the pipeline
# commits thousands of times a minute. No foreign key: its lookup would cost the insert twice.
OUTCOME_JOURNAL: Final = Table(
    "outcome_journal",
    METADATA,
    Column("id", _Id, primary_key=True),
    Column("subscriber_id", _Id, nullable=False),
    Column("day", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("message_id", Text, nullable=False),
    Column("reply", Text, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("next_due_at", UTCDateTime, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
)


# --- migrations -------------------------------------------------------------------------------

Migration = Callable[[Connection], None]


def _v1_initial_schema(conn: Connection) -> None:
    """v1: subscribers, deliveries, the runner lease and meta."""
    # v1 is the tables as declared above. Before a later migration changes one of them,
    # freeze a copy of these v1 definitions here, so an empty database still replays v1 exactly.
    METADATA.create_all(conn, tables=[SUBSCRIBERS, DELIVERIES, RUNNER, META])


def _v2_outcome_journal(conn: Connection) -> None:
    """v2: the outcome journal."""
    METADATA.create_all(conn, tables=[OUTCOME_JOURNAL])


# Migration n (1-based) upgrades a database from version n-1 to n. Append only; never edit.
MIGRATIONS: tuple[Migration, ...] = (_v1_initial_schema, _v2_outcome_journal)


def _schema_version(conn: Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not inspect(conn).has_table(SCHEMA_VERSION.name):
        return 0
    version: int | None = conn.execute(select(func.max(SCHEMA_VERSION.c.version))).scalar_one()
    return version or 0


def _migrate(conn: Connection, label: str) -> None:
    """Bring the schema up to len(MIGRATIONS), or refuse a database from a newer version."""
    SCHEMA_VERSION.create(conn, checkfirst=True)
    found = _schema_version(conn)
    latest = len(MIGRATIONS)
    if found > latest:
        raise LedgerError(
            f"the ledger {label} has schema version {found}, but this version of course "
            f"only knows versions up to {latest}; upgrade course or use another ledger"
        )
    for version in range(found + 1, latest + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(insert(SCHEMA_VERSION).values(version=version))


# --- value objects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """One subscriber as the CSV has it now: what the ledger needs from a row."""

    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    subscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What one sync() changed."""

    added: int
    updated: int
    removed: int
    rejoined: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class Recipient:
    """One due delivery, with what personalisation needs."""

    subscriber_id: int
    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    day: int
    attempts: int
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed delivery.

    For "sent" and "failed", `next_due_at` is when the subscriber's next day is due; None means
    that was the last lesson (the subscriber becomes `completed`). For "retrying",
    `next_attempt_at` is required.
    """

    subscriber_id: int
    day: int
    state: Literal["sent", "retrying", "failed", "bounced"]
    message_id: str = ""
    reply: str = ""
    next_attempt_at: datetime | None = None
    next_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """A subscriber's row, for `course status` and friends."""

    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    status: str
    status_reason: str
    status_at: datetime
    joined_at: datetime
    next_day: int
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery row."""

    day: int
    state: str
    attempts: int
    claimed_at: datetime
    sent_at: datetime | None
    message_id: str
    last_reply: str
    next_attempt_at: datetime | None


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


# --- opening ----------------------------------------------------------------------------------


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(f"invalid ledger URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise LedgerError(
            f"unsupported ledger URL {parsed.render_as_string()!r}: "
            "use sqlite:///path/to/file.db or postgresql://..."
        )
    return parsed


def _resolve_sqlite(parsed: URL, base_dir: Path) -> tuple[URL, str]:
    """The URL with a relative path made absolute against base_dir, and the path as written."""
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return parsed, database or ":memory:"
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerError(f"cannot create the directory for the ledger {database}: {exc}") from exc
    return parsed.set(database=str(path)), database


def _create_engine(parsed: URL, label: str) -> Engine:
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise LedgerError(f"cannot open the ledger {label}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _begin_sqlite)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (see _begin_sqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _begin_sqlite(conn: Connection) -> None:
    # The sqlite3 module would BEGIN only before the first INSERT/UPDATE, so a transaction's
    # reads would not be one snapshot, and a read-then-write transaction could fail with
    # SQLITE_BUSY when upgrading its lock. Writers take the write lock up front instead
    # (waiting up to busy_timeout); readers get a plain BEGIN, which never blocks under WAL.
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    # Straight to the driver (this hook is SQLite's only): exec_driver_sql's bookkeeping
    # cost more than the BEGIN itself, once per recorded round of messages.
    _driver_execute(conn, "BEGIN IMMEDIATE" if immediate else "BEGIN", ())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Sorted keys and fixed separators: equal fields always give equal text (and digest).
_FIELDS_ENCODER: Final = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _fields_json(fields: Mapping[str, str]) -> str:
    if not fields:
        return "{}"
    return _FIELDS_ENCODER.encode(fields if isinstance(fields, dict) else dict(fields))


def _fields(text: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads(text)
    return loaded


# --- the ledger -------------------------------------------------------------------------------


class Ledger:
    """The send ledger on one database. Open it with `Ledger.open()`; `close()` when done."""

    def __init__(self, engine: Engine, label: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
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
        parsed = _parse_url(url)
        label = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() == "sqlite":
            parsed, label = _resolve_sqlite(parsed, base_dir)
        ledger = cls(_create_engine(parsed, label), label)
        try:
            ledger._upgrade()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _upgrade(self) -> None:
        # Look first without the write lock, so `course status` does not queue behind a sync.
        with self._reading() as conn:
            up_to_date = _schema_version(conn) == len(MIGRATIONS)
        if not up_to_date:
            with self._writing() as conn:
                _migrate(conn, self._label)  # looks again, now under the write lock

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
        wanted = _by_email_key(subscribers)
        with self._writing() as conn:
            known = _load_known(conn)
            return _Sync(conn, now, first_due).run(wanted, known)

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
                .values(_stopped(status, reason, now))
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
                conn.execute(insert(s).values(_suppressed_row(email, how, now)))
            else:
                conn.execute(
                    update(s).where(s.c.email_key == key).values(_stopped(UNSUBSCRIBED, how, now))
                )
        return True

    def suppressions(self) -> list[SubscriberView]:
        """Unsubscribed and bounced addresses: one list that nothing is ever sent to."""
        s = SUBSCRIBERS
        query = select(s).where(or_(s.c.status == UNSUBSCRIBED, s.c.status == BOUNCED))
        with self._reading() as conn:
            rows = conn.execute(query.order_by(s.c.status_at, s.c.id)).all()
        return [_subscriber_view(row) for row in rows]

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
                _resume(conn, row.id, row.next_day, due, now, REASON_REACTIVATED)
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
                *conn.execute(_fresh_lessons_due(now, limit)),
                *conn.execute(_retries_due(now, limit)),
            ]
        rows.sort(key=lambda row: (row.due_at, row.subscriber_id))
        return [_recipient(row) for row in rows[:limit]]

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
            lessons = _claimable(conn, by_lesson.keys())
            self._claim_lessons(conn, lessons, retries, token, now)
            won = _claimed_with(conn, token, lessons)
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
            _check_outcome(outcome)
        with self._writing() as conn:
            kept = _claimed_outcomes(conn, outcomes, now)
            _move_subscribers(conn, kept, now)

    def journal(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        """Store outcomes durably now, to take effect at apply_journal(); one transaction.

        For recording message by message while a batch is sent: an outcome in the journal
        is as safe from a crash as a recorded one (recover_claims() applies it first), at a
        fraction of the cost. Until applied, its delivery still reads as `claimed`.
        """
        now = require_utc(now)
        for outcome in outcomes:
            _check_outcome(outcome)
        if outcomes:
            with self._writing(lean=True) as conn:
                _fast(conn, _JOURNAL_OUTCOME, [_journal_params(o, now) for o in outcomes])

    def apply_journal(self) -> int:
        """Record the journal's outcomes, exactly as record() would have; return how many."""
        with self._writing() as conn:
            return _apply_journal(conn)

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
            _apply_journal(conn)  # what the runner did record is not in doubt
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
            if holder.owner != owner and _lease_is_live(holder, host, now, stale_after):
                raise LedgerError(self._lease_held_message(holder))
            conn.execute(update(r).where(r.c.name == LEASE_NAME).values(lease))

    def _lease_held_message(self, holder: Any) -> str:
        started = holder.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return (
            f"another `course run` (pid {holder.pid} on host {holder.host}, started {started}) "
            f"holds the ledger {self._label}; stop it first"
        )

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
        return None if row is None else _subscriber_view(row)

    def history(self, email: str) -> list[DeliveryView]:
        """Every delivery row of this subscriber, by day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(*_DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(s.c.email_key == email.lower())
            .order_by(d.c.day)
        )
        with self._reading() as conn:
            return [_delivery_view(row) for row in conn.execute(query)]

    def problems(self, *, limit: int | None = None) -> list[tuple[str, DeliveryView]]:
        """(email, delivery) for every retrying, failed or bounced delivery, by email and day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(s.c.email, *_DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(d.c.state.in_(PROBLEM_STATES))
            .order_by(s.c.email_key, d.c.day)
            .limit(limit)
        )
        with self._reading() as conn:
            return [(row.email, _delivery_view(row)) for row in conn.execute(query)]

    def next_due_at(self) -> datetime | None:
        """The earliest instant at which due() will return something, or None if never.

        Lets a simulator jump straight to the next event.
        """
        far_future = datetime.max.replace(tzinfo=UTC)
        with self._reading() as conn:
            candidates = [
                conn.execute(_fresh_lessons_due(far_future, 1)).first(),
                conn.execute(_retries_due(far_future, 1)).first(),
            ]
        instants = [row.due_at for row in candidates if row is not None]
        return min(instants, default=None)

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def _writing(self, *, lean: bool = False) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), one per process at a time.

        Threads of one process queue on a lock rather than on SQLite's busy handler, which
        sleeps for milliseconds at a time; other processes still wait on busy_timeout.
        `lean` transactions may only run statements through _fast().
        """
        with self._write_lock:
            # One connection kept for writing: checking one out of the pool for every
            # transaction cost more than the transaction when recording message by message.
            if self._write_conn is None or self._write_conn.invalidated:
                self._write_conn = self._writer.connect()
            if lean and self._write_conn.dialect.name == "sqlite":
                with _driver_transaction(self._write_conn, self._label):
                    yield self._write_conn
            else:
                with _transaction(self._write_conn, self._label) as conn:
                    yield conn

    def _reading(self) -> AbstractContextManager[Connection]:
        """A read transaction: one consistent snapshot; under WAL it never blocks writers."""
        return _transaction(self._engine, self._label)


@contextmanager
def _driver_transaction(conn: Connection, label: str) -> Iterator[None]:
    """BEGIN IMMEDIATE and COMMIT straight on SQLite's driver, around _fast() statements.

    The journal commits once per round of messages; SQLAlchemy's transaction bookkeeping
    cost half as much again as the insert and the commit themselves (bench/send.py).
    """
    driver = conn.connection.dbapi_connection
    assert driver is not None
    with _unusable_as_ledger_error(label):
        _driver_execute(conn, "BEGIN IMMEDIATE", ())
        try:
            yield
        except BaseException:
            driver.rollback()
            raise
        driver.commit()


@contextmanager
def _transaction(source: Engine | Connection, label: str) -> Iterator[Connection]:
    """A transaction, with the database being unusable (locked, unreadable) as LedgerError."""
    with _unusable_as_ledger_error(label):
        if isinstance(source, Engine):
            with source.begin() as conn:
                yield conn
        else:
            with source.begin():
                yield source


@contextmanager
def _unusable_as_ledger_error(label: str) -> Iterator[None]:
    """Locked, read-only, disk full, "file is not a database" become LedgerError: the
    operator can act on these. Constraint and SQL errors are bugs and keep their traceback."""
    try:
        yield
    except DBAPIError as exc:
        if not isinstance(exc, OperationalError) and type(exc) is not DatabaseError:
            raise
        raise LedgerError(f"the ledger {label} cannot be used: {exc.orig}") from exc
    except sqlite3.OperationalError as exc:  # straight from the driver's COMMIT
        raise LedgerError(f"the ledger {label} cannot be used: {exc}") from exc


# --- sync -------------------------------------------------------------------------------------


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


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What `type_` turns a Python value into for this dialect's driver."""
    process = type_.bind_processor(dialect)
    return process if process is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value


def _insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (driver-ready values, in `columns` order) with the driver's executemany().

    The statement is still compiled by SQLAlchemy for the connection's dialect; the rows skip
    SQLAlchemy's per-row parameter processing, which was a third of a 1,000,000-row import.
    So each value must already be what its column's bind processor would make of it.
    """
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
    params: Sequence[tuple[Any, ...]] | list[dict[str, Any]]
    if not compiled.positional:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    elif tuple(compiled.positiontup or ()) == tuple(columns):
        params = rows
    else:
        order = [columns.index(name) for name in compiled.positiontup or ()]
        params = [tuple(row[i] for i in order) for row in rows]
    conn.exec_driver_sql(str(compiled), params)


class _Sync:
    """One sync() pass inside one transaction: classifies each CSV row, writes in chunks."""

    def __init__(
        self, conn: Connection, now: datetime, first_due: Callable[[str, datetime], datetime]
    ) -> None:
        self._conn = conn
        self._now = now
        self._first_due = first_due
        # New rows skip SQLAlchemy's per-row processing (see _insert_rows): their times are
        # converted here, by the same bind processor a Core statement would use.
        self._to_db = _bind_processor(UTCDateTime(), conn.dialect)
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
        fields_json = _fields_json(record.fields)
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
        _resume(self._conn, old.id, old.next_day, due, self._now, REASON_REJOINED)

    def _remove_missing(
        self, wanted: Mapping[str, SubscriberRecord], known: Mapping[str, _Known]
    ) -> None:
        s = SUBSCRIBERS
        gone = [old.id for key, old in known.items() if old.status == ACTIVE and key not in wanted]
        removed = _stopped(REMOVED, REASON_REMOVED, self._now)
        for ids in _chunks(gone, _IN_CHUNK):
            self._conn.execute(update(s).where(s.c.id.in_(ids)).values(removed))
        self._counts["removed"] = len(gone)

    def _flush_inserts(self) -> None:
        if self._inserts:
            _insert_rows(self._conn, SUBSCRIBERS, _NEW_SUBSCRIBER_COLUMNS, self._inserts)
            self._inserts = []

    def _flush_updates(self) -> None:
        if self._updates:
            s = SUBSCRIBERS
            self._conn.execute(update(s).where(s.c.id == bindparam("b_id")), self._updates)
            self._updates = []


def _suppressed_row(email: str, how: str, now: datetime) -> dict[str, Any]:
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
        **_stopped(UNSUBSCRIBED, how, now),
    }


def _stopped(status: str, reason: str, now: datetime) -> dict[str, Any]:
    """The column values of a subscriber who is no longer sent anything."""
    return {
        "status": status,
        "status_reason": reason,
        "status_at": now,
        "next_due_at": None,
        "updated_at": now,
    }


def _resume(
    conn: Connection, subscriber_id: int, next_day: int, due: datetime, now: datetime, reason: str
) -> None:
    """Make a subscriber active again from their next_day, due at `due`."""
    s, d = SUBSCRIBERS, DELIVERIES
    conn.execute(
        update(s)
        .where(s.c.id == subscriber_id)
        .values(status=ACTIVE, status_reason=reason, status_at=now, next_due_at=due, updated_at=now)
    )
    # A lesson left retrying or bounced when they stopped already has its delivery row, which
    # keeps due() from offering it as a fresh lesson: retry that row instead, at `due`.
    conn.execute(
        update(d)
        .where(
            d.c.subscriber_id == subscriber_id,
            d.c.day == next_day,
            d.c.state.in_((RETRYING, BOUNCED)),
        )
        .values(state=RETRYING, next_attempt_at=due, updated_at=now)
    )


# --- due and claim ----------------------------------------------------------------------------


def _fresh_lessons_due(now: datetime, limit: int) -> Select[Any]:
    """Active subscribers whose next lesson is due and has no delivery row yet."""
    s, d = SUBSCRIBERS, DELIVERIES
    has_delivery = (
        select(d.c.id).where(d.c.subscriber_id == s.c.id, d.c.day == s.c.next_day).exists()
    )
    return (
        select(
            s.c.id.label("subscriber_id"),
            s.c.email,
            s.c.name,
            s.c.timezone,
            s.c.fields,
            s.c.next_day.label("day"),
            literal(0, Integer).label("attempts"),
            s.c.joined_at,
            s.c.next_due_at.label("due_at"),
        )
        .where(s.c.status == ACTIVE, s.c.next_due_at <= now, ~has_delivery)
        .order_by(s.c.next_due_at, s.c.id)
        .limit(limit)
    )


def _retries_due(now: datetime, limit: int) -> Select[Any]:
    """`retrying` deliveries whose next attempt is due, for subscribers still active."""
    s, d = SUBSCRIBERS, DELIVERIES
    return (
        select(
            d.c.subscriber_id,
            s.c.email,
            s.c.name,
            s.c.timezone,
            s.c.fields,
            d.c.day,
            d.c.attempts,
            s.c.joined_at,
            d.c.next_attempt_at.label("due_at"),
        )
        .join_from(d, s, d.c.subscriber_id == s.c.id)
        .where(d.c.state == RETRYING, d.c.next_attempt_at <= now, s.c.status == ACTIVE)
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )


def _recipient(row: Any) -> Recipient:
    return Recipient(
        subscriber_id=row.subscriber_id,
        email=row.email,
        name=row.name,
        timezone=row.timezone,
        fields=_fields(row.fields),
        day=row.day,
        attempts=row.attempts,
        joined_at=row.joined_at,
    )


def _claimable(conn: Connection, lessons: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (subscriber, day) lessons that are an active subscriber's next lesson."""
    s = SUBSCRIBERS
    wanted = set(lessons)
    subscriber_ids = sorted({subscriber_id for subscriber_id, _ in wanted})
    current: set[tuple[int, int]] = set()
    for ids in _chunks(subscriber_ids, _IN_CHUNK):
        # Status is checked here rather than in WHERE: given `status = 'active'`, SQLite
        # would scan every active subscriber in the status index instead of looking up ids.
        query = select(s.c.id, s.c.next_day, s.c.status).where(s.c.id.in_(ids))
        current.update(
            (row.id, row.next_day) for row in conn.execute(query) if row.status == ACTIVE
        )
    return sorted(wanted & current)


def _claimed_with(
    conn: Connection, token: str, lessons: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """The lessons whose delivery row carries this claim() call's token."""
    d = DELIVERIES
    subscriber_ids = sorted({subscriber_id for subscriber_id, _ in lessons})
    won: set[tuple[int, int]] = set()
    for ids in _chunks(subscriber_ids, _IN_CHUNK):
        query = select(d.c.subscriber_id, d.c.day).where(
            d.c.subscriber_id.in_(ids), d.c.claim_token == token
        )
        won.update((row.subscriber_id, row.day) for row in conn.execute(query))
    return won


# --- record -----------------------------------------------------------------------------------


def _check_outcome(outcome: Outcome) -> None:
    if outcome.state not in (SENT, RETRYING, FAILED, BOUNCED):
        raise ValueError(f"unknown outcome state {outcome.state!r}")
    if outcome.state == RETRYING and outcome.next_attempt_at is None:
        raise ValueError(
            f"a retrying outcome needs next_attempt_at (subscriber {outcome.subscriber_id}, "
            f"day {outcome.day})"
        )
    for instant in (outcome.next_attempt_at, outcome.next_due_at):
        if instant is not None:
            require_utc(instant, "an outcome's time")


# record() runs a few statements per outcome; built once here with bind parameters, they skip
# SQLAlchemy's per-call statement building, which was most of the time of recording a batch.
_D, _S = DELIVERIES, SUBSCRIBERS
_FINISH_DELIVERY: Final = (
    update(_D)
    .where(
        _D.c.subscriber_id == bindparam("b_id"),
        _D.c.day == bindparam("b_day"),
        _D.c.state == CLAIMED,
    )
    .values(
        state=bindparam("b_state"),
        attempts=_D.c.attempts + 1,
        message_id=bindparam("b_message_id"),
        last_reply=bindparam("b_reply"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        sent_at=bindparam("b_sent_at"),
        updated_at=bindparam("b_now"),
    )
)
_AT_LESSON: Final = (_S.c.id == bindparam("b_id"), _S.c.next_day == bindparam("b_day"))
_NEXT_LESSON: Final = (
    update(_S)
    .where(*_AT_LESSON, _S.c.status == ACTIVE)
    .values(
        next_day=bindparam("b_next_day"),
        next_due_at=bindparam("b_next_due_at"),
        updated_at=bindparam("b_now"),
    )
)
_COMPLETE_COURSE: Final = (
    update(_S)
    .where(*_AT_LESSON, _S.c.status == ACTIVE)
    .values(
        next_day=bindparam("b_next_day"),
        next_due_at=None,
        status=COMPLETED,
        status_reason=REASON_COMPLETED,
        status_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
    )
)
_NEXT_LESSON_STOPPED: Final = (
    update(_S)
    .where(*_AT_LESSON, _S.c.status != ACTIVE)
    .values(next_day=bindparam("b_next_day"), updated_at=bindparam("b_now"))
)
_STOP_BOUNCED: Final = (
    update(_S)
    # An unsubscribe (the person's own choice) or a completion is not overwritten by a bounce.
    .where(_S.c.id == bindparam("b_id"), or_(_S.c.status == ACTIVE, _S.c.status == REMOVED))
    .values(
        status=BOUNCED,
        status_reason=bindparam("b_reply"),
        status_at=bindparam("b_now"),
        next_due_at=None,
        updated_at=bindparam("b_now"),
    )
)


def _claimed_outcomes(
    conn: Connection, outcomes: Sequence[Outcome], now: datetime
) -> list[Outcome]:
    """Store each outcome on its delivery row; return those whose row was `claimed`."""
    if len(outcomes) <= FEW_OUTCOMES:
        # A remote backend records a round of a few messages: each update's row count
        # answers the question without the SELECT, which cost as much as the rest of the
        # transaction. A big local batch is cheaper with one SELECT and one executemany.
        kept = [o for o in outcomes if _fast(conn, _FINISH_DELIVERY, [_finish_params(o, now)])]
    else:
        claimed = _still_claimed(conn, outcomes)
        kept = [o for o in outcomes if (o.subscriber_id, o.day) in claimed]
        _fast(conn, _FINISH_DELIVERY, [_finish_params(o, now) for o in kept])
    recorded = {(o.subscriber_id, o.day) for o in kept}
    for outcome in outcomes:
        if (outcome.subscriber_id, outcome.day) not in recorded:
            _LOG.warning(
                "ignored a %s outcome for subscriber %d day %d: not a claimed delivery",
                outcome.state,
                outcome.subscriber_id,
                outcome.day,
            )
    return kept


_JOURNAL_OUTCOME: Final = insert(OUTCOME_JOURNAL).values(
    subscriber_id=bindparam("b_id"),
    day=bindparam("b_day"),
    state=bindparam("b_state"),
    message_id=bindparam("b_message_id"),
    reply=bindparam("b_reply"),
    next_attempt_at=bindparam("b_next_attempt_at"),
    next_due_at=bindparam("b_next_due_at"),
    recorded_at=bindparam("b_now"),
)


def _journal_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "b_id": outcome.subscriber_id,
        "b_day": outcome.day,
        "b_state": outcome.state,
        "b_message_id": outcome.message_id,
        "b_reply": outcome.reply,
        "b_next_attempt_at": outcome.next_attempt_at,
        "b_next_due_at": outcome.next_due_at,
        "b_now": now,
    }


def _apply_journal(conn: Connection) -> int:
    """Record and delete every journaled outcome, each as of the moment it was journaled."""
    j = OUTCOME_JOURNAL
    rows = conn.execute(select(j).order_by(j.c.id)).all()
    by_moment: dict[datetime, list[Outcome]] = {}
    for row in rows:
        outcome = Outcome(
            row.subscriber_id,
            row.day,
            row.state,
            row.message_id,
            row.reply,
            row.next_attempt_at,
            row.next_due_at,
        )
        by_moment.setdefault(row.recorded_at, []).append(outcome)
    for moment, outcomes in by_moment.items():
        kept = _claimed_outcomes(conn, outcomes, moment)
        _move_subscribers(conn, kept, moment)
    if rows:
        conn.execute(sql_delete(j).where(j.c.id <= rows[-1].id))
    return len(rows)


def _still_claimed(conn: Connection, outcomes: Sequence[Outcome]) -> set[tuple[int, int]]:
    """Which of these (subscriber, day) deliveries are `claimed`, i.e. not yet recorded."""
    ids = sorted({outcome.subscriber_id for outcome in outcomes})
    rows = conn.execute(_DELIVERIES_OF, {"ids": ids})
    return {(row.subscriber_id, row.day) for row in rows if row.state == CLAIMED}


# Built once, so SQLAlchemy compiles it once. State is filtered in Python, not in WHERE:
# given `state = 'claimed'`, SQLite would walk every claimed row in the state index
# instead of looking up these subscribers.
_DELIVERIES_OF: Final = select(
    DELIVERIES.c.subscriber_id, DELIVERIES.c.day, DELIVERIES.c.state
).where(DELIVERIES.c.subscriber_id.in_(bindparam("ids", expanding=True)))


def _finish_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "b_id": outcome.subscriber_id,
        "b_day": outcome.day,
        "b_state": outcome.state,
        "b_message_id": outcome.message_id,
        "b_reply": outcome.reply,
        "b_next_attempt_at": outcome.next_attempt_at if outcome.state == RETRYING else None,
        "b_sent_at": now if outcome.state == SENT else None,
        "b_now": now,
    }


def _move_subscribers(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Advance, complete or stop each outcome's subscriber; one executemany per statement."""
    moving = [_lesson_params(o, now) for o in outcomes if o.state in (SENT, FAILED)]
    bounced = [
        {"b_id": o.subscriber_id, "b_reply": o.reply or "bounced", "b_now": now}
        for o in outcomes
        if o.state == BOUNCED
    ]
    advanced = _fast(conn, _NEXT_LESSON, [p for p in moving if p["b_next_due_at"] is not None])
    advanced += _fast(conn, _COMPLETE_COURSE, [p for p in moving if p["b_next_due_at"] is None])
    if advanced != len(moving):  # a driver that cannot count (-1) lands here too
        # Matches only subscribers the two above left alone (no longer active, still at
        # this day): unsubscribed or removed while the message was in flight. They had the
        # lesson, so a later reactivation continues after it, but nothing is scheduled.
        _fast(conn, _NEXT_LESSON_STOPPED, moving)
    _fast(conn, _STOP_BOUNCED, bounced)


def _lesson_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "b_id": outcome.subscriber_id,
        "b_day": outcome.day,
        "b_next_day": outcome.day + 1,
        "b_next_due_at": outcome.next_due_at,
        "b_now": now,
    }


@dataclass(frozen=True)
class _Prepared:
    """A Core statement compiled for one dialect, with what its driver parameters need."""

    sql: str
    order: tuple[str, ...] | None
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]


_PREPARED: dict[tuple[int, str], _Prepared] = {}


def _fast(conn: Connection, statement: UpdateBase, rows: list[dict[str, Any]]) -> int:
    """Run a prepared statement for each row through the driver's executemany().

    record() runs a handful of statements per batch, and for a remote backend a batch is a
    message or two: SQLAlchemy's per-execution work was most of the cost of recording a
    send (about 60 us a statement, against 10 us through the driver).
    """
    if not rows:
        return 0
    prepared = _prepare(conn, statement)
    args = [_driver_args(prepared, row) for row in rows]
    # One row goes through execute(): executemany() does not report a row count everywhere.
    return _driver_execute(conn, prepared.sql, args[0] if len(args) == 1 else args)


def _driver_execute(conn: Connection, sql: str, args: Any) -> int:
    """Execute on the DB-API cursor inside the connection's transaction; the row count.

    SQLAlchemy's execution context cost several times the statement on the per-message
    path. Driver errors are wrapped the way SQLAlchemy would, so callers see one kind.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        if isinstance(args, list):
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        return int(cursor.rowcount)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, args, exc, dbapi.Error) from exc
    finally:
        cursor.close()


def _driver_args(prepared: _Prepared, row: dict[str, Any]) -> Any:
    values = {**prepared.defaults, **row}
    for name, process in prepared.processors.items():
        values[name] = process(values[name])
    return values if prepared.order is None else tuple(values[n] for n in prepared.order)


def _prepare(conn: Connection, statement: UpdateBase) -> _Prepared:
    key = (id(statement), conn.dialect.name)
    prepared = _PREPARED.get(key)
    if prepared is None:
        compiled = statement.compile(dialect=conn.dialect)
        # binds holds each anonymous parameter twice: under a raw '%(id name)s' key and
        # under the name the SQL uses; only the latter are wanted.
        binds = {name: bind for name, bind in compiled.binds.items() if not name.startswith("%(")}
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in binds.items():
            process = bind.type.bind_processor(conn.dialect)
            if process is not None:
                processors[name] = process
        defaults = {name: bind.value for name, bind in binds.items() if not bind.required}
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        prepared = _Prepared(str(compiled), order, defaults, processors)
        _PREPARED[key] = prepared
    return prepared


# --- the runner lease and reports -------------------------------------------------------------


def _lease_is_live(holder: Any, host: str, now: datetime, stale_after: timedelta) -> bool:
    """Whether the lease holder may still be running."""
    if now - holder.heartbeat_at >= stale_after:
        return False
    # On this host we can ask the kernel; elsewhere only the heartbeat tells.
    return holder.host != host or _pid_alive(holder.pid)


_DELIVERY_VIEW_COLUMNS: Final = (
    DELIVERIES.c.day,
    DELIVERIES.c.state,
    DELIVERIES.c.attempts,
    DELIVERIES.c.claimed_at,
    DELIVERIES.c.sent_at,
    DELIVERIES.c.message_id,
    DELIVERIES.c.last_reply,
    DELIVERIES.c.next_attempt_at,
)


def _delivery_view(row: Any) -> DeliveryView:
    return DeliveryView(
        day=row.day,
        state=row.state,
        attempts=row.attempts,
        claimed_at=row.claimed_at,
        sent_at=row.sent_at,
        message_id=row.message_id,
        last_reply=row.last_reply,
        next_attempt_at=row.next_attempt_at,
    )


def _subscriber_view(row: Any) -> SubscriberView:
    return SubscriberView(
        email=row.email,
        name=row.name,
        timezone=row.timezone,
        fields=_fields(row.fields),
        status=row.status,
        status_reason=row.status_reason,
        status_at=row.status_at,
        joined_at=row.joined_at,
        next_day=row.next_day,
        next_due_at=row.next_due_at,
    )
