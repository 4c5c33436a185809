"""The import: a list export streamed into subscribers and row-numbered notes.

Two passes over the rows, neither holding the file or the rows: the first looks at the whole
list for what no single row can tell (which addresses repeat or are marked gone anywhere in the
file, and whether its slash dates are month- or day-first); the second builds each row.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from course.displaynames import MAX_NAME_LENGTH, shorten_name
from course.errors import SubscribersError
from course.subscribers.dates import DateOrder, SlashEvidence, parse_joined
from course.subscribers.emails import EmailNormalizer, InvalidAddress, duplicate_key
from course.subscribers.fields import Field, field_for, header_key, template_name
from course.subscribers.layout import Layout, build_layout, names_email
from course.subscribers.names import first_name_of, full_name_of
from course.subscribers.options import ImportOptions, Unconfirmed
from course.subscribers.records import Record, Source, records, sniff_delimiter
from course.subscribers.statuses import Standing
from course.subscribers.text import CONTROL, count, shown
from course.subscribers.zones import ZoneReading, Zones

_TABLE_NOTES_MAX: Final = 20


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One accepted row: someone to mail."""

    email: str
    first_name: str
    timezone: str
    subscribed_at: datetime | None
    fields: Mapping[str, str]
    row: int


class RowOutcome(StrEnum):
    """What became of a row that the report lists."""

    REJECTED = "rejected"  # the row cannot be used (no valid address, control characters, ...)
    SKIPPED = "skipped"  # its source says the person is not subscribed: never mailed
    ADJUSTED = "adjusted"  # accepted, with something read differently than written
    FLAGGED = "flagged"  # accepted as written, with something the operator should know


@dataclass(frozen=True, slots=True)
class RowNote:
    """One line of the report: a row and what became of it."""

    row: int
    email: str  # as the row has it, made safe to print
    reason: str
    outcome: RowOutcome
    # The normalised address of a skipped row ('' if it has none): the ledger stops it.
    address: str = ""

    def line(self) -> str:
        where = f" ({self.email})" if self.email else ""
        return f"row {self.row}: {self.outcome}: {self.reason}{where}"


@dataclass
class Counts:
    """Rows by outcome, counted as they stream past."""

    accepted: int = 0
    skipped: int = 0
    rejected: int = 0
    adjusted: int = 0
    flagged: int = 0

    def summary(self, source: str) -> str:
        parts = [
            f"{count(self.accepted, 'subscriber')} accepted",
            f"{count(self.skipped, 'row')} skipped (not subscribed)",
            f"{self.rejected:,} rejected",
            f"{self.adjusted:,} adjusted",
        ]
        if self.flagged:
            parts.append(f"{self.flagged:,} flagged")
        return f"{source}: " + ", ".join(parts)


