"""Read the subscribers CSV into validated subscribers plus a report of rejected and adjusted rows.

Row numbers are the ones a spreadsheet shows: every record the csv module yields counts, blank
lines included, so the header is row 1 and a quoted value that spans lines is still one row.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT

from course.errors import ConfigError, SubscribersError

# Line breaks and other control characters would let a name or address smuggle extra mail
# headers (To: "Eve\r\nBcc: ..."), so any of them anywhere rejects the row.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DELIMITERS = (",", ";", "\t")
_KNOWN_COLUMNS = frozenset({"email", "first_name", "name", "timezone", "subscribed_at"})
_SHOW_MAX = 80
_CHUNK = 1 << 20
_DOMAIN_CACHE_MAX = 100_000
_EMAIL_MAX_BYTES = 254
_ROLE_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_SNIFF_CHARS = 1 << 16
_ISO_FORMS = (
    "expected an ISO 8601 date like 2024-05-31 or a date and time like 2024-05-31T09:00 "
    "or 2024-05-31T09:00+02:00"
)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One accepted row of the CSV."""

    email: str
    name: str
    timezone: str
    subscribed_at: datetime | None
    fields: Mapping[str, str]
    row: int


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was skipped (rejected) or accepted with an adjustment."""

    row: int
    email: str
    reason: str
    rejected: bool


@dataclass(frozen=True)
class SubscriberList:
    """The outcome of reading one CSV: who is subscribed and what was wrong with the rest."""

    source: str
    subscribers: tuple[Subscriber, ...]
    problems: tuple[RowProblem, ...]

    def report_lines(self) -> list[str]:
        """A summary line, then one line per problem row, for the operator."""
        rejected = sum(problem.rejected for problem in self.problems)
        summary = (
            f"{self.source}: {_count(len(self.subscribers), 'subscriber')} accepted, "
            f"{_count(rejected, 'row')} rejected, {len(self.problems) - rejected} adjusted"
        )
        return [summary, *(_problem_line(problem) for problem in self.problems)]


class _RowFields(Mapping[str, str]):
    """The extra columns of one row: a column index shared by all rows plus this row's values."""

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


# Rows without extra columns all share this one object: a million rows cost no extra memory.
_NO_FIELDS = _RowFields(MappingProxyType({}), ())


class _Rejected(Exception):
    """Raised inside row parsing; the message is the operator-facing reason."""


@dataclass(frozen=True)
class _Columns:
    """Where each column sits in a record, worked out once from the header."""

    names: tuple[str, ...]
    delimiter: str
    email: int
    name_sources: tuple[int, ...]
    timezone: int | None
    subscribed_at: int | None
    extra: tuple[int, ...]
    extra_index: Mapping[str, int]

    def label(self, index: int) -> str:
        """The column's name for a message; positions past the header get a number."""
        if index < len(self.names) and self.names[index]:
            return f"'{_show(self.names[index])}'"
        return f"column {index + 1}"


@dataclass(frozen=True, slots=True)
class _Record:
    """One CSV record: its row number, the physical lines it spans, and its values (or error)."""

    row: int
    first_line: int
    last_line: int
    values: list[str] | str


def parse_subscribers(text: str, *, source: str, default_timezone: str) -> SubscriberList:
    """Parse CSV text; bad rows become problems, only a missing or unusable header raises."""
    zones = _Zones(default_timezone)
    text = text.removeprefix("\ufeff")
    delimiter = _sniff_delimiter(text)
    records = _records(text, delimiter)
    builder = _Builder(_read_header(records, source, delimiter), zones)
    with _collector_paused():
        for record in records:
            builder.add(record)
    return SubscriberList(source, tuple(builder.subscribers), tuple(builder.problems))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large list is built.

    Every full collection re-walks all the subscribers built so far: ~40% of the time for a
    million rows. Building them creates no reference cycles, so nothing piles up meanwhile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_subscribers(path: Path, *, default_timezone: str) -> SubscriberList:
    """Read and parse the CSV at path (UTF-8, with or without BOM)."""
    return parse_subscribers(_read_text(path), source=str(path), default_timezone=default_timezone)


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
        raise SubscribersError(_unreadable(path, error)) from None


