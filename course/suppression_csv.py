"""The suppression list (unsubscribed + bounced) as CSV that is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from course.ledger import SubscriberView
from course.spreadsheet import neutralise

HEADER = ("email", "status", "since_utc", "reason")


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
