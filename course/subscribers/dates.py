"""When someone joined, from the forms list exports write it in.

ISO 8601 first; then `M/D/YYYY h:mm:ss` (US, Google Forms) or `D/M/YYYY` as the whole column
says, `DD.MM.YYYY`, Go's `time.Time` text (listmonk), epoch seconds or milliseconds, and month
names. The date only places the first lesson, so a date nobody can read never costs a row:
the subscriber joins now, with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo


class DateOrder(StrEnum):
    """How to read a slash date whose first two numbers are both 12 or less."""

    MONTH_FIRST = "month_first"
    DAY_FIRST = "day_first"


_SLASH = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})"
    r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([AaPp]\.?[Mm]\.?)?)?"
)
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?:[ ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
# Go's time.Time.String(): "2024-03-05 10:21:33.123456 +0000 +0000", "... +0530 IST",
# sometimes with the monotonic clock reading " m=+0.001" at the end.
_GO = re.compile(
    r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-]\d{2})(\d{2})"
    r"(?: [A-Za-z0-9+-]+)?(?: m=[+-][\d.]+)?"
)
_EPOCH_SECONDS = re.compile(r"\d{9,10}(?:\.\d+)?")
_EPOCH_MILLISECONDS = re.compile(r"\d{12,13}")
_UTC_SUFFIX = re.compile(r"\s*(?:UTC|GMT)$", re.IGNORECASE)
_NAMED_MONTH_FORMS: Final = (
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y %H:%M",
    "%B %d, %Y %H:%M",
    "%d %b %Y %H:%M",
    "%d %B %Y %H:%M",
    "%b %d, %Y %I:%M %p",
    "%B %d, %Y %I:%M %p",
    "%a, %d %b %Y %H:%M:%S",
)
_EARLIEST: Final = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)


@dataclass
class SlashEvidence:
    """What a column's slash dates say about their order, gathered over the whole column."""

    day_first: str = ""  # a value whose first number is above 12
    month_first: str = ""  # a value whose second number is above 12
    ambiguous: str = ""  # a value that reads either way

    def observe(self, value: str) -> None:
        match = _SLASH.fullmatch(value.strip())
        if match is None:
            return
        first, second = int(match[1]), int(match[2])
        if first > 12 and second <= 12:
            self.day_first = self.day_first or value
        elif second > 12 and first <= 12:
            self.month_first = self.month_first or value
        elif first != second:
            self.ambiguous = self.ambiguous or value

    def decide(self, configured: DateOrder, column: str) -> tuple[DateOrder, str]:
        """The order to read ambiguous values in, and a note to say once ('' if none)."""
        if self.day_first and self.month_first:
            return configured, (
                f"{column}: some dates are day-first ({self.day_first}) and some month-first "
                f"({self.month_first}); each is read as it must be, and dates that read either "
                f"way as {_order_text(configured)} (subscribers.date_order)"
            )
        if self.day_first:
            return DateOrder.DAY_FIRST, ""
        if self.month_first:
            return DateOrder.MONTH_FIRST, ""
        if self.ambiguous:
            return configured, (
                f"{column}: dates like {self.ambiguous} read either way; read as "
                f"{_order_text(configured)} (subscribers.date_order: {configured})"
            )
        return configured, ""


def _order_text(order: DateOrder) -> str:
    return "month/day" if order is DateOrder.MONTH_FIRST else "day/month"


def parse_joined(value: str, zone: ZoneInfo, order: DateOrder) -> datetime | None:
    """The moment in UTC, or None if the value is no date we can read.

    Dates and times without an offset are local to the subscriber's zone.
    """
    text = value.strip()
    try:
        when = _parse(text, order)
    except (ValueError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        when = when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    # Go's zero time, Excel's day 0 and typos like 2204 are no joining date.
    return when if _EARLIEST <= when < _LATEST else None


def _parse(text: str, order: DateOrder) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    stripped = _UTC_SUFFIX.sub("", text)
    if stripped != text:
        found = _parse(stripped, order)
        return None if found is None else found.replace(tzinfo=found.tzinfo or UTC)
    if match := _SLASH.fullmatch(text):
        first, second = int(match[1]), int(match[2])
        if first > 12 or (order is DateOrder.DAY_FIRST and second <= 12):
            day, month = first, second
        else:
            month, day = first, second
        return _assemble(match[3], month, day, match[4], match[5], match[6], match[7])
    if match := _DOTTED.fullmatch(text):
        return _assemble(match[3], int(match[2]), int(match[1]), match[4], match[5], match[6])
    if match := _GO.fullmatch(text):
        return _go_time(match)
    if _EPOCH_SECONDS.fullmatch(text):
        return datetime.fromtimestamp(float(text), UTC)
    if _EPOCH_MILLISECONDS.fullmatch(text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    return _named_month(text)


def _assemble(
    year_text: str,
    month: int,
    day: int,
    hour: str | None,
    minute: str | None,
    second: str | None,
    meridiem: str | None = None,
) -> datetime:
    year = int(year_text)
    if len(year_text) == 2:
        year += 2000
    hours = int(hour or 0)
    if meridiem:
        if not 1 <= hours <= 12:
            raise ValueError("hour out of range for AM/PM")
        hours = hours % 12 + (12 if meridiem[0] in "Pp" else 0)
    return datetime(year, month, day, hours, int(minute or 0), int(second or 0))


def _go_time(match: re.Match[str]) -> datetime:
    fraction = (match[3] or "")[:6].ljust(6, "0")
    hours, minutes = int(match[4]), int(match[5])
    offset = timedelta(hours=abs(hours), minutes=minutes)
    zone = timezone(-offset if match[4].startswith("-") else offset)
    naive = datetime.fromisoformat(f"{match[1]}T{match[2]}.{fraction}")
    return naive.replace(tzinfo=zone)


def _named_month(text: str) -> datetime | None:
    for form in _NAMED_MONTH_FORMS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None
