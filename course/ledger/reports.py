"""Reports: read-only views of the ledger for `course status` and friends."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select

from course.ledger.chunks import IN_CHUNK, in_chunks
from course.ledger.database import Database
from course.ledger.records import (
    DELIVERY_VIEW_COLUMNS,
    DeliveryView,
    Standing,
    SubscriberView,
    delivery_view,
    subscriber_view,
)
from course.ledger.schema import (
    DELIVERIES,
    META,
    PROBLEM_STATES,
    SUBSCRIBER_REFS,
    SUBSCRIBERS,
    DeliveryState,
    SubscriberStatus,
)


class Reports:
    """Counts, one subscriber's history, problems and stored facts; nothing here writes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def meta(self, key: str) -> str | None:
        """A stored fact about the ledger, or None."""
        with self._db.reading() as conn:
            value: str | None = conn.execute(
                select(META.c.value).where(META.c.key == key)
            ).scalar_one_or_none()
        return value

    def state_counts(self) -> dict[tuple[int, DeliveryState], int]:
        """(day, delivery state) -> number of deliveries."""
        d = DELIVERIES
        query = select(d.c.day, d.c.state, func.count()).group_by(d.c.day, d.c.state)
        with self._db.reading() as conn:
            return {(day, DeliveryState(state)): count for day, state, count in conn.execute(query)}

    def status_counts(self) -> dict[SubscriberStatus, int]:
        """Subscriber status -> number of subscribers."""
        s = SUBSCRIBERS
        query = select(s.c.status, func.count()).group_by(s.c.status)
        with self._db.reading() as conn:
            return {SubscriberStatus(status): count for status, count in conn.execute(query)}

    def subscriber(self, email: str) -> SubscriberView | None:
        s = SUBSCRIBERS
        with self._db.reading() as conn:
            row = conn.execute(select(s).where(s.c.email_key == email.lower())).first()
        return None if row is None else subscriber_view(row)

    def latest_with_status(
        self, statuses: Collection[SubscriberStatus], *, limit: int
    ) -> list[SubscriberView]:
        """The last `limit` subscribers to take one of `statuses`, oldest first."""
        s = SUBSCRIBERS
        query = (
            select(s)
            .where(s.c.status.in_(list(statuses)))
            .order_by(s.c.status_at.desc(), s.c.id.desc())
            .limit(limit)
        )
        with self._db.reading() as conn:
            rows = conn.execute(query).all()
        return [subscriber_view(row) for row in reversed(rows)]

    def subscriber_by_ref(self, ref: str) -> SubscriberView | None:
        """The subscriber whose opaque id (course.tokens.subscriber_ref) is `ref`, if any."""
        s, r = SUBSCRIBERS, SUBSCRIBER_REFS
        query = select(s).join_from(r, s, r.c.subscriber_id == s.c.id).where(r.c.ref == ref)
        with self._db.reading() as conn:
            row = conn.execute(query).first()
        return None if row is None else subscriber_view(row)

    def standings_by_ref(self, refs: Collection[str]) -> dict[str, Standing]:
        """Opaque id -> address and status, for those of `refs` the ledger knows; one
        snapshot. For a burst of one-click POSTs: one query per few hundred ids."""
        s, r = SUBSCRIBERS, SUBSCRIBER_REFS
        wanted = sorted(set(refs))
        found: dict[str, Standing] = {}
        with self._db.reading() as conn:
            for chunk in in_chunks(wanted, IN_CHUNK):
                query = (
                    select(r.c.ref, s.c.email, s.c.status)
                    .join_from(r, s, r.c.subscriber_id == s.c.id)
                    .where(r.c.ref.in_(chunk))
                )
                for ref, email, status in conn.execute(query):
                    found[ref] = Standing(email, SubscriberStatus(status))
        return found

    def has_deliveries(self) -> bool:
        """Whether anything was ever claimed or sent from this ledger."""
        with self._db.reading() as conn:
            return conn.execute(select(DELIVERIES.c.id).limit(1)).first() is not None

    def history(self, email: str) -> list[DeliveryView]:
        """Every delivery row of this subscriber, by day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(*DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(s.c.email_key == email.lower())
            .order_by(d.c.day)
        )
        with self._db.reading() as conn:
            return [delivery_view(row) for row in conn.execute(query)]

    def problems(self, *, limit: int | None = None) -> list[tuple[str, DeliveryView]]:
        """(email, delivery) for every retrying, failed or bounced delivery, by email and day."""
        s, d = SUBSCRIBERS, DELIVERIES
        query = (
            select(s.c.email, *DELIVERY_VIEW_COLUMNS)
            .join_from(d, s, d.c.subscriber_id == s.c.id)
            .where(d.c.state.in_(PROBLEM_STATES))
            .order_by(s.c.email_key, d.c.day)
            .limit(limit)
        )
        with self._db.reading() as conn:
            return [(row.email, delivery_view(row)) for row in conn.execute(query)]
