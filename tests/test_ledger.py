"""The send ledger, on real SQLite files: schema, sync, the claim protocol, the crash rule."""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pg_cluster import PostgresCluster
from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, inspect, select
from sqlalchemy.dialects import sqlite as sqlite_dialect

import course.ledger.schema
from course.errors import LedgerError
from course.ledger import (
    DeliveryOutcome,
    DeliveryState,
    DeliveryView,
    Departure,
    DueLesson,
    Ledger,
    ListRow,
    SubscriberRecord,
    SubscriberStatus,
    SyncSummary,
)
from course.ledger.database import BUSY_TIMEOUT_MS
from course.ledger.schema import REPLY_RECOVERED, SCHEMA_VERSION, UTCDateTime

SQLITE_URL = "sqlite:///state/course.db"
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOST = socket.gethostname()


def first_due(timezone: str, start: datetime) -> datetime:
    """Two hours after `start`: simple enough to check by hand (the zone is ignored)."""
    return start + 2 * HOUR


def person(
    email: str,
    name: str = "",
    *,
    timezone: str = "Europe/Berlin",
    fields: Mapping[str, str] | None = None,
    subscribed_at: datetime | None = None,
) -> SubscriberRecord:
    return SubscriberRecord(
        email, name or email.split("@")[0], timezone, fields or {}, subscribed_at
    )


def lessons(recipients: list[DueLesson]) -> list[tuple[str, int]]:
    return [(r.email, r.day) for r in recipients]


def sent(recipient: DueLesson, next_due_at: datetime | None) -> DeliveryOutcome:
    return DeliveryOutcome(
        recipient.subscriber_id,
        recipient.day,
        DeliveryState.SENT,
        f"<{recipient.day}.{recipient.subscriber_id}@example.com>",
        "250 2.0.0 queued",
        next_due_at=next_due_at,
    )


def status_of(ledger: Ledger, email: str) -> str:
    view = ledger.subscriber(email)
    assert view is not None
    return view.status


@pytest.fixture
def ledger(tmp_path: Path, ledger_url: str) -> Iterator[Ledger]:
    with Ledger.open(ledger_url, base_dir=tmp_path) as opened:
        yield opened


def versions(ledger: Ledger) -> list[int]:
    """Every migration recorded as applied, in order."""
    with ledger.database.reading() as conn:
        return list(conn.execute(select(SCHEMA_VERSION.c.version).order_by("version")).scalars())


def table_names(ledger: Ledger) -> set[str]:
    return set(inspect(ledger.database.engine).get_table_names())


LATEST = len(course.ledger.schema.MIGRATIONS)


def send_due(ledger: Ledger, now: datetime, next_due_at: datetime | None) -> list[DueLesson]:
    """Claim everything due at `now` and record it sent."""
    claimed = ledger.claim(ledger.due(now), now=now)
    ledger.record([sent(r, next_due_at) for r in claimed], now=now)
    return claimed


# --- opening and migrations -------------------------------------------------------------------


def test_open_creates_the_schema_and_records_its_version(tmp_path: Path, ledger_url: str) -> None:
    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        names = table_names(ledger)
        indexes = {
            index["name"]
            for table in ("subscribers", "deliveries", "outcome_journal")
            for index in inspect(ledger.database.engine).get_indexes(table)
        }
        assert versions(ledger) == list(range(1, LATEST + 1))
    assert {"subscribers", "deliveries", "workers", "schema_version", "outcome_journal"} <= names
    assert "bounce_notices" in names
    assert "runner" not in names  # v4: the worker table replaced the single lease
    assert {"ix_subscribers_status_due", "ix_deliveries_state_next_attempt"} <= indexes
    # Only PostgreSQL's planner needs the journal indexed by lesson (see schema.py).
    assert ("ix_outcome_journal_lesson" in indexes) == ledger_url.startswith("postgresql")


def test_reopening_does_not_migrate_again(tmp_path: Path, ledger_url: str) -> None:
    for _ in range(2):
        Ledger.open(ledger_url, base_dir=tmp_path).close()

    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        assert versions(ledger) == list(range(1, LATEST + 1))


def test_an_empty_database_file_is_migrated(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    sqlite3.connect(tmp_path / "state" / "course.db").close()  # version 0: no tables

    with Ledger.open(SQLITE_URL, base_dir=tmp_path) as ledger:
        assert ledger.status_counts() == {}


def test_an_older_database_is_upgraded_and_keeps_its_rows(
    tmp_path: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)

    def add_notes(conn: Connection) -> None:
        Table("notes", MetaData(), Column("id", Integer, primary_key=True)).create(conn)

    monkeypatch.setattr(
        course.ledger.schema, "MIGRATIONS", (*course.ledger.schema.MIGRATIONS, add_notes)
    )
    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        assert status_of(ledger, "ann@example.com") == "active"
        assert versions(ledger) == list(range(1, LATEST + 2))
        assert "notes" in table_names(ledger)


def test_a_version_1_ledger_is_migrated_with_its_lease_and_rows(
    tmp_path: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(course.ledger.schema, "MIGRATIONS", course.ledger.schema.MIGRATIONS[:1])
        with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
            ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
            assert "outcome_journal" not in table_names(ledger)
            with ledger.database.writing() as conn:  # a v1 runner holding the lease
                conn.exec_driver_sql(
                    "INSERT INTO runner (name, owner, pid, host, started_at, heartbeat_at) "
                    "VALUES ('course run', 'v1-runner', 4242, 'elsewhere', "
                    "'2024-05-01 06:00:00', '2024-05-01 06:00:00')"
                )

    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        assert status_of(ledger, "ann@example.com") == "active"
        assert versions(ledger) == list(range(1, LATEST + 1))
        assert {"outcome_journal", "bounce_notices", "workers"} <= table_names(ledger)
        assert "runner" not in table_names(ledger)
        [worker] = ledger.workers(T0)
        assert (worker.owner, worker.pid, worker.host, worker.heartbeat_at) == (
            "v1-runner",
            4242,
            "elsewhere",
            T0,
        )


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path, ledger_url: str) -> None:
    with Ledger.open(ledger_url, base_dir=tmp_path) as ledger:
        with ledger.database.writing() as conn:
            conn.execute(insert(SCHEMA_VERSION).values(version=LATEST + 4))
        label = ledger.database.label

    with pytest.raises(LedgerError) as refused:
        Ledger.open(ledger_url, base_dir=tmp_path)
    assert str(refused.value) == (
        f"the ledger {label} has schema version {LATEST + 4}, but this version of course only "
        f"knows versions up to {LATEST}; upgrade course or use another ledger"
    )


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("not a url", "'not a url'"),
        ("mysql://db.example.com/course", "mysql://db.example.com"),
        ("postgresql+psycopg2://u:secret@127.0.0.1/course", "'postgresql+psycopg2://u:***@"),
    ],
)
def test_a_bad_url_is_refused_by_name(tmp_path: Path, url: str, named: str) -> None:
    with pytest.raises(LedgerError, match=re.escape(named)):
        Ledger.open(url, base_dir=tmp_path)


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "course.db").write_text("subscriber list, not a database\n" * 100)

    with pytest.raises(LedgerError, match=r"the ledger state/course\.db cannot be used"):
        Ledger.open(SQLITE_URL, base_dir=tmp_path)


