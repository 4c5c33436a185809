"""One tick: claim what is due, build each message, hand it to the backend, record the outcome.

The ledger decides what is due (an indexed query on each subscriber's next due time); the
planner decides when the next lesson is due after a send. A delivery is claimed before
the backend sees it and recorded after the backend answers: a local backend's batch at
once, a remote backend's answers one by one in the ledger's journal (folded in when the
batch ends), so a crash leaves at most one local batch, or one message per connection,
in doubt (see the crash rule in the README).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from course.backends.base import Backend, OutgoingMessage, SendResult
from course.backends.wire import WireRefusal, wire_problem
from course.bounces.verp import ReturnPath
from course.build import SAMPLE_EMAIL, SAMPLE_NAME, CourseBuild
from course.config import RetrySettings
from course.errors import CourseError, DeliveryError
from course.ledger import DeliveryOutcome, DeliveryState, DueLesson, Ledger
from course.message import Recipient
from course.planner import Timing, next_due, retry_delay
from course.suppress import Action, Suppression, SuppressionLog
from course.tokens import subscriber_ref
from course.unsubscribe import make_token, token_for_ref, unsubscribe_url

LOG = logging.getLogger("course.delivery")
BATCH_SIZE = 500
# Empty claims in a row, while work is still due, before a tick leaves it to the next one
# (about 15 s of waiting): rows stay locked that long only behind a big CSV sync.
_EMPTY_CLAIMS = 20


@dataclass
class TickReport:
    """What one tick did, for the log line and `course send`."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    bounced: int = 0
    by_day: dict[int, int] = field(default_factory=dict)
    stopped_by: DeliveryError | None = None
    # Set when delivery is paused (too many errors in a row): nothing was attempted.
    paused_until: datetime | None = None

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed + self.bounced

    def summary(self) -> str:
        if self.paused_until is not None and not self.handled:
            return f"delivery paused until {self.paused_until.isoformat(timespec='minutes')}"
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

    def unsubscribe_by_ref(self, ref: str) -> str:
        """unsubscribe() for the subscriber whose opaque id (`ref()`) is `ref`."""
        return unsubscribe_url(self.base_url, token_for_ref(self.secret, self.course_id, ref))

    def ref(self, email: str) -> str:
        """The subscriber's opaque id, as their links carry it."""
        return subscriber_ref(self.secret, self.course_id, email)


