"""Which column holds what, worked out once from the header, the tool's shape and the config."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from course.errors import ConfigError, SubscribersError
from course.subscribers.fields import (
    FIELD_LABELS,
    FIRST_OR_FULL,
    STATUS_HEADERS,
    WEAK_STATUS_HEADERS,
    Field,
    field_for,
    header_key,
    says_utc,
    template_name,
)
from course.subscribers.options import ImportOptions
from course.subscribers.statuses import RuleKind, Standing, StatusRule
from course.subscribers.text import shown
from course.subscribers.tools import Tool, gone_by_file_name, recognise

# Fields that one column fills; when several columns could, the most specific is used, and
# the next non-empty one takes over on rows where it is empty.
_FALLBACK_FIELDS = (
    Field.FIRST_NAME,
    Field.LAST_NAME,
    Field.FULL_NAME,
    Field.TIMEZONE,
    Field.JOINED_AT,
)
_KNOWN_STATUS = StatusRule(RuleKind.KNOWN_VALUES)
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Priorities: the config beats the tool's shape, which beats the generic alias table.
_CONFIGURED, _TOOL, _TABLE = 0, 1, 2
Candidates = dict[Field, list[tuple[tuple[int, int], int]]]


@dataclass(frozen=True)
class WeakColumn:
    """A column whose header may name a status or something else (`State`: a US state?
    `Subscribed`: a date or a yes?); its values decide, over the whole file."""

    index: int
    rule: StatusRule
    # What the column is when its values are no statuses (`Subscribed` -> joined at);
    # None: a template field.
    otherwise: Field | None


@dataclass(frozen=True)
class WeakVerdict:
    """What a pass over a weak column found: is it a status, and a value that says why."""

    is_status: bool
    example: str = ""


@dataclass(frozen=True)
class Layout:
    """Where each field sits in a record, and which columns templates see under which name."""

    headers: tuple[str, ...]
    delimiter: str
    tool: Tool | None
    email: int
    sources: dict[Field, tuple[int, ...]]
    statuses: tuple[tuple[int, StatusRule], ...]
    attributes: int | None
    # Template columns: their positions and names (`subscriber.<name>`), in file order.
    extras: tuple[int, ...]
    extra_names: tuple[str, ...]
    # The names every row's template fields have (extras, then full_name/last_name if known).
    field_names: tuple[str, ...]
    everyone_left: str = ""
    everyone_left_as: Standing = Standing.UNSUBSCRIBED
    how: dict[int, str] = field(default_factory=dict)
    # Joining-date columns whose header says their times are UTC.
    utc_columns: frozenset[int] = frozenset()
    # Weak columns still to be judged by a pass over the values (empty once judged).
    undecided: tuple[WeakColumn, ...] = ()
    # What the layout has to say once, before the rows (weak columns judged, the file name).
    notes: tuple[str, ...] = ()

    def label(self, index: int) -> str:
        """The column's name for a message; positions past the header get a number."""
        if index < len(self.headers) and self.headers[index]:
            return f"'{shown(self.headers[index])}'"
        return f"column {index + 1}"

    def mapping_lines(self) -> list[str]:
        """`header -> field` for every named column, for `course subscribers`."""
        width = min(32, max((len(shown(h)) for h in self.headers if h), default=0))
        lines = []
        for index, header in enumerate(self.headers):
            if header:
                lines.append(f"  {shown(header):<{width}} -> {self.how.get(index, 'ignored')}")
        if self.everyone_left:
            lines.append(f"  (every row is {self.everyone_left}, so nobody here is mailed)")
        names = ["first_name", "email", *self.field_names]
        if self.attributes is not None:
            names.append("<each key of the attributes>")
        lines.append("templates see: " + ", ".join(f"subscriber.{name}" for name in names))
        return lines


