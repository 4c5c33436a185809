"""Several workers on one PostgreSQL ledger: races forced step by step, leadership, errors.

The interleavings that SQLite's single writer hides are forced here on a real PostgreSQL
cluster (tests/pg_cluster.py): workers claiming at once, two workers taking over one dead
worker, a fold running while another worker journals, syncs and unsubscribes at once.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.smtp import SMTP, Envelope, Session
from pg_cluster import PostgresCluster
from smtp_servers import ScriptedHandler, smtp_server
from sqlalchemy import Integer, literal, select
from support import free_port, run_course, use_ledger

import course.ledger.queue
import course.ledger.roster
from course.config import load_settings
from course.errors import LedgerError
from course.ledger import (
    DeliveryOutcome,
    DeliveryState,
    DueLesson,
    Ledger,
    SubscriberRecord,
    SubscriberStatus,
    Verdict,
)
from course.ledger.schema import SUBSCRIBERS
from course.ledger.workers import take_over
from course.state import LINKS_SIGNED_WITH_META, secret_fingerprint

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOST = socket.gethostname()


def first_due(timezone: str, start: datetime) -> datetime:
    return start + 2 * HOUR


def people(count: int, prefix: str = "p") -> list[SubscriberRecord]:
    return [
        SubscriberRecord(f"{prefix}{i:05}@example.com", f"P{i}", "UTC", {}, None)
        for i in range(count)
    ]


def sent(lesson: DueLesson, next_due_at: datetime | None = None) -> DeliveryOutcome:
    return DeliveryOutcome(
        lesson.subscriber_id,
        lesson.day,
        DeliveryState.SENT,
        f"<{lesson.day}.{lesson.subscriber_id}@example.com>",
        "250 ok",
        next_due_at=next_due_at or T0 + 3 * DAY,
    )


@pytest.fixture
def url(postgres: PostgresCluster) -> Iterator[str]:
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


def worker(url: str, tmp_path: Path, owner: str, *, now: datetime = T0) -> Ledger:
    """A ledger opened and registered as worker `owner` (this process, this host)."""
    ledger = Ledger.open(url, base_dir=tmp_path)
    ledger.register_worker(owner=owner, pid=os.getpid(), host=HOST, now=now, stale_after=HOUR)
    return ledger


# --- errors the operator can act on -----------------------------------------------------------


def test_a_server_that_is_down_is_one_line_naming_the_url_without_its_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://course:s3cret-pw@127.0.0.1:{free_port()}/course"
    with pytest.raises(LedgerError) as down:
        Ledger.open(url, base_dir=tmp_path)
    message = str(down.value)
    assert message.startswith(
        "cannot connect to the ledger postgresql+psycopg://course:***@127.0.0.1:"
    )
    assert "Connection refused (is PostgreSQL running and listening there?)" in message
    assert "s3cret-pw" not in message
    assert "\n" not in message


def test_a_wrong_password_is_one_line_and_masked(tmp_path: Path, postgres: PostgresCluster) -> None:
    url = postgres.url("postgres", password="wrong-pw")
    with pytest.raises(LedgerError) as refused:
        Ledger.open(url, base_dir=tmp_path)
    assert str(refused.value) == (
        f"cannot connect to the ledger postgresql+psycopg://course:***@127.0.0.1:{postgres.port}"
        '/postgres: password authentication failed for user "course" (check the user and '
        "password in the URL)"
    )


def test_a_missing_database_is_one_line_with_the_fix(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    with pytest.raises(LedgerError) as missing:
        Ledger.open(postgres.url("no_such_db"), base_dir=tmp_path)
    assert str(missing.value) == (
        f"cannot connect to the ledger postgresql+psycopg://course:***@127.0.0.1:{postgres.port}"
        '/no_such_db: database "no_such_db" does not exist (create it first, or check the '
        "name in the URL)"
    )


def test_the_password_can_come_from_pgpassword_instead_of_the_url(
    tmp_path: Path, postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://course@127.0.0.1:{postgres.port}/postgres"
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    with Ledger.open(url, base_dir=tmp_path) as ledger:
        assert (
            ledger.database.label
            == f"postgresql+psycopg://course@127.0.0.1:{postgres.port}/postgres"
        )


# --- starting together ------------------------------------------------------------------------


def _open_at_once(url: str, base_dir: str, start: Any, results: Any) -> None:
    start.wait()
    try:
        with Ledger.open(url, base_dir=Path(base_dir)) as ledger:
            results.put(("ok", ledger.status_counts()))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(("error", repr(exc)))


def test_workers_starting_together_on_a_new_database_create_the_schema_once(
    tmp_path: Path, url: str
) -> None:
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(4), spawn.Queue()
    starters = [
        spawn.Process(target=_open_at_once, args=(url, str(tmp_path), start, results))
        for _ in range(4)
    ]
    for process in starters:
        process.start()
    outcomes = [results.get(timeout=120) for _ in starters]
    for process in starters:
        process.join(timeout=30)
    assert outcomes == [("ok", {})] * 4


# --- claiming at once -------------------------------------------------------------------------


def _claim_until_done(
    url: str, base_dir: str, owner: str, start: Any, first_taken: Any, results: Any
) -> None:
    """A worker claiming batches of 25 until nothing is due, as a tick does.

    Each waits at `first_taken` once it holds its first batch, so every worker is sure to
    claim side by side with the others, however the OS schedules the processes.
    """
    with worker(url, Path(base_dir), owner) as ledger:
        start.wait()
        won: list[tuple[int, int]] = []
        batches = 0
        while batch := ledger.claim_due(T0 + DAY, limit=25):
            won += [(lesson.subscriber_id, lesson.day) for lesson in batch]
            batches += 1
            if batches == 1:
                first_taken.wait(timeout=60)
        if batches == 0:
            first_taken.wait(timeout=60)  # no batch at all: a failure, but let the others go on
        results.put((owner, won, batches))


def test_workers_claiming_at_once_get_disjoint_batches_and_leave_nothing(
    tmp_path: Path, url: str
) -> None:
    with Ledger.open(url, base_dir=tmp_path) as ledger:
        ledger.sync(people(600), now=T0, first_due=first_due)
        everyone = {(lesson.subscriber_id, lesson.day) for lesson in ledger.due(T0 + DAY)}
    assert len(everyone) == 600

    spawn = multiprocessing.get_context("spawn")
    start, first_taken, results = spawn.Barrier(4), spawn.Barrier(4), spawn.Queue()
    claimers = [
        spawn.Process(
            target=_claim_until_done,
            args=(url, str(tmp_path), f"w{n}", start, first_taken, results),
        )
        for n in range(4)
    ]
    for process in claimers:
        process.start()
    claimed = {
        owner: (won, batches)
        for owner, won, batches in (results.get(timeout=120) for _ in claimers)
    }
    for process in claimers:
        process.join(timeout=30)
        assert process.exitcode == 0

    every_claim = [lesson for won, _ in claimed.values() for lesson in won]
    assert len(every_claim) == len(set(every_claim)) == 600  # no duplicate
    assert set(every_claim) == everyone  # no skip
    # SKIP LOCKED: workers claiming side by side each take their own batches.
    assert all(batches > 0 for _, batches in claimed.values())


def test_an_empty_claim_while_rows_are_locked_waits_for_them(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker holds the due rows mid-claim; the claim comes back empty, but the
    work is still due, so the tick tries again instead of ending."""
    with Ledger.open(url, base_dir=tmp_path) as ledger:
        ledger.sync(people(30), now=T0, first_due=first_due)
    holder = worker(url, tmp_path, "holder")
    me = worker(url, tmp_path, "me")
    hold, release = threading.Event(), threading.Event()
    real_claim_keys = course.ledger.queue.Queue._claim_keys

    def slow_claim(self: Any, *args: Any) -> None:
        if threading.current_thread().name == "holder":
            hold.set()
            release.wait(10)  # the rows stay locked FOR UPDATE until this claim commits
        real_claim_keys(self, *args)

    monkeypatch.setattr(course.ledger.queue.Queue, "_claim_keys", slow_claim)
    holding = threading.Thread(
        target=lambda: holder.claim_due(T0 + DAY, limit=20), name="holder", daemon=True
    )
    holding.start()
    assert hold.wait(10)
    assert me.claim_due(T0 + DAY, limit=20) != []  # the ten rows nobody holds
    assert me.claim_due(T0 + DAY, limit=20) == []  # the rest are locked ...
    assert me.is_due(T0 + DAY)  # ... and still due, so a tick keeps trying
    release.set()
    holding.join(10)
    assert not me.is_due(T0 + DAY)
    assert me.state_counts() == {(1, DeliveryState.CLAIMED): 30}
    holder.close()
    me.close()


