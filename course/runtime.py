"""Wires settings to the parts a tick needs: course, subscribers, ledger, backend.

Side effects live here (files, environment, the CSV's fingerprint); the parts themselves
stay pure and take `now` as an argument.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from course.backends.base import Backend
from course.backends.factory import make_backend
from course.backends.smtp import EnvelopeRefused, SendingPaused
from course.bounces.verp import ReturnPath
from course.build import CourseBuild, build_course
from course.config import Settings
from course.delivery import Deliverer, Links, TickReport
from course.errors import SubscribersError
from course.ledger import (
    Departure,
    Ledger,
    ListRow,
    SubscriberStatus,
    SyncSummary,
)
from course.list_rows import list_rows
from course.planner import Timing, first_due, resume_due
from course.state import open_ledger
from course.subscribers import (
    SubscriberList,
    fingerprint,
    load_subscribers,
)
from course.suppress import Action, Suppression, SuppressionLog, apply_pending
from course.unsubscribe import load_secret

LOG = logging.getLogger("course")
CSV_FINGERPRINT = "subscribers_csv_fingerprint"
PAUSE_KEY = "delivery_paused"


@contextmanager
def _collector_set_aside() -> Iterator[None]:
    """Keep the cyclic garbage collector off what is already loaded while a list is synced.

    A sync makes and drops millions of small objects, none of them in a cycle (reference
    counting frees them); each collection they trigger also walked every object the program
    had loaded (SQLAlchemy, the course, the templates). Frozen objects are skipped until
    `gc.unfreeze()`; collection itself goes on as usual.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def read_subscribers(settings: Settings) -> SubscriberList:
    return load_subscribers(settings.subscribers, settings.list_import)


def subscribers_stat(settings: Settings) -> os.stat_result:
    """The CSV's stat; SubscribersError naming the file and the key when it is not there."""
    try:
        return settings.subscribers.stat()
    except OSError as exc:
        raise SubscribersError(
            f"{settings.subscribers}: cannot read the subscribers file "
            f"({exc.strerror}); check `subscribers:` in {settings.source}"
        ) from None


def make_links(
    settings: Settings, build: CourseBuild, environ: Mapping[str, str] = os.environ
) -> Links:
    secret = load_secret(settings.unsubscribe.secret_env, settings.base_dir, environ)
    return Links(settings.unsubscribe.base_url, secret, build.sender.course_id)


def make_return_path(
    settings: Settings, build: CourseBuild, environ: Mapping[str, str] = os.environ
) -> ReturnPath:
    secret = load_secret(settings.unsubscribe.secret_env, settings.base_dir, environ)
    return ReturnPath.from_settings(settings.sender, secret, build.sender.course_id)