def build_layout(
    header: Sequence[str],
    delimiter: str,
    options: ImportOptions,
    source: str,
    verdicts: Mapping[int, WeakVerdict] | None = None,
    sample: Sequence[Sequence[str]] = (),
) -> Layout:
    """Locate every field; a header the config names but the file lacks is a config error.

    Without verdicts, columns whose header is weak (see WeakColumn) are laid out as what they
    are when not a status, and listed in `undecided` for the caller to judge and lay out again.
    """
    headers = tuple(value.strip() for value in header)
    keys = tuple(header_key(value) for value in headers)
    _refuse_repeats(headers, keys, source)
    tool = recognise(keys, source)
    rules: dict[int, StatusRule] = {}
    undecided: list[WeakColumn] = []
    notes: list[str] = []
    chosen = _candidates(headers, keys, tool, options, source, rules)
    for weak in _weak_columns(keys, chosen, rules, options):
        verdict = verdicts.get(weak.index) if verdicts is not None else None
        if verdict is None:
            undecided.append(weak)
        elif verdict.is_status:
            _unchoose(chosen, weak.index)
            rules[weak.index] = weak.rule
        elif verdict.example and weak.otherwise is None:
            notes.append(
                f"column '{shown(headers[weak.index])}' holds no subscription status (values "
                f"like '{shown(verdict.example)}'), so it does not decide who is mailed"
            )
    email = _email_column(chosen, headers, source, options, sample, rules, notes)
    _first_or_full(chosen, keys)
    sources = {f: tuple(i for _, i in sorted(chosen.get(f, []))) for f in _FALLBACK_FIELDS}
    statuses = _statuses(rules, keys, options, headers, source)
    attributes = min(chosen[Field.ATTRIBUTES])[1] if chosen.get(Field.ATTRIBUTES) else None
    used = {email, *(i for idx in sources.values() for i in idx), *(i for i, _ in statuses)}
    if attributes is not None:
        used.add(attributes)
    extras = tuple(i for i, h in enumerate(headers) if i not in used and template_name(h))
    extra_names = tuple(template_name(headers[i]) for i in extras)
    named = bool(sources[Field.FULL_NAME] or sources[Field.LAST_NAME])
    field_names = extra_names + (("full_name", "last_name") if named else ())
    how = _describe(headers, email, sources, statuses, attributes, extras, extra_names)
    everyone_left, left_as = "", Standing.UNSUBSCRIBED
    if tool is not None and tool.everyone_left:
        everyone_left, left_as = tool.everyone_left, tool.left_as
    elif not statuses and (by_name := gone_by_file_name(source)) is not None:
        # `unsubscribed.csv` with no status column of its own: its name is all it says.
        word, left_as = by_name
        everyone_left = f"in a file named '{word}'"
        notes.append(
            f"the file name says '{word}': nobody in it is mailed; if they are subscribed, "
            "rename the file"
        )
    return Layout(
        headers=headers,
        delimiter=delimiter,
        tool=tool,
        email=email,
        sources=sources,
        statuses=statuses,
        attributes=attributes,
        extras=extras,
        extra_names=extra_names,
        field_names=field_names,
        everyone_left=everyone_left,
        everyone_left_as=left_as,
        how=how,
        utc_columns=frozenset(i for i in sources[Field.JOINED_AT] if says_utc(keys[i])),
        undecided=tuple(undecided),
        notes=tuple(notes),
    )


def names_email(header: Sequence[str], options: ImportOptions) -> bool:
    """Whether a header (split some way) has a column that would be read as the email."""
    configured = {header_key(h) for h, f in options.columns.items() if f is Field.EMAIL}
    for value in header:
        key = header_key(value)
        found = field_for(key)
        if key in configured or (found is not None and found[0] is Field.EMAIL):
            return True
        if key == "subscriber":  # MailerLite's name for the address column
            return True
    return False