def test_sqlite_runs_in_wal_mode_with_the_connection_pragmas(tmp_path: Path) -> None:
    with (
        Ledger.open(SQLITE_URL, base_dir=tmp_path) as ledger,
        ledger.database.engine.connect() as conn,
    ):
        pragma = conn.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert pragma("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS


# --- time -------------------------------------------------------------------------------------


def test_naive_datetimes_are_rejected(ledger: Ledger) -> None:
    naive = datetime(2024, 5, 1, 6, 0)
    with pytest.raises(ValueError, match="naive"):
        ledger.due(naive)
    with pytest.raises(ValueError, match="naive"):
        ledger.sync([person("ann@example.com", subscribed_at=naive)], now=T0, first_due=first_due)
    with pytest.raises(ValueError, match="naive"):
        ledger.record([DeliveryOutcome(1, 1, DeliveryState.SENT, next_due_at=naive)], now=T0)
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(naive, sqlite_dialect.dialect())
    assert ledger.status_counts() == {}  # the failed sync left nothing behind


def test_times_come_back_aware_in_utc(ledger: Ledger) -> None:
    tokyo = datetime(2024, 5, 1, 15, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    ledger.sync([person("ann@example.com", subscribed_at=tokyo)], now=T0, first_due=first_due)

    view = ledger.subscriber("ann@example.com")
    assert view is not None
    assert view.joined_at == datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    assert view.joined_at.tzinfo is UTC


# --- sync -------------------------------------------------------------------------------------


def test_sync_adds_new_subscribers_active_from_day_one(ledger: Ledger) -> None:
    joined = T0 - DAY
    summary = ledger.sync(
        [
            person("Ann@Example.com", "Ann", fields={"plan": "pro"}),
            person("bob@example.com", timezone="Asia/Tokyo", subscribed_at=joined),
        ],
        now=T0,
        first_due=first_due,
    )

    assert summary == SyncSummary(added=2, updated=0, removed=0, rejoined=0, unchanged=0)
    ann = ledger.subscriber("ann@example.com")  # addresses compare case-insensitively
    assert ann is not None
    assert (ann.email, ann.name, ann.fields, ann.status, ann.next_day) == (
        "Ann@Example.com",
        "Ann",
        {"plan": "pro"},
        "active",
        1,
    )
    assert (ann.joined_at, ann.next_due_at) == (T0, T0 + 2 * HOUR)
    bob = ledger.subscriber("bob@example.com")
    assert bob is not None
    assert (bob.timezone, bob.joined_at, bob.next_due_at) == (
        "Asia/Tokyo",
        joined,
        joined + 2 * HOUR,
    )


def test_sync_updates_changed_rows_and_counts_the_rest_unchanged(ledger: Ledger) -> None:
    ledger.sync(
        [person("ann@example.com", "Ann"), person("bob@example.com", "Bob")],
        now=T0,
        first_due=first_due,
    )

    summary = ledger.sync(
        [
            person("ANN@example.com", "Ann B.", timezone="UTC", fields={"city": "Oslo"}),
            person("bob@example.com", "Bob"),
        ],
        now=T0 + HOUR,
        first_due=first_due,
    )

    assert summary == SyncSummary(added=0, updated=1, removed=0, rejoined=0, unchanged=1)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.email, ann.name, ann.timezone, ann.fields) == (
        "ANN@example.com",
        "Ann B.",
        "UTC",
        {"city": "Oslo"},
    )
    assert ann.next_due_at == T0 + 2 * HOUR  # the schedule is not restarted


def test_the_first_of_duplicate_rows_wins(ledger: Ledger) -> None:
    summary = ledger.sync(
        [person("ann@example.com", "First"), person("ANN@example.com", "Second")],
        now=T0,
        first_due=first_due,
    )

    assert summary.added == 1
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert ann.name == "First"


def test_a_row_missing_from_the_csv_is_removed_but_keeps_its_history(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due)
    send_due(ledger, T0 + 2 * HOUR, next_due_at=T0 + DAY)

    summary = ledger.sync([person("bob@example.com")], now=T0 + 3 * HOUR, first_due=first_due)

    assert summary == SyncSummary(added=0, updated=0, removed=1, rejoined=0, unchanged=1)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.status_reason, ann.status_at) == (
        "removed",
        "removed from CSV",
        T0 + 3 * HOUR,
    )
    assert ann.next_due_at is None
    assert [(d.day, d.state) for d in ledger.history("ann@example.com")] == [(1, "sent")]
    assert lessons(ledger.due(T0 + 2 * DAY)) == [("bob@example.com", 2)]
    # Still gone from the CSV: counted once, not removed again.
    assert ledger.sync([person("bob@example.com")], now=T0 + DAY, first_due=first_due).removed == 0