def _read_text(path: Path) -> str:
    """Decode the file, or explain to the operator why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SubscribersError(_unreadable(path, error)) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SubscribersError(f"{path}: the file is UTF-16, not UTF-8; export it as 'CSV UTF-8'")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise SubscribersError(
            f"{path}: not UTF-8 (byte 0x{byte:02x} on line {line}); "
            "export it as 'CSV UTF-8' or re-save it with UTF-8 encoding"
        ) from None


def _unreadable(path: Path, error: OSError) -> str:
    """The message for a file the OS will not give us."""
    return f"{path}: cannot read the subscribers file ({error.strerror}); check the path"


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the header into an 'email' column; else the widest split.

    csv.Sniffer guesses from character frequencies and misreads short files; we know the
    header must contain 'email', which decides between comma, semicolon and tab for certain.
    """
    head = text[:_SNIFF_CHARS]
    best, best_width = ",", 0
    for delimiter in _DELIMITERS:
        header = _first_values(head, delimiter)
        if "email" in (_column_name(value) for value in header):
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


def _column_name(header_value: str) -> str:
    """Header names are matched case-insensitively and without surrounding spaces."""
    return header_value.strip().lower()


def _records(text: str, delimiter: str) -> Iterator[_Record]:
    """Every CSV record in order, with its row number; a malformed record yields its error."""
    reader = csv.reader(_lines(text), delimiter=delimiter)
    row = last_line = 0
    while True:
        row += 1
        try:
            values: list[str] | str = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            values = f"unreadable CSV record: {error}"
        first_line, last_line = last_line + 1, reader.line_num
        yield _Record(row, first_line, last_line, values)


def _lines(text: str) -> Iterator[str]:
    """Split text into lines as io.StringIO(newline='') does, a chunk at a time.

    StringIO stores 4 bytes per character; one over a 60 MB file would cost 240 MB. Chunks end
    just after a '\\n', which is a line end in every convention, so the lines are identical.
    """
    start = 0
    while start < len(text):
        end = text.find("\n", start + _CHUNK)
        end = len(text) if end < 0 else end + 1
        yield from io.StringIO(text[start:end], newline="")
        start = end


def _read_header(records: Iterator[_Record], source: str, delimiter: str) -> _Columns:
    """Consume records up to the first non-blank one and read it as the header."""
    for record in records:
        if isinstance(record.values, str):
            raise SubscribersError(f"{source}: row {record.row}: {record.values}")
        if any(value.strip() for value in record.values):
            return _columns(record.values, source, delimiter)
    raise SubscribersError(
        f"{source}: the file is empty; the first line must be a header with an 'email' column"
    )


def _columns(header: Sequence[str], source: str, delimiter: str) -> _Columns:
    """Locate the known columns; every other named column becomes a subscriber field.

    Columns with an empty name (trailing delimiters in spreadsheet exports) are ignored.
    """
    names = tuple(_column_name(value) for value in header)
    position = _positions(names, source)
    if "email" not in position:
        raise SubscribersError(_no_email_column(header, source))
    extra = tuple(i for i, name in enumerate(names) if name and name not in _KNOWN_COLUMNS)
    return _Columns(
        names=names,
        delimiter=delimiter,
        email=position["email"],
        name_sources=tuple(position[n] for n in ("first_name", "name") if n in position),
        timezone=position.get("timezone"),
        subscribed_at=position.get("subscribed_at"),
        extra=extra,
        extra_index=MappingProxyType({names[i]: k for k, i in enumerate(extra)}),
    )


def _positions(names: tuple[str, ...], source: str) -> dict[str, int]:
    """Map each named column to its index; a repeated name is ambiguous, so it is an error."""
    position: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in position:
            raise SubscribersError(
                f"{source}: column '{_show(name)}' appears twice in the header "
                f"(columns {position[name] + 1} and {index + 1}); rename or remove one"
            )
        if name:
            position[name] = index
    return position


def _no_email_column(header: Sequence[str], source: str) -> str:
    """Explain a header without 'email', listing what was found instead."""
    found = [_show(value.strip()) for value in header if value.strip()]
    message = f"{source}: no 'email' column in the header (found: {', '.join(found)}); "
    if any("@" in value for value in found):
        return message + "the first line must be a header such as 'email,first_name,timezone'"
    return message + "rename the column to 'email'"


class _Zones:
    """Time zone lookups by name, each resolved once: ZoneInfo() reads the tz database."""

    def __init__(self, default_name: str) -> None:
        self._cache: dict[str, ZoneInfo | None] = {}
        default = self.find(default_name)
        if default is None:
            raise ConfigError(
                f"default time zone '{_show(default_name)}' is not an IANA time zone name; "
                "use a name like 'Europe/London' or 'UTC'"
            )
        self.default = default

    def find(self, name: str) -> ZoneInfo | None:
        """The zone called name (any letter case), or None if there is none."""
        try:
            return self._cache[name]
        except KeyError:
            zone = self._cache[name] = _load_zone(name) or _load_zone(_zone_spelling(name))
            return zone