def test_a_claim_from_a_stale_snapshot_does_not_deadlock_with_the_claimers_fold(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker B's claim read its due rows before worker A's claim of them committed, and locks
    their subscribers after it did (forced here: B's query does not look at deliveries). A's
    fold of those lessons then waits for B's locks. B must not then wait for A's fold (by
    inserting claims for A's lessons): PostgreSQL would break the cycle by aborting one."""
    caplog.set_level(logging.INFO, logger="course.ledger")
    with Ledger.open(url, base_dir=tmp_path) as setup:
        setup.sync(people(10), now=T0, first_due=first_due)
    a, b = worker(url, tmp_path, "a"), worker(url, tmp_path, "b")
    now = T0 + DAY
    claimed_by_a = a.claim_due(now, limit=10)
    a.journal([sent(lesson) for lesson in claimed_by_a], now=now)

    def stale(now: datetime, limit: int, *, lock: bool = False) -> Any:
        s = SUBSCRIBERS
        query = select(
            s.c.id.label("subscriber_id"),
            s.c.email,
            s.c.name,
            s.c.timezone,
            s.c.fields,
            s.c.next_day.label("day"),
            literal(0, Integer).label("attempts"),
            s.c.joined_at,
            s.c.next_due_at.label("due_at"),
        ).where(s.c.next_due_at <= now)
        return query.with_for_update(skip_locked=True, of=s)

    locked, go_on = threading.Event(), threading.Event()
    real_delivered = course.ledger.queue.delivered

    def pause_after_locking(conn: Any, lessons: Any) -> Any:
        locked.set()
        go_on.wait(10)
        return real_delivered(conn, lessons)

    monkeypatch.setattr(course.ledger.queue, "fresh_lessons_due", stale)
    monkeypatch.setattr(course.ledger.queue, "delivered", pause_after_locking)
    b_claimed: list[list[DueLesson]] = []
    b_claim = threading.Thread(target=lambda: b_claimed.append(b.claim_due(now, limit=10)))
    b_claim.start()
    assert locked.wait(10)
    folded: list[int] = []
    a_fold = threading.Thread(target=lambda: folded.append(a.apply_journal()))
    a_fold.start()
    time.sleep(0.5)  # A's fold has updated the deliveries and waits for B's subscriber locks
    go_on.set()
    b_claim.join(15)
    a_fold.join(15)
    assert b_claimed == [[]]
    assert folded == [10]
    assert "deadlock" not in caplog.text
    assert a.state_counts() == {(1, DeliveryState.SENT): 10}
    a.close()
    b.close()


# --- the crash rule across workers ------------------------------------------------------------


def test_of_two_workers_taking_over_one_dead_worker_exactly_one_does(
    tmp_path: Path, url: str
) -> None:
    with Ledger.open(url, base_dir=tmp_path) as dead:
        dead.register_worker(owner="dead", pid=999_999, host="far", now=T0, stale_after=HOUR)
    # Both join while it still looks alive; an hour later both find it dead ...
    first = worker(url, tmp_path, "a", now=T0 + HOUR / 2)
    second = worker(url, tmp_path, "b", now=T0 + HOUR / 2)
    later = T0 + 2 * HOUR
    [seen_by_a] = [row for row in first._workers.dead(later) if row.owner == "dead"]
    [seen_by_b] = [row for row in second._workers.dead(later) if row.owner == "dead"]
    # ... and both take it over at the same moment, each in its own transaction.
    start = threading.Barrier(2)
    wins: list[bool] = []

    def take(ledger: Ledger, row: Any) -> None:
        start.wait()
        with ledger.database.writing() as conn:
            wins.append(take_over(conn, row))

    racers = [
        threading.Thread(target=take, args=(first, seen_by_a)),
        threading.Thread(target=take, args=(second, seen_by_b)),
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(10)
    assert sorted(wins) == [False, True]
    first.close()
    second.close()


def test_recovery_never_touches_a_live_workers_claims(tmp_path: Path, url: str) -> None:
    """The lease race of the issue: a stale worker, and two workers starting at once. The
    claims of the one already sending must never go back to `retrying`."""
    with Ledger.open(url, base_dir=tmp_path) as setup:
        setup.sync(people(40), now=T0, first_due=first_due)
        setup.register_worker(owner="stale", pid=999_999, host="far", now=T0, stale_after=HOUR)
        stale_claims = setup.claim_due(T0 + DAY, limit=10)  # as worker "stale"
    assert len(stale_claims) == 10

    later = T0 + DAY
    a = worker(url, tmp_path, "a", now=later)
    a_claims = a.claim_due(later, limit=10)
    b = worker(url, tmp_path, "b", now=later)
    start = threading.Barrier(2)
    recovered: list[int] = []

    def recover(ledger: Ledger) -> None:
        start.wait()
        recovered.append(ledger.recover_claims(now=later))

    racers = [threading.Thread(target=recover, args=(w,)) for w in (a, b)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(20)

    assert sorted(recovered) == [0, 10]  # the stale worker's claims, recovered once
    assert [d.state for lesson in a_claims for d in a.history(lesson.email)] == [
        DeliveryState.CLAIMED
    ] * 10
    a.record([sent(lesson) for lesson in a_claims], now=later)
    assert a.state_counts() == {(1, DeliveryState.SENT): 10, (1, DeliveryState.RETRYING): 10}
    a.close()
    b.close()


def test_a_fold_racing_another_workers_insert_loses_nothing(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A's journal insert commits in the middle of worker B's fold, with an id below
    the last one B saw. B folds only its own rows; A's outcome waits for A's fold."""
    with Ledger.open(url, base_dir=tmp_path) as setup:
        setup.sync(people(4), now=T0, first_due=first_due)
    a, b = worker(url, tmp_path, "a"), worker(url, tmp_path, "b")
    now = T0 + DAY
    a_claims, b_claims = a.claim_due(now, limit=2), b.claim_due(now, limit=2)

    # A's insert takes its id now, and commits only once B's fold is under way.
    pending = a.database.engine.raw_connection()
    cursor = pending.cursor()
    [row] = a._queue._journal.params([sent(a_claims[0])], now, "a")
    cursor.execute(a._queue._journal.sql, row)
    b.journal([sent(lesson) for lesson in b_claims], now=now)
    real_drop = course.ledger.queue._drop_unrecordable

    def commit_a_mid_fold(conn: Any, bound: dict[str, Any]) -> None:
        pending.commit()  # committed after B read its highest id, before B deletes
        real_drop(conn, bound)

    monkeypatch.setattr(course.ledger.queue, "_drop_unrecordable", commit_a_mid_fold)
    assert b.apply_journal() == 2
    monkeypatch.undo()
    pending.close()

    states = {d.state for lesson in a_claims for d in a.history(lesson.email)}
    assert states == {DeliveryState.CLAIMED}  # A's outcome: neither lost nor half-applied
    a.journal([sent(a_claims[1])], now=now)
    assert a.apply_journal() == 2
    assert a.state_counts() == {(1, DeliveryState.SENT): 4}
    for lesson in [*a_claims, *b_claims]:
        view = a.subscriber(lesson.email)
        assert view is not None
        assert view.next_day == 2
    a.close()
    b.close()


def test_a_taken_over_workers_late_outcomes_are_ignored(tmp_path: Path, url: str) -> None:
    """A worker that looked dead (a long pause) and comes back: its claims were recovered
    and claimed again by another worker; what it journals late changes nothing of theirs."""
    with Ledger.open(url, base_dir=tmp_path) as setup:
        setup.sync(people(1), now=T0, first_due=first_due)
    paused = worker(url, tmp_path, "paused")
    [lesson] = paused.claim_due(T0 + DAY, limit=5)
    other = Ledger.open(url, base_dir=tmp_path)
    other.register_worker(
        owner="other", pid=os.getpid(), host=HOST, now=T0 + 3 * DAY, stale_after=HOUR
    )
    assert other.recover_claims(now=T0 + 3 * DAY) == 1
    [again] = other.claim_due(T0 + 3 * DAY, limit=5)

    paused.journal([sent(lesson)], now=T0 + 3 * DAY)
    paused.apply_journal()
    [delivery] = other.history(again.email)
    assert (delivery.state, delivery.attempts) == (DeliveryState.CLAIMED, 1)
    other.record([sent(again)], now=T0 + 3 * DAY)
    [delivery] = other.history(again.email)
    assert (delivery.state, delivery.attempts) == (DeliveryState.SENT, 2)
    with pytest.raises(LedgerError, match="took it over"):
        paused.heartbeat(owner="paused", now=T0 + 3 * DAY)
    paused.close()
    other.close()


# --- the leader -------------------------------------------------------------------------------


def test_one_worker_leads_and_another_takes_over_when_it_goes(tmp_path: Path, url: str) -> None:
    a, b = worker(url, tmp_path, "a"), worker(url, tmp_path, "b")
    assert a.lead(T0) is True
    assert b.lead(T0) is False
    assert a.lead(T0 + HOUR) is True  # still holds it
    views = {w.owner: w for w in b.workers(T0)}
    assert views["a"].leader_since == T0
    assert views["b"].leader_since is None

    a.close()  # its connection, and so its advisory lock, is gone
    assert b.lead(T0 + 2 * HOUR) is True
    views = {w.owner: w for w in b.workers(T0 + 2 * HOUR)}
    assert views["b"].leader_since == T0 + 2 * HOUR
    assert views["a"].leader_since is None
    b.close()


# --- the roster under concurrent writers ------------------------------------------------------


def test_concurrent_syncs_and_unsubscribes_never_collide(tmp_path: Path, url: str) -> None:
    ledgers = [Ledger.open(url, base_dir=tmp_path) for _ in range(3)]
    roster = people(300)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        start.wait()
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    actions: list[Callable[[], object]] = [
        lambda: ledgers[0].sync(roster, now=T0, first_due=first_due),
        lambda: ledgers[1].sync(roster, now=T0, first_due=first_due),
        lambda: [
            ledgers[2].unsubscribe(f"p{i:05}@example.com", how="one-click", now=T0)
            for i in range(0, 300, 3)
        ],
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    counts = ledgers[0].status_counts()
    assert counts == {SubscriberStatus.ACTIVE: 200, SubscriberStatus.UNSUBSCRIBED: 100}
    assert len(ledgers[0].due(T0 + DAY, limit=1000)) == 200
    for ledger in ledgers:
        ledger.close()


def test_an_unsubscribe_landing_during_a_sync_is_kept(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync read Ann as active and removes or rejoins by what it read; the unsubscribe
    that commits in between wins."""
    with Ledger.open(url, base_dir=tmp_path) as ledger:
        ledger.sync(people(2, "ann"), now=T0, first_due=first_due)
        ledger.sync(people(1, "ann"), now=T0, first_due=first_due)  # ann00001 removed
        other = Ledger.open(url, base_dir=tmp_path)
        sync = course.ledger.roster._ListSync
        real_known = sync._known

        def unsubscribe_after_reading(self: Any, keys: Any) -> Any:
            known = real_known(self, keys)
            other.unsubscribe("ann00000@example.com", how="one-click", now=T0 + HOUR)
            other.unsubscribe("ann00001@example.com", how="one-click", now=T0 + HOUR)
            return known

        monkeypatch.setattr(sync, "_known", unsubscribe_after_reading)
        # ann00000 missing from the CSV now (would be removed); ann00001 back (would rejoin).
        ledger.sync(people(2, "ann")[1:], now=T0 + 2 * HOUR, first_due=first_due)
        monkeypatch.undo()
        for email in ("ann00000@example.com", "ann00001@example.com"):
            view = ledger.subscriber(email)
            assert view is not None
            assert view.status == SubscriberStatus.UNSUBSCRIBED
        other.close()


def test_complaints_for_an_unseen_address_arriving_together_never_collide(
    tmp_path: Path, url: str
) -> None:
    """Two workers take in reports for the same address nobody synced yet (two provider
    events), while the leader syncs it in: one row, unsubscribed, no UNIQUE error."""
    ledgers = [Ledger.open(url, base_dir=tmp_path) for _ in range(3)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        start.wait()
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    def complaint(ledger: Ledger, key: str) -> Callable[[], object]:
        return lambda: ledger.take_notice(
            key=key,
            verdict=Verdict.COMPLAINED,
            email="P00000@example.com",
            detail="marked as spam",
            source="webhook",
            now=T0,
        )

    actions = [
        complaint(ledgers[0], "event-1"),
        complaint(ledgers[1], "event-2"),
        lambda: ledgers[2].sync(people(1), now=T0, first_due=first_due),
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert ledgers[0].status_counts() == {SubscriberStatus.UNSUBSCRIBED: 1}
    for ledger in ledgers:
        ledger.close()


# --- a worker killed mid-batch ----------------------------------------------------------------


class SlowServer(ScriptedHandler):
    """Takes each message, then waits before answering: long enough to kill a worker mid-batch."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)  # recorded first: a worker killed now leaves it in doubt
        return reply


def live_workers(project: Path) -> int:
    settings = load_settings(project / "schedule.yaml")
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        return sum(w.alive for w in ledger.workers(datetime.now(UTC)))


def test_sigkill_of_one_of_two_workers_mid_batch_the_other_finishes_the_day(
    project: Path, url: str
) -> None:
    emails = [f"k{i:02d}@example.com" for i in range(60)]
    handler = SlowServer(0.25)
    connections = 2
    with smtp_server(handler) as info:
        config = project / "schedule.yaml"
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["ledger"] = url
        data["schedule"]["tick_seconds"] = 1
        data["preview"] = {"enabled": False}
        data["unsubscribe"] = {"base_url": "https://courses.example.com/unsubscribe", "listen": ""}
        data["delivery"] = {
            "backend": "smtp",
            "smtp": {
                "host": "127.0.0.1",
                "port": info.port,
                "security": "none",
                "timeout": 5,
                "max_connections": connections,
            },
        }
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        rows = "".join(f"{e},{e.split('@')[0].title()},UTC\n" for e in emails)
        (project / "examples" / "subscribers.csv").write_text(
            "email,first_name,timezone\n" + rows, encoding="utf-8"
        )

        def course_run() -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "course.cli", "run"],
                cwd=project,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )

        # The first worker leads, syncs the list and claims the whole day in one batch; the
        # second joins while it sends, finds nothing left to claim, and waits.
        killed = course_run()
        survivor: subprocess.Popen[str] | None = None
        try:
            handler.wait_until(lambda: len(handler.received) >= 3, timeout=60, what="3 messages")
            survivor = course_run()
            deadline = time.monotonic() + 60
            while live_workers(project) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert live_workers(project) == 2
            handler.wait_until(lambda: len(handler.received) >= 15, timeout=60, what="15")
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            assert len({m.rcpt_tos[0] for m in handler.received}) < len(emails), "killed late"
            handler.wait_until(
                lambda: {m.rcpt_tos[0] for m in handler.received} == set(emails),
                timeout=60,
                what="every subscriber's lesson",
            )
            survivor.send_signal(signal.SIGTERM)
            _, errors = survivor.communicate(timeout=30)
            assert survivor.returncode == 0, errors
        finally:
            for process in (killed, survivor):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()

    copies = Counter(m.rcpt_tos[0] for m in handler.received)
    assert sorted(copies) == emails  # nobody skipped
    # At most the message each of the killed worker's connections had in flight went out
    # twice: its other answers were journaled before that connection sent again.
    assert sum(n - 1 for n in copies.values()) <= connections
    assert "took over worker" in errors
    assert "were claimed by a run that stopped before recording them" in errors
    settings = load_settings(project / "schedule.yaml")
    with Ledger.open(settings.ledger, base_dir=settings.base_dir) as ledger:
        assert ledger.state_counts() == {(1, DeliveryState.SENT): 60}
        assert ledger.workers(datetime.now(UTC)) == []


def test_a_worker_with_another_unsubscribe_secret_is_refused_beside_the_others(
    project: Path, url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    use_ledger(project, url)

    def host(name: str) -> Path:
        """The same course on another host: its own state/."""
        copy = tmp_path_factory.mktemp(name) / "course"
        shutil.copytree(project, copy, ignore=shutil.ignore_patterns("state"))
        return copy

    first, second = "a" * 32, "b" * 32
    with Ledger.open(url, base_dir=project) as running:
        # A worker running elsewhere, alive, signing links with the first secret.
        running.register_worker(
            owner="running", pid=os.getpid(), host=HOST, now=datetime.now(UTC), stale_after=HOUR
        )
        running.set_meta(LINKS_SIGNED_WITH_META, secret_fingerprint(first.encode()))
        refused = run_course(host("b"), "send", env={"COURSE_SECRET": second})
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines()[-1] == (
            "course: error: schedule.yaml: unsubscribe.secret_env: this worker's unsubscribe "
            "secret ($COURSE_SECRET, or state/unsubscribe.secret when unset) is not the one "
            "the 1 other worker(s) on this ledger use, so the links it makes would not verify "
            "elsewhere; give every worker the same $COURSE_SECRET"
        )
        sent = run_course(project, "send", env={"COURSE_SECRET": first})
        assert sent.returncode == 0, sent.stderr
        running.release_worker(owner="running")
    # Once mail has gone out, a host new to the ledger with another secret is refused
    # before it starts, whoever else is running.
    new_host = run_course(host("c"), "send", env={"COURSE_SECRET": second})
    assert new_host.returncode == 1
    assert "is not the one the other workers on postgresql://course:***@" in new_host.stderr
    same = run_course(host("d"), "send", env={"COURSE_SECRET": first})
    assert same.returncode == 0, same.stderr


def test_course_status_lists_the_workers_and_the_leader(project: Path, url: str) -> None:
    use_ledger(project, url)
    now = datetime.now(UTC)
    with Ledger.open(url, base_dir=project) as leader, Ledger.open(url, base_dir=project) as other:
        leader.register_worker(
            owner="aaaaaaaa-leader", pid=os.getpid(), host=HOST, now=now, stale_after=HOUR
        )
        other.register_worker(
            owner="bbbbbbbb-other", pid=4242, host="far", now=now, stale_after=HOUR
        )
        assert leader.lead(now)
        status = run_course(project, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    start = lines.index(f"workers: 2 running (leader aaaaaaaa on {HOST})")
    assert lines[start + 1].split() == [
        "worker",
        "role",
        "host",
        "pid",
        "started",  # with its zone, as every time in course status
        "last",
        "heartbeat",
    ]
    assert lines[start + 2].split()[:4] == ["aaaaaaaa", "leader", HOST, str(os.getpid())]
    assert lines[start + 3].split()[:4] == ["bbbbbbbb", "worker", "far", "4242"]