def test_a_removed_subscriber_who_reappears_rejoins_where_they_left_off(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    send_due(ledger, T0 + 2 * HOUR, next_due_at=T0 + DAY)
    ledger.sync([], now=T0 + 3 * HOUR, first_due=first_due)

    back = T0 + 3 * DAY
    summary = ledger.sync([person("ann@example.com", "Ann")], now=back, first_due=first_due)

    assert summary == SyncSummary(added=0, updated=0, removed=0, rejoined=1, unchanged=0)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.name, ann.next_day, ann.next_due_at) == (
        "active",
        "Ann",
        2,
        back + 2 * HOUR,
    )
    assert lessons(ledger.due(back + 2 * HOUR)) == [("ann@example.com", 2)]


@pytest.mark.parametrize(
    "status",
    [SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLETED],
)
def test_sync_never_reactivates_a_stopped_subscriber(
    ledger: Ledger, status: SubscriberStatus
) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    assert ledger.set_status("ann@example.com", status, reason="by hand", now=T0 + HOUR)

    summary = ledger.sync([person("ann@example.com")], now=T0 + DAY, first_due=first_due)
    ledger.sync([person("ann@example.com", "Ann")], now=T0 + DAY, first_due=first_due)

    held = int(status != SubscriberStatus.COMPLETED)  # on the suppression list, yet listed
    assert summary == SyncSummary(added=0, updated=0, removed=0, rejoined=0, unchanged=1, held=held)
    assert status_of(ledger, "ann@example.com") == status
    assert ledger.due(T0 + 9 * DAY) == []


def test_unsubscribe_suppresses_known_and_unseen_addresses_once(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)

    assert ledger.unsubscribe("ANN@example.com", how="one-click", now=T0 + HOUR) is True
    assert ledger.unsubscribe("ann@example.com", how="by hand", now=T0 + 2 * HOUR) is False
    assert ledger.unsubscribe("new@example.com", how="by hand", now=T0 + HOUR) is True
    ledger.sync([person("ann@example.com"), person("new@example.com")], now=T0, first_due=first_due)

    ann, new = ledger.subscriber("ann@example.com"), ledger.subscriber("new@example.com")
    assert ann is not None
    assert new is not None
    assert (ann.status, ann.status_reason, ann.status_at) == (
        "unsubscribed",
        "one-click",
        T0 + HOUR,
    )
    assert (new.status, new.status_reason) == ("unsubscribed", "by hand")
    assert [v.email for v in ledger.suppressions()] == ["ann@example.com", "new@example.com"]
    assert ledger.due(T0 + DAY) == []


# --- sync: rows that say someone is not subscribed ------------------------------------------


def leaving(
    email: str, status: SubscriberStatus, reason: str = "list.csv row 3: state 'x'"
) -> Departure:
    return Departure(email, status, reason)


def test_a_row_turned_inactive_stops_them_with_its_reason_until_it_is_active_again(
    ledger: Ledger,
) -> None:
    ledger.sync([person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due)
    send_due(ledger, T0 + 2 * HOUR, next_due_at=T0 + DAY)

    reason = "list.csv row 2: status 'inactive'"
    summary = ledger.sync(
        [leaving("ann@example.com", SubscriberStatus.REMOVED, reason), person("bob@example.com")],
        now=T0 + 3 * HOUR,
        first_due=first_due,
    )

    assert summary == SyncSummary(added=0, updated=0, removed=0, rejoined=0, unchanged=1, stopped=1)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.status_reason, ann.status_at, ann.next_due_at) == (
        "removed",
        reason,
        T0 + 3 * HOUR,
        None,
    )
    assert lessons(ledger.due(T0 + 2 * DAY)) == [("bob@example.com", 2)]
    assert ledger.latest_with_status([SubscriberStatus.REMOVED], limit=50) == [ann]

    # Active in a later export: back where they left off.
    summary = ledger.sync(
        [person("ann@example.com"), person("bob@example.com")],
        now=T0 + 2 * DAY,
        first_due=first_due,
    )
    assert summary.rejoined == 1
    assert sorted(lessons(ledger.due(T0 + 2 * DAY + 2 * HOUR))) == [
        ("ann@example.com", 2),
        ("bob@example.com", 2),
    ]


@pytest.mark.parametrize("status", [SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED])
def test_a_row_that_says_they_left_suppresses_them_and_no_later_list_undoes_it(
    ledger: Ledger, status: SubscriberStatus
) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    reason = "kit.csv row 2: state 'cancelled'"

    summary = ledger.sync(
        [leaving("ann@example.com", status, reason)], now=T0 + HOUR, first_due=first_due
    )

    assert summary == SyncSummary(
        added=0, updated=0, removed=0, rejoined=0, unchanged=0, stopped=1, suppressed=1
    )
    assert [(v.email, v.status, v.status_reason, v.status_at) for v in ledger.suppressions()] == [
        ("ann@example.com", status, reason, T0 + HOUR)
    ]
    # The tool lists them as subscribed again (or an old export is read): still suppressed.
    summary = ledger.sync([person("ann@example.com")], now=T0 + DAY, first_due=first_due)
    assert (summary.held, summary.rejoined) == (1, 0)
    assert status_of(ledger, "ann@example.com") == status
    assert ledger.due(T0 + 9 * DAY) == []
    # Only the operator lets them back.
    assert ledger.reactivate("ann@example.com", now=T0 + 2 * DAY, first_due=first_due)
    assert status_of(ledger, "ann@example.com") == "active"


