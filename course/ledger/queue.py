"""The queue: what is due, claiming it, the outcome journal, and the crash rule.

A lesson goes out in three steps: `due()` lists what is due, `claim()` marks a delivery
`claimed` (the UNIQUE (subscriber_id, day) key and a conditional UPDATE let exactly one
claimer win it), the message is handed to the mail server, and the outcome is journaled
and folded into the deliveries (`record()` does both at once).

The crash rule (`recover_claims`): a delivery claimed by a runner that died before its
outcome was recorded is sent again, so a lesson is never skipped; at most the messages that
were in flight are duplicated.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import delete as sql_delete

from course.ledger.chunks import IN_CHUNK, in_chunks
from course.ledger.database import Database
from course.ledger.records import DeliveryOutcome, DueLesson, due_lesson_of
from course.ledger.schema import (
    DELIVERIES,
    OUTCOME_JOURNAL,
    OUTCOME_STATES,
    REASON_COMPLETED,
    REPLY_RECOVERED,
    SUBSCRIBERS,
    WORKERS,
    DeliveryState,
    SubscriberStatus,
    UTCDateTime,
    require_utc,
)
from course.ledger.workers import Workers

# The ledger's logger, "course.ledger", as before the package split; not this module's name.
_LOG = logging.getLogger("course.ledger")


class Queue:
    """The deliveries of one ledger: due, claimed, recorded."""

    def __init__(self, db: Database, workers: Workers) -> None:
        self._db = db
        self._workers = workers  # who claims (this process's worker), and who is dead
        self._journal = JournalRows(db)

    def due(self, now: datetime, *, limit: int = 1000) -> list[DueLesson]:
        """Up to `limit` deliveries due at `now`, earliest first.

        These are active subscribers whose next lesson is due and has no delivery row yet,
        and `retrying` deliveries whose next attempt is due and whose subscriber is active.
        Both are index range scans, so "nothing due" costs milliseconds at any size.
        """
        now = require_utc(now)
        with self._db.reading() as conn:
            rows = [
                *conn.execute(fresh_lessons_due(now, limit)),
                *conn.execute(retries_due(now, limit)),
            ]
        rows.sort(key=lambda row: (row.due_at, row.subscriber_id))
        return [due_lesson_of(row) for row in rows[:limit]]

    def next_due_at(self) -> datetime | None:
        """The earliest instant at which due() will return something, or None if never.

        Lets a simulator jump straight to the next event.
        """
        far_future = datetime.max.replace(tzinfo=UTC)
        with self._db.reading() as conn:
            candidates = [
                conn.execute(fresh_lessons_due(far_future, 1)).first(),
                conn.execute(retries_due(far_future, 1)).first(),
            ]
        instants = [row.due_at for row in candidates if row is not None]
        return min(instants, default=None)

    def claim_due(self, now: datetime, *, limit: int) -> list[DueLesson]:
        """Claim up to `limit` deliveries due at `now`, earliest first; return them.

        What due() would list, read and claimed in one transaction. On PostgreSQL the rows
        are read FOR UPDATE SKIP LOCKED, so workers claiming at the same moment get disjoint
        batches instead of all racing for the same first rows; on SQLite the transaction
        holds the database (BEGIN IMMEDIATE). Send exactly what this returns, then record
        the outcomes. An empty list while something is still due (see is_due) means other
        workers hold those rows for the moment.
        """
        now = require_utc(now)

        def claim(conn: Connection) -> list[DueLesson]:
            rows = [
                *conn.execute(fresh_lessons_due(now, limit, lock=True)),
                *conn.execute(retries_due(now, limit, lock=True)),
            ]
            rows.sort(key=lambda row: (row.due_at, row.subscriber_id))
            by_lesson = {(row.subscriber_id, row.day): due_lesson_of(row) for row in rows[:limit]}
            retries = {key for key, lesson in by_lesson.items() if lesson.attempts > 0}
            # A fresh lesson another worker claimed and committed after this statement's
            # snapshot still reads as due, and its subscriber row is free to lock again. Seen
            # again now (a new statement sees what committed), it is dropped: inserting its
            # claim would wait on that worker's fold of it, which waits on this transaction's
            # lock on the subscriber, a deadlock.
            taken = delivered(conn, [key for key in by_lesson if key not in retries])
            keys = sorted(key for key in by_lesson if key not in taken)
            token = uuid.uuid4().hex
            self._claim_keys(conn, keys, retries, token, now, self._workers.owner)
            won = claimed_with(conn, token, keys)
            return [lesson for key, lesson in by_lesson.items() if key in won]

        return self._db.write(claim)

    def is_due(self, now: datetime) -> bool:
        """Whether anything is due and unclaimed at `now`."""
        now = require_utc(now)
        with self._db.reading() as conn:
            return any(
                conn.execute(query).first() is not None
                for query in (fresh_lessons_due(now, 1), retries_due(now, 1))
            )

    def claim(self, lessons: Sequence[DueLesson], *, now: datetime) -> list[DueLesson]:
        """Claim these deliveries for this worker; return only the ones this call won.

        A new lesson is claimed by inserting its `claimed` delivery row, a retry by flipping
        `retrying` to `claimed` with a conditional UPDATE. Whoever inserts or flips the row
        first wins it (UNIQUE (subscriber_id, day), and the state condition); every other
        claimer, in this process or another, gets nothing for it. Only an active
        subscriber's next lesson can be claimed, so an unsubscribe that landed after due()
        still stops the send. Send exactly what this returns, then record the outcomes.
        """
        now = require_utc(now)
        by_lesson: dict[tuple[int, int], DueLesson] = {}
        for lesson in lessons:
            by_lesson.setdefault((lesson.subscriber_id, lesson.day), lesson)
        token = uuid.uuid4().hex
        # due() reports a retry with its earlier attempts; a fresh lesson has none yet.
        retries = {key for key, lesson in by_lesson.items() if lesson.attempts > 0}
        with self._db.writing() as conn:
            keys = claimable(conn, by_lesson.keys())
            self._claim_keys(conn, keys, retries, token, now, self._workers.owner)
            won = claimed_with(conn, token, keys)
        return [lesson for key, lesson in by_lesson.items() if key in won]

    def record(self, outcomes: Sequence[DeliveryOutcome], *, now: datetime) -> None:
        """Store what happened to claimed deliveries, in one transaction.

        SENT:     the delivery is `sent`; the subscriber moves to the next day, due at
                  outcome.next_due_at, or `completed` when that is None.
        FAILED:   the delivery is `failed` (given up, not retried forever); the subscriber
                  moves on exactly as for sent.
        RETRYING: the delivery waits until outcome.next_attempt_at; the subscriber is unchanged.
        BOUNCED:  the delivery is `bounced`; the subscriber stops with status `bounced`.
        An outcome for a delivery that is not `claimed` (already recorded) is ignored, logged.
        """
        now = require_utc(now)
        for outcome in outcomes:
            check_outcome(outcome)
        # Through the journal, so recording and folding a journal are one code path.
        owner = self._workers.owner
        params = self._journal.params(outcomes, now, owner)

        def record(conn: Connection) -> None:
            conn.exec_driver_sql(self._journal.sql, params)
            fold_journal(conn, owner)

        self._db.write(record)

    def journal(self, outcomes: Sequence[DeliveryOutcome], *, now: datetime) -> None:
        """Store outcomes durably now, to take effect at apply_journal(); one transaction.

        For recording message by message while a batch is sent: an outcome in the journal
        is as safe from a crash as a recorded one (recover_claims() applies it first), at a
        fraction of the cost. Until applied, its delivery still reads as `claimed`.
        """
        now = require_utc(now)
        for outcome in outcomes:
            check_outcome(outcome)
        if outcomes:
            params = self._journal.params(outcomes, now, self._workers.owner)
            with self._db.writing_on_driver() as cursor:
                if len(params) == 1:  # the usual single answer: execute() is a little quicker
                    cursor.execute(self._journal.sql, params[0])
                else:
                    cursor.executemany(self._journal.sql, params)

    def apply_journal(self) -> int:
        """Record this worker's journaled outcomes, exactly as record() would have; how many."""
        owner = self._workers.owner
        return self._db.write(lambda conn: fold_journal(conn, owner))

    def release(self, lessons: Sequence[DueLesson], *, now: datetime) -> int:
        """Give back claims that were never handed to the backend; return how many.

        A fresh lesson's claim row is deleted, so it is due again as if never claimed; a
        retry goes back to `retrying`, due at once. Only rows this worker still holds
        `claimed` are touched.
        """
        now = require_utc(now)
        d = DELIVERIES
        fresh = [{"b_sid": r.subscriber_id, "b_day": r.day} for r in lessons if not r.attempts]
        retries = [{"b_sid": r.subscriber_id, "b_day": r.day} for r in lessons if r.attempts]
        its_claim = (
            d.c.subscriber_id == bindparam("b_sid"),
            d.c.day == bindparam("b_day"),
            d.c.state == DeliveryState.CLAIMED,
            d.c.claimed_by == self._workers.owner,
        )
        back = (
            update(d)
            .where(*its_claim)
            .values(state=DeliveryState.RETRYING, next_attempt_at=now, updated_at=now)
        )

        def release(conn: Connection) -> None:
            if fresh:
                conn.execute(sql_delete(d).where(*its_claim), fresh)
            if retries:
                conn.execute(back, retries)

        self._db.write(release)
        return len(fresh) + len(retries)

    def recover_claims(self, *, now: datetime, alive_at: datetime | None = None) -> int:
        """Apply the crash rule; return how many deliveries it put back.

        The crash rule: a delivery is `claimed` before its message is handed to the mail
        server, and becomes `sent` only once the server has accepted it. A worker that dies
        in between leaves the row `claimed`, and nobody can know whether the server got the
        message. Such a row is put back to `retrying`, due at once, and its lesson is sent
        again. So a lesson is never skipped; at worst, that subscriber receives that one
        lesson twice. A crash can duplicate at most the messages that were in flight.

        Only claims whose owner has no live worker are recovered, never a live worker's: dead
        workers are taken over first (one conditional statement each), then every claim
        whose owner has no worker row has that owner's journal folded (what it did record is
        not in doubt) and goes back to `retrying`, due at `now`. Heartbeats are judged at
        `alive_at` (default `now`): the real time, when `now` is a tick's chosen instant.
        On PostgreSQL, recoveries by several workers take turns (an advisory lock), so each
        is done once.
        """
        now = require_utc(now)
        alive_at = now if alive_at is None else require_utc(alive_at)
        d, j = DELIVERIES, OUTCOME_JOURNAL

        def recover(conn: Connection) -> int:
            self._db.lock_for_transaction(conn, "recovery")
            self._workers.take_over_dead(conn, alive_at)
            registered = select(WORKERS.c.owner)
            owners = {
                *conn.execute(
                    select(d.c.claimed_by)
                    .distinct()
                    .where(d.c.state == DeliveryState.CLAIMED, d.c.claimed_by.not_in(registered))
                ).scalars(),
                *conn.execute(
                    select(j.c.owner).distinct().where(j.c.owner.not_in(registered))
                ).scalars(),
            }
            recovered = 0
            for owner in sorted(owners):
                fold_journal(conn, owner)
                result = conn.execute(
                    update(d)
                    .where(d.c.state == DeliveryState.CLAIMED, d.c.claimed_by == owner)
                    .values(
                        state=DeliveryState.RETRYING,
                        next_attempt_at=now,
                        attempts=d.c.attempts + 1,  # it may well have been sent: an attempt
                        last_reply=REPLY_RECOVERED,
                        updated_at=now,
                    )
                )
                recovered += result.rowcount
            return recovered

        return self._db.write(recover)

    def _claim_keys(
        self,
        conn: Connection,
        keys: list[tuple[int, int]],
        retries: set[tuple[int, int]],
        token: str,
        now: datetime,
        owner: str,
    ) -> None:
        """Flip the retries' rows to claimed and insert rows for the fresh lessons."""
        d = DELIVERIES
        claimed = {
            "state": DeliveryState.CLAIMED,
            "claimed_at": now,
            "claimed_by": owner,
            "claim_token": token,
            "updated_at": now,
        }
        flips = [{"b_sid": sid, "b_day": day} for sid, day in keys if (sid, day) in retries]
        retry_of_lesson = update(d).where(
            d.c.subscriber_id == bindparam("b_sid"),
            d.c.day == bindparam("b_day"),
            d.c.state == DeliveryState.RETRYING,
        )
        if flips:
            conn.execute(retry_of_lesson.values(claimed), flips)
        fresh = {"attempts": 0, "next_attempt_at": None, "message_id": "", "last_reply": ""}
        rows = [
            {"subscriber_id": sid, "day": day, **fresh, **claimed}
            for sid, day in keys
            if (sid, day) not in retries
        ]
        if rows:
            conn.execute(self._db.insert_or_skip(DELIVERIES), rows)


