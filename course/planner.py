"""When is a subscriber's next lesson due? Pure functions of the schedule and `now`.

Rules (one lesson per subscriber per local day):
- Day 1 is due when they join (`first_lesson: immediately`), or at the first send time on a
  sending day at or after joining (`next_send_time`).
- Day k+1 is due at the send time on the first sending day strictly after the local date on
  which day k actually went out. After downtime the course shifts; it never bunches.
- A send time that does not exist that day (DST gap) is moved forward by the gap; one that
  exists twice (DST fold) is used once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from course.config import RetrySettings, ScheduleSettings


@dataclass(frozen=True, slots=True)
class Timing:
    """The part of the schedule the planner needs."""

    send_time: time
    send_days: frozenset[int]
    first_lesson: Literal["immediately", "next_send_time"] = "immediately"

    @classmethod
    def from_settings(cls, schedule: ScheduleSettings) -> Timing:
        return cls(schedule.send_time, schedule.send_days, schedule.first_lesson)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def send_instant(day: date, tz: ZoneInfo, send_time: time) -> datetime:
    """The UTC instant of `send_time` on local `day`, resolving DST gaps and folds."""
    local = datetime.combine(day, send_time, tzinfo=tz)  # fold=0: first occurrence in a fold
    return local.astimezone(UTC)
    # In a gap, fold=0 uses the offset from before the change, which lands the instant
    # after the gap: 02:30 on a spring-forward night goes out at 03:30 local.


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def next_sending_day(after: date, send_days: frozenset[int]) -> date:
    """The first sending day strictly after `after`."""
    day = after + timedelta(days=1)
    while day.weekday() not in send_days:
        day += timedelta(days=1)
    return day


def first_due(joined: datetime, timezone: str, timing: Timing) -> datetime:
    """When day 1 is due for someone who joined at `joined`."""
    _require_aware(joined)
    if timing.first_lesson == "immediately":
        return joined.astimezone(UTC)
    today = local_date(joined, zone(timezone))
    candidate, later = _day_one_instants(today, timezone, timing)
    if candidate is not None and candidate >= joined:
        return candidate
    return later


# A list import asks for every row; its rows share a few zones and joining days.
@lru_cache(maxsize=4096)
def _day_one_instants(
    today: date, timezone: str, timing: Timing
) -> tuple[datetime | None, datetime]:
    """The send instants day 1 can fall on for someone who joins on local date `today`:
    today's (None unless a sending day) and the next sending day's."""
    tz = zone(timezone)
    candidate = None
    if today.weekday() in timing.send_days:
        candidate = send_instant(today, tz, timing.send_time)
    return candidate, send_instant(next_sending_day(today, timing.send_days), tz, timing.send_time)


def next_due(sent_at: datetime, timezone: str, timing: Timing) -> datetime:
    """When the next day is due, given when the previous one actually went out."""
    _require_aware(sent_at)
    tz = zone(timezone)
    day = next_sending_day(local_date(sent_at, tz), timing.send_days)
    return send_instant(day, tz, timing.send_time)


def resume_due(
    now: datetime, last_lesson_at: datetime | None, timezone: str, timing: Timing
) -> datetime:
    """When someone coming back (resubscribed, or back in the CSV) gets their next lesson.

    Never on the local date their last lesson went out: at the next send time after it, or
    when first_due(now) says if that is later (as it is after a long absence).
    """
    due = first_due(now, timezone, timing)
    if last_lesson_at is None:
        return due
    return max(due, next_due(last_lesson_at, timezone, timing))


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: the planner needs aware times")


def retry_delay(attempts: int, retry: RetrySettings) -> timedelta | None:
    """How long to wait after the `attempts`-th failed try; None means give up.

    Waits double from `retry.first` up to `retry.cap`. The sum of the waits so far stands
    in for the time since the first try, so the rule stays a pure function of the count.
    """
    delays: list[timedelta] = [
        min(retry.first * 2 ** (n - 1), retry.cap) for n in range(1, attempts + 1)
    ]
    waited = sum(delays[:-1], timedelta())
    if waited >= retry.give_up_after:
        return None
    return delays[-1]
