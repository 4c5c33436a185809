"""The planner: due times as pure functions of the schedule and the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from course.planner import Timing, first_due, next_due, next_sending_day, send_instant

EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))
EIGHT = Timing(time(8, 0), EVERY_DAY)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_immediately_means_day_one_at_joining() -> None:
    joined = utc(2026, 3, 2, 14, 37)
    assert first_due(joined, "Asia/Tokyo", EIGHT) == joined


def test_next_send_time_today_if_not_passed() -> None:
    timing = Timing(time(8, 0), EVERY_DAY, "next_send_time")
    joined = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    due = first_due(joined, "Europe/Berlin", timing)
    assert due == datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def test_next_send_time_tomorrow_if_passed() -> None:
    timing = Timing(time(8, 0), EVERY_DAY, "next_send_time")
    joined = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    due = first_due(joined, "Europe/Berlin", timing)
    assert due == datetime(2026, 3, 3, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def test_next_day_is_the_following_local_day_at_send_time() -> None:
    sent = datetime(2026, 3, 2, 23, 50, tzinfo=ZoneInfo("America/New_York"))
    due = next_due(sent, "America/New_York", EIGHT)
    assert due.astimezone(ZoneInfo("America/New_York")) == datetime(
        2026, 3, 3, 8, 0, tzinfo=ZoneInfo("America/New_York")
    )


def test_never_two_lessons_on_one_local_day() -> None:
    # Day 1 went out at 07:00 local, before the 08:00 send time: day 2 still waits a day.
    sent = datetime(2026, 3, 2, 7, 0, tzinfo=ZoneInfo("Europe/London"))
    due = next_due(sent, "Europe/London", EIGHT)
    assert due.astimezone(ZoneInfo("Europe/London")).date() == date(2026, 3, 3)


def test_downtime_shifts_the_course_instead_of_bunching() -> None:
    # Day 3 was due on the 4th but the scheduler was down until the 7th at 15:00.
    late = utc(2026, 3, 7, 15, 0)
    assert next_due(late, "UTC", EIGHT) == utc(2026, 3, 8, 8, 0)


def test_send_days_skip_weekends() -> None:
    friday = date(2026, 3, 6)
    assert next_sending_day(friday, WEEKDAYS) == date(2026, 3, 9)
    sent = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)
    assert next_due(sent, "UTC", Timing(time(8), WEEKDAYS)) == utc(2026, 3, 9, 8, 0)


def test_dst_gap_send_time_moves_past_the_gap() -> None:
    # 2026-03-08 02:30 does not exist in New York (clocks jump 02:00 -> 03:00).
    ny = ZoneInfo("America/New_York")
    instant = send_instant(date(2026, 3, 8), ny, time(2, 30))
    assert instant == utc(2026, 3, 8, 7, 30)
    assert instant.astimezone(ny).strftime("%H:%M %Z") == "03:30 EDT"


def test_dst_fold_send_time_used_once_at_first_occurrence() -> None:
    # 2026-11-01 01:30 happens twice in New York; the first is EDT (UTC-4).
    ny = ZoneInfo("America/New_York")
    instant = send_instant(date(2026, 11, 1), ny, time(1, 30))
    assert instant == utc(2026, 11, 1, 5, 30)
    sent = instant + timedelta(minutes=1)
    # The second 01:30 (06:30 UTC) is the same local day: nothing more is due until the 2nd.
    assert next_due(sent, "America/New_York", Timing(time(1, 30), EVERY_DAY)) == utc(
        2026, 11, 2, 6, 30
    )


def test_dst_europe_spring_forward_day_keeps_local_send_time() -> None:
    london = ZoneInfo("Europe/London")
    before = send_instant(date(2026, 3, 28), london, time(8))
    after = send_instant(date(2026, 3, 29), london, time(8))
    assert before == utc(2026, 3, 28, 8)
    assert after == utc(2026, 3, 29, 7)


@pytest.mark.parametrize(
    ("zone_name", "offset_hours"),
    [
        ("Pacific/Pago_Pago", -11),
        ("Pacific/Honolulu", -10),
        ("UTC", 0),
        ("Asia/Kolkata", 5.5),
        ("Asia/Kathmandu", 5.75),
        ("Pacific/Kiritimati", 14),
    ],
)
def test_extreme_offsets_send_at_local_eight(zone_name: str, offset_hours: float) -> None:
    sent = utc(2026, 6, 10, 12, 0)
    due = next_due(sent, zone_name, EIGHT)
    local = due.astimezone(ZoneInfo(zone_name))
    assert local.time() == time(8, 0)
    assert local.date() == sent.astimezone(ZoneInfo(zone_name)).date() + timedelta(days=1)
    assert due.utcoffset() == timedelta(0)
    assert local.utcoffset() == timedelta(hours=offset_hours)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        next_due(datetime(2026, 1, 1), "UTC", EIGHT)
