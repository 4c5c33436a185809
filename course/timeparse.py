"""Times the operator types on the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from course.errors import CourseError

FIRST_YEAR, LAST_YEAR = 1970, 2999


def parse_moment(text: str, *, option: str, default_timezone: str) -> datetime:
    """ISO 8601; a time without an offset is in `schedule.timezone`. Returns aware UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CourseError(
            f"{option}: expected an ISO 8601 time like 2026-03-01T08:00 or "
            f"2026-03-01T08:00+01:00, got {text!r}"
        ) from None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        # Far from now the planner's date arithmetic would overflow datetime's range.
        raise CourseError(
            f"{option}: expected a time in the years {FIRST_YEAR} to {LAST_YEAR}, got {text!r}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(default_timezone))
    return moment.astimezone(UTC)
