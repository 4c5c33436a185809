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
from itertools import islice, pairwise
from types import MappingProxyType
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo

from course.displaynames import MAX_NAME_LENGTH, shorten_name
from course.errors import SubscribersError
from course.subscribers.dates import DateOrder, SlashEvidence, parse_joined
from course.subscribers.emails import EmailNormalizer, InvalidAddress, duplicate_key
from course.subscribers.fields import Field, field_for, header_key, template_name
from course.subscribers.layout import Layout, WeakVerdict, build_layout, names_email
from course.subscribers.names import first_name_of, full_name_of
from course.subscribers.options import ImportOptions, Unconfirmed
from course.subscribers.records import Record, Source, records, sniff_delimiter, value_rows
from course.subscribers.statuses import Standing, is_status_word
from course.subscribers.text import BREAKLESS_CONTROL, CONTROL, count, shown
from course.subscribers.zones import ZoneReading, Zones

_TABLE_NOTES_MAX: Final = 20
_UTC: Final = ZoneInfo("UTC")
# A header is looked for within this many non-blank rows (titles above it are skipped).
_HEADER_SEARCH_ROWS: Final = 10
# Rows after the header shown to the layout, to find an email column no header names.
_SAMPLE_ROWS: Final = 50


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One accepted row: someone to mail."""

    email: str
    first_name: str
    timezone: str
    subscribed_at: datetime | None
    # Read-only; left out of the hash (a mapping has none), not out of equality.
    fields: Mapping[str, str] = field(hash=False)
    row: int = 0


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
    # For a skipped row: its normalised address ('' if it has none) and what its status
    # says, so the ledger can stop that address for the same reason.
    address: str = ""
    standing: Standing | None = None

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
    # Skipped rows whose status says the person unsubscribed, complained or bounced.
    suppressing: int = 0

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


# Rows without template fields all share this one empty mapping.
NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})
# What one record becomes: a subscriber or a note, both (a list), or nothing (a blank line).
Built: TypeAlias = Subscriber | RowNote | list[Subscriber | RowNote] | None


class Rejected(Exception):
    """Raised inside row building; the message is the operator-facing reason."""


@dataclass
class _Census:
    """What the first pass learned about the whole list."""

    # Raw-address hashes seen more than once, and for those marked gone, the row that says
    # so most strongly (the first of its weight) and what it says.
    repeated: frozenset[int] = frozenset()
    gone_rows: dict[int, tuple[int, Standing]] = field(default_factory=dict)
    date_order: DateOrder = DateOrder.MONTH_FIRST
    date_note: str = ""


class ListImport:
    """One list export, ready to stream; `rows()` may be called once per pass wanted."""

    def __init__(self, source: Source, options: ImportOptions) -> None:
        self.source = source
        self.options = options
        self.zones = Zones(options.default_timezone)
        delimiter = sniff_delimiter(source, lambda header: names_email(header, options))
        self.notes: list[str] = []
        self._header_row = 0
        self.layout = self._read_layout(delimiter)
        self.notes.extend(self.layout.notes)
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
        if self.counts.suppressing:
            lines.append(
                f"note: {count(self.counts.suppressing, 'skipped row')} say"
                f"{'s' if self.counts.suppressing == 1 else ''} the person unsubscribed, "
                "complained or bounced: synced, they go on the suppression list, which a later "
                "export does not undo (`course resubscribe EMAIL` does)"
            )
        lines.append(self.counts.summary(self.source.name))
        return lines

    def rows(self) -> Iterator[Subscriber | RowNote]:
        """Accepted subscribers and report notes, in row order, one row at a time."""
        self.counts = Counts()
        self._table_zones.clear()
        builder = _RowBuilder(self)
        with self.source.open() as stream:
            stream_records = records(stream, self.layout.delimiter)
            _skip_to_body(stream_records, self._header_row)
            build = builder.build
            for record in stream_records:
                built = build(record)
                # Most rows are one subscriber and nothing to say: no generator per row.
                if isinstance(built, list):
                    yield from built
                elif built is not None:
                    yield built

    # --- set-up ------------------------------------------------------------------------------

    def _read_layout(self, delimiter: str) -> Layout:
        with self.source.open() as stream:
            header, self._header_row, above = _find_header(
                records(stream, delimiter), self.source.name, self.options
            )
        with self.source.open() as stream:
            stream_records = records(stream, delimiter)
            _skip_to_body(stream_records, self._header_row)
            sample = [
                record.values
                for record in islice(stream_records, _SAMPLE_ROWS)
                if not isinstance(record.values, str)
            ]
        if above:
            self.notes.append(
                f"{_rows_text(above)} above the header skipped: "
                f"'{shown(' '.join(' '.join(above[0][1]).split()))}'"
            )
        name = self.source.name
        layout = build_layout(header, delimiter, self.options, name, sample=sample)
        if layout.undecided:
            verdicts = self._judge(layout)
            layout = build_layout(header, delimiter, self.options, name, verdicts, sample)
        return layout

    def _judge(self, layout: Layout) -> dict[int, WeakVerdict]:
        """A pass over the columns whose header may or may not name a status: a column is a
        status when most of its filled values are words a status column holds."""
        known = dict.fromkeys((weak.index for weak in layout.undecided), 0)
        unknown = dict.fromkeys(known, 0)
        example = dict.fromkeys(known, "")
        with self.source.open() as stream:
            for _, values in value_rows(stream, layout.delimiter, self._header_row):
                for index in known:
                    value = values[index].strip() if index < len(values) else ""
                    if not value:
                        continue
                    if is_status_word(value):
                        known[index] += 1
                    else:
                        unknown[index] += 1
                        example[index] = example[index] or value
        return {
            index: WeakVerdict(0 < known[index] >= unknown[index], example[index])
            for index in known
        }

    def _take_census(self) -> _Census:
        """The first pass: repeats, addresses marked gone anywhere, and the dates' order.

        Its memory is a few numbers per row in arrays, whatever the file: the hash of each
        address, and for rows that are not active, the row and what it says.
        """
        layout = self.layout
        email = layout.email
        hashes: array[int] = array("q")
        gone_keys: array[int] = array("q")
        gone_rows: array[int] = array("q")
        gone_said: list[Standing] = []  # shares the few enum members
        evidence = SlashEvidence()
        joined = layout.sources[Field.JOINED_AT]
        standing = _StandingReader(layout, self.options)
        has_status = bool(layout.statuses or layout.everyone_left)
        append = hashes.append
        with self.source.open() as stream:
            for row, values in value_rows(stream, layout.delimiter, self._header_row):
                if email >= len(values):
                    continue
                key = hash(values[email].strip().lower())
                append(key)
                for index in joined:
                    if index < len(values) and ("/" in values[index] or "-" in values[index]):
                        evidence.observe(values[index])
                if has_status:
                    said = standing.read(values)[0]
                    if said is not Standing.ACTIVE:
                        gone_keys.append(key)
                        gone_rows.append(row)
                        gone_said.append(said)
        repeated = _repeated(hashes)
        del hashes
        gone: dict[int, tuple[int, Standing]] = {}
        for key, row, said in zip(gone_keys, gone_rows, gone_said, strict=True):
            if key in repeated:
                earlier = gone.get(key)
                if earlier is None or said.weight > earlier[1].weight:
                    gone[key] = (row, said)
        column = " / ".join(layout.label(i) for i in joined) or "joined at"
        order, note = evidence.decide(self.options.date_order, column)
        return _Census(repeated=repeated, gone_rows=gone, date_order=order, date_note=note)

    def _keys(self) -> tuple[str, ...]:
        return tuple(header_key(h) for h in self.layout.headers)

    def _named(self) -> list[str]:
        return [h for h in self.layout.headers if h]


def _repeated(hashes: array[int]) -> frozenset[int]:
    """The values that occur more than once."""
    ordered = sorted(hashes)
    return frozenset(a for a, b in pairwise(ordered) if a == b)


def _find_header(
    stream_records: Iterator[Record], source: str, options: ImportOptions
) -> tuple[list[str], int, list[tuple[int, list[str]]]]:
    """The header record, its row, and the non-blank rows above it.

    The header is the first record that names an email column, within the first few that
    are not blank: an export saved from a spreadsheet may have a title above its header. If
    none names one, the first record of several values (else the first record) is taken.
    """
    seen: list[tuple[int, list[str]]] = []
    for record in stream_records:
        if isinstance(record.values, str):
            if not seen:
                raise SubscribersError(f"{source}: row {record.row}: {record.values}")
            continue
        if not any(value.strip() for value in record.values):
            continue
        if names_email(record.values, options):
            return record.values, record.row, seen
        seen.append((record.row, record.values))
        if len(seen) >= _HEADER_SEARCH_ROWS:
            break
    if not seen:
        raise SubscribersError(
            f"{source}: the file is empty; the first line must be a header with an email column"
        )
    wide = [(row, values) for row, values in seen if sum(1 for v in values if v.strip()) > 1]
    row, values = (wide or seen)[0]
    return values, row, [(r, v) for r, v in seen if r < row]


def _skip_to_body(stream_records: Iterator[Record], header_row: int) -> None:
    """Consume the records up to and including the header."""
    if header_row < 1:
        return
    for record in stream_records:
        if record.row >= header_row:
            return


def _rows_text(above: list[tuple[int, list[str]]]) -> str:
    rows = [row for row, _ in above]
    return f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[0]}-{rows[-1]}"


class _StandingReader:
    """A row's standing by all its status columns: the one keeping mail away most wins."""

    def __init__(self, layout: Layout, options: ImportOptions) -> None:
        self._statuses = layout.statuses
        self._labels = {index: layout.label(index) for index, _ in layout.statuses}
        self._everyone_left = layout.everyone_left
        self._everyone_left_as = layout.everyone_left_as
        self._include_unconfirmed = options.unconfirmed is Unconfirmed.INCLUDE

    def read(self, values: list[str]) -> tuple[Standing, str]:
        """(standing, why) where why is '' for an active row."""
        if self._everyone_left:
            return self._everyone_left_as, self._everyone_left
        result, why = Standing.ACTIVE, ""
        for index, rule in self._statuses:
            value = values[index].strip() if index < len(values) else ""
            standing, known = rule.standing(value)
            if standing.weight <= result.weight:
                continue
            if standing is Standing.UNCONFIRMED:
                if self._include_unconfirmed:
                    continue
                label = self._labels[index][1:-1]
                result, why = (
                    standing,
                    f"unconfirmed: {label} '{shown(value)}' (double opt-in pending)",
                )
                continue
            label = self._labels[index][1:-1]
            result, why = standing, f"{label} '{shown(value)}'" if value else f"{label} is empty"
            if not known:
                why += " is not a status we know; name the active values in subscribers.status"
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
        self._first_names = layout.sources[Field.FIRST_NAME]
        self._last_names = layout.sources[Field.LAST_NAME]
        self._full_names = layout.sources[Field.FULL_NAME]
        self._timezones = layout.sources[Field.TIMEZONE]
        self._joined = layout.sources[Field.JOINED_AT]
        self._utc_columns = layout.utc_columns
        self._named = bool(self._full_names or self._last_names)
        self._email = layout.email
        self._extra_names = layout.extra_names
        self._has_status = bool(layout.statuses or layout.everyone_left)
        self._has_attributes = layout.attributes is not None
        self._repeated = list_import._census.repeated
        # Columns only templates see (never a header): a line break there is text.
        self._multiline = frozenset(layout.extras) | (
            {layout.attributes} if layout.attributes is not None else frozenset()
        )

    def build(self, record: Record) -> Built:
        """The row's subscriber, or its note, or both (a list), or None for a blank line."""
        values = record.values
        try:
            if isinstance(values, str):
                raise Rejected(values)
            cleaned = self._clean(record, values)
            if cleaned is None:
                return None
            return self._row(record.row, cleaned)
        except Rejected as rejection:
            self._counts.rejected += 1
            return RowNote(record.row, self._raw_email(values), str(rejection), RowOutcome.REJECTED)

    def _row(self, row: int, values: list[str]) -> Built:
        raw = values[self._email]
        if self._has_status:
            standing, why = self._standing.read(values)
            if standing is not Standing.ACTIVE:
                return self._skip(row, raw, why, standing)
        if not raw:
            raise Rejected("no email address")
        try:
            email = self._emails.normalize(raw)
        except InvalidAddress as error:
            raise Rejected(str(error)) from None
        key = hash(raw.lower())
        if key in self._repeated:
            gone = self._census.gone_rows.get(key)
            if gone is not None:
                gone_row, said = gone
                reason = f"row {gone_row} says this address is not subscribed"
                return self._skip(row, raw, reason, said)
            first = self._firsts.get(key)
            if first is not None:
                raise Rejected(f"duplicate of row {first}")
            self._firsts[key] = row
        notes: list[tuple[RowOutcome, str]] = []
        attributes = self._attributes(values, notes) if self._has_attributes else None
        zone = self._zone(values, attributes, notes)
        joined = self._joined_at(values, zone, notes) if self._joined else None
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
        if not email.isascii() and not email.partition("@")[0].isascii():
            notes.append(
                (
                    RowOutcome.FLAGGED,
                    "the address has non-ASCII characters before the @: it needs a mail "
                    "server that offers SMTPUTF8",
                )
            )
        subscriber = Subscriber(
            email,
            first_name,
            zone.key,
            joined,
            self._fields(values, attributes, full_name, last_name),
            row,
        )
        self._counts.accepted += 1
        if not notes:
            return subscriber
        outcomes = {outcome for outcome, _ in notes}
        self._counts.adjusted += RowOutcome.ADJUSTED in outcomes
        self._counts.flagged += RowOutcome.FLAGGED in outcomes
        shown_raw = shown(raw)
        return [subscriber, *(RowNote(row, shown_raw, reason, o) for o, reason in notes)]

    def _skip(self, row: int, raw: str, why: str, standing: Standing) -> RowNote:
        self._counts.skipped += 1
        self._counts.suppressing += standing.suppresses
        try:
            address = self._emails.normalize(raw) if raw else ""
        except InvalidAddress:
            address = ""
        return RowNote(row, shown(raw), why, RowOutcome.SKIPPED, address, standing)

    def _clean(self, record: Record, raw: list[str]) -> list[str] | None:
        """Stripped values padded to the header's width; None for a blank line."""
        joined = "".join(raw)
        if not joined or joined.isspace():
            return None
        if CONTROL.search(joined):
            raw = self._line_breaks_kept(record, raw)
        width = self._width
        # Even if the surplus values are empty: "ann@example.com,Smith, Ann,,," has shifted
        # " Ann" into the next column, which is worse than skipping the row.
        if len(raw) > width:
            raise Rejected(self._too_wide_reason(len(raw)))
        values = list(map(str.strip, raw))
        if len(values) < width:
            values += [""] * (width - len(values))
        return values

    def _line_breaks_kept(self, record: Record, raw: list[str]) -> list[str]:
        """A multi-line cell (a note typed with line breaks) in a column only templates see
        keeps its lines; any other control character, or one in a column that reaches a
        header or the greeting, rejects the row."""
        kept = list(raw)
        for index, value in enumerate(raw):
            if not CONTROL.search(value):
                continue
            if index not in self._multiline or BREAKLESS_CONTROL.search(value):
                raise Rejected(self._control_reason(record, index))
            kept[index] = value.replace("\r\n", "\n").replace("\r", "\n")
        return kept

    def _control_reason(self, record: Record, index: int) -> str:
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
        index = _first_filled_index(values, self._joined)
        if index is None:
            return None
        raw = values[index]
        if index in self._utc_columns:
            zone = _UTC
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
        if attributes is None and not self._named:
            if not extras:
                return NO_FIELDS
            # The common shape: the row's own columns, nothing to merge.
            named = zip(self._extra_names, map(values.__getitem__, extras), strict=True)
            return MappingProxyType(dict(named))
        row_values = list(map(values.__getitem__, extras))
        if self._named:
            row_values += (full_name, last_name)
        fields = dict(attributes) if attributes else {}
        fields.update(zip(self._layout.field_names, row_values, strict=True))
        return MappingProxyType(fields)

    def _raw_email(self, values: list[str] | str) -> str:
        index = self._layout.email
        if isinstance(values, str) or index >= len(values):
            return ""
        return shown(values[index].strip())


def _first_filled_index(values: list[str], indexes: tuple[int, ...]) -> int | None:
    for index in indexes:
        if values[index]:
            return index
    return None


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
    "RowNote",
    "RowOutcome",
    "Subscriber",
    "duplicate_key",
    "read_list",
]
