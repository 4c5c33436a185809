"""The suppression list (unsubscribed + bounced) as CSV that is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from course.ledger import SubscriberView

# OWASP "CSV injection": a cell starting with one of these is run as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADER = ("email", "status", "since_utc", "reason")


def neutralise(value: str) -> str:
    """Make a cell read as text: a leading apostrophe hides the formula character."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def suppression_csv(rows: Iterable[SubscriberView]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in rows:
        cells = (
            row.email,
            row.status,
            row.status_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.status_reason,
        )
        writer.writerow([neutralise(cell) for cell in cells])
    return out.getvalue()
