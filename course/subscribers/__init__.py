"""List exports -> active subscribers + a row-numbered report.

`open_list()` streams a file (the import never holds the file or all its rows);
`load_subscribers()` and `parse_subscribers()` gather one into a `SubscriberList` for the
callers that want everyone at hand (the preview's picker, `send-test --as`, tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from course.errors import SubscribersError
from course.subscribers.dates import DateOrder
from course.subscribers.encoding import choose_encoding, unreadable
from course.subscribers.fields import Field, parse_field
from course.subscribers.options import ImportOptions, StatusColumn, Unconfirmed
from course.subscribers.reader import (
    NO_FIELDS,
    Counts,
    ListImport,
    RowNote,
    RowOutcome,
    Subscriber,
    read_list,
)
from course.subscribers.records import Source
from course.subscribers.statuses import Standing

__all__ = [
    "NO_FIELDS",
    "Counts",
    "DateOrder",
    "Field",
    "ImportOptions",
    "ListImport",
    "RowNote",
    "RowOutcome",
    "Standing",
    "StatusColumn",
    "Subscriber",
    "SubscriberList",
    "Unconfirmed",
    "fingerprint",
    "load_subscribers",
    "open_list",
    "parse_field",
    "parse_subscribers",
]


@dataclass(frozen=True)
class SubscriberList:
    """One whole list in memory: who is subscribed, and the report on the other rows."""

    source: str
    subscribers: tuple[Subscriber, ...]
    notes: tuple[RowNote, ...]
    header: tuple[str, ...] = ()
    closing: tuple[str, ...] = ()
    tool: str = ""
    counts: Counts = field(default_factory=Counts)

    def report_lines(self) -> list[str]:
        """The report as `course subscribers` prints it."""
        return [*self.header, *(note.line() for note in self.notes), *self.closing]

    def noted(self, outcome: RowOutcome) -> list[RowNote]:
        return [note for note in self.notes if note.outcome is outcome]


def open_list(path: Path, options: ImportOptions) -> ListImport:
    """Get a list export ready to stream: encoding, header, mapping and the first pass done."""
    decoding = choose_encoding(path)
    list_import = read_list(Source.of_file(path, decoding.encoding), options)
    if decoding.note:
        list_import.notes.insert(0, decoding.note)
    return list_import


def gather(list_import: ListImport) -> SubscriberList:
    """Stream the whole list into memory (for small lists and tests)."""
    subscribers: list[Subscriber] = []
    notes: list[RowNote] = []
    for item in list_import.rows():
        if isinstance(item, Subscriber):
            subscribers.append(item)
        else:
            notes.append(item)
    return SubscriberList(
        source=list_import.source.name,
        subscribers=tuple(subscribers),
        notes=tuple(notes),
        header=tuple(list_import.header_lines()),
        closing=tuple(list_import.closing_lines()),
        tool=list_import.tool,
        counts=list_import.counts,
    )


def load_subscribers(path: Path, options: ImportOptions | None = None) -> SubscriberList:
    """Read a whole list export at path."""
    return gather(open_list(path, options or ImportOptions()))


def parse_subscribers(
    text: str, *, source: str, options: ImportOptions | None = None
) -> SubscriberList:
    """Read a whole list given as text (already decoded)."""
    return gather(read_list(Source.of_text(text, source), options or ImportOptions()))


def fingerprint(path: Path) -> str:
    """Identify the file's content as 'sha256:<hex>'.

    A content hash rather than size and mtime: a stat key misses an edit that keeps the size
    within one mtime tick, or a copy that preserves mtime, and it flags a re-saved identical
    export as changed. Hashing is cheap: a 1,000,000-row (~60 MB) file takes about 0.05 s.
    """
    try:
        with path.open("rb") as file:
            return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise SubscribersError(unreadable(path, error)) from None