class Deliverer:
    """Runs ticks against one ledger and one backend; the clock is always passed in."""

    def __init__(
        self,
        build: CourseBuild,
        ledger: Ledger,
        backend: Backend,
        timing: Timing,
        links: Links,
        retry: RetrySettings,
        *,
        return_path: ReturnPath | None = None,
        batch_size: int = BATCH_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        suppressions: SuppressionLog | None = None,
        before_batch: Callable[[], object] = lambda: None,
        watch: Callable[[Sequence[tuple[DueLesson, DeliveryOutcome]]], None] | None = None,
    ) -> None:
        self.build = build
        self.ledger = ledger
        self.backend = backend
        self.timing = timing
        self.links = links
        self.retry = retry
        self.batch_size = batch_size
        # Bounces go to the envelope sender: the return path (with VERP, one per subscriber
        # and day), else the From address.
        self.return_path = return_path
        self.suppressions = suppressions
        # Runs before each claim: the runtime applies pending suppressions there, so an
        # unsubscribe that arrives mid-tick stops that subscriber's next batch.
        self.before_batch = before_batch
        # Told each claimed lesson and what became of it, once recorded (`send --dry-run`).
        self.watch = watch
        self._due_after: dict[tuple[datetime, str], datetime] = {}
        self._sleep = sleep  # between empty claims while other workers hold due rows
        self._sample_problems: dict[int, str] = {}

    def tick(
        self,
        now: datetime,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda _: None,
    ) -> TickReport:
        """Deliver everything due at `now`, a batch at a time, until done or told to stop.

        With several workers on one ledger, a claim can come back empty while work is still
        due (other workers hold those rows for a moment): the tick waits a little and claims
        again, and ends only when nothing due is left unclaimed.
        """
        report = TickReport()
        empty_claims = 0
        try:
            while not should_stop():
                self.before_batch()
                claimed = self.ledger.claim_due(now, limit=self.batch_size)
                if not claimed:
                    if empty_claims >= _EMPTY_CLAIMS or not self.ledger.is_due(now):
                        break
                    self._sleep(min(1.0, 0.02 * 2**empty_claims))
                    empty_claims += 1
                    continue
                empty_claims = 0
                try:
                    self._deliver(self._build(claimed, now), now, report)
                except DeliveryError as exc:
                    # What finished is recorded and the rest released; the caller decides
                    # whether this pauses the run or stops it.
                    report.stopped_by = exc
                    break
                progress(report.handled)
        finally:
            # Connections are not held open between ticks (SMTP says QUIT); the next
            # tick opens what it needs.
            self.backend.close()
        return report

    def _build(self, claimed: Sequence[DueLesson], now: datetime) -> _Batch:
        """Each claimed lesson's message; one that cannot be built is kept aside, with why."""
        messages: list[OutgoingMessage] = []
        lessons: dict[tuple[str, str], DueLesson] = {}
        unbuilt: list[tuple[DueLesson, str]] = []
        try:
            # The links name each subscriber by an opaque id: recorded before any goes out,
            # so an unsubscribe or a bounce can be mapped back. Only for the subscribers in
            # hand: giving every subscriber theirs at once made the first tick after a large
            # import as slow as the import.
            refs = {lesson.subscriber_id: self.links.ref(lesson.email) for lesson in claimed}
            self.ledger.give_refs(refs)
            for lesson in claimed:
                try:
                    message = self.message(lesson, now, refs[lesson.subscriber_id])
                except (CourseError, UnicodeError) as exc:
                    # This subscriber's values (an address IDNA cannot encode, a name with a
                    # control character) break this message only.
                    unbuilt.append((lesson, f"cannot build the message: {exc}"))
                    continue
                messages.append(message)
                lessons[message.message_id, message.recipient] = lesson
        except BaseException:
            self.ledger.release(claimed, now=now)  # claimed but never tried: due again
            raise
        return _Batch(claimed, messages, lessons, unbuilt)

    def _deliver(self, batch: _Batch, now: datetime, report: TickReport) -> None:
        """Send one claimed batch; whatever the backend never took is given back.

        A message the wire check refuses, or that could not be built, fails on its own (the
        delivery is `failed` with the reason) and the rest of the batch goes on; when the
        same lesson is refused for the sample subscriber too, the fault is the run's, not
        one subscriber's, and the tick stops with nothing marked.
        """
        claimed, by_id = batch.claimed, batch.lessons
        recorded: set[tuple[int, int]] = set()

        def record(results: Sequence[SendResult]) -> None:
            outcomes = [
                self._outcome(by_id[r.message.message_id, r.message.recipient], r, now)
                for r in results
            ]
            self._log_bounces(results, outcomes, now)
            if self.backend.remote:
                self.ledger.journal(outcomes, now=now)
            else:
                self.ledger.record(outcomes, now=now)
            counted(outcomes)

        def counted(outcomes: Sequence[DeliveryOutcome]) -> None:
            for outcome in outcomes:
                recorded.add((outcome.subscriber_id, outcome.day))
                _count(report, outcome)
            if self.watch is not None:
                lessons = {(c.subscriber_id, c.day): c for c in claimed}
                self.watch([(lessons[o.subscriber_id, o.day], o) for o in outcomes])

        try:
            counted(self._refuse(batch.unbuilt, now))
            pending = batch.messages
            while pending:
                try:
                    # A remote backend's answers are journaled before that connection sends
                    # again (the crash rule), the answers that arrive together sharing a
                    # commit. A local one reports its batch at once, or, when storage fails
                    # part-way, what it did store before raising: those are recorded, so they
                    # are not sent twice.
                    results = self.backend.send(pending, on_result=record)
                    unreported = [
                        r for r in results if _message_key(by_id, r.message) not in recorded
                    ]
                    if unreported:
                        record(unreported)
                    pending = []
                except WireRefusal:
                    # Rare, so the check runs again only now, over what is left to send.
                    left = [m for m in pending if _message_key(by_id, m) not in recorded]
                    refused = {_key(m): wire_problem(m) for m in left}
                    refused = {key: why for key, why in refused.items() if why}
                    if not refused:
                        raise  # our check passes what the backend refused: not a message's
                    counted(
                        self._refuse(
                            [
                                (by_id[key], f"refused before sending: {why}")
                                for key, why in refused.items()
                            ],
                            now,
                        )
                    )
                    pending = [m for m in left if _key(m) not in refused]
        finally:
            if self.backend.remote:
                self.ledger.apply_journal()
            unsent = [c for c in claimed if (c.subscriber_id, c.day) not in recorded]
            if unsent:
                self.ledger.release(unsent, now=now)

    def _log_bounces(
        self, results: Sequence[SendResult], outcomes: Sequence[DeliveryOutcome], now: datetime
    ) -> None:
        """A bounce suppresses the address: it goes into the suppression log before the ledger."""
        if self.suppressions is None:
            return
        bounced = [
            Suppression(result.message.recipient, Action.BOUNCE, outcome.reply, now)
            for result, outcome in zip(results, outcomes, strict=True)
            if outcome.state == DeliveryState.BOUNCED
        ]
        if bounced:
            self.suppressions.append(bounced)

    def _refuse(
        self, refused: Sequence[tuple[DueLesson, str]], now: datetime
    ) -> list[DeliveryOutcome]:
        """Record these deliveries `failed` with the reason; DeliveryError if the run is at fault.

        The test of whose fault it is: the same lesson built for the sample subscriber. If the
        check refuses that too (a template or setting every message shares), failing these
        subscribers would make them skip a lesson for nothing: the tick stops instead.
        """
        for day in sorted({lesson.day for lesson, _ in refused}):
            problem = self._sample_problem(day, now)
            if problem:
                raise DeliveryError(
                    f"day {day} is refused for the sample subscriber too, so the fault is "
                    f"not one subscriber's: {problem}"
                )
        outcomes = [
            DeliveryOutcome(
                lesson.subscriber_id,
                lesson.day,
                DeliveryState.FAILED,
                "",
                reason,
                next_due_at=self._next(lesson, now),
            )
            for lesson, reason in refused
        ]
        for lesson, reason in refused:
            LOG.warning("day %d to %r failed: %s", lesson.day, lesson.email, reason)
        if outcomes:
            self.ledger.record(outcomes, now=now)
        return outcomes

    def _sample_problem(self, day: int, now: datetime) -> str:
        """Why lesson `day` for the sample subscriber is refused; "" when it is fine."""
        if day not in self._sample_problems:
            sample = Recipient(SAMPLE_EMAIL, SAMPLE_NAME, self.links.unsubscribe(SAMPLE_EMAIL), {})
            try:
                message_id, data = self.build.lesson(day).build(sample, date=now)
                sender = self.envelope_sender(SAMPLE_EMAIL, day)
                problem = wire_problem(OutgoingMessage(sender, SAMPLE_EMAIL, message_id, data))
            except (CourseError, UnicodeError) as exc:
                problem = f"cannot build the message: {exc}"
            self._sample_problems[day] = problem
        return self._sample_problems[day]

    def message(self, lesson: DueLesson, now: datetime, ref: str = "") -> OutgoingMessage:
        """The finished message for one due lesson; `ref` is the subscriber's opaque id when
        the caller has it (the link and the return path both carry it)."""
        ref = ref or self.links.ref(lesson.email)
        recipient = Recipient(
            email=lesson.email,
            name=lesson.name,
            fields=lesson.fields,
            unsubscribe_url=self.links.unsubscribe_by_ref(ref),
        )
        message_id, data = self.build.lesson(lesson.day).build(recipient, date=now)
        sender = self.envelope_sender(lesson.email, lesson.day, ref)
        return OutgoingMessage(sender, lesson.email, message_id, data)

    def envelope_sender(self, email: str, day: int, ref: str = "") -> str:
        """MAIL FROM for day `day` to `email` (whose opaque id is `ref`, when known)."""
        if self.return_path is None:
            return self.build.sender.address
        return self.return_path.for_ref(ref or self.links.ref(email), day)

    def _outcome(self, lesson: DueLesson, result: SendResult, now: datetime) -> DeliveryOutcome:
        message_id, reply = result.message.message_id, result.reply
        base = (lesson.subscriber_id, lesson.day)
        if result.outcome == "retry":
            wait = retry_delay(lesson.attempts + 1, self.retry)
            if wait is not None:
                return DeliveryOutcome(
                    *base, DeliveryState.RETRYING, message_id, reply, next_attempt_at=now + wait
                )
            reply = f"gave up after {lesson.attempts + 1} attempts; last: {reply}"
            state = DeliveryState.FAILED
        elif result.outcome == "bounced":
            return DeliveryOutcome(*base, DeliveryState.BOUNCED, message_id, reply)
        else:
            state = DeliveryState(result.outcome)  # "sent" or "failed"
        return DeliveryOutcome(*base, state, message_id, reply, next_due_at=self._next(lesson, now))

    def _next(self, lesson: DueLesson, now: datetime) -> datetime | None:
        """When the following lesson is due; None after the last one."""
        if lesson.day >= len(self.build.lessons):
            return None
        return self._next_due(now, lesson.timezone)

    def _next_due(self, now: datetime, timezone: str) -> datetime:
        # A tick has one `now` and a handful of time zones: the answer repeats thousands of
        # times, and the zone arithmetic behind it was a tenth of recording a send.
        key = (now, timezone)
        if key not in self._due_after:
            if len(self._due_after) > 10_000:
                self._due_after.clear()
            self._due_after[key] = next_due(now, timezone, self.timing)
        return self._due_after[key]


@dataclass(frozen=True)
class _Batch:
    """Claimed lessons and their finished messages, keyed back by (Message-ID, recipient)."""

    claimed: Sequence[DueLesson]
    messages: list[OutgoingMessage]
    lessons: dict[tuple[str, str], DueLesson]
    unbuilt: list[tuple[DueLesson, str]]  # lessons whose message could not be built, and why


def _key(message: OutgoingMessage) -> tuple[str, str]:
    return message.message_id, message.recipient


def _message_key(
    by_id: dict[tuple[str, str], DueLesson], message: OutgoingMessage
) -> tuple[int, int]:
    """The (subscriber, day) of the lesson a message carries."""
    return _lesson_key(by_id[_key(message)])


def _lesson_key(lesson: DueLesson) -> tuple[int, int]:
    return (lesson.subscriber_id, lesson.day)


def _count(report: TickReport, outcome: DeliveryOutcome) -> None:
    setattr(report, outcome.state, getattr(report, outcome.state) + 1)
    if outcome.state == DeliveryState.SENT:
        report.by_day[outcome.day] = report.by_day.get(outcome.day, 0) + 1
