"""A row's time zone, from whatever the export wrote: IANA names, offsets, display names.

IANA names are read in any letter case; `GMT+2`, `UTC-05:00` and `+0530` become fixed-offset
zones (noted: they ignore daylight saving); Windows and Google display names such as
`(GMT-05:00) Eastern Time`, common abbreviations (EST, CET, AEST) and city names that end an
IANA name (`London`) go through small tables. Anything else, or anything that could mean two
places (IST), falls back to `schedule.timezone` with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from course.errors import ConfigError
from course.subscribers.text import shown

_CACHE_MAX = 10_000
_OFFSET = re.compile(r"(?:UTC|GMT|Z)?\s*([+\-−])\s*(\d{1,2})(?:[:.h]?(\d{2}))?(?:\s*h)?", re.I)
_DISPLAY = re.compile(
    r"\(\s*(?:GMT|UTC)\s*(?:([+\-−])\s*(\d{1,2})(?::?(\d{2}))?)?\s*\)\s*(.*)", re.I
)
_SPLIT = re.compile(r"\s*(?:,|/|&|\s-\s|\(|\)|;|\band\b)\s*")

# Abbreviations that name one place in practice. Checked before the tz database, which has
# fixed-offset zones called EST, MST and HST: someone who writes EST means New York's clock.
ABBREVIATIONS: Final = {
    "et": "America/New_York",
    "est": "America/New_York",
    "edt": "America/New_York",
    "ct": "America/Chicago",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "mt": "America/Denver",
    "mst": "America/Denver",
    "mdt": "America/Denver",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "pdt": "America/Los_Angeles",
    "akst": "America/Anchorage",
    "akdt": "America/Anchorage",
    "hst": "Pacific/Honolulu",
    "nst": "America/St_Johns",
    "ndt": "America/St_Johns",
    "wet": "Europe/Lisbon",
    "west": "Europe/Lisbon",
    "cet": "Europe/Berlin",
    "cest": "Europe/Berlin",
    "mez": "Europe/Berlin",
    "mesz": "Europe/Berlin",
    "eet": "Europe/Athens",
    "eest": "Europe/Athens",
    "msk": "Europe/Moscow",
    "pkt": "Asia/Karachi",
    "ict": "Asia/Bangkok",
    "wib": "Asia/Jakarta",
    "sgt": "Asia/Singapore",
    "hkt": "Asia/Hong_Kong",
    "jst": "Asia/Tokyo",
    "kst": "Asia/Seoul",
    "awst": "Australia/Perth",
    "acst": "Australia/Adelaide",
    "acdt": "Australia/Adelaide",
    "aest": "Australia/Sydney",
    "aedt": "Australia/Sydney",
    "nzst": "Pacific/Auckland",
    "nzdt": "Pacific/Auckland",
    "sast": "Africa/Johannesburg",
    "wat": "Africa/Lagos",
    "cat": "Africa/Maputo",
    "eat": "Africa/Nairobi",
    "brt": "America/Sao_Paulo",
    "art": "America/Argentina/Buenos_Aires",
}
# Abbreviations that name several places: a note instead of a guess.
AMBIGUOUS: Final = {
    "ist": "India, Ireland or Israel",
    "bst": "British Summer Time or Bangladesh",
    "ast": "Atlantic or Arabia Standard Time",
    "gst": "Gulf or South Georgia Standard Time",
    "cst6": "several central zones",
}
# Windows zone ids and the display names of Windows, Google Calendar and Google Forms pickers,
# as keys (letters and digits, case-folded).
DISPLAY_NAMES: Final = {
    "easterntime": "America/New_York",
    "easterntimeuscanada": "America/New_York",
    "easternstandardtime": "America/New_York",
    "easterndaylighttime": "America/New_York",
    "centraltime": "America/Chicago",
    "centraltimeuscanada": "America/Chicago",
    "centralstandardtime": "America/Chicago",
    "mountaintime": "America/Denver",
    "mountaintimeuscanada": "America/Denver",
    "mountainstandardtime": "America/Denver",
    "arizona": "America/Phoenix",
    "usmountainstandardtime": "America/Phoenix",
    "mountaintimearizona": "America/Phoenix",
    "pacifictime": "America/Los_Angeles",
    "pacifictimeuscanada": "America/Los_Angeles",
    "pacificstandardtime": "America/Los_Angeles",
    "alaska": "America/Anchorage",
    "alaskatime": "America/Anchorage",
    "alaskanstandardtime": "America/Anchorage",
    "hawaii": "Pacific/Honolulu",
    "hawaiitime": "Pacific/Honolulu",
    "hawaiianstandardtime": "Pacific/Honolulu",
    "atlantictime": "America/Halifax",
    "atlantictimecanada": "America/Halifax",
    "atlanticstandardtime": "America/Halifax",
    "newfoundland": "America/St_Johns",
    "newfoundlandstandardtime": "America/St_Johns",
    "gmtstandardtime": "Europe/London",
    "greenwichmeantime": "Europe/London",
    "britishtime": "Europe/London",
    "uktime": "Europe/London",
    "westeuropestandardtime": "Europe/Berlin",
    "weuropestandardtime": "Europe/Berlin",
    "ceuropestandardtime": "Europe/Budapest",
    "eeuropestandardtime": "Europe/Chisinau",
    "centraleuropeantime": "Europe/Berlin",
    "centraleuropeanstandardtime": "Europe/Warsaw",
    "centraleuropestandardtime": "Europe/Budapest",
    "romancestandardtime": "Europe/Paris",
    "westerneuropeantime": "Europe/Lisbon",
    "easterneuropeantime": "Europe/Athens",
    "gtbstandardtime": "Europe/Bucharest",
    "feuropestandardtime": "Europe/Kaliningrad",
    "russianstandardtime": "Europe/Moscow",
    "moscowstandardtime": "Europe/Moscow",
    "moscowtime": "Europe/Moscow",
    "indiastandardtime": "Asia/Kolkata",
    "indianstandardtime": "Asia/Kolkata",
    "chinastandardtime": "Asia/Shanghai",
    "chinatime": "Asia/Shanghai",
    "tokyostandardtime": "Asia/Tokyo",
    "japanstandardtime": "Asia/Tokyo",
    "koreastandardtime": "Asia/Seoul",
    "singaporestandardtime": "Asia/Singapore",
    "auseasternstandardtime": "Australia/Sydney",
    "australianeasterntime": "Australia/Sydney",
    "eaustraliastandardtime": "Australia/Brisbane",
    "cenaustraliastandardtime": "Australia/Adelaide",
    "wausstraliastandardtime": "Australia/Perth",
    "waustraliastandardtime": "Australia/Perth",
    "newzealandstandardtime": "Pacific/Auckland",
    "newzealandtime": "Pacific/Auckland",
    "southafricastandardtime": "Africa/Johannesburg",
    "esouthamericastandardtime": "America/Sao_Paulo",
    "brasilia": "America/Sao_Paulo",
    "argentinastandardtime": "America/Argentina/Buenos_Aires",
    "centralamericastandardtime": "America/Guatemala",
    "coordinateduniversaltime": "UTC",
    "utc": "UTC",
    "gmt": "UTC",
    "z": "UTC",
}
# Cities people write that are not the last part of an IANA name.
CITIES: Final = {
    "newdelhi": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "mumbai": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata",
    "bengaluru": "Asia/Kolkata",
    "chennai": "Asia/Kolkata",
    "beijing": "Asia/Shanghai",
    "washington": "America/New_York",
    "washingtondc": "America/New_York",
    "boston": "America/New_York",
    "miami": "America/New_York",
    "atlanta": "America/New_York",
    "dallas": "America/Chicago",
    "houston": "America/Chicago",
    "sanfrancisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "munich": "Europe/Berlin",
    "münchen": "Europe/Berlin",
    "frankfurt": "Europe/Berlin",
    "hamburg": "Europe/Berlin",
    "köln": "Europe/Berlin",
    "cologne": "Europe/Berlin",
    "wien": "Europe/Vienna",
    "milan": "Europe/Rome",
    "milano": "Europe/Rome",
    "barcelona": "Europe/Madrid",
    "geneva": "Europe/Zurich",
    "genf": "Europe/Zurich",
    "osaka": "Asia/Tokyo",
    "kyoto": "Asia/Tokyo",
    "edinburgh": "Europe/London",
    "manchester": "Europe/London",
}
# Offsets that are not whole hours have no Etc/GMT zone; each is one place's clock.
PARTIAL_HOUR_OFFSETS: Final = {
    (-9, 30): "Pacific/Marquesas",
    (-3, 30): "America/St_Johns",
    (3, 30): "Asia/Tehran",
    (4, 30): "Asia/Kabul",
    (5, 30): "Asia/Kolkata",
    (5, 45): "Asia/Kathmandu",
    (6, 30): "Asia/Yangon",
    (8, 45): "Australia/Eucla",
    (9, 30): "Australia/Darwin",
    (10, 30): "Australia/Lord_Howe",
    (12, 45): "Pacific/Chatham",
}
_AREAS: Final = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Arctic/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)


class ZoneReading(StrEnum):
    """How a value became a zone; decides whether the row gets a note."""

    DEFAULT = "default"  # empty: schedule.timezone, silently
    NAME = "name"  # an IANA name
    TABLE = "table"  # abbreviation, display name or city: said once for the file
    OFFSET = "offset"  # a fixed offset: noted per row (no daylight saving)
    FALLBACK = "fallback"  # unknown or ambiguous: schedule.timezone, noted per row


@dataclass(frozen=True, slots=True)
class ZoneAnswer:
    zone: ZoneInfo
    reading: ZoneReading
    note: str = ""


class Zones:
    """Resolves zone values, each distinct value once (ZoneInfo() reads the tz database)."""

    def __init__(self, default_name: str) -> None:
        self._answers: dict[str, ZoneAnswer] = {}
        default = _load(default_name) or _load(_spelling(default_name))
        if default is None:
            raise ConfigError(
                f"default time zone '{shown(default_name)}' is not an IANA time zone name; "
                "use a name like 'Europe/London' or 'UTC'"
            )
        self.default = default
        self._default_answer = ZoneAnswer(default, ZoneReading.DEFAULT)

    def read(self, value: str) -> ZoneAnswer:
        """The zone a value names, how it was read, and the note for the row if any."""
        if not value:
            return self._default_answer
        try:
            return self._answers[value]
        except KeyError:
            pass
        answer = self._resolve(value)
        if len(self._answers) < _CACHE_MAX:
            self._answers[value] = answer
        return answer

    def _resolve(self, value: str) -> ZoneAnswer:
        key = _key(value)
        if key in AMBIGUOUS:
            return self._fallback(f"time zone '{shown(value)}' could be {AMBIGUOUS[key]}")
        if key in ABBREVIATIONS:
            return ZoneAnswer(ZoneInfo(ABBREVIATIONS[key]), ZoneReading.TABLE)
        zone = _load(value) or _load(_spelling(value)) or _load(_spelling(value.replace(" ", "_")))
        if zone is not None:
            return ZoneAnswer(zone, ZoneReading.NAME)
        if match := _OFFSET.fullmatch(value.strip()):
            return self._offset(value, match[1], match[2], match[3])
        if match := _DISPLAY.fullmatch(value.strip()):
            return self._display(value, match)
        named = _named(value)
        if isinstance(named, str):
            return self._fallback(named)
        if named is not None:
            return ZoneAnswer(named, ZoneReading.TABLE)
        return self._fallback(f"unknown time zone '{shown(value)}'")

    def _display(self, value: str, match: re.Match[str]) -> ZoneAnswer:
        """`(GMT-05:00) Eastern Time`: the name decides; the offset alone is the last resort."""
        named = _named(match[4]) if match[4] else None
        if isinstance(named, ZoneInfo):
            return ZoneAnswer(named, ZoneReading.TABLE)
        if match[1] is None:
            return ZoneAnswer(ZoneInfo("UTC"), ZoneReading.TABLE)
        return self._offset(value, match[1], match[2], match[3])

    def _offset(
        self, value: str, sign: str, hours_text: str, minutes_text: str | None
    ) -> ZoneAnswer:
        hours, minutes = int(hours_text), int(minutes_text or 0)
        negative = sign in "-−"
        if minutes == 0 and hours == 0:
            return ZoneAnswer(ZoneInfo("UTC"), ZoneReading.NAME)
        if minutes == 0 and hours <= (12 if negative else 14):
            # POSIX signs: Etc/GMT-2 is two hours ahead of UTC.
            name = f"Etc/GMT{'+' if negative else '-'}{hours}"
            return ZoneAnswer(
                ZoneInfo(name),
                ZoneReading.OFFSET,
                f"time zone '{shown(value)}' read as {name}, a fixed offset that ignores "
                "daylight saving",
            )
        place = PARTIAL_HOUR_OFFSETS.get((-hours if negative else hours, minutes))
        if place is not None:
            return ZoneAnswer(
                ZoneInfo(place),
                ZoneReading.OFFSET,
                f"time zone '{shown(value)}' read as {place}, the zone at that offset",
            )
        return self._fallback(f"time zone '{shown(value)}' is no offset any place uses")

    def _fallback(self, why: str) -> ZoneAnswer:
        return ZoneAnswer(self.default, ZoneReading.FALLBACK, f"{why}, using {self.default.key}")


def _named(text: str) -> ZoneInfo | str | None:
    """A display name, abbreviation or city: the zone, a reason it is ambiguous, or None."""
    key = _key(text)
    for table in (DISPLAY_NAMES, ABBREVIATIONS, CITIES):
        if key in table:
            return ZoneInfo(table[key])
    tails = _zones_by_tail().get(key)
    if tails is not None:
        return ZoneInfo(tails[0]) if len(tails) == 1 else _several(text, tails)
    parts = [part for part in _SPLIT.split(text) if part]
    if len(parts) > 1:
        for part in parts:
            found = _named(part)
            if isinstance(found, ZoneInfo):
                return found
    return None


def _several(text: str, names: list[str]) -> str:
    return f"time zone '{shown(text)}' could be {' or '.join(names)}"


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _load(name: str | None) -> ZoneInfo | None:
    """ZoneInfo(name), or None when name is not a zone (including paths outside the database)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _spelling(name: str) -> str | None:
    """The canonical spelling of a zone name typed in the wrong case ('europe/london')."""
    return _zone_names_by_lowercase().get(name.strip().lower())


@cache
def _zone_names_by_lowercase() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


@cache
def _zones_by_tail() -> dict[str, list[str]]:
    """City keys ('london', 'newyork', 'buenosaires') -> the canonical zones ending in them."""
    tails: dict[str, list[str]] = {}
    for name in sorted(available_timezones()):
        if name.startswith(_AREAS):
            tails.setdefault(_key(name.rpartition("/")[2]), []).append(name)
    return tails
