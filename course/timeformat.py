"""Times as the operator reads them: one format everywhere, in a named zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def local_time(moment: datetime | None, zone: str) -> str:
    """`2026-03-02 08:00 Europe/London`; "-" for no time. Aware times only."""
    if moment is None:
        return "-"
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"
