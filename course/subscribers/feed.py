"""What a sync reads from a list: its rows and its report's lines, in file order.

Plain values (tuples, dicts, strings), so that a helper process can hand them over cheaply
(see course/list_helper.py); course/list_rows.py turns them into the ledger's rows.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import Final, TypeAlias

from course.subscribers import ImportOptions, RowNote, Subscriber, open_list

# Row notes logged per import; a million-row export of people who left would flood the log.
REPORT_LOG_ROWS: Final = 200

# An accepted row: (email, first name, time zone, template fields, joined at or None).
Joining: TypeAlias = tuple[str, str, str, dict[str, str], datetime | None]
# A joining subscriber; a skipped row whose status stops its address (a RowNote with an
# address and a standing); or a line of the report, for the log.
FeedItem: TypeAlias = Joining | RowNote | str


def feed(path: Path, options: ImportOptions) -> Generator[FeedItem, None, None]:
    """The list's rows for a sync, with the report's lines for the log, in file order."""
    list_import = open_list(path, options)
    yield from list_import.header_lines()
    logged = 0
    for item in list_import.rows():
        if isinstance(item, Subscriber):
            fields = dict(item.fields)
            yield (item.email, item.first_name, item.timezone, fields, item.subscribed_at)
            continue
        if item.standing is not None and item.address:
            yield item
        if logged < REPORT_LOG_ROWS:
            yield item.line()
            logged += 1
    if logged < list_import.counts.rejected + list_import.counts.skipped:
        yield "... more rows not shown; `course subscribers --report FILE` lists them all"
    yield from list_import.closing_lines()
