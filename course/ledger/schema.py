"""The stored data: statuses and states, UTC times, the tables and their migrations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeEngine

from course.errors import LedgerError
from course.ledger.database import Database


class SubscriberStatus(StrEnum):
    """Where a subscriber stands. Only `active` subscribers are ever sent anything."""

    ACTIVE = "active"
    COMPLETED = "completed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    REMOVED = "removed"


class DeliveryState(StrEnum):
    """What happened to one lesson for one subscriber (one delivery row)."""

    CLAIMED = "claimed"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    BOUNCED = "bounced"


class Verdict(StrEnum):
    """What a bounce, complaint or provider event means for its subscriber."""

    BOUNCED = "bounced"  # permanent failure: suppressed as bounced, with the diagnostic
    NOTED = "noted"  # delayed, temporary or policy: shown in `course status`, never suppresses
    COMPLAINED = "complaint"  # marked as spam: unsubscribed with the reason "complaint"
    UNSUBSCRIBED = "unsubscribed"  # unsubscribed at the sending provider
    IGNORED = "ignored"  # auto-replies, success notices, events nothing is done about


# The states an outcome can record; `claimed` is what a claim writes.
OUTCOME_STATES: Final = frozenset(
    state for state in DeliveryState if state != DeliveryState.CLAIMED
)
PROBLEM_STATES: Final = (DeliveryState.RETRYING, DeliveryState.FAILED, DeliveryState.BOUNCED)

REASON_ADDED: Final = "added from CSV"
REASON_REMOVED: Final = "removed from CSV"
REASON_REJOINED: Final = "back in the CSV"
REASON_REACTIVATED: Final = "reactivated by the operator"
REASON_COMPLETED: Final = "course complete"
REPLY_RECOVERED: Final = (
    "recovered: claimed by a runner that stopped before recording the outcome; sending again"
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


def one_of(column: str, values: type[StrEnum], *, name: str) -> CheckConstraint:
    """CHECK (column = 'a' OR column = 'b' ...), one term per member of the enum, so the
    database refuses a typo.

    Not `column IN (...)`, which means the same: SQLite builds a lookup table for an IN list
    each time it checks a row, which was a tenth of a 1,000,000-row list import.
    """
    allowed = " OR ".join(f"{column} = '{member.value}'" for member in values)
    return CheckConstraint(allowed, name=name)


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
    one_of("status", SubscriberStatus, name="ck_subscribers_status"),
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
    # The worker (WORKERS.owner) that claimed it, "" for a claim outside any worker: the
    # crash rule recovers only claims whose owner has no live worker row.
    Column("claimed_by", String(200), nullable=False),
    # Random per claim() call: tells that call which rows it actually won.
    Column("claim_token", String(32), nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # The double-send guard: one delivery row per lesson per subscriber, ever.
    UniqueConstraint("subscriber_id", "day", name="uq_deliveries_subscriber_day"),
    one_of("state", DeliveryState, name="ck_deliveries_state"),
    Index("ix_deliveries_state_next_attempt", "state", "next_attempt_at"),
)

# The workers on this ledger: one row per running `course run`/`send`/`simulate` process,
# kept fresh by its heartbeat. On SQLite it is the single-writer lease (at most one live
# row); on PostgreSQL any number of workers share the work. The leader (elected through a
# PostgreSQL advisory lock; on SQLite, the one worker) marks itself with leader_since.
WORKERS: Final = Table(
    "workers",
    METADATA,
    Column("owner", String(200), primary_key=True),  # unique per process run (a uuid4)
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("leader_since", UTCDateTime, nullable=True),
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
# record() passes through it too, so outcomes take effect one way only (queue.fold_journal).
# Each row carries the worker that journaled it; a fold applies one owner's rows, and only
# to deliveries that owner still holds claimed.
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
    Column("owner", String(200), nullable=False, server_default=""),
)
# PostgreSQL only (migration v6): the fold joins the journal to deliveries by lesson, and
# PostgreSQL's planner, misled by a table that is empty between batches, looped over the
# whole journal once per delivery without it (0.15 s for a fold of 500). SQLite, given it,
# drove the subscriber updates from a scan of every subscriber instead (40 ms, not 1 ms,
# at 50,000 subscribers), so SQLite goes without.
JOURNAL_BY_LESSON: Final = Index(
    "ix_outcome_journal_lesson", OUTCOME_JOURNAL.c.subscriber_id, OUTCOME_JOURNAL.c.day
)


# One row per bounce, complaint or provider event acted on, under the key that makes it
# idempotent (a provider's event id, a hash of a mailbox message): a replayed event finds its
# key taken and changes nothing. `noted` rows are what `course status` lists as delayed.
# Keys also record single-use proofs (a Mailgun signing token) with verdict `ignored`.
BOUNCE_NOTICES: Final = Table(
    "bounce_notices",
    METADATA,
    Column("id", _Id, primary_key=True),
    Column("event_key", String(255), nullable=False),
    Column("source", String(32), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("detail", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("changed", Integer, nullable=False),  # 1 if it changed the subscriber's status
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("event_key", name="uq_bounce_notices_event_key"),
    one_of("verdict", Verdict, name="ck_bounce_notices_verdict"),
    Index("ix_bounce_notices_verdict_received", "verdict", "received_at"),
)


# Each subscriber's opaque id (course.tokens.subscriber_ref): what unsubscribe links and
# return paths carry instead of the address. It is a keyed hash of the address, so the
# ledger cannot compute it: the deliverer records it for each batch before sending
# (Roster.give_refs; Roster.fill_refs is the fallback for rows still lacking one). A table
# of its own keeps the million-row CSV import as it was, and v1's subscribers table intact.
SUBSCRIBER_REFS: Final = Table(
    "subscriber_refs",
    METADATA,
    Column("ref", String(32), primary_key=True),
    Column("subscriber_id", _Id, nullable=False),
    UniqueConstraint("subscriber_id", name="uq_subscriber_refs_subscriber"),
)


# --- migrations -------------------------------------------------------------------------------

Migration = Callable[[Connection], None]


# Tables as earlier versions created them, for replaying those migrations exactly.
_FROZEN: Final = MetaData()
_V1_RUNNER: Final = Table(
    "runner",
    _FROZEN,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)
_V2_OUTCOME_JOURNAL: Final = Table(
    "outcome_journal",
    _FROZEN,
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


def _v1_initial_schema(conn: Connection) -> None:
    """v1: subscribers, deliveries, the runner lease and meta."""
    # SUBSCRIBERS, DELIVERIES and META are still as v1 made them. Before a later migration
    # changes one of them, freeze a copy of its v1 definition here (as _V1_RUNNER), so an
    # empty database still replays v1 exactly.
    METADATA.create_all(conn, tables=[SUBSCRIBERS, DELIVERIES, META])
    _V1_RUNNER.create(conn)


def _v2_outcome_journal(conn: Connection) -> None:
    """v2: the outcome journal."""
    _V2_OUTCOME_JOURNAL.create(conn)


def _v3_bounce_notices(conn: Connection) -> None:
    """v3: bounce notices (late bounces, complaints, provider events)."""
    METADATA.create_all(conn, tables=[BOUNCE_NOTICES])


def _v4_workers(conn: Connection) -> None:
    """v4: the worker table replaces the runner lease; journal rows carry their owner."""
    METADATA.create_all(conn, tables=[WORKERS])
    r = _V1_RUNNER.c
    conn.execute(  # a runner of the previous version still holds its lease, as a worker
        insert(WORKERS).from_select(
            ["owner", "host", "pid", "started_at", "heartbeat_at", "leader_since"],
            select(r.owner, r.host, r.pid, r.started_at, r.heartbeat_at, r.started_at),
        )
    )
    _V1_RUNNER.drop(conn)
    # Journal rows written before workers had owners belong to no one: any live worker
    # folds them while recovering ("" has no worker row).
    conn.execute(
        text("ALTER TABLE outcome_journal ADD COLUMN owner VARCHAR(200) NOT NULL DEFAULT ''")
    )


def _v5_subscriber_refs(conn: Connection) -> None:
    """v5: subscribers\' opaque ids."""
    METADATA.create_all(conn, tables=[SUBSCRIBER_REFS])


