"""Subscriber status changes: stopping, resuming, and an address unsubscribed unseen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from course.ledger.schema import (
    ACTIVE,
    BOUNCED,
    DELIVERIES,
    RETRYING,
    SUBSCRIBERS,
    UNSUBSCRIBED,
)


def suppressed_row(email: str, how: str, now: datetime) -> dict[str, Any]:
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
        **stopped_values(UNSUBSCRIBED, how, now),
    }


def stopped_values(status: str, reason: str, now: datetime) -> dict[str, Any]:
    """The column values of a subscriber who is no longer sent anything."""
    return {
        "status": status,
        "status_reason": reason,
        "status_at": now,
        "next_due_at": None,
        "updated_at": now,
    }


def resume(
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
