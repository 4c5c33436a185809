"""Sending: what is due, claiming it, and recording or journaling the outcomes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Integer,
    Select,
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
from course.ledger.fastpath import execute_prepared
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


# --- due and claim ----------------------------------------------------------------------------


def fresh_lessons_due(now: datetime, limit: int) -> Select[Any]:
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


def retries_due(now: datetime, limit: int) -> Select[Any]:
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
            (row.id, row.next_day) for row in conn.execute(query) if row.status == ACTIVE
        )
    return sorted(wanted & current)


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


def check_outcome(outcome: Outcome) -> None:
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


def append_to_journal(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Append outcomes to the journal, to take effect at fold_journal()."""
    execute_prepared(conn, _JOURNAL_OUTCOME, [_journal_params(o, now) for o in outcomes])


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


def fold_journal(conn: Connection) -> int:
    """Record and delete every journaled outcome, each as of the moment it was journaled.

    Set-based: a handful of UPDATE ... FROM statements fold the whole journal, rather
    than a statement per outcome; folding 500 answers took 35 us each the other way.
    """
    j = OUTCOME_JOURNAL
    count, last = conn.execute(select(func.count(), func.max(j.c.id))).one()
    if not count:
        return 0
    bound = {"last": last}
    _drop_unrecordable(conn, bound)
    for statement in _FOLD:
        conn.execute(statement, bound)
    conn.execute(sql_delete(j).where(j.c.id <= last))
    return int(count)


def _drop_unrecordable(conn: Connection, bound: dict[str, Any]) -> None:
    """Log and delete journaled outcomes whose delivery is not (or no longer) `claimed`."""
    ignored = conn.execute(_UNRECORDABLE, bound).all()
    for row in ignored:
        _LOG.warning(
            "ignored a %s outcome for subscriber %d day %d: not a claimed delivery",
            row.state,
            row.subscriber_id,
            row.day,
        )
    if ignored:
        j = OUTCOME_JOURNAL
        conn.execute(sql_delete(j).where(j.c.id.in_([row.id for row in ignored])))


_J, _D, _S = OUTCOME_JOURNAL, DELIVERIES, SUBSCRIBERS
_UP_TO: Final = _J.c.id <= bindparam("last")
_ITS_DELIVERY: Final = (_D.c.subscriber_id == _J.c.subscriber_id, _D.c.day == _J.c.day)
_FIRST_FOR_ITS_DELIVERY: Final = (
    select(func.min(_J.c.id)).where(_UP_TO).group_by(_J.c.subscriber_id, _J.c.day)
)
# An outcome counts only for a claimed delivery, and only the first one journaled for it: a
# second finds the row no longer claimed, as it would have recorded one by one.
_UNRECORDABLE: Final = select(_J.c.id, _J.c.subscriber_id, _J.c.day, _J.c.state).where(
    _UP_TO,
    or_(
        _J.c.id.not_in(_FIRST_FOR_ITS_DELIVERY),
        ~select(_D.c.id).where(*_ITS_DELIVERY, _D.c.state == CLAIMED).exists(),
    ),
)
_AT_ITS_LESSON: Final = (_S.c.id == _J.c.subscriber_id, _S.c.next_day == _J.c.day, _UP_TO)
_MOVES_ON: Final = _J.c.state.in_((SENT, FAILED))
_FOLD: Final = (
    # Each delivery takes its outcome.
    update(_D)
    .where(*_ITS_DELIVERY, _D.c.state == CLAIMED, _UP_TO)
    .values(
        state=_J.c.state,
        attempts=_D.c.attempts + 1,
        message_id=_J.c.message_id,
        last_reply=_J.c.reply,
        next_attempt_at=case((_J.c.state == RETRYING, _J.c.next_attempt_at), else_=None),
        sent_at=case((_J.c.state == SENT, _J.c.recorded_at), else_=None),
        updated_at=_J.c.recorded_at,
    ),
    # Sent or failed (given up): an active subscriber moves on to the next lesson ...
    update(_S)
    .where(*_AT_ITS_LESSON, _S.c.status == ACTIVE, _MOVES_ON, _J.c.next_due_at.is_not(None))
    .values(next_day=_J.c.day + 1, next_due_at=_J.c.next_due_at, updated_at=_J.c.recorded_at),
    # ... or, after the last one, completes the course.
    update(_S)
    .where(*_AT_ITS_LESSON, _S.c.status == ACTIVE, _MOVES_ON, _J.c.next_due_at.is_(None))
    .values(
        next_day=_J.c.day + 1,
        next_due_at=None,
        status=COMPLETED,
        status_reason=REASON_COMPLETED,
        status_at=_J.c.recorded_at,
        updated_at=_J.c.recorded_at,
    ),
    # Unsubscribed or removed while the message was in flight: they had the lesson, so a
    # later reactivation continues after it, but nothing is scheduled.
    update(_S)
    .where(*_AT_ITS_LESSON, _S.c.status != ACTIVE, _MOVES_ON)
    .values(next_day=_J.c.day + 1, updated_at=_J.c.recorded_at),
    # A bounce stops the subscriber; an unsubscribe (the person's own choice) or a
    # completion is not overwritten by it.
    update(_S)
    .where(
        _S.c.id == _J.c.subscriber_id,
        _UP_TO,
        _J.c.state == BOUNCED,
        or_(_S.c.status == ACTIVE, _S.c.status == REMOVED),
    )
    .values(
        status=BOUNCED,
        status_reason=func.coalesce(func.nullif(_J.c.reply, ""), "bounced"),
        status_at=_J.c.recorded_at,
        next_due_at=None,
        updated_at=_J.c.recorded_at,
    ),
)
