"""The subscribers report: on a terminal (header, mapping, row notes, counts) and as CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from course.errors import CourseError
from course.spreadsheet import neutralise
from course.subscribers.reader import ListImport, RowNote, Subscriber
from course.subscribers.text import count

REPORT_COLUMNS = ("row", "outcome", "email", "reason")
# On a terminal, past this many row notes the rest go only to --report FILE.
TERMINAL_ROWS = 200


def print_report(
    list_import: ListImport,
    out: Callable[[str], None],
    *,
    csv_path: Path | None = None,
    limit: int = TERMINAL_ROWS,
) -> None:
    """Stream the import, printing the report; with csv_path, every row note goes there too."""
    for line in list_import.header_lines():
        out(line)
    printed = hidden = 0
    with _csv_writer(csv_path) as write:
        for note in _notes(list_import.rows()):
            write(note)
            if printed < limit:
                out(note.line())
                printed += 1
            else:
                hidden += 1
    if hidden:
        where = f"all are in {csv_path}" if csv_path else "write them all with --report FILE"
        out(f"... and {count(hidden, 'more row')} ({where})")
    for line in list_import.closing_lines():
        out(line)


def _notes(items: Iterable[Subscriber | RowNote]) -> Iterator[RowNote]:
    for item in items:
        if isinstance(item, RowNote):
            yield item


@contextmanager
def _csv_writer(path: Path | None) -> Iterator[Callable[[RowNote], None]]:
    if path is None:
        yield lambda note: None
        return
    try:
        handle: TextIO = path.open("w", encoding="utf-8-sig", newline="")
    except OSError as error:
        raise CourseError(f"{path}: cannot write the report ({error.strerror})") from None
    with handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(REPORT_COLUMNS)
        yield lambda note: writer.writerow(report_cells(note))


def report_cells(note: RowNote) -> list[str]:
    """One CSV row; cells a spreadsheet would run as a formula are neutralised."""
    cells = (str(note.row), str(note.outcome), note.email, note.reason)
    return [neutralise(cell) for cell in cells]
