"""The list's rows as the ledger syncs them, read here or, for a large list, by a helper."""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import closing
from pathlib import Path
from typing import Final

from course.ledger.records import Departure, ListRow, SubscriberRecord
from course.ledger.schema import SubscriberStatus
from course.list_helper import feed_from_helper
from course.subscribers import ImportOptions, RowNote, Standing
from course.subscribers.feed import feed

# A list smaller than this is read in this process: starting a helper costs more than the
# overlap saves.
HELPER_MIN_BYTES: Final = 4 << 20

# What the ledger makes of a row that is not active: the suppression list for people who
# unsubscribed, complained or bounced at the source; `removed` (until the list has them
# active again) for the rest.
_DEPARTURE_STATUS: Final = {
    Standing.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
    Standing.BOUNCED: SubscriberStatus.BOUNCED,
    Standing.INACTIVE: SubscriberStatus.REMOVED,
    Standing.UNCONFIRMED: SubscriberStatus.REMOVED,
}


def departure(note: RowNote, standing: Standing, source: str) -> Departure:
    """A skipped row as the ledger records it: "kit.csv row 3: state 'cancelled'"."""
    reason = f"{source} row {note.row}: {note.reason}"
    return Departure(note.address, _DEPARTURE_STATUS[standing], reason)


def list_rows(
    path: Path, options: ImportOptions, *, helper_min_bytes: int = HELPER_MIN_BYTES
) -> Generator[ListRow | str, None, None]:
    """The ledger's rows from the list, with the report's lines (str) for the log.

    A list of at least helper_min_bytes is read by a helper process while the sync writes,
    if this process may run on more than one core (on one, the two would only take turns).
    """
    try:
        large = path.stat().st_size >= helper_min_bytes
    except OSError:
        large = False  # feed() says what is wrong with it, as for a small list
    helped = large and len(os.sched_getaffinity(0)) > 1
    items = feed_from_helper(path, options) if helped else feed(path, options)
    source = path.name
    record = SubscriberRecord._make
    with closing(items):  # closed early, the helper stops at once
        for item in items:
            if isinstance(item, tuple):
                yield record(item)
            elif isinstance(item, RowNote):
                assert item.standing is not None
                yield departure(item, item.standing, source)
            else:
                yield item