class RowFields(Mapping[str, str]):
    """The template fields of one row: a name index shared by all rows plus this row's values."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: Mapping[str, int], values: tuple[str, ...]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: str) -> str:
        return self._values[self._index[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __hash__(self) -> int:
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return repr(dict(self))


# Rows without template fields all share this one object: a million rows cost no extra memory.
NO_FIELDS: Final = RowFields(MappingProxyType({}), ())


class Rejected(Exception):
    """Raised inside row building; the message is the operator-facing reason."""


@dataclass
class _Census:
    """What the first pass learned about the whole list."""

    # Raw-address hashes seen more than once, and for those marked gone, the first such row.
    repeated: frozenset[int] = frozenset()
    gone_rows: dict[int, int] = field(default_factory=dict)
    date_order: DateOrder = DateOrder.MONTH_FIRST
    date_note: str = ""


class ListImport:
    """One list export, ready to stream; `rows()` may be called once per pass wanted."""

    def __init__(self, source: Source, options: ImportOptions) -> None:
        self.source = source
        self.options = options
        self.zones = Zones(options.default_timezone)
        delimiter = sniff_delimiter(source, lambda header: names_email(header, options))
        self.layout = self._read_layout(delimiter)
        self.notes: list[str] = []
        self.counts = Counts()
        self._table_zones: Counter[tuple[str, str]] = Counter()
        self._census = self._take_census()
        if self._census.date_note:
            self.notes.append(self._census.date_note)

    @property
    def tool(self) -> str:
        """The tool whose export shape was recognised ('' for a hand-made CSV)."""
        return self.layout.tool.name if self.layout.tool else ""

    def header_lines(self) -> list[str]:
        """What the report says before the rows: the file, its shape, the mapping, the notes."""
        tool = self.layout.tool
        if tool is not None:
            evidence = ", ".join(tool.evidence_in(self._keys()))
            shape = f"{self.source.name}: {tool.name} (recognised by {evidence})"
        else:
            shape = f"{self.source.name}: a CSV of {count(len(self._named()), 'column')}"
        lines = [shape, "columns (header -> field):", *self.layout.mapping_lines()]
        return lines + [f"note: {note}" for note in self.notes]

    def closing_lines(self) -> list[str]:
        """What the report says after the rows: zone readings said once, and the counts."""
        lines = []
        readings = self._table_zones.most_common(_TABLE_NOTES_MAX)
        if readings:
            shown_readings = ", ".join(
                f"'{shown(raw)}' as {zone} ({count(n, 'row')})" for (raw, zone), n in readings
            )
            more = len(self._table_zones) - len(readings)
            tail = f" and {more} more" if more > 0 else ""
            lines.append(f"note: time zones read through the table: {shown_readings}{tail}")
        lines.append(self.counts.summary(self.source.name))
        return lines

    def rows(self) -> Iterator[Subscriber | RowNote]:
        """Accepted subscribers and report notes, in row order, one row at a time."""
        self.counts = Counts()
        self._table_zones.clear()
        builder = _RowBuilder(self)
        with self.source.open() as stream:
            stream_records = records(stream, self.layout.delimiter)
            _skip_header(stream_records, self.source.name)
            for record in stream_records:
                yield from builder.build(record)

    # --- set-up ------------------------------------------------------------------------------

    def _read_layout(self, delimiter: str) -> Layout:
        with self.source.open() as stream:
            header = _skip_header(records(stream, delimiter), self.source.name)
        return build_layout(header, delimiter, self.options, self.source.name)

    def _take_census(self) -> _Census:
        """The first pass: repeats, addresses marked gone anywhere, and the dates' order."""
        layout = self.layout
        email = layout.email
        hashes: array[int] = array("q")
        gone: dict[int, int] = {}
        evidence = SlashEvidence()
        joined = layout.sources[Field.JOINED_AT]
        standing = _StandingReader(layout, self.options)
        with self.source.open() as stream:
            stream_records = records(stream, layout.delimiter)
            _skip_header(stream_records, self.source.name)
            for record in stream_records:
                values = record.values
                if isinstance(values, str) or email >= len(values):
                    continue
                key = hash(values[email].strip().lower())
                hashes.append(key)
                for index in joined:
                    if index < len(values) and "/" in values[index]:
                        evidence.observe(values[index])
                if standing.read(values)[0] is not Standing.ACTIVE:
                    gone.setdefault(key, record.row)
        ordered = sorted(hashes)
        del hashes
        repeated = frozenset(a for a, b in pairwise(ordered) if a == b)
        del ordered
        column = " / ".join(layout.label(i) for i in joined) or "joined at"
        order, note = evidence.decide(self.options.date_order, column)
        return _Census(
            repeated=repeated,
            gone_rows={key: row for key, row in gone.items() if key in repeated},
            date_order=order,
            date_note=note,
        )

    def _keys(self) -> tuple[str, ...]:
        return tuple(header_key(h) for h in self.layout.headers)

    def _named(self) -> list[str]:
        return [h for h in self.layout.headers if h]


def _skip_header(stream_records: Iterator[Record], source: str) -> list[str]:
    """Consume records up to the first non-blank one and return it as the header."""
    for record in stream_records:
        if isinstance(record.values, str):
            raise SubscribersError(f"{source}: row {record.row}: {record.values}")
        if any(value.strip() for value in record.values):
            return record.values
    raise SubscribersError(
        f"{source}: the file is empty; the first line must be a header with an email column"
    )


class _StandingReader:
    """A row's standing by all its status columns: any column saying 'gone' wins."""

    def __init__(self, layout: Layout, options: ImportOptions) -> None:
        self._statuses = layout.statuses
        self._labels = {index: layout.label(index) for index, _ in layout.statuses}
        self._everyone_left = layout.everyone_left
        self._include_unconfirmed = options.unconfirmed is Unconfirmed.INCLUDE

    def read(self, values: list[str]) -> tuple[Standing, str]:
        """(standing, why) where why is '' for an active row."""
        if self._everyone_left:
            return Standing.INACTIVE, self._everyone_left
        result, why = Standing.ACTIVE, ""
        for index, rule in self._statuses:
            value = values[index].strip() if index < len(values) else ""
            standing, known = rule.standing(value)
            if standing is Standing.ACTIVE:
                continue
            if standing is Standing.UNCONFIRMED:
                if self._include_unconfirmed or result is Standing.INACTIVE:
                    continue
                result = Standing.UNCONFIRMED
                label = self._labels[index][1:-1]
                why = f"unconfirmed: {label} '{shown(value)}' (double opt-in pending)"
                continue
            label = self._labels[index][1:-1]
            why = f"{label} '{shown(value)}'"
            if not known:
                why += " is not a status we know; name the active values in subscribers.status"
            return Standing.INACTIVE, why
        return result, why