def test_an_address_that_left_before_it_was_ever_synced_is_suppressed_all_the_same(
    ledger: Ledger,
) -> None:
    summary = ledger.sync(
        [
            person("ann@example.com"),
            leaving("gone@example.com", SubscriberStatus.BOUNCED, "cleaned.csv row 2: cleaned"),
            leaving("pending@example.com", SubscriberStatus.REMOVED),
        ],
        now=T0,
        first_due=first_due,
    )

    assert summary == SyncSummary(
        added=1, updated=0, removed=0, rejoined=0, unchanged=0, suppressed=1
    )
    assert [(v.email, v.status) for v in ledger.suppressions()] == [("gone@example.com", "bounced")]
    assert ledger.subscriber("pending@example.com") is None  # never mailed, nothing to keep
    summary = ledger.sync(
        [person("ann@example.com"), person("gone@example.com")], now=T0 + DAY, first_due=first_due
    )
    assert (summary.added, summary.held) == (0, 1)
    assert lessons(ledger.due(T0 + 9 * DAY)) == [("ann@example.com", 1)]


def test_suppressions_of_known_subscribers_are_handed_over_before_the_ledger_changes(
    ledger: Ledger,
) -> None:
    ledger.sync(
        [person("ann@example.com"), person("bob@example.com"), person("cat@example.com")],
        now=T0,
        first_due=first_due,
    )
    assert ledger.unsubscribe("cat@example.com", how="one-click", now=T0 + HOUR)
    rows: list[ListRow] = [
        leaving("ann@example.com", SubscriberStatus.UNSUBSCRIBED, "row 2: state 'cancelled'"),
        leaving("bob@example.com", SubscriberStatus.REMOVED, "row 3: state 'inactive'"),
        leaving("cat@example.com", SubscriberStatus.UNSUBSCRIBED, "row 4: state 'cancelled'"),
        leaving("new@example.com", SubscriberStatus.BOUNCED, "row 5: cleaned"),
    ]

    def refuse(departures: Sequence[Departure]) -> None:
        raise OSError("the log cannot be written")

    with pytest.raises(OSError):
        ledger.sync(rows, now=T0 + DAY, first_due=first_due, before_suppressing=refuse)
    assert status_of(ledger, "ann@example.com") == "active"  # nothing changed
    assert ledger.subscriber("new@example.com") is None

    handed: list[Departure] = []
    ledger.sync(rows, now=T0 + DAY, first_due=first_due, before_suppressing=handed.extend)

    # Only Ann: Bob is not suppressed, Cat was already, the new address was never mailed.
    assert handed == [rows[0]]
    assert status_of(ledger, "ann@example.com") == "unsubscribed"
    assert status_of(ledger, "new@example.com") == "bounced"


def test_an_earlier_unsubscribe_keeps_its_own_reason_and_time(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    assert ledger.unsubscribe("ann@example.com", how="one-click", now=T0 + HOUR)

    summary = ledger.sync(
        [leaving("ann@example.com", SubscriberStatus.UNSUBSCRIBED)],
        now=T0 + DAY,
        first_due=first_due,
    )

    assert (summary.stopped, summary.suppressed) == (0, 0)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.status_reason, ann.status_at) == (
        "unsubscribed",
        "one-click",
        T0 + HOUR,
    )


def test_the_strongest_word_on_an_address_wins_whatever_the_row_order(ledger: Ledger) -> None:
    people = [person(f"p{i}@example.com") for i in range(4)]
    ledger.sync(people, now=T0, first_due=first_due)
    removed, left = SubscriberStatus.REMOVED, SubscriberStatus.UNSUBSCRIBED
    # p0, p1: both words in one batch; p2, p3: 6,000 rows apart, in different batches.
    filler = [person(f"filler{i}@example.com") for i in range(6_000)]
    rows: list[ListRow] = [
        leaving("p0@example.com", removed, "pending"),
        leaving("p0@example.com", left, "cancelled"),
        leaving("p1@example.com", left, "cancelled"),
        leaving("p1@example.com", removed, "pending"),
        leaving("p2@example.com", removed, "pending"),
        leaving("p3@example.com", left, "cancelled"),
        *filler,
        leaving("p2@example.com", left, "cancelled"),
        leaving("p3@example.com", removed, "pending"),
    ]

    ledger.sync(rows, now=T0 + HOUR, first_due=first_due)

    for view in (ledger.subscriber(f"p{i}@example.com") for i in range(4)):
        assert view is not None
        assert (view.status, view.status_reason) == ("unsubscribed", "cancelled")


def test_an_address_listed_as_subscribed_and_as_gone_is_not_mailed(ledger: Ledger) -> None:
    # Two spellings the list could not tell apart; the row that says they left wins.
    summary = ledger.sync(
        [person("Ann@example.com"), leaving("ann@example.com", SubscriberStatus.UNSUBSCRIBED)],
        now=T0,
        first_due=first_due,
    )

    assert status_of(ledger, "ann@example.com") == "unsubscribed"
    assert summary.suppressed == 1
    assert ledger.due(T0 + 9 * DAY) == []


def test_sync_streams_its_rows_in_batches(ledger: Ledger) -> None:
    """A generator is read once, across several batches, and nobody it names is removed."""
    count = 12_345
    consumed = 0

    def rows(names: str) -> Iterator[SubscriberRecord]:
        nonlocal consumed
        for i in range(count):
            consumed += 1
            yield person(f"p{i}@example.com", f"{names}{i}")

    first = ledger.sync(rows("P"), now=T0, first_due=first_due)
    assert (first.added, consumed) == (count, count)

    # Everyone again, one renamed, one missing, and the first of them repeated at the end.
    def changed() -> Iterator[ListRow]:
        for row in rows("P"):
            if row.email == "p7000@example.com":
                continue
            yield person(row.email, "Renamed") if row.email == "p3@example.com" else row
        yield person("p0@example.com", "Repeated")

    summary = ledger.sync(changed(), now=T0 + HOUR, first_due=first_due)

    assert summary == SyncSummary(added=0, updated=1, removed=1, rejoined=0, unchanged=count - 2)
    assert status_of(ledger, "p7000@example.com") == "removed"
    assert ledger.status_counts() == {"active": count - 1, "removed": 1}
    view = ledger.subscriber("p0@example.com")
    assert view is not None
    assert view.name == "P0"  # the first row wins