# --- due and claim ----------------------------------------------------------------------------


def fresh_lessons_due(now: datetime, limit: int, *, lock: bool = False) -> Select[Any]:
    """Active subscribers whose next lesson is due and has no delivery row yet.

    `lock`: FOR UPDATE SKIP LOCKED on the subscriber rows (PostgreSQL; SQLite ignores it).
    """
    s, d = SUBSCRIBERS, DELIVERIES
    has_delivery = (
        select(d.c.id).where(d.c.subscriber_id == s.c.id, d.c.day == s.c.next_day).exists()
    )
    query = (
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
        .where(s.c.status == SubscriberStatus.ACTIVE, s.c.next_due_at <= now, ~has_delivery)
        .order_by(s.c.next_due_at, s.c.id)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=s) if lock else query


def retries_due(now: datetime, limit: int, *, lock: bool = False) -> Select[Any]:
    """`retrying` deliveries whose next attempt is due, for subscribers still active.

    `lock`: FOR UPDATE SKIP LOCKED on the delivery rows (PostgreSQL; SQLite ignores it).
    """
    s, d = SUBSCRIBERS, DELIVERIES
    query = (
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
        .where(
            d.c.state == DeliveryState.RETRYING,
            d.c.next_attempt_at <= now,
            s.c.status == SubscriberStatus.ACTIVE,
        )
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=d) if lock else query


