"""TickScheduler against a real APScheduler: stopping, signals and failing ticks."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from course.errors import CourseError
from course.scheduler import TickScheduler


def test_run_returns_only_after_the_tick_in_hand_has_finished() -> None:
    # The tick outlives the interval, so the scheduler's own loop wakes (and sees it is
    # stopping) while the tick is still recording its batch.
    events: list[str] = []

    def tick(now: datetime, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            time.sleep(0.01)
        time.sleep(2.5)  # finishing the batch in hand
        events.append("tick finished")

    scheduler = TickScheduler(tick, tick_seconds=1)
    threading.Timer(0.3, scheduler.stop).start()
    scheduler.run()
    events.append("run returned")
    assert events == ["tick finished", "run returned"]


def test_sigterm_sets_the_stop_flag_and_run_returns() -> None:
    ticks: list[datetime] = []

    def tick(now: datetime, should_stop: Callable[[], bool]) -> None:
        ticks.append(now)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    scheduler = TickScheduler(tick, tick_seconds=60)
    scheduler.run()
    assert scheduler.stopping.is_set()
    assert len(ticks) == 1
    assert signal.getsignal(signal.SIGTERM) is before, "run() puts the old handler back"


def test_a_failing_tick_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks: list[datetime] = []

    def tick(now: datetime, should_stop: Callable[[], bool]) -> None:
        ticks.append(now)
        if len(ticks) == 1:
            raise CourseError("the server said no")
        scheduler.stop()

    scheduler = TickScheduler(tick, tick_seconds=1)
    scheduler.run()
    assert len(ticks) == 2
    assert "tick failed: the server said no; trying again at the next tick" in caplog.text


def test_a_stop_before_it_runs_returns_at_once_without_a_tick() -> None:
    """SIGTERM in `course run`'s start-up, before the scheduler started, used to hang it."""
    ticks: list[datetime] = []
    scheduler = TickScheduler(lambda now, should_stop: ticks.append(now), tick_seconds=1)
    scheduler.stop()
    scheduler.run()
    assert ticks == []
    assert not scheduler.scheduler.running


def test_a_signal_while_the_scheduler_starts_still_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks: list[datetime] = []

    def tick(now: datetime, should_stop: Callable[[], bool]) -> None:
        ticks.append(now)

    scheduler = TickScheduler(tick, tick_seconds=60)
    started = scheduler.scheduler.start

    def start_then_signal(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # handled on the main thread, mid start-up
        started(*args, **kwargs)

    monkeypatch.setattr(scheduler.scheduler, "start", start_then_signal)
    scheduler.run()
    assert scheduler.stopping.is_set()
    assert not scheduler.scheduler.running
