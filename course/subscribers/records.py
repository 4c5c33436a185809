"""CSV records streamed from a source, each with the row number a spreadsheet shows.

Every record the csv module yields counts, blank lines included, so the header is row 1 and a
quoted value that spans lines is still one row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

DELIMITERS = (",", ";", "\t")
_SNIFF_CHARS = 1 << 16


class Record(NamedTuple):
    """One CSV record: its row number, the physical lines it spans, and its values (or error).

    A named tuple: a million of them are made per pass, and a tuple is the cheapest to make.
    """

    row: int
    first_line: int
    last_line: int
    values: list[str] | str


@dataclass(frozen=True)
class Source:
    """Where the rows come from; opened afresh for each pass over them."""

    name: str
    open: Callable[[], TextIO]

    @classmethod
    def of_text(cls, text: str, name: str) -> Source:
        return cls(name, lambda: io.StringIO(text.removeprefix("\ufeff"), newline=""))

    @classmethod
    def of_file(cls, path: Path, encoding: str) -> Source:
        # newline="" hands line ends to the csv module, which keeps quoted ones in the value.
        return cls(str(path), lambda: path.open(encoding=encoding, newline=""))


def records(stream: TextIO, delimiter: str) -> Iterator[Record]:
    """Every CSV record in order, with its row number; a malformed record yields its error."""
    reader = csv.reader(stream, delimiter=delimiter)
    row = last_line = 0
    while True:
        try:
            # A for loop over the reader, not next() per record: the hot loop of every pass.
            for values in reader:
                row += 1
                line = reader.line_num
                yield Record(row, last_line + 1, line, values)
                last_line = line
            return
        except csv.Error as error:
            # The reader goes on after the bad record, so the loop does too.
            row += 1
            line = reader.line_num
            yield Record(row, last_line + 1, line, f"unreadable CSV record: {error}")
            last_line = line


def value_rows(stream: TextIO, delimiter: str, start: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(row, values) of every readable record after row `start`, numbered as records() does.

    For a pass that needs no line numbers and skips unreadable records (the pass that builds
    the rows reports them): no Record per row, on a pass made over every row of the file.
    """
    reader = csv.reader(stream, delimiter=delimiter)
    row = 0
    while True:
        try:
            for values in reader:
                row += 1
                if row > start:
                    yield row, values
            return
        except csv.Error:
            row += 1


def sniff_delimiter(source: Source, has_email: Callable[[list[str]], bool]) -> str:
    """The delimiter that splits the header into an email column; else the widest split.

    csv.Sniffer guesses from character frequencies and misreads short files; we know the
    header must name an email column, which decides between comma, semicolon and tab.
    """
    with source.open() as stream:
        head = stream.read(_SNIFF_CHARS)
    best, best_width = ",", 0
    for delimiter in DELIMITERS:
        header = _first_values(head, delimiter)
        if has_email(header):
            return delimiter
        if len(header) > best_width:
            best, best_width = delimiter, len(header)
    return best


def _first_values(head: str, delimiter: str) -> list[str]:
    """The first non-blank record of head split with delimiter ([] if none or unreadable)."""
    try:
        for values in csv.reader(io.StringIO(head, newline=""), delimiter=delimiter):
            if any(value.strip() for value in values):
                return values
    except csv.Error:
        pass
    return []