def _load_zone(name: str | None) -> ZoneInfo | None:
    """ZoneInfo(name), or None when name is not a zone (including paths outside the database)."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _zone_spelling(name: str) -> str | None:
    """The canonical spelling of a zone name typed in the wrong case ('europe/london')."""
    return _zone_names_by_lowercase().get(name.lower())


@cache
def _zone_names_by_lowercase() -> dict[str, str]:
    """All zone names keyed by their lowercase form; built only when a name misses."""
    return {name.lower(): name for name in available_timezones()}


class _Builder:
    """Turns records into subscribers and problems, remembering addresses for duplicates."""

    def __init__(self, columns: _Columns, zones: _Zones) -> None:
        self._columns = columns
        self._zones = zones
        self._seen: dict[str, int] = {}
        self._emails = _EmailNormalizer()
        self.subscribers: list[Subscriber] = []
        self.problems: list[RowProblem] = []

    def add(self, record: _Record) -> None:
        """Accept the record or note why not; one bad row never affects the others."""
        values = record.values
        try:
            if isinstance(values, str):
                raise _Rejected(values)
            self._accept(record, values)
        except _Rejected as rejection:
            self._note(record.row, self._raw_email(values), str(rejection), rejected=True)

    def _accept(self, record: _Record, raw: list[str]) -> None:
        """Validate every column of a non-blank record and keep the subscriber."""
        values = self._clean(record, raw)
        if values is None:
            return
        columns = self._columns
        email = self._address(values[columns.email])
        zone, adjustment = self._zone(values)
        subscriber = Subscriber(
            email=email,
            name=self._name(values),
            timezone=zone.key,
            subscribed_at=self._subscribed_at(values, zone),
            fields=self._fields(values),
            row=record.row,
        )
        self._seen[_duplicate_key(email)] = record.row
        self.subscribers.append(subscriber)
        if adjustment:
            self._note(record.row, values[columns.email], adjustment, rejected=False)

    def _clean(self, record: _Record, raw: list[str]) -> list[str] | None:
        """Stripped values padded to the header's width; None for a blank line."""
        joined = "".join(raw)
        if not joined or joined.isspace():
            return None
        if _CONTROL.search(joined):
            raise _Rejected(self._control_reason(record, raw))
        width = len(self._columns.names)
        # Even if the surplus values are empty: "ann@example.com,Smith, Ann,,," has shifted
        # " Ann" into the next column, which is worse than skipping the row.
        if len(raw) > width:
            raise _Rejected(self._too_wide_reason(len(raw)))
        values = [value.strip() for value in raw]
        values += [""] * (width - len(values))
        return values

    def _control_reason(self, record: _Record, raw: list[str]) -> str:
        """Name the first column holding a control character (and the lines a long record spans)."""
        index = next(i for i, value in enumerate(raw) if _CONTROL.search(value))
        reason = f"control character in {self._columns.label(index)}"
        if record.last_line > record.first_line:
            reason += f" (the record spans lines {record.first_line}-{record.last_line})"
        return reason

    def _too_wide_reason(self, count: int) -> str:
        """A row wider than the header usually means an unquoted delimiter inside a value."""
        delimiter = "tab" if self._columns.delimiter == "\t" else f"'{self._columns.delimiter}'"
        return (
            f"{count} values but the header has {len(self._columns.names)} columns; "
            f"put values containing {delimiter} in double quotes"
        )

    def _address(self, raw: str) -> str:
        """The normalised address, unless it is missing, invalid or already taken."""
        if not raw:
            raise _Rejected("no email address")
        email = self._emails.normalize(raw)
        first = self._seen.get(_duplicate_key(email))
        if first is not None:
            raise _Rejected(f"duplicate of row {first}")
        return email

    def _zone(self, values: list[str]) -> tuple[ZoneInfo, str | None]:
        """The row's time zone, falling back to the default (with a note if one was given)."""
        index = self._columns.timezone
        name = "" if index is None else values[index]
        if not name:
            return self._zones.default, None
        zone = self._zones.find(name)
        if zone is None:
            fallback = self._zones.default
            return fallback, f"unknown time zone '{_show(name)}', using {fallback.key}"
        return zone, None

    def _subscribed_at(self, values: list[str], zone: ZoneInfo) -> datetime | None:
        """The subscription time in UTC; None when the column is absent or empty."""
        index = self._columns.subscribed_at
        if index is None or not values[index]:
            return None
        return _parse_when(values[index], zone)

    def _name(self, values: list[str]) -> str:
        """first_name if filled in, else name, else ''."""
        for index in self._columns.name_sources:
            if values[index]:
                return values[index]
        return ""

    def _fields(self, values: list[str]) -> Mapping[str, str]:
        """The extra columns of the row, sharing one empty mapping when there are none."""
        extra = self._columns.extra
        if not extra:
            return _NO_FIELDS
        return _RowFields(self._columns.extra_index, tuple(map(values.__getitem__, extra)))

    def _raw_email(self, values: list[str] | str) -> str:
        """The address as found in the row, for the report ('' if the row has none)."""
        index = self._columns.email
        if isinstance(values, str) or index >= len(values):
            return ""
        return values[index].strip()

    def _note(self, row: int, email: str, reason: str, *, rejected: bool) -> None:
        """Record a problem with the address made safe to print."""
        self.problems.append(RowProblem(row, _show(email), reason, rejected))