def claimable(conn: Connection, lessons: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (subscriber, day) lessons that are an active subscriber's next lesson."""
    s = SUBSCRIBERS
    wanted = set(lessons)
    subscriber_ids = sorted({subscriber_id for subscriber_id, _ in wanted})
    current: set[tuple[int, int]] = set()
    for ids in in_chunks(subscriber_ids, IN_CHUNK):
        # Status is checked here rather than in WHERE: given `status = 'active'`, SQLite
        # would scan every active subscriber in the status index instead of looking up ids.
        query = select(s.c.id, s.c.next_day, s.c.status).where(s.c.id.in_(ids))
        current.update(
            (row.id, row.next_day)
            for row in conn.execute(query)
            if row.status == SubscriberStatus.ACTIVE
        )
    return sorted(wanted & current)


def delivered(conn: Connection, lessons: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """The lessons that have a delivery row (in any state)."""
    d = DELIVERIES
    wanted = set(lessons)
    subscriber_ids = sorted({subscriber_id for subscriber_id, _ in wanted})
    found: set[tuple[int, int]] = set()
    for ids in in_chunks(subscriber_ids, IN_CHUNK):
        query = select(d.c.subscriber_id, d.c.day).where(d.c.subscriber_id.in_(ids))
        found.update((row.subscriber_id, row.day) for row in conn.execute(query))
    return found & wanted


def claimed_with(
    conn: Connection, token: str, lessons: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """The lessons whose delivery row carries this claim() call's token."""
    d = DELIVERIES
    subscriber_ids = sorted({subscriber_id for subscriber_id, _ in lessons})
    won: set[tuple[int, int]] = set()
    for ids in in_chunks(subscriber_ids, IN_CHUNK):
        query = select(d.c.subscriber_id, d.c.day).where(
            d.c.subscriber_id.in_(ids), d.c.claim_token == token
        )
        won.update((row.subscriber_id, row.day) for row in conn.execute(query))
    return won


# --- record -----------------------------------------------------------------------------------


def check_outcome(outcome: DeliveryOutcome) -> None:
    if outcome.state not in OUTCOME_STATES:
        raise ValueError(f"unknown outcome state {outcome.state!r}")
    if outcome.state == DeliveryState.RETRYING and outcome.next_attempt_at is None:
        raise ValueError(
            f"a retrying outcome needs next_attempt_at (subscriber {outcome.subscriber_id}, "
            f"day {outcome.day})"
        )
    for instant in (outcome.next_attempt_at, outcome.next_due_at):
        if instant is not None:
            require_utc(instant, "an outcome's time")


# `inline`: no RETURNING of the new id, which nothing reads.
_JOURNAL_OUTCOME: Final = (
    insert(OUTCOME_JOURNAL)
    .values(
        subscriber_id=bindparam("b_id"),
        day=bindparam("b_day"),
        state=bindparam("b_state"),
        message_id=bindparam("b_message_id"),
        reply=bindparam("b_reply"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        next_due_at=bindparam("b_next_due_at"),
        recorded_at=bindparam("b_now"),
        owner=bindparam("b_owner"),
    )
    .inline()
)


class JournalRows:
    """The journal's INSERT in the driver's own SQL, and outcomes as its parameters.

    Both ways of appending use it: inside a Core transaction (record) and on the driver
    (journal), so an outcome is stored the same way whichever path it takes.
    """

    def __init__(self, db: Database) -> None:
        self.sql = db.driver_sql(_JOURNAL_OUTCOME)
        # Times go in as UTCDateTime itself would bind them for this database.
        self._time = functools.partial(UTCDateTime().process_bind_param, dialect=db.engine.dialect)

    def params(
        self, outcomes: Sequence[DeliveryOutcome], now: datetime, owner: str
    ) -> list[dict[str, Any]]:
        time = self._time
        recorded_at = time(now)
        return [
            {
                "b_id": outcome.subscriber_id,
                "b_day": outcome.day,
                "b_state": outcome.state.value,
                "b_message_id": outcome.message_id,
                "b_reply": outcome.reply,
                "b_next_attempt_at": time(outcome.next_attempt_at),
                "b_next_due_at": time(outcome.next_due_at),
                "b_now": recorded_at,
                "b_owner": owner,
            }
            for outcome in outcomes
        ]


def fold_journal(conn: Connection, owner: str) -> int:
    """Record and delete `owner`'s journaled outcomes, each as of the moment it was journaled.

    Only that owner's rows, and only onto deliveries that owner still holds `claimed`. A
    worker journals one transaction at a time, so every row it wrote up to the highest id
    seen here is already visible, and anything it journals meanwhile gets a higher id: no
    outcome is deleted unapplied, whatever other workers insert during the fold.

    Set-based: a handful of UPDATE ... FROM statements fold the whole journal, rather
    than a statement per outcome; folding 500 answers took 35 us each the other way.
    """
    j = OUTCOME_JOURNAL
    count, last = conn.execute(
        select(func.count(), func.max(j.c.id)).where(j.c.owner == owner)
    ).one()
    if not count:
        return 0
    bound = {"last": last, "owner": owner}
    _drop_unrecordable(conn, bound)
    for statement in _FOLD:
        conn.execute(statement, bound)
    conn.execute(sql_delete(j).where(j.c.id <= last, j.c.owner == owner))
    return int(count)


def _drop_unrecordable(conn: Connection, bound: dict[str, Any]) -> None:
    """Log and delete journaled outcomes whose delivery is not (or no longer) `claimed`."""
    ignored = conn.execute(_UNRECORDABLE, bound).all()
    for row in ignored:
        _LOG.warning(
            "ignored a %s outcome for subscriber %d day %d: not a claimed delivery of its worker",
            row.state,
            row.subscriber_id,
            row.day,
        )
    if ignored:
        j = OUTCOME_JOURNAL
        conn.execute(sql_delete(j).where(j.c.id.in_([row.id for row in ignored])))


_J, _D, _S = OUTCOME_JOURNAL, DELIVERIES, SUBSCRIBERS
_UP_TO: Final = and_(_J.c.id <= bindparam("last"), _J.c.owner == bindparam("owner"))
# The delivery an outcome is for, while its journal's owner still holds it claimed.
_ITS_CLAIM: Final = (
    _D.c.subscriber_id == _J.c.subscriber_id,
    _D.c.day == _J.c.day,
    _D.c.state == DeliveryState.CLAIMED,
    _D.c.claimed_by == _J.c.owner,
)
_FIRST_FOR_ITS_DELIVERY: Final = (
    select(func.min(_J.c.id)).where(_UP_TO).group_by(_J.c.subscriber_id, _J.c.day)
)
# An outcome counts only for a delivery its owner holds claimed, and only the first one
# journaled for it: a second finds the row no longer claimed, as it would have recorded one
# by one. (A worker taken over as dead may still journal: its claims went back to
# `retrying`, or to another worker, and its late outcomes are ignored.)
_UNRECORDABLE: Final = select(_J.c.id, _J.c.subscriber_id, _J.c.day, _J.c.state).where(
    _UP_TO,
    or_(
        _J.c.id.not_in(_FIRST_FOR_ITS_DELIVERY),
        ~select(_D.c.id).where(*_ITS_CLAIM).exists(),
    ),
)
_AT_ITS_LESSON: Final = (_S.c.id == _J.c.subscriber_id, _S.c.next_day == _J.c.day, _UP_TO)
_MOVES_ON: Final = _J.c.state.in_((DeliveryState.SENT, DeliveryState.FAILED))
_FOLD: Final = (
    # Each delivery takes its outcome.
    update(_D)
    .where(*_ITS_CLAIM, _UP_TO)
    .values(
        state=_J.c.state,
        attempts=_D.c.attempts + 1,
        message_id=_J.c.message_id,
        last_reply=_J.c.reply,
        next_attempt_at=case(
            (_J.c.state == DeliveryState.RETRYING, _J.c.next_attempt_at), else_=None
        ),
        sent_at=case((_J.c.state == DeliveryState.SENT, _J.c.recorded_at), else_=None),
        updated_at=_J.c.recorded_at,
    ),
    # Sent or failed (given up): an active subscriber moves on to the next lesson ...
    update(_S)
    .where(
        *_AT_ITS_LESSON,
        _S.c.status == SubscriberStatus.ACTIVE,
        _MOVES_ON,
        _J.c.next_due_at.is_not(None),
    )
    .values(next_day=_J.c.day + 1, next_due_at=_J.c.next_due_at, updated_at=_J.c.recorded_at),
    # ... or, after the last one, completes the course.
    update(_S)
    .where(
        *_AT_ITS_LESSON,
        _S.c.status == SubscriberStatus.ACTIVE,
        _MOVES_ON,
        _J.c.next_due_at.is_(None),
    )
    .values(
        next_day=_J.c.day + 1,
        next_due_at=None,
        status=SubscriberStatus.COMPLETED,
        status_reason=REASON_COMPLETED,
        status_at=_J.c.recorded_at,
        updated_at=_J.c.recorded_at,
    ),
    # Unsubscribed or removed while the message was in flight: they had the lesson, so a
    # later reactivation continues after it, but nothing is scheduled.
    update(_S)
    .where(*_AT_ITS_LESSON, _S.c.status != SubscriberStatus.ACTIVE, _MOVES_ON)
    .values(next_day=_J.c.day + 1, updated_at=_J.c.recorded_at),
    # A bounce stops the subscriber; an unsubscribe (the person's own choice) or a
    # completion is not overwritten by it.
    update(_S)
    .where(
        _S.c.id == _J.c.subscriber_id,
        _UP_TO,
        _J.c.state == DeliveryState.BOUNCED,
        or_(_S.c.status == SubscriberStatus.ACTIVE, _S.c.status == SubscriberStatus.REMOVED),
    )
    .values(
        status=SubscriberStatus.BOUNCED,
        status_reason=func.coalesce(func.nullif(_J.c.reply, ""), "bounced"),
        status_at=_J.c.recorded_at,
        next_due_at=None,
        updated_at=_J.c.recorded_at,
    ),
)