def test_a_repeated_address_in_a_later_batch_of_a_first_import_is_not_added_twice(
    ledger: Ledger,
) -> None:
    rows = [person(f"p{i}@example.com") for i in range(5_001)] + [person("P0@example.com", "Two")]

    summary = ledger.sync(rows, now=T0, first_due=first_due)

    assert summary.added == 5_001
    view = ledger.subscriber("p0@example.com")
    assert view is not None
    assert (view.email, view.name) == ("p0@example.com", "p0")


# --- due, claim, record -----------------------------------------------------------------------


def test_a_three_day_course_runs_to_completion(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com", fields={"plan": "pro"})], now=T0, first_due=first_due)
    first = T0 + 2 * HOUR
    assert ledger.due(first - timedelta(seconds=1)) == []
    assert ledger.next_due_at() == first

    for day in (1, 2, 3):
        now = first + (day - 1) * DAY
        due = ledger.due(now)
        assert [(r.email, r.day, r.attempts, dict(r.fields)) for r in due] == [
            ("ann@example.com", day, 0, {"plan": "pro"})
        ]
        assert due[0].joined_at == T0
        claimed = ledger.claim(due, now=now)
        assert claimed == due
        assert ledger.due(now) == []  # claimed: not offered twice
        ledger.record([sent(claimed[0], None if day == 3 else now + DAY)], now=now)

    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.next_day, ann.next_due_at) == ("completed", 4, None)
    assert ledger.due(first + 30 * DAY) == []
    assert ledger.next_due_at() is None
    assert ledger.state_counts() == {(1, "sent"): 1, (2, "sent"): 1, (3, "sent"): 1}
    assert ledger.status_counts() == {"completed": 1}
    history = ledger.history("ann@example.com")
    assert [(d.day, d.state, d.attempts, d.sent_at) for d in history] == [
        (day, "sent", 1, first + (day - 1) * DAY) for day in (1, 2, 3)
    ]
    assert history[0].message_id == f"<1.{claimed[0].subscriber_id}@example.com>"
    assert history[0].last_reply == "250 2.0.0 queued"


def test_due_is_ordered_by_due_time_and_limited(ledger: Ledger) -> None:
    ledger.sync(
        [
            person("late@example.com", subscribed_at=T0 + HOUR),
            person("early@example.com", subscribed_at=T0 - HOUR),
            person("mid@example.com", subscribed_at=T0),
        ],
        now=T0,
        first_due=first_due,
    )

    assert [r.email for r in ledger.due(T0 + DAY)] == [
        "early@example.com",
        "mid@example.com",
        "late@example.com",
    ]
    assert [r.email for r in ledger.due(T0 + DAY, limit=2)] == [
        "early@example.com",
        "mid@example.com",
    ]


