"""The values passed in and out of the ledger, and how rows become them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring as _string
from typing import Any, Final, NamedTuple

from course.ledger.schema import DELIVERIES, DeliveryState, SubscriberStatus

# --- value objects ----------------------------------------------------------------------------


class SubscriberRecord(NamedTuple):
    """One subscriber as the CSV has it now: what the ledger needs from a row.

    A named tuple: a sync makes one per row of the list, and a tuple is the cheapest to make.
    """

    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    subscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Departure:
    """A row of the list that says its address is not to be mailed, and why.

    `status` is what the ledger makes of it: `removed` (not subscribed now; back when the list
    has them active again) or, for someone who unsubscribed, complained or bounced at the
    source, `unsubscribed` or `bounced`: the suppression list, which no later list undoes.
    `reason` is the row's own word, e.g. "kit.csv row 3: state 'cancelled'".
    """

    email: str
    status: SubscriberStatus
    reason: str

    def __post_init__(self) -> None:
        if self.status is SubscriberStatus.ACTIVE or self.status is SubscriberStatus.COMPLETED:
            raise ValueError(f"a departure stops someone; {self.status!r} does not")


# What sync() takes: the list's rows, one at a time.
ListRow = SubscriberRecord | Departure


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What one sync() changed.

    `removed` counts subscribers stopped because their row disappeared, `stopped` those
    stopped because their row says they are not subscribed (with its reason); `suppressed`
    counts addresses the list put on the suppression list (known or not); `held` counts
    rows listing as subscribed an address that is on it here.
    """

    added: int
    updated: int
    removed: int
    rejoined: int
    unchanged: int
    stopped: int = 0
    suppressed: int = 0
    held: int = 0


@dataclass(frozen=True, slots=True)
class DueLesson:
    """One lesson due for one subscriber, with what personalisation needs.

    `attempts` counts earlier tries: 0 for a fresh lesson, more for a retry.
    """

    subscriber_id: int
    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    day: int
    attempts: int
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened to one claimed delivery: the state it is to take, and why.

    For SENT and FAILED, `next_due_at` is when the subscriber's next day is due; None means
    that was the last lesson (the subscriber becomes `completed`). For RETRYING,
    `next_attempt_at` is required. CLAIMED is not an outcome.
    """

    subscriber_id: int
    day: int
    state: DeliveryState
    message_id: str = ""
    reply: str = ""
    next_attempt_at: datetime | None = None
    next_due_at: datetime | None = None


class Standing(NamedTuple):
    """Just an address and its status: what a one-click POST needs to know of its sender."""

    email: str
    status: SubscriberStatus


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """A subscriber's row, for `course status` and friends."""

    email: str
    name: str
    timezone: str
    fields: Mapping[str, str]
    status: SubscriberStatus
    status_reason: str
    status_at: datetime
    joined_at: datetime
    next_day: int
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery row."""

    day: int
    state: DeliveryState
    attempts: int
    claimed_at: datetime
    sent_at: datetime | None
    message_id: str
    last_reply: str
    next_attempt_at: datetime | None


def fields_to_json(fields: Mapping[str, str]) -> str:
    """The fields as a JSON object: keys sorted, no spaces, non-ASCII as it is.

    Equal fields always give equal text (sync compares digests of it). Written by hand from
    json's own string encoder: the json module's setup per call cost more than the encoding
    for the few short fields of a row, once per row of a million-row list.
    """
    if not fields:
        return "{}"
    pairs = [_string(key) + ":" + _string(value) for key, value in sorted(fields.items())]
    return "{" + ",".join(pairs) + "}"


def _fields(text: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads(text)
    return loaded


# --- rows -> values ---------------------------------------------------------------------------


def due_lesson_of(row: Any) -> DueLesson:
    return DueLesson(
        subscriber_id=row.subscriber_id,
        email=row.email,
        name=row.name,
        timezone=row.timezone,
        fields=_fields(row.fields),
        day=row.day,
        attempts=row.attempts,
        joined_at=row.joined_at,
    )


DELIVERY_VIEW_COLUMNS: Final = (
    DELIVERIES.c.day,
    DELIVERIES.c.state,
    DELIVERIES.c.attempts,
    DELIVERIES.c.claimed_at,
    DELIVERIES.c.sent_at,
    DELIVERIES.c.message_id,
    DELIVERIES.c.last_reply,
    DELIVERIES.c.next_attempt_at,
)


def delivery_view(row: Any) -> DeliveryView:
    return DeliveryView(
        day=row.day,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        claimed_at=row.claimed_at,
        sent_at=row.sent_at,
        message_id=row.message_id,
        last_reply=row.last_reply,
        next_attempt_at=row.next_attempt_at,
    )


def subscriber_view(row: Any) -> SubscriberView:
    return SubscriberView(
        email=row.email,
        name=row.name,
        timezone=row.timezone,
        fields=_fields(row.fields),
        status=SubscriberStatus(row.status),
        status_reason=row.status_reason,
        status_at=row.status_at,
        joined_at=row.joined_at,
        next_day=row.next_day,
        next_due_at=row.next_due_at,
    )
