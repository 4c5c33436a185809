"""APScheduler 3.x wiring: one interval job that runs a tick; nothing about *what* is due.

SIGINT and SIGTERM set a stop flag: the tick in progress finishes the batch in hand,
records it, and the scheduler shuts down, so `course run` exits 0 without losing a send.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from course.errors import CourseError

LOG = logging.getLogger("course.scheduler")
JOB_ID = "dripcourse-tick"

Tick = Callable[[datetime, Callable[[], bool]], None]


class TickScheduler:
    """Runs `tick(now, should_stop)` every `tick_seconds`, starting at once."""

    def __init__(
        self,
        tick: Tick,
        tick_seconds: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.stopping = threading.Event()
        self._tick = tick
        self._clock = clock
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "coalesce": True,  # after a pause, run once, not once per missed interval
                "max_instances": 1,  # a slow tick is never overlapped by the next one
                # A tick that starts late is still worth running; one later than a whole
                # interval is skipped, and the next one covers it (due work never expires).
                "misfire_grace_time": tick_seconds,
            },
            timezone=UTC,
        )
        self.scheduler.add_job(
            self._run_tick,
            IntervalTrigger(seconds=tick_seconds, timezone=UTC),
            id=JOB_ID,
            name="deliver due lessons",
            replace_existing=True,
            next_run_time=clock(),
        )

    def every(
        self, seconds: float, job: Callable[[datetime], None], *, job_id: str, name: str
    ) -> None:
        """Also run `job(now)` every `seconds`, first one interval from now.

        It shares the one worker thread with the tick, so the two never run at once; a job
        that fails is logged and tried again at its next interval.
        """

        def run() -> None:
            if self.stopping.is_set():
                return
            try:
                job(self._clock())
            except CourseError as exc:
                LOG.error("%s failed: %s; trying again in %.0f minutes", name, exc, seconds / 60)
            except Exception:
                LOG.exception("%s failed", name)

        self.scheduler.add_job(
            run,
            IntervalTrigger(seconds=seconds, timezone=UTC),
            id=job_id,
            name=name,
            replace_existing=True,
            misfire_grace_time=max(1, int(seconds)),
        )

    def _run_tick(self) -> None:
        # A failed tick is logged and tried again at the next interval, not fatal: the
        # server may be back by then, and the ledger says exactly what is still due.
        try:
            self._tick(self._clock(), self.stopping.is_set)
        except CourseError as exc:
            LOG.error("tick failed: %s; trying again at the next tick", exc)
        except Exception:
            LOG.exception("tick failed")

    def run(self) -> None:
        """Block until SIGINT/SIGTERM; the tick in progress finishes its batch first."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            # The scheduler runs in the background and this thread waits for the stop flag,
            # then shuts it down itself: a signal that lands before the scheduler has
            # started (or while it starts) only sets the flag, so nothing can shut down a
            # scheduler that is not running yet and leave the start to block for ever.
            if self.stopping.is_set():
                return
            self.scheduler.start()
            try:
                self.stopping.wait()
            finally:
                self.scheduler.shutdown(wait=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        LOG.info(
            "%s received: finishing the message in hand, then stopping", signal.Signals(signum).name
        )
        self.stop()

    def stop(self) -> None:
        """Ask run() to return once the tick in progress has finished; safe from any thread."""
        self.stopping.set()