class _RowBuilder:
    """Turns records into subscribers and notes; one bad row never affects the others."""

    def __init__(self, list_import: ListImport) -> None:
        self._import = list_import
        self._layout = layout = list_import.layout
        self._census = list_import._census
        self._counts = list_import.counts
        self._zones = list_import.zones
        self._table_zones = list_import._table_zones
        self._standing = _StandingReader(layout, list_import.options)
        self._emails = EmailNormalizer()
        self._firsts: dict[int, int] = {}
        self._width = len(layout.headers)
        self._field_index: Mapping[str, int] = MappingProxyType(
            {name: i for i, name in enumerate(layout.field_names)}
        )
        self._first_names = layout.sources[Field.FIRST_NAME]
        self._last_names = layout.sources[Field.LAST_NAME]
        self._full_names = layout.sources[Field.FULL_NAME]
        self._timezones = layout.sources[Field.TIMEZONE]
        self._joined = layout.sources[Field.JOINED_AT]
        self._named = bool(self._full_names or self._last_names)

    def build(self, record: Record) -> Iterator[Subscriber | RowNote]:
        values = record.values
        try:
            if isinstance(values, str):
                raise Rejected(values)
            cleaned = self._clean(record, values)
            if cleaned is None:
                return
            yield from self._row(record.row, cleaned)
        except Rejected as rejection:
            self._counts.rejected += 1
            yield RowNote(record.row, self._raw_email(values), str(rejection), RowOutcome.REJECTED)

    def _row(self, row: int, values: list[str]) -> Iterator[Subscriber | RowNote]:
        raw = values[self._layout.email]
        standing, why = self._standing.read(values)
        if standing is not Standing.ACTIVE:
            yield self._skip(row, raw, why)
            return
        if not raw:
            raise Rejected("no email address")
        try:
            email = self._emails.normalize(raw)
        except InvalidAddress as error:
            raise Rejected(str(error)) from None
        key = hash(raw.lower())
        if key in self._census.repeated:
            gone_row = self._census.gone_rows.get(key)
            if gone_row is not None:
                yield self._skip(row, raw, f"row {gone_row} says this address is not subscribed")
                return
            first = self._firsts.get(key)
            if first is not None:
                raise Rejected(f"duplicate of row {first}")
            self._firsts[key] = row
        notes: list[tuple[RowOutcome, str]] = []
        attributes = self._attributes(values, notes)
        zone = self._zone(values, attributes, notes)
        joined = self._joined_at(values, zone, notes)
        first_name, full_name, last_name = self._names(values, attributes)
        if len(first_name) > MAX_NAME_LENGTH:
            notes.append(
                (
                    RowOutcome.ADJUSTED,
                    f"first name too long ({len(first_name):,} characters): cut to its first "
                    f"{MAX_NAME_LENGTH - 1} and '…' for the greeting and the To: line",
                )
            )
            first_name = shorten_name(first_name)
        if not email.partition("@")[0].isascii():
            notes.append(
                (
                    RowOutcome.FLAGGED,
                    "the address has non-ASCII characters before the @: it needs a mail "
                    "server that offers SMTPUTF8",
                )
            )
        subscriber = Subscriber(
            email=email,
            first_name=first_name,
            timezone=zone.key,
            subscribed_at=joined,
            fields=self._fields(values, attributes, full_name, last_name),
            row=row,
        )
        self._counts.accepted += 1
        yield subscriber
        outcomes = {outcome for outcome, _ in notes}
        self._counts.adjusted += RowOutcome.ADJUSTED in outcomes
        self._counts.flagged += RowOutcome.FLAGGED in outcomes
        for outcome, reason in notes:
            yield RowNote(row, shown(raw), reason, outcome)

    def _skip(self, row: int, raw: str, why: str) -> RowNote:
        self._counts.skipped += 1
        try:
            address = self._emails.normalize(raw) if raw else ""
        except InvalidAddress:
            address = ""
        return RowNote(row, shown(raw), why, RowOutcome.SKIPPED, address)

    def _clean(self, record: Record, raw: list[str]) -> list[str] | None:
        """Stripped values padded to the header's width; None for a blank line."""
        joined = "".join(raw)
        if not joined or joined.isspace():
            return None
        if CONTROL.search(joined):
            raise Rejected(self._control_reason(record, raw))
        width = self._width
        # Even if the surplus values are empty: "ann@example.com,Smith, Ann,,," has shifted
        # " Ann" into the next column, which is worse than skipping the row.
        if len(raw) > width:
            raise Rejected(self._too_wide_reason(len(raw)))
        values = [value.strip() for value in raw]
        if len(values) < width:
            values += [""] * (width - len(values))
        return values

    def _control_reason(self, record: Record, raw: list[str]) -> str:
        index = next(i for i, value in enumerate(raw) if CONTROL.search(value))
        reason = f"control character in {self._layout.label(index)}"
        if record.last_line > record.first_line:
            reason += f" (the record spans lines {record.first_line}-{record.last_line})"
        return reason

    def _too_wide_reason(self, found: int) -> str:
        delimiter = self._layout.delimiter
        shown_delimiter = "tab" if delimiter == "\t" else f"'{delimiter}'"
        return (
            f"{found} values but the header has {self._width} columns; "
            f"put values containing {shown_delimiter} in double quotes"
        )

    def _attributes(
        self, values: list[str], notes: list[tuple[RowOutcome, str]]
    ) -> dict[str, str] | None:
        """listmonk's JSON attributes as template fields (names made template-safe)."""
        index = self._layout.attributes
        if index is None or not values[index]:
            return None
        try:
            loaded = json.loads(values[index])
        except (ValueError, RecursionError):
            loaded = None
        if not isinstance(loaded, dict):
            notes.append(
                (RowOutcome.ADJUSTED, f"{self._layout.label(index)} is not a JSON object; ignored")
            )
            return None
        found: dict[str, str] = {}
        for key, value in loaded.items():
            name = template_name(str(key))
            if not name:
                continue
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if CONTROL.search(text):
                notes.append(
                    (
                        RowOutcome.ADJUSTED,
                        f"attribute '{shown(str(key))}' has control characters; ignored",
                    )
                )
                continue
            found[name] = text.strip()
        return found

    def _zone(
        self,
        values: list[str],
        attributes: dict[str, str] | None,
        notes: list[tuple[RowOutcome, str]],
    ) -> ZoneInfo:
        raw = _first_filled(values, self._timezones) or _attribute(attributes, Field.TIMEZONE)
        answer = self._zones.read(raw)
        if answer.reading is ZoneReading.TABLE:
            self._table_zones[(raw, answer.zone.key)] += 1
        elif answer.note:
            notes.append((RowOutcome.ADJUSTED, answer.note))
        return answer.zone

    def _joined_at(
        self, values: list[str], zone: ZoneInfo, notes: list[tuple[RowOutcome, str]]
    ) -> datetime | None:
        raw = _first_filled(values, self._joined)
        if not raw:
            return None
        when = parse_joined(raw, zone, self._census.date_order)
        if when is None:
            notes.append((RowOutcome.ADJUSTED, f"joined date '{shown(raw)}' unreadable; joins now"))
        return when

    def _names(self, values: list[str], attributes: dict[str, str] | None) -> tuple[str, str, str]:
        """(first name for the greeting, full name, last name)."""
        first = _first_filled(values, self._first_names) or _attribute(attributes, Field.FIRST_NAME)
        last = _first_filled(values, self._last_names)
        full = _first_filled(values, self._full_names)
        if not first:
            # Only a whole name has a first name in it; a lone last name is no greeting.
            first = first_name_of(full)
        return first, full or full_name_of(first, last), last

    def _fields(
        self,
        values: list[str],
        attributes: dict[str, str] | None,
        full_name: str,
        last_name: str,
    ) -> Mapping[str, str]:
        extras = self._layout.extras
        if not extras and not self._named and attributes is None:
            return NO_FIELDS
        row_values = tuple(map(values.__getitem__, extras))
        if self._named:
            row_values += (full_name, last_name)
        if attributes is None:
            return RowFields(self._field_index, row_values)
        merged = dict(attributes)
        merged.update(zip(self._layout.field_names, row_values, strict=True))
        return MappingProxyType(merged)

    def _raw_email(self, values: list[str] | str) -> str:
        index = self._layout.email
        if isinstance(values, str) or index >= len(values):
            return ""
        return shown(values[index].strip())


def _first_filled(values: list[str], indexes: tuple[int, ...]) -> str:
    for index in indexes:
        if values[index]:
            return values[index]
    return ""


def _attribute(attributes: dict[str, str] | None, wanted: Field) -> str:
    """The first attribute whose name is an alias of the wanted field."""
    if not attributes:
        return ""
    for name, value in attributes.items():
        found = field_for(header_key(name))
        if found is not None and found[0] is wanted and value:
            return value
    return ""


def read_list(source: Source, options: ImportOptions) -> ListImport:
    """Open a list export for streaming; only a missing or unusable header raises."""
    return ListImport(source, options)


__all__ = [
    "Counts",
    "ListImport",
    "RowFields",
    "RowNote",
    "RowOutcome",
    "Subscriber",
    "duplicate_key",
    "read_list",
]
