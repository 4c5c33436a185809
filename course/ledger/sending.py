"""Sending: what is due, claiming it, and recording or journaling the outcomes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Integer, Select, bindparam, insert, literal, or_, select, update
from sqlalchemy import delete as sql_delete

from course.ledger.chunks import _IN_CHUNK, _chunks
from course.ledger.fastpath import _fast
from course.ledger.records import Outcome
from course.ledger.schema import (
    ACTIVE,
    BOUNCED,
    CLAIMED,
    COMPLETED,
    DELIVERIES,
    FAILED,
    OUTCOME_JOURNAL,
    REASON_COMPLETED,
    REMOVED,
    RETRYING,
    SENT,
    SUBSCRIBERS,
    require_utc,
)

# The ledger's logger, "course.ledger", as before the package split; not this module's name.
_LOG = logging.getLogger("course.ledger")

FEW_OUTCOMES: Final = 16


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
