"""When someone joined, from the forms list exports write it in.

ISO 8601 first; then `M/D/YYYY h:mm:ss` (US, Google Forms) or `D/M/YYYY` (also with dashes,
`28-5-2026`) as the whole column says, `DD.MM.YYYY`, year-first `2026/05/28` with the morning
and afternoon marks of Chinese, Japanese and Korean forms, Go's `time.Time` text (listmonk),
epoch seconds or milliseconds, Excel's serial day numbers (`45321.5`), and month names in
English and six other languages (`May 28, 2024 at 2:03 PM`, `28. Mai 2026`, JavaScript's
`Tue May 28 2024 14:03:11 GMT+0000 (...)`). The date only places the first lesson, so a date
nobody can read never costs a row: the subscriber joins now, with a note.
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
    r"(\d{1,2})([/-])(\d{1,2})\2(\d{4}|\d{2})"
    r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([AaPp]\.?[Mm]\.?)?)?"
)
# Year first with slashes, dots or dashes: Japanese and Chinese `2026/05/28 14:03:11`, Korean
# `2026. 5. 28 오후 2:03:11`; the morning/afternoon mark may come before the time.
_YEAR_FIRST = re.compile(
    r"(\d{4})\s*([/.-])\s*(\d{1,2})\s*\2\s*(\d{1,2})\.?"
    r"(?:[ T,]+(?:(上午|下午|午前|午後|오전|오후)\s*)?(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?"
    r"\s*([AaPp]\.?[Mm]\.?)?)?"
)
_AFTERNOON_MARKS: Final = frozenset({"下午", "午後", "오후"})
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?:[ ,]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")
# Go's time.Time.String(): "2024-03-05 10:21:33.123456 +0000 +0000", "... +0530 IST",
# sometimes with the monotonic clock reading " m=+0.001" at the end.
_GO = re.compile(
    r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-]\d{2})(\d{2})"
    r"(?: [A-Za-z0-9+-]+)?(?: m=[+-][\d.]+)?"
)
_EPOCH_SECONDS = re.compile(r"\d{9,10}(?:\.\d+)?")
_EPOCH_MILLISECONDS = re.compile(r"\d{12,13}")
# Excel's day numbers (days since 1899-12-30, the time of day as the fraction), between 1970
# and 2100: what a date cell becomes when a sheet is saved or converted without its format.
_EXCEL_SERIAL = re.compile(r"\d{5}(?:\.\d+)?")
_EXCEL_EPOCH: Final = datetime(1899, 12, 30)
_EXCEL_FIRST, _EXCEL_LAST = 25_569, 73_051
# More than microseconds (`.123456789Z`), which fromisoformat refuses.
_NANOSECONDS = re.compile(r"(\.\d{6})\d+")
_UTC_SUFFIX = re.compile(r"\s*(?:UTC|GMT)$", re.IGNORECASE)
_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        (
            "jan january januar jän jänner janvier janv enero ene gennaio gen janeiro januari",
            "feb february februar février févr fevrier febrero febbraio fevereiro fev februari",
            "mar march märz mrz mars marzo março maart mrt",
            "apr april avril avr abril abr aprile",
            "may mai mayo maggio mag maio mei",
            "jun june juni juin junio giugno giu junho",
            "jul july juli juillet juil julio luglio lug julho",
            "aug august août aout agosto ago augustus",
            "sep sept september septembre septiembre setiembre settembre set setembro",
            "oct october oktober okt octobre octubre ottobre ott outubro out",
            "nov november novembre noviembre novembro",
            "dec december dezember dez décembre decembre diciembre dic dicembre dezembro",
        ),
        start=1,
    )
    for name in names.split()
}
_WEEKDAYS = (
    r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*|"
    r"(?:mo|di|mi|do|fr|sa|so|lun|mar|mer|jeu|ven|sam|dim)[a-zé]*"
)
_MONTH = r"([^\W\d_]{3,10})\.?"
_NAMED = re.compile(
    rf"(?:(?:{_WEEKDAYS})\.?\s+)?"
    rf"(?:(\d{{1,2}})(?:st|nd|rd|th|\.|er|º)?\s+(?:de\s+)?{_MONTH}(?:\s+de)?"
    rf"|{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?)"
    r"\s+(\d{4})"
    r"(?:\s+(\d{1,2})[:h.](\d{2})(?::(\d{2}))?(?:\.\d+)?\s*([ap]\.?m\.?)?)?"
    r"(?:\s*(?:gmt|utc|z)?\s*([+-]\d{2}):?(\d{2})?|\s*(gmt|utc|z))?"
)
# Words between the parts of a written-out date: `May 28, 2024 at 2:03 PM`, `le 28 mai`.
_FILLER = re.compile(r"\(.*?\)|,|\b(?:at|um|à|a las|alle|às|om|le|el|am)\b", re.IGNORECASE)
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
        first, second = int(match[1]), int(match[3])
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
    if "." in text and (shorter := _NANOSECONDS.sub(r"\1", text)) != text:
        return _parse(shorter, order)
    stripped = _UTC_SUFFIX.sub("", text)
    if stripped != text:
        found = _parse(stripped, order)
        return None if found is None else found.replace(tzinfo=found.tzinfo or UTC)
    if match := _SLASH.fullmatch(text):
        first, second = int(match[1]), int(match[3])
        if first > 12 or (order is DateOrder.DAY_FIRST and second <= 12):
            day, month = first, second
        else:
            month, day = first, second
        return _assemble(match[4], month, day, match[5], match[6], match[7], match[8])
    if match := _DOTTED.fullmatch(text):
        return _assemble(match[3], int(match[2]), int(match[1]), match[4], match[5], match[6])
    if match := _YEAR_FIRST.fullmatch(text):
        mark = match[5]
        meridiem = match[9] or (("pm" if mark in _AFTERNOON_MARKS else "am") if mark else None)
        return _assemble(
            match[1], int(match[3]), int(match[4]), match[6], match[7], match[8], meridiem
        )
    if match := _GO.fullmatch(text):
        return _go_time(match)
    if _EPOCH_SECONDS.fullmatch(text):
        return datetime.fromtimestamp(float(text), UTC)
    if _EPOCH_MILLISECONDS.fullmatch(text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    if _EXCEL_SERIAL.fullmatch(text):
        days = float(text)
        return _EXCEL_EPOCH + timedelta(days=days) if _EXCEL_FIRST <= days < _EXCEL_LAST else None
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
    """`May 28, 2024 at 2:03 PM`, `28. Mai 2026 14:03`, `Tue May 28 2024 14:03:11 GMT+0000`."""
    cleaned = " ".join(_FILLER.sub(" ", text).split()).casefold()
    match = _NAMED.fullmatch(cleaned)
    if match is None:
        return None
    month = _MONTHS.get(match[2] or match[3] or "")
    if month is None:
        return None
    day = int(match[1] or match[4])
    when = _assemble(match[5], month, day, match[6], match[7], match[8], match[9])
    if match[10]:
        hours, minutes = int(match[10]), int(match[11] or 0)
        offset = timedelta(hours=abs(hours), minutes=minutes)
        return when.replace(tzinfo=timezone(-offset if match[10].startswith("-") else offset))
    return when.replace(tzinfo=UTC) if match[12] else when