class _EmailNormalizer:
    """email-validator's verdict on each address, with the domain half cached.

    validate_email costs ~30 µs, two thirds of it checking the domain, and real lists repeat
    a few domains. For a plain ASCII dot-atom local part (not an RFC 2142 role name, which it
    lowercases) the library returns the local part unchanged and checks the domain on its own,
    so local@domain normalises to local + '@' + the normalised domain of 'a@' + domain, provided
    the whole fits in 254 bytes. Every other address, valid or not, goes through validate_email
    itself, so all error messages are the library's. A test checks both paths agree.
    """

    def __init__(self) -> None:
        self._domains: dict[str, tuple[str, int] | None] = {}

    def normalize(self, raw: str) -> str:
        """The normalised address; raises _Rejected with the library's reason if invalid."""
        local, _, domain = raw.partition("@")
        if DOT_ATOM_TEXT.match(local) and local.lower() not in _ROLE_MAILBOXES:
            known = self._domain(domain)
            if known is not None and len(local) + 1 + known[1] <= _EMAIL_MAX_BYTES:
                return local + "@" + known[0]
        return _normalize_email(raw)

    def _domain(self, domain: str) -> tuple[str, int] | None:
        """(normalised domain, longest UTF-8 length of its forms), None if not known good."""
        try:
            return self._domains[domain]
        except KeyError:
            pass
        # Bounded so that a file of a million distinct domains cannot grow the cache unchecked.
        if len(self._domains) >= _DOMAIN_CACHE_MAX:
            return None
        known = self._domains[domain] = _probe_domain(domain)
        return known


def _probe_domain(domain: str) -> tuple[str, int] | None:
    """Validate domain behind a trivial local part; None if email-validator refuses it."""
    try:
        probe = validate_email("a@" + domain, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return None
    forms = (domain, probe.domain, probe.ascii_domain)
    return probe.domain, max(len(form.encode()) for form in forms)


def _duplicate_key(email: str) -> str:
    """Addresses differing only in case are one subscriber: mailboxes are case-blind in practice."""
    # Most addresses are lowercase already; reusing them saves a string per row.
    return email if email.islower() else email.lower()


def _normalize_email(raw: str) -> str:
    """Validate with email-validator and return its normalised form.

    test_environment=True accepts the reserved '.test' domain (and bare '@test') so operators
    can rehearse against a local SMTP sink; it also turns off DNS checks, which we never want
    here. Other special-use domains (localhost, .local, .invalid, .onion) stay rejected.
    """
    try:
        return validate_email(raw, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as error:
        raise _Rejected(f"invalid email address: {error}") from None


def _parse_when(value: str, zone: ZoneInfo) -> datetime:
    """Read an ISO 8601 date or date-time as UTC; dates and naive times are local to zone."""
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Rejected(f"invalid subscribed_at '{_show(value)}': {_ISO_FORMS}") from None


def _show(value: str) -> str:
    """Make a value safe and short to print: unprintables escaped repr-style, length capped."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:_SHOW_MAX])
    if len(shown) > _SHOW_MAX or len(value) > _SHOW_MAX:
        return shown[: _SHOW_MAX - 1] + "…"
    return shown


def _count(number: int, noun: str) -> str:
    """'1 row', '2 rows'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _problem_line(problem: RowProblem) -> str:
    """One report line: row, outcome, address, reason."""
    outcome = "rejected" if problem.rejected else "adjusted"
    return f"row {problem.row}: {outcome}: {problem.email or '(no address)'}: {problem.reason}"