@dataclass
class Runtime:
    """Everything one process needs to run ticks; close() when done."""

    settings: Settings
    build: CourseBuild
    ledger: Ledger
    backend: Backend
    deliverer: Deliverer
    timing: Timing
    suppressions: SuppressionLog
    _seen_csv: str = ""
    _seen_stat: tuple[int, int] = (-1, -1)
    # Jobs that one worker at a time may run, called with `now` on the leader's ticks
    # before delivery: the CSV sync, then whatever is added (e.g. bounce processing). With
    # several workers on PostgreSQL the leader is elected; on SQLite the one worker leads.
    leader_jobs: list[Callable[[datetime], object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.leader_jobs.insert(0, self.refresh_subscribers)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        ledger: Ledger | None = None,
        backend: Backend | None = None,
        environ: Mapping[str, str] = os.environ,
        suppressions: SuppressionLog | None = None,
    ) -> Runtime:
        """The configured parts; `ledger`, `backend` and `suppressions` replace the project's
        (a dry run's rehearsal, a simulation's sandbox)."""
        build = build_course(settings)
        subscribers_stat(settings)  # a wrong path is reported before anything is created
        if ledger is None:
            ledger = open_ledger(settings, build.sender.course_id, environ=environ)
        if backend is None:
            backend = make_backend(settings, clock) if clock else make_backend(settings)
        timing = Timing.from_settings(settings.schedule)
        if suppressions is None:
            suppressions = SuppressionLog.in_project(settings.base_dir)
        deliverer = Deliverer(
            build,
            ledger,
            backend,
            timing,
            make_links(settings, build, environ),
            settings.delivery.retry,
            return_path=make_return_path(settings, build, environ),
            suppressions=suppressions,
        )
        runtime = cls(settings, build, ledger, backend, deliverer, timing, suppressions)
        deliverer.before_batch = runtime.apply_suppressions
        return runtime

    def apply_suppressions(self) -> int:
        """Bring the ledger up to date with state/suppressions.log (one-click POSTs, bounces)."""
        return apply_pending(
            self.suppressions,
            self.ledger,
            first_due=self._first_due,
            resume_due=self._resume_due,
        )

    def close(self) -> None:
        self.backend.close()
        self.ledger.close()

    def refresh_subscribers(self, now: datetime) -> SyncSummary | None:
        """Re-read the CSV when it changed since the last sync; None when it did not."""
        stat = subscribers_stat(self.settings)
        # Untouched since we last hashed it: skip re-reading a large file. A file modified in
        # the last few seconds is hashed anyway, as timestamps are coarser than edits can be.
        settled = time.time() - stat.st_mtime > 5
        if settled and (stat.st_size, stat.st_mtime_ns) == self._seen_stat:
            return None
        self._seen_stat = (stat.st_size, stat.st_mtime_ns)
        # The default time zone shapes the rows too, so it is part of what "unchanged" means.
        current = f"{fingerprint(self.settings.subscribers)} tz={self.settings.schedule.timezone}"
        if current == self._seen_csv:
            return None
        if current == self.ledger.meta(CSV_FINGERPRINT):
            self._seen_csv = current
            return None
        with _collector_set_aside(), closing(self._list_rows()) as rows:
            summary = self.ledger.sync(
                rows,
                now=now,
                first_due=self._first_due,
                before_suppressing=functools.partial(self._log_departures, now),
                resume_due=self._resume_due,
            )
        self.ledger.set_meta(CSV_FINGERPRINT, current)
        self._seen_csv = current
        LOG.info(
            "subscribers: %d joined, %d updated, %d removed, %d rejoined",
            summary.added,
            summary.updated,
            summary.removed,
            summary.rejoined,
        )
        if summary.stopped or summary.suppressed:
            LOG.info(
                "subscribers: %d stopped by their row's status; %d put on the suppression "
                "list by the list (unsubscribed, complained or bounced at the source)",
                summary.stopped,
                summary.suppressed,
            )
        if summary.held:
            LOG.warning(
                "subscribers: %d listed as subscribed are on the suppression list and get "
                "nothing; `course status` lists them, `course resubscribe EMAIL` lets one back",
                summary.held,
            )
        return summary

    def _log_departures(self, now: datetime, departures: Sequence[Departure]) -> None:
        """Subscribers the list now says unsubscribed, complained or bounced: into the
        suppression log before the ledger stops them, as every other way in does
        (course/suppress.py), so a ledger rebuilt from the log stops them too.

        Only those the ledger knew: addresses never on the course stay in the ledger alone
        (an export of people who left can hold a million; it is their other copy).
        """
        self.suppressions.append(
            [
                Suppression(
                    departure.email,
                    Action.BOUNCE
                    if departure.status == SubscriberStatus.BOUNCED
                    else Action.UNSUBSCRIBE,
                    departure.reason,
                    now,
                )
                for departure in departures
            ]
        )

    def _list_rows(self) -> Generator[ListRow, None, None]:
        """Stream the list into what the ledger syncs, logging the report as it goes."""
        for item in list_rows(self.settings.subscribers, self.settings.list_import):
            if isinstance(item, str):
                LOG.info("%s", item)
            else:
                yield item

    def _resume_due(
        self, timezone: str, now: datetime, last_lesson_at: datetime | None
    ) -> datetime:
        return resume_due(now, last_lesson_at, timezone, self.timing)

    def _first_due(self, timezone: str, joined: datetime) -> datetime:
        return first_due(joined, timezone, self.timing)

    def tick(
        self,
        now: datetime,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] = lambda _: None,
    ) -> TickReport:
        """Run the leader's jobs if this worker leads (reloading the CSV if it changed), then
        deliver everything due at `now`.

        Too many errors in a row pause delivery for `delivery.smtp.pause_minutes`; an error
        that no retry can fix (login refused, bad certificate, server down) is raised.
        """
        self.apply_suppressions()
        if self.ledger.lead(now):
            for job in self.leader_jobs:
                job(now)
        pause = read_pause(self.ledger)
        if pause is not None:
            if now < pause.until:
                return TickReport(paused_until=pause.until)
            clear_pause(self.ledger)
        report = self.deliverer.tick(now, should_stop=should_stop, progress=progress)
        if report.handled:
            LOG.info("tick %s: %s", now.isoformat(timespec="seconds"), report.summary())
        if isinstance(report.stopped_by, SendingPaused):
            pause = DeliveryPause(
                now + timedelta(minutes=self.settings.delivery.smtp.pause_minutes),
                str(report.stopped_by),
            )
            # In the ledger, not in memory: the next `course send` from cron, or a restarted
            # `course run`, must not hit the throttling server again before the time is up.
            write_pause(self.ledger, pause)
            report.paused_until = pause.until
            LOG.error(
                "ALERT: %s; delivery paused until %s",
                pause.reason,
                pause.until.isoformat(timespec="minutes"),
            )
        elif report.stopped_by is not None:
            if isinstance(report.stopped_by, EnvelopeRefused):
                # Like a refused login, but the operator must hear it even under `course run`,
                # whose failed ticks are otherwise only logged as errors.
                LOG.error("ALERT: %s", report.stopped_by)
            raise report.stopped_by
        return report


@dataclass(frozen=True)
class DeliveryPause:
    """Delivery stopped until `until` after too many errors in a row; `reason` says which."""

    until: datetime
    reason: str


def read_pause(ledger: Ledger) -> DeliveryPause | None:
    """The pause recorded in the ledger, if any (an expired one is still returned)."""
    raw = ledger.meta(PAUSE_KEY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return DeliveryPause(datetime.fromisoformat(data["until"]), str(data["reason"]))
    except (ValueError, KeyError, TypeError):
        return None


def clear_pause(ledger: Ledger) -> None:
    ledger.set_meta(PAUSE_KEY, "")


def write_pause(ledger: Ledger, pause: DeliveryPause) -> None:
    value = {"until": pause.until.isoformat(), "reason": pause.reason}
    ledger.set_meta(PAUSE_KEY, json.dumps(value))
