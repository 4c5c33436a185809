"""One tick: claim what is due, build each message, hand it to the backend, record the outcome.

The ledger decides what is due (an indexed query on each subscriber's next due time); the
planner decides when the next lesson is due after a send. A delivery is claimed before
the backend sees it and recorded after the backend answers, one batch at a time, so a
crash leaves at most one batch in doubt (see the crash rule in the README).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from course.backends.base import Backend, OutgoingMessage, SendResult
from course.build import CourseBuild
from course.ledger import Ledger, Outcome
from course.ledger import Recipient as DueLesson
from course.message import Recipient
from course.planner import Timing, next_due
from course.unsubscribe import make_token, unsubscribe_url

LOG = logging.getLogger("course.delivery")
BATCH_SIZE = 500


@dataclass
class TickReport:
    """What one tick did, for the log line and `course send`."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: int = 0
    by_day: dict[int, int] = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.bounced

    def summary(self) -> str:
        if not self.handled:
            return "nothing due"
        days = ", ".join(f"day {d}: {n}" for d, n in sorted(self.by_day.items()))
        return (
            f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed, "
            f"{self.bounced} bounced ({days})"
        )


@dataclass(frozen=True)
class Links:
    """Makes each subscriber's personal unsubscribe URL."""

    base_url: str
    secret: bytes
    course_id: str

    def unsubscribe(self, email: str) -> str:
        return unsubscribe_url(self.base_url, make_token(self.secret, self.course_id, email))


class Deliverer:
    """Runs ticks against one ledger and one backend; the clock is always passed in."""

    def __init__(
        self,
        build: CourseBuild,
        ledger: Ledger,
        backend: Backend,
        timing: Timing,
        links: Links,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.build = build
        self.ledger = ledger
        self.backend = backend
        self.timing = timing
        self.links = links
        self.batch_size = batch_size
        self.envelope_from = build.sender.address

    def tick(
        self,
        now: datetime,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda _: None,
    ) -> TickReport:
        """Deliver everything due at `now`, a batch at a time, until done or told to stop."""
        report = TickReport()
        while not should_stop():
            due = self.ledger.due(now, limit=self.batch_size)
            claimed = self.ledger.claim(due, now=now)
            if not claimed:
                break
            self._deliver(claimed, now, report)
            progress(report.handled)
        return report

    def _deliver(self, claimed: Sequence[DueLesson], now: datetime, report: TickReport) -> None:
        messages = [self.message(lesson, now) for lesson in claimed]
        results = self.backend.send(messages)
        outcomes = [
            self._outcome(lesson, result, now)
            for lesson, result in zip(claimed, results, strict=True)
        ]
        self.ledger.record(outcomes, now=now)
        for outcome in outcomes:
            _count(report, outcome)

    def message(self, lesson: DueLesson, now: datetime) -> OutgoingMessage:
        """The finished message for one due lesson."""
        recipient = Recipient(
            email=lesson.email,
            name=lesson.name,
            fields=lesson.fields,
            unsubscribe_url=self.links.unsubscribe(lesson.email),
        )
        message_id, data = self.build.lesson(lesson.day).build(recipient, date=now)
        return OutgoingMessage(self.envelope_from, lesson.email, message_id, data)

    def _outcome(self, lesson: DueLesson, result: SendResult, now: datetime) -> Outcome:
        if result.outcome in ("sent", "failed"):
            last = lesson.day >= len(self.build.lessons)
            due = None if last else next_due(now, lesson.timezone, self.timing)
            return Outcome(
                lesson.subscriber_id,
                lesson.day,
                result.outcome,
                result.message.message_id,
                result.reply,
                next_due_at=due,
            )
        if result.outcome == "bounced":
            return Outcome(
                lesson.subscriber_id, lesson.day, "bounced", result.message.message_id, result.reply
            )
        return Outcome(
            lesson.subscriber_id,
            lesson.day,
            "retrying",
            result.message.message_id,
            result.reply,
            next_attempt_at=now,
        )


def _count(report: TickReport, outcome: Outcome) -> None:
    setattr(report, outcome.state, getattr(report, outcome.state) + 1)
    if outcome.state == "sent":
        report.by_day[outcome.day] = report.by_day.get(outcome.day, 0) + 1