def test_a_claim_is_won_by_exactly_one_of_two_connections(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    ledger.sync([person(f"p{i}@example.com") for i in range(10)], now=T0, first_due=first_due)
    now = T0 + DAY
    with Ledger.open(ledger_url, base_dir=tmp_path) as other:
        due_here, due_there = ledger.due(now), other.due(now)
        assert due_here == due_there

        won_here = ledger.claim(due_here[:6], now=now)
        won_there = other.claim(due_there[3:], now=now)
        again = ledger.claim(due_here, now=now)

    assert lessons(won_here) == lessons(due_here[:6])
    assert lessons(won_there) == lessons(due_there[6:])
    assert again == []


def _claim_in_child(url: str, base_dir: str, start: Any, results: Any) -> None:
    """One of two racing processes: claim everything due, ten at a time."""
    now = T0 + DAY
    with Ledger.open(url, base_dir=Path(base_dir)) as ledger:
        due = ledger.due(now)
        start.wait()
        won: list[tuple[int, int]] = []
        for offset in range(0, len(due), 10):
            claimed = ledger.claim(due[offset : offset + 10], now=now)
            won += [(r.subscriber_id, r.day) for r in claimed]
    results.put((len(due), won))


def test_two_processes_racing_for_the_same_claims_never_share_one(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    ledger.sync([person(f"p{i:03}@example.com") for i in range(200)], now=T0, first_due=first_due)
    everyone = {(r.subscriber_id, r.day) for r in ledger.due(T0 + DAY)}
    assert len(everyone) == 200

    spawn = multiprocessing.get_context("spawn")  # no forked copies of open connections
    start, results = spawn.Barrier(2), spawn.Queue()
    racers = [
        spawn.Process(target=_claim_in_child, args=(ledger_url, str(tmp_path), start, results))
        for _ in range(2)
    ]
    for racer in racers:
        racer.start()
    (seen_a, won_a), (seen_b, won_b) = results.get(timeout=120), results.get(timeout=120)
    for racer in racers:
        racer.join(timeout=30)
        assert racer.exitcode == 0

    assert seen_a == seen_b == 200
    assert set(won_a) | set(won_b) == everyone
    assert set(won_a) & set(won_b) == set()
    assert len(won_a) + len(won_b) == 200


def test_a_claim_for_someone_who_unsubscribed_after_due_is_refused(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    due = ledger.due(T0 + DAY)
    ledger.set_status(
        "ann@example.com", SubscriberStatus.UNSUBSCRIBED, reason="one-click unsubscribe", now=T0
    )

    assert ledger.claim(due, now=T0 + DAY) == []
    assert ledger.state_counts() == {}


def test_a_retry_comes_back_due_at_its_next_attempt(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    retry_at = now + 10 * MINUTE
    ledger.record(
        [
            DeliveryOutcome(
                claimed.subscriber_id,
                1,
                DeliveryState.RETRYING,
                "<m1>",
                "451 4.7.1 try later",
                retry_at,
            )
        ],
        now=now,
    )

    assert ledger.due(retry_at - timedelta(seconds=1)) == []
    assert ledger.next_due_at() == retry_at
    [retry] = ledger.due(retry_at)
    assert (retry.day, retry.attempts) == (1, 1)
    [reclaimed] = ledger.claim([retry], now=retry_at)
    assert ledger.claim([retry], now=retry_at) == []
    ledger.record([sent(reclaimed, retry_at + DAY)], now=retry_at)

    [delivery] = ledger.history("ann@example.com")
    assert (delivery.state, delivery.attempts, delivery.sent_at) == ("sent", 2, retry_at)
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.next_day, ann.next_due_at) == (2, retry_at + DAY)


def test_a_failed_lesson_is_given_up_and_the_course_moves_on(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.record(
        [
            DeliveryOutcome(
                claimed.subscriber_id,
                1,
                DeliveryState.FAILED,
                reply="gave up after 5 attempts",
                next_due_at=now + DAY,
            )
        ],
        now=now,
    )

    assert [(d.day, d.state) for d in ledger.history("ann@example.com")] == [(1, "failed")]
    assert lessons(ledger.due(now + DAY)) == [("ann@example.com", 2)]


def test_a_bounce_stops_the_subscriber(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    claimed = {r.email: r for r in ledger.claim(ledger.due(now), now=now)}
    reply = "550 5.1.1 <ann@example.com>: user unknown"
    ledger.record(
        [
            DeliveryOutcome(
                claimed["ann@example.com"].subscriber_id, 1, DeliveryState.BOUNCED, "<m>", reply
            ),
            sent(claimed["bob@example.com"], now + DAY),
        ],
        now=now,
    )

    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.status_reason, ann.next_due_at, ann.next_day) == (
        "bounced",
        reply,
        None,
        1,
    )
    assert lessons(ledger.due(now + 5 * DAY)) == [("bob@example.com", 2)]
    [(email, problem)] = ledger.problems()
    assert (email, problem.day, problem.state, problem.last_reply) == (
        "ann@example.com",
        1,
        "bounced",
        reply,
    )


def test_reactivating_a_bounced_subscriber_resends_the_bounced_lesson(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.record(
        [
            DeliveryOutcome(
                claimed.subscriber_id, 1, DeliveryState.BOUNCED, reply="550 mailbox full"
            )
        ],
        now=now,
    )

    later = now + 3 * DAY
    assert ledger.reactivate("ann@example.com", now=later, first_due=first_due)

    assert status_of(ledger, "ann@example.com") == "active"
    assert ledger.due(later + HOUR) == []
    [again] = ledger.due(later + 2 * HOUR)
    assert (again.day, again.attempts) == (1, 1)
    assert not ledger.reactivate("nobody@example.com", now=later, first_due=first_due)


def test_reactivating_someone_who_completed_the_course_is_refused(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    ledger.set_status(
        "ann@example.com", SubscriberStatus.COMPLETED, reason="course complete", now=T0
    )

    with pytest.raises(LedgerError, match="completed the course"):
        ledger.reactivate("ann@example.com", now=T0, first_due=first_due)


def test_a_lesson_in_flight_when_they_unsubscribed_still_counts(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.set_status(
        "ann@example.com", SubscriberStatus.UNSUBSCRIBED, reason="one-click unsubscribe", now=now
    )
    ledger.record([sent(claimed, now + DAY)], now=now)

    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.status_reason, ann.next_day, ann.next_due_at) == (
        "unsubscribed",
        "one-click unsubscribe",
        2,
        None,
    )


def test_recording_an_outcome_twice_changes_nothing(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.record([sent(claimed, now + DAY)], now=now)
    ledger.record([sent(claimed, now + 5 * DAY)], now=now)

    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.next_day, ann.next_due_at) == (2, now + DAY)
    assert [d.attempts for d in ledger.history("ann@example.com")] == [1]


def test_a_retrying_outcome_needs_its_next_attempt(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="next_attempt_at"):
        ledger.record([DeliveryOutcome(1, 1, DeliveryState.RETRYING, reply="451")], now=T0)
    with pytest.raises(ValueError, match="next_attempt_at"):
        ledger.journal([DeliveryOutcome(1, 1, DeliveryState.RETRYING, reply="451")], now=T0)


def every_outcome(ledger: Ledger, now: datetime) -> list[DeliveryOutcome]:
    """Four subscribers claimed at `now`, and one outcome of each kind for them."""
    emails = ["ann@example.com", "bob@example.com", "cy@example.com", "di@example.com"]
    ledger.sync([person(e) for e in emails], now=T0, first_due=first_due)
    ann, bob, cy, di = ledger.claim(ledger.due(now), now=now)
    return [
        sent(ann, now + DAY),
        DeliveryOutcome(
            bob.subscriber_id, 1, DeliveryState.RETRYING, "<b@x>", "451 4.3.0", now + 5 * MINUTE
        ),
        DeliveryOutcome(
            cy.subscriber_id, 1, DeliveryState.BOUNCED, "<c@x>", "550 5.1.1 no such user"
        ),
        DeliveryOutcome(
            di.subscriber_id, 1, DeliveryState.FAILED, "<d@x>", "554 5.7.1 policy", None, now + DAY
        ),
    ]


def ledger_rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    """Everything record() writes, per subscriber: where they are and their deliveries."""
    rows: list[tuple[Any, ...]] = []
    for email in ("ann@example.com", "bob@example.com", "cy@example.com", "di@example.com"):
        view = ledger.subscriber(email)
        assert view is not None
        rows.append((email, view.status, view.next_day, view.next_due_at))
        rows += [(email, *astuple(d)) for d in ledger.history(email)]
    return rows


def test_journaled_outcomes_apply_exactly_as_recorded_ones(tmp_path: Path) -> None:
    now = T0 + 2 * HOUR
    with Ledger.open("sqlite:///recorded.db", base_dir=tmp_path) as recorded:
        recorded.record(every_outcome(recorded, now), now=now)
        expected = ledger_rows(recorded)
    with Ledger.open("sqlite:///journaled.db", base_dir=tmp_path) as journaled:
        outcomes = every_outcome(journaled, now)
        journaled.journal(outcomes[:1], now=now)
        journaled.journal(outcomes[1:], now=now)
        # Not applied yet: the deliveries still read as claimed.
        assert journaled.state_counts() == {(1, "claimed"): 4}
        assert journaled.apply_journal() == 4
        assert journaled.apply_journal() == 0
        assert ledger_rows(journaled) == expected


def test_a_journaled_outcome_for_a_recorded_delivery_is_ignored(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.record([sent(claimed, now + DAY)], now=now)
    ledger.journal([sent(claimed, now + 5 * DAY)], now=now)

    assert ledger.apply_journal() == 1
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.next_day, ann.next_due_at) == (2, now + DAY)
    assert "not a claimed delivery" in caplog.text


def test_of_two_journaled_outcomes_for_one_delivery_the_first_counts(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    [claimed] = ledger.claim(ledger.due(now), now=now)
    ledger.journal([sent(claimed, now + DAY)], now=now)
    ledger.journal(
        [DeliveryOutcome(claimed.subscriber_id, 1, DeliveryState.BOUNCED, reply="550 5.1.1")],
        now=now,
    )

    assert ledger.apply_journal() == 2
    ann = ledger.subscriber("ann@example.com")
    assert ann is not None
    assert (ann.status, ann.next_day, ann.next_due_at) == ("active", 2, now + DAY)
    assert [(d.state, d.attempts) for d in ledger.history("ann@example.com")] == [("sent", 1)]
    assert "ignored a bounced outcome for subscriber" in caplog.text


def test_set_status_reports_unknown_addresses_and_refuses_active(ledger: Ledger) -> None:
    assert not ledger.set_status(
        "nobody@example.com", SubscriberStatus.UNSUBSCRIBED, reason="x", now=T0
    )
    with pytest.raises(ValueError, match="reactivate"):
        ledger.set_status("nobody@example.com", SubscriberStatus.ACTIVE, reason="x", now=T0)


# --- the crash rule and the workers ------------------------------------------------------------


def test_claims_left_by_a_dead_runner_are_sent_again(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    ledger.sync([person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    with Ledger.open(ledger_url, base_dir=tmp_path) as crashed:
        crashed.register_worker(owner="old", pid=4242, host="elsewhere", now=now, stale_after=HOUR)
        assert len(crashed.claim(crashed.due(now), now=now)) == 2
        # ... and it dies here, before record(): its heartbeat goes stale.

    later = now + 2 * HOUR
    ledger.register_worker(owner="new", pid=os.getpid(), host=HOST, now=later, stale_after=HOUR)
    assert ledger.recover_claims(now=later) == 2
    assert ledger.recover_claims(now=later) == 0

    assert ledger.state_counts() == {(1, "retrying"): 2}
    due = ledger.due(later)
    assert sorted(lessons(due)) == [("ann@example.com", 1), ("bob@example.com", 1)]
    [delivery] = ledger.history("ann@example.com")
    assert (delivery.attempts, delivery.next_attempt_at) == (1, later)
    assert delivery.last_reply == REPLY_RECOVERED


def test_a_dead_runners_journal_is_applied_before_its_claims_are_recovered(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    ledger.sync([person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    with Ledger.open(ledger_url, base_dir=tmp_path) as crashed:
        crashed.register_worker(owner="old", pid=4242, host="elsewhere", now=now, stale_after=HOUR)
        ann, _bob = crashed.claim(crashed.due(now), now=now)
        crashed.journal([sent(ann, now + DAY)], now=now)
        # ... and it dies here, with Ann's answer journaled and Bob's message in flight.

    later = now + 2 * HOUR
    ledger.register_worker(owner="new", pid=os.getpid(), host=HOST, now=later, stale_after=HOUR)
    assert ledger.recover_claims(now=later) == 1

    assert ledger.state_counts() == {(1, "sent"): 1, (1, "retrying"): 1}
    assert lessons(ledger.due(later)) == [("bob@example.com", 1)]


def test_recover_claims_leaves_the_live_runners_claims_alone(ledger: Ledger) -> None:
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    ledger.register_worker(owner="me", pid=os.getpid(), host=HOST, now=now, stale_after=HOUR)
    ledger.claim(ledger.due(now), now=now)

    assert ledger.recover_claims(now=now) == 0
    assert ledger.state_counts() == {(1, "claimed"): 1}


def test_on_sqlite_a_second_worker_is_refused_while_the_first_is_alive(tmp_path: Path) -> None:
    with Ledger.open(SQLITE_URL, base_dir=tmp_path) as ledger:
        ledger.register_worker(owner="first", pid=os.getpid(), host=HOST, now=T0, stale_after=HOUR)

        with Ledger.open(SQLITE_URL, base_dir=tmp_path) as other, pytest.raises(LedgerError) as no:
            other.register_worker(
                owner="second",
                pid=1,
                host=HOST,
                now=T0 + 10 * MINUTE,
                stale_after=HOUR,
            )
    assert str(no.value) == (
        f"another `course run` (pid {os.getpid()} on host {HOST}, started 2024-05-01 06:00:00 UTC)"
        " holds the ledger state/course.db; stop it first"
    )


def test_on_sqlite_a_worker_on_another_host_is_trusted_until_its_heartbeat_is_stale(
    tmp_path: Path,
) -> None:
    with Ledger.open(SQLITE_URL, base_dir=tmp_path) as ledger:
        ledger.register_worker(
            owner="remote", pid=999_999, host="far-away", now=T0, stale_after=HOUR
        )
        ledger.heartbeat(owner="remote", now=T0 + 50 * MINUTE)

        with Ledger.open(SQLITE_URL, base_dir=tmp_path) as other:
            with pytest.raises(LedgerError, match="pid 999999 on host far-away"):
                other.register_worker(
                    owner="me", pid=os.getpid(), host=HOST, now=T0 + HOUR, stale_after=HOUR
                )
            later = T0 + 50 * MINUTE + HOUR
            other.register_worker(
                owner="me", pid=os.getpid(), host=HOST, now=later, stale_after=HOUR
            )

        with pytest.raises(LedgerError, match="another `course run` took it over"):
            ledger.heartbeat(owner="remote", now=later)


def test_on_postgresql_workers_join_side_by_side_and_a_stale_one_is_taken_over(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    url = postgres.url(postgres.create_database())
    with Ledger.open(url, base_dir=tmp_path) as remote, Ledger.open(url, base_dir=tmp_path) as me:
        remote.register_worker(owner="remote", pid=999_999, host="far", now=T0, stale_after=HOUR)
        remote.heartbeat(owner="remote", now=T0 + 50 * MINUTE)
        me.register_worker(owner="me", pid=os.getpid(), host=HOST, now=T0 + HOUR, stale_after=HOUR)
        assert [w.owner for w in me.workers(T0 + HOUR) if w.alive] == ["remote", "me"]

        later = T0 + 50 * MINUTE + HOUR
        me.recover_claims(now=later)
        assert [w.owner for w in me.workers(later)] == ["me"]
        with pytest.raises(LedgerError, match="another `course run` took it over"):
            remote.heartbeat(owner="remote", now=later)


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    ledger.register_worker(owner="dead", pid=finished.pid, host=HOST, now=T0, stale_after=DAY)

    with Ledger.open(ledger_url, base_dir=tmp_path) as other:
        other.register_worker(
            owner="alive", pid=os.getpid(), host=HOST, now=T0 + 1 * HOUR, stale_after=DAY
        )
        other.heartbeat(owner="alive", now=T0 + 2 * HOUR)


def test_a_released_lease_can_be_taken_at_once(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    ledger.register_worker(owner="first", pid=os.getpid(), host=HOST, now=T0, stale_after=DAY)
    ledger.release_worker(owner="first")

    with Ledger.open(ledger_url, base_dir=tmp_path) as other:
        other.register_worker(owner="second", pid=os.getpid(), host=HOST, now=T0, stale_after=DAY)


# --- reports ----------------------------------------------------------------------------------


def test_counts_history_and_problems_report_the_ledger(ledger: Ledger) -> None:
    ledger.sync(
        [person(f"{name}@example.com") for name in ("ann", "bob", "cy")],
        now=T0,
        first_due=first_due,
    )
    now = T0 + 2 * HOUR
    claimed = {r.email: r for r in ledger.claim(ledger.due(now), now=now)}
    ledger.record(
        [
            sent(claimed["ann@example.com"], now + DAY),
            DeliveryOutcome(
                claimed["bob@example.com"].subscriber_id,
                1,
                DeliveryState.RETRYING,
                reply="421",
                next_attempt_at=now + HOUR,
            ),
        ],
        now=now,
    )

    assert ledger.state_counts() == {(1, "sent"): 1, (1, "retrying"): 1, (1, "claimed"): 1}
    assert ledger.status_counts() == {"active": 3}
    assert ledger.problems() == [
        (
            "bob@example.com",
            DeliveryView(1, DeliveryState.RETRYING, 1, now, None, "", "421", now + HOUR),
        )
    ]
    assert ledger.problems(limit=0) == []
    assert ledger.history("nobody@example.com") == []
    assert ledger.subscriber("nobody@example.com") is None


# --- dry runs ---------------------------------------------------------------------------------


def test_a_rehearsal_sees_its_own_work_and_keeps_none_of_it(
    tmp_path: Path, ledger_url: str, ledger: Ledger
) -> None:
    """SQLite rehearses on a copy; PostgreSQL inside one transaction that is rolled back."""
    ledger.sync([person("ann@example.com")], now=T0, first_due=first_due)
    now = T0 + 2 * HOUR
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with Ledger.rehearsal(ledger_url, base_dir=tmp_path, scratch=scratch) as dry:
        dry.sync(
            [person("ann@example.com"), person("bob@example.com")], now=T0, first_due=first_due
        )
        ann, bob = dry.claim_due(now, limit=10)
        dry.journal([sent(ann, now + DAY)], now=now)
        assert dry.apply_journal() == 1
        dry.record([sent(bob, None)], now=now)
        dry.set_meta("fingerprint", "dry")
        assert dry.state_counts() == {(1, DeliveryState.SENT): 2}
        assert dry.status_counts() == {
            SubscriberStatus.ACTIVE: 1,
            SubscriberStatus.COMPLETED: 1,
        }
        if ledger.database.is_shared:  # another connection sees none of it meanwhile
            with Ledger.open(ledger_url, base_dir=tmp_path) as other:
                assert other.state_counts() == {}
                assert other.status_counts() == {SubscriberStatus.ACTIVE: 1}
    assert ledger.state_counts() == {}
    assert ledger.status_counts() == {SubscriberStatus.ACTIVE: 1}
    assert ledger.meta("fingerprint") is None
    assert lessons(ledger.due(now)) == [("ann@example.com", 1)]