def _refuse_repeats(headers: tuple[str, ...], keys: tuple[str, ...], source: str) -> None:
    """Two columns with one name: which one is meant is anyone's guess, so say so."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        if not key:
            continue
        if key in first:
            raise SubscribersError(
                f"{source}: column '{shown(headers[first[key]])}' appears twice in the header "
                f"(columns {first[key] + 1} and {index + 1}); rename or remove one"
            )
        first[key] = index


def _candidates(
    headers: tuple[str, ...],
    keys: tuple[str, ...],
    tool: Tool | None,
    options: ImportOptions,
    source: str,
    rules: dict[int, StatusRule],
) -> Candidates:
    """Field -> [(priority, column)] for every column that could hold it; status columns go
    into rules (column -> how it reads) instead."""
    configured = _configured(headers, keys, options, source)
    chosen: Candidates = {}
    for index, key in enumerate(keys):
        if not key:
            continue
        if index in configured:
            if configured[index] is Field.STATUS:
                rules[index] = _KNOWN_STATUS
            else:
                chosen.setdefault(configured[index], []).append(((_CONFIGURED, 0), index))
            continue
        if tool is not None and key in tool.columns:
            chosen.setdefault(tool.columns[key], []).append(((_TOOL, 0), index))
            continue
        rule = tool.statuses.get(key) if tool is not None else None
        rule = rule or STATUS_HEADERS.get(key)
        if rule is not None:
            rules[index] = rule
            continue
        found = field_for(key)
        if found is not None:
            chosen.setdefault(found[0], []).append(((_TABLE, found[1]), index))
    return chosen


def _weak_columns(
    keys: tuple[str, ...],
    chosen: Candidates,
    rules: dict[int, StatusRule],
    options: ImportOptions,
) -> list[WeakColumn]:
    """Columns with a weak header that nothing stronger (the config, the tool) has claimed."""
    configured = {header_key(h) for h in options.columns}
    if options.status is not None:
        configured.add(header_key(options.status.column))
    claimed = {i for entries in chosen.values() for priority, i in entries if priority[0] != _TABLE}
    found = []
    for index, key in enumerate(keys):
        rule = WEAK_STATUS_HEADERS.get(key)
        if rule is None or index in rules or index in claimed or key in configured:
            continue
        table = field_for(key)
        found.append(WeakColumn(index, rule, table[0] if table is not None else None))
    return found


def _first_or_full(chosen: Candidates, keys: tuple[str, ...]) -> None:
    """`Nombre` and `Nome` are the first name beside a last-name column, else the whole name."""
    if chosen.get(Field.LAST_NAME):
        return
    firsts = chosen.get(Field.FIRST_NAME, [])
    moved = [entry for entry in firsts if keys[entry[1]] in FIRST_OR_FULL]
    if moved:
        chosen[Field.FIRST_NAME] = [entry for entry in firsts if entry not in moved]
        chosen.setdefault(Field.FULL_NAME, []).extend(moved)


def _unchoose(chosen: Candidates, index: int) -> None:
    for entries in chosen.values():
        entries[:] = [entry for entry in entries if entry[1] != index]


def _configured(
    headers: tuple[str, ...], keys: tuple[str, ...], options: ImportOptions, source: str
) -> dict[int, Field]:
    """Column -> field for `subscribers.columns`; every header it names must be in the file."""
    by_key = {key: index for index, key in enumerate(keys) if key}
    configured: dict[int, Field] = {}
    for header, wanted in options.columns.items():
        index = by_key.get(header_key(header))
        if index is None:
            raise ConfigError(
                f"{options.config_source}: subscribers.columns: header '{shown(header)}' "
                f"(for {wanted}) is not in {source}; its columns are: {_listing(headers)}"
            )
        configured[index] = wanted
    return configured


def _email_column(
    chosen: Candidates,
    headers: tuple[str, ...],
    source: str,
    options: ImportOptions,
    sample: Sequence[Sequence[str]],
    rules: dict[int, StatusRule],
    notes: list[str],
) -> int:
    candidates = sorted(chosen.get(Field.EMAIL, []))
    if candidates:
        return candidates[0][1]
    by_values = _addresses_column(sample, len(headers), rules)
    if by_values is not None:
        _unchoose(chosen, by_values)
        notes.append(
            f"no header names the email column; column {_label(headers, by_values)} holds "
            "addresses, so it is the email (name it in subscribers.columns to be sure)"
        )
        return by_values
    found = [shown(h) for h in headers if h]
    message = f"{source}: no email column in the header (found: {', '.join(found)}); "
    if any("@" in value for value in found):
        raise SubscribersError(
            message + "the first line must be a header such as 'email,first_name,timezone'"
        )
    raise SubscribersError(
        message + f"name it in {options.config_source}, e.g. subscribers.columns: "
        f'{{"{found[0] if found else "Mail"}": email}}'
    )


def _addresses_column(
    sample: Sequence[Sequence[str]], width: int, rules: dict[int, StatusRule]
) -> int | None:
    """The column whose sampled values are mostly email addresses (a header in a language
    the alias table lacks: `Adres e-mail`, `メールアドレス`), or None."""
    best, best_count = None, 0
    for index in range(width):
        if index in rules:
            continue
        count = 0
        filled = 0
        for values in sample:
            value = values[index].strip() if index < len(values) else ""
            if value:
                filled += 1
                count += bool(_ADDRESS.fullmatch(value))
        if count > best_count and count * 2 > filled:
            best, best_count = index, count
    return best


def _label(headers: tuple[str, ...], index: int) -> str:
    return f"'{shown(headers[index])}'" if headers[index] else f"{index + 1}"


def _statuses(
    rules: dict[int, StatusRule],
    keys: tuple[str, ...],
    options: ImportOptions,
    headers: tuple[str, ...],
    source: str,
) -> tuple[tuple[int, StatusRule], ...]:
    rules = dict(rules)
    if options.status is not None:
        wanted = header_key(options.status.column)
        named = next((i for i, key in enumerate(keys) if key and key == wanted), None)
        if named is None:
            raise ConfigError(
                f"{options.config_source}: subscribers.status.column: header "
                f"'{shown(options.status.column)}' is not in {source}; "
                f"its columns are: {_listing(headers)}"
            )
        rules[named] = StatusRule.active_list(options.status.active)
    return tuple(sorted(rules.items()))


def _describe(
    headers: tuple[str, ...],
    email: int,
    sources: dict[Field, tuple[int, ...]],
    statuses: tuple[tuple[int, StatusRule], ...],
    attributes: int | None,
    extras: tuple[int, ...],
    extra_names: tuple[str, ...],
) -> dict[int, str]:
    how = {email: FIELD_LABELS[Field.EMAIL]}
    for wanted, indexes in sources.items():
        for rank, index in enumerate(indexes):
            how[index] = FIELD_LABELS[wanted] + (
                " (when the column before is empty)" if rank else ""
            )
    for index, rule in statuses:
        how[index] = f"status ({rule.describe()})"
    if attributes is not None:
        how[attributes] = FIELD_LABELS[Field.ATTRIBUTES]
    for index, name in zip(extras, extra_names, strict=True):
        how[index] = f"subscriber.{name}"
    return how


def _listing(headers: tuple[str, ...]) -> str:
    return ", ".join(f"'{shown(h)}'" for h in headers if h)