def _v6_journal_by_lesson(conn: Connection) -> None:
    """v6: on PostgreSQL, the outcome journal is indexed by lesson, for the fold's joins."""
    if conn.dialect.name == "postgresql":
        JOURNAL_BY_LESSON.create(conn)


# Migration n (1-based) upgrades a database from version n-1 to n. Append only; never edit.
MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial_schema,
    _v2_outcome_journal,
    _v3_bounce_notices,
    _v4_workers,
    _v5_subscriber_refs,
    _v6_journal_by_lesson,
)


def upgrade(db: Database) -> None:
    """Create or migrate the schema up to the latest version; LedgerError if it is newer.

    Any number of workers may start at once on a new database: the one that takes the
    schema lock (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) migrates, and
    the others, waiting on it, then find the schema up to date.
    """
    # Look first without the write lock, so `course status` does not queue behind a sync.
    with db.reading() as conn:
        up_to_date = schema_version_of(conn) == len(MIGRATIONS)
    if not up_to_date:
        with db.writing() as conn:
            db.lock_for_transaction(conn, "schema")
            # Looked up at call time: tests replace course.ledger.schema.MIGRATIONS.
            migrate(conn, db.label, MIGRATIONS)  # looks again, now under the lock


def schema_version_of(conn: Connection) -> int:
    """The database's schema version; 0 for an empty database."""
    if not inspect(conn).has_table(SCHEMA_VERSION.name):
        return 0
    version: int | None = conn.execute(select(func.max(SCHEMA_VERSION.c.version))).scalar_one()
    return version or 0


def migrate(conn: Connection, label: str, migrations: Sequence[Migration]) -> None:
    """Bring the schema up to len(migrations), or refuse a database from a newer version."""
    SCHEMA_VERSION.create(conn, checkfirst=True)
    found = schema_version_of(conn)
    latest = len(migrations)
    if found > latest:
        raise LedgerError(
            f"the ledger {label} has schema version {found}, but this version of course "
            f"only knows versions up to {latest}; upgrade course or use another ledger"
        )
    for version in range(found + 1, latest + 1):
        migrations[version - 1](conn)
        conn.execute(insert(SCHEMA_VERSION).values(version=version))
