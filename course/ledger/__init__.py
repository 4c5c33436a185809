"""The send ledger: the only truth about who got which lesson.

One row per subscriber (where they are in the course) and one row per (subscriber, day)
delivery (what happened to that lesson). Everything goes through SQLAlchemy Core with
portable statements, so the same ledger runs on SQLite (the default, in WAL mode) and on
PostgreSQL. No method reads the clock: every one takes `now`, an aware datetime.

The package is cut along its jobs, and `Ledger` is the one door to them:
  database  the engine, transactions and what differs between SQLite and PostgreSQL
  schema    tables, states and statuses, UTC times, migrations
  roster    subscribers: CSV sync, unsubscribe, resubscribe, suppressions
  queue     due, claim, journal, fold, release, recover: the crash rule
  workers   the worker table: heartbeats, take-over, the leader
  reports   read-only counts, history, problems, stored facts
  notices   late bounces, complaints and provider events, each taken in once
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from course.ledger.copies import copy_rows
from course.ledger.database import Database, parse_backend
from course.ledger.notices import NoticeResult, Notices, NoticeView
from course.ledger.queue import Queue
from course.ledger.records import (
    DeliveryOutcome,
    DeliveryView,
    Departure,
    DueLesson,
    ListRow,
    Standing,
    SubscriberRecord,
    SubscriberView,
    SyncSummary,
)
from course.ledger.reports import Reports
from course.ledger.roster import ResumeDue, Roster, Stop
from course.ledger.schema import (
    DeliveryState,
    SubscriberStatus,
    Verdict,
    schema_version_of,
    upgrade,
)
from course.ledger.workers import Workers, WorkerView

__all__ = [
    "DeliveryOutcome",
    "DeliveryState",
    "DeliveryView",
    "Departure",
    "DueLesson",
    "Ledger",
    "ListRow",
    "NoticeResult",
    "NoticeView",
    "ResumeDue",
    "Standing",
    "Stop",
    "SubscriberRecord",
    "SubscriberStatus",
    "SubscriberView",
    "SyncSummary",
    "Verdict",
    "WorkerView",
]


class Ledger:
    """The send ledger on one database. Open it with `Ledger.open()`; `close()` when done.

    Each method hands its job to the part of the package that owns it; the docstrings there
    say what each does.
    """

    def __init__(self, db: Database) -> None:
        self.database = db
        self._roster = Roster(db)
        self._workers = Workers(db)
        self._queue = Queue(db, self._workers)
        self._reports = Reports(db)
        self._notices = Notices(db)

    @classmethod
    def open(cls, url: str, *, base_dir: Path) -> Ledger:
        """Open the ledger at `url`, creating and migrating its schema as needed.

        A relative SQLite path is resolved against `base_dir`, and its directory is created.
        LedgerError names the URL or file when it is invalid, unreadable or too new.
        """
        db = Database.open(url, base_dir=base_dir)
        try:
            upgrade(db)
        except BaseException:
            db.close()
            raise
        return cls(db)

    @classmethod
    def open_if_started(cls, url: str, *, base_dir: Path) -> Ledger | None:
        """The ledger at `url` if one was ever created there, else None; creates nothing.

        For `course status` before the first tick: no SQLite file, or a database without the
        ledger's tables, is a course that has not started.
        """
        db = Database.open_if_exists(url, base_dir=base_dir)
        if db is None:
            return None
        try:
            with db.reading() as conn:
                started = schema_version_of(conn) > 0
            if started:
                upgrade(db)
        except BaseException:
            db.close()
            raise
        if not started:
            db.close()
            return None
        return cls(db)

    @classmethod
    @contextmanager
    def rehearsal(cls, url: str, *, base_dir: Path, scratch: Path) -> Iterator[Ledger]:
        """A ledger to rehearse on (`course send --dry-run`): its changes never reach `url`.

        SQLite: a consistent copy in the folder `scratch`, made with sqlite3's online backup
        API, so a running `course run` is not held up; no file yet gives a fresh ledger and
        leaves none behind. Other databases: the ledger itself, inside one transaction that
        is rolled back at the end (Database.open_rolled_back).
        """
        if parse_backend(url) == "sqlite":
            copy = scratch / "rehearsal.db"
            Database.snapshot_sqlite(url, base_dir=base_dir, target=copy)
            ledger = cls.open(f"sqlite:///{copy.resolve()}", base_dir=scratch)
        else:
            db = Database.open_rolled_back(url, base_dir=base_dir)
            try:
                upgrade(db)
            except BaseException:
                db.close()
                raise
            ledger = cls(db)
        try:
            yield ledger
        finally:
            ledger.close()

    @classmethod
    def copy(cls, url: str, *, base_dir: Path, target: Path) -> bool:
        """Copy the ledger at `url` into the SQLite file `target`, for a sandbox.

        SQLite is copied with the online backup API; any other database row by row in one
        read transaction. The copy has no workers registered: it belongs to whoever opens it
        next. False, with nothing created, when no ledger exists at `url` yet.
        """
        if parse_backend(url) == "sqlite":
            if not Database.snapshot_sqlite(url, base_dir=base_dir, target=target):
                return False
            copied = cls.open(f"sqlite:///{target.resolve()}", base_dir=target.parent)
        else:
            source = cls.open_if_started(url, base_dir=base_dir)
            if source is None:
                return False
            with source:
                copied = cls.open(f"sqlite:///{target.resolve()}", base_dir=target.parent)
                try:
                    copy_rows(source.database, copied.database)
                except BaseException:
                    copied.close()
                    raise
        with copied:
            copied._workers.forget_all()
        return True

    def close(self) -> None:
        self._workers.resign()
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the roster (roster.py) ------------------------------------------------------------

    def sync(
        self,
        rows: Iterable[ListRow],
        *,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
        before_suppressing: Callable[[Sequence[Departure]], None] | None = None,
        resume_due: ResumeDue | None = None,
    ) -> SyncSummary:
        return self._roster.sync(
            rows,
            now=now,
            first_due=first_due,
            before_suppressing=before_suppressing,
            resume_due=resume_due,
        )

    def set_status(
        self, email: str, status: SubscriberStatus, *, reason: str, now: datetime
    ) -> bool:
        return self._roster.set_status(email, status, reason=reason, now=now)

    def unsubscribe(self, email: str, *, how: str, now: datetime) -> bool:
        return self._roster.unsubscribe(email, how=how, now=now)

    def reactivate(
        self,
        email: str,
        *,
        now: datetime,
        first_due: Callable[[str, datetime], datetime],
        resume_due: ResumeDue | None = None,
    ) -> bool:
        return self._roster.reactivate(email, now=now, first_due=first_due, resume_due=resume_due)

    def suppress(self, stops: Sequence[Stop]) -> int:
        return self._roster.suppress(stops)

    def give_refs(self, refs: Mapping[int, str]) -> None:
        self._roster.give_refs(refs)

    def fill_refs(self, ref_of: Callable[[str], str]) -> int:
        return self._roster.fill_refs(ref_of)

    def suppressions(self) -> list[SubscriberView]:
        return self._roster.suppressions()

    def set_meta(self, key: str, value: str) -> None:
        self._roster.set_meta(key, value)

    def first_meta(self, key: str, value: str) -> str:
        return self._roster.first_meta(key, value)

    # --- the queue (queue.py) --------------------------------------------------------------

    def due(self, now: datetime, *, limit: int = 1000) -> list[DueLesson]:
        return self._queue.due(now, limit=limit)

    def next_due_at(self) -> datetime | None:
        return self._queue.next_due_at()

    def claim_due(self, now: datetime, *, limit: int) -> list[DueLesson]:
        return self._queue.claim_due(now, limit=limit)

    def is_due(self, now: datetime) -> bool:
        return self._queue.is_due(now)

    def claim(self, lessons: Sequence[DueLesson], *, now: datetime) -> list[DueLesson]:
        """Claim as this process's worker ("" when not registered)."""
        return self._queue.claim(lessons, now=now)

    def record(self, outcomes: Sequence[DeliveryOutcome], *, now: datetime) -> None:
        self._queue.record(outcomes, now=now)

    def journal(self, outcomes: Sequence[DeliveryOutcome], *, now: datetime) -> None:
        self._queue.journal(outcomes, now=now)

    def apply_journal(self) -> int:
        return self._queue.apply_journal()

    def release(self, lessons: Sequence[DueLesson], *, now: datetime) -> int:
        return self._queue.release(lessons, now=now)

    def recover_claims(self, *, now: datetime, alive_at: datetime | None = None) -> int:
        return self._queue.recover_claims(now=now, alive_at=alive_at)

    # --- workers (workers.py) --------------------------------------------------------------

    def register_worker(
        self, *, owner: str, pid: int, host: str, now: datetime, stale_after: timedelta
    ) -> None:
        self._workers.register(owner=owner, pid=pid, host=host, now=now, stale_after=stale_after)

    def heartbeat(self, *, owner: str, now: datetime) -> None:
        self._workers.heartbeat(owner=owner, now=now)

    def heartbeats(
        self, *, owner: str, clock: Callable[[], datetime], every: float
    ) -> AbstractContextManager[Callable[[], bool]]:
        return self._workers.beating(owner=owner, clock=clock, every=every)

    def release_worker(self, *, owner: str) -> None:
        self._workers.release(owner=owner)

    @property
    def owner(self) -> str:
        """This process's worker id on the ledger; "" while it is not registered."""
        return self._workers.owner

    def lead(self, now: datetime) -> bool:
        return self._workers.lead(now)

    @property
    def is_leader(self) -> bool:
        """Whether this worker leads: it alone runs the singleton jobs (CSV sync, bounces).

        Decided by lead(), once a tick; always true on SQLite once registered.
        """
        return self._workers.is_leader

    def workers(self, now: datetime) -> list[WorkerView]:
        return self._workers.listing(now)

    # --- reports (reports.py) --------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        return self._reports.meta(key)

    def state_counts(self) -> dict[tuple[int, DeliveryState], int]:
        return self._reports.state_counts()

    def status_counts(self) -> dict[SubscriberStatus, int]:
        return self._reports.status_counts()

    def subscriber(self, email: str) -> SubscriberView | None:
        return self._reports.subscriber(email)

    def latest_with_status(
        self, statuses: Collection[SubscriberStatus], *, limit: int
    ) -> list[SubscriberView]:
        return self._reports.latest_with_status(statuses, limit=limit)

    def subscriber_by_ref(self, ref: str) -> SubscriberView | None:
        return self._reports.subscriber_by_ref(ref)

    def standings_by_ref(self, refs: Collection[str]) -> dict[str, Standing]:
        return self._reports.standings_by_ref(refs)

    def has_deliveries(self) -> bool:
        return self._reports.has_deliveries()

    def history(self, email: str) -> list[DeliveryView]:
        return self._reports.history(email)

    def problems(self, *, limit: int | None = None) -> list[tuple[str, DeliveryView]]:
        return self._reports.problems(limit=limit)

    # --- bounce notices (notices.py) -------------------------------------------------------

    def take_notice(
        self,
        *,
        key: str,
        verdict: Verdict,
        email: str,
        detail: str,
        source: str,
        evidence: str = "",
        now: datetime,
        day: int = 0,
    ) -> NoticeResult:
        return self._notices.take(
            key=key,
            verdict=verdict,
            email=email,
            detail=detail,
            source=source,
            evidence=evidence,
            now=now,
            day=day,
        )

    def notice_taken(self, key: str) -> bool:
        return self._notices.taken(key)

    def bind_key(self, key: str, value: str, *, source: str, now: datetime) -> str:
        return self._notices.bind(key, value, source=source, now=now)

    def recent_notices(self, verdicts: tuple[Verdict, ...], *, limit: int = 50) -> list[NoticeView]:
        return self._notices.recent(verdicts, limit=limit)
