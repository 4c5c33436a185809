"""Which column holds what, worked out once from the header, the tool's shape and the config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from course.errors import ConfigError, SubscribersError
from course.subscribers.fields import FIELD_LABELS, Field, field_for, header_key, template_name
from course.subscribers.options import ImportOptions
from course.subscribers.statuses import RuleKind, Standing, StatusRule
from course.subscribers.text import shown
from course.subscribers.tools import Tool, recognise

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
# Priorities: the config beats the tool's shape, which beats the generic alias table.
_CONFIGURED, _TOOL, _TABLE = 0, 1, 2


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
    header: Sequence[str], delimiter: str, options: ImportOptions, source: str
) -> Layout:
    """Locate every field; a header the config names but the file lacks is a config error."""
    headers = tuple(value.strip() for value in header)
    keys = tuple(header_key(value) for value in headers)
    _refuse_repeats(headers, keys, source)
    tool = recognise(keys)
    chosen = _candidates(headers, keys, tool, options, source)
    email = _email_column(chosen, headers, source, options)
    sources = {f: tuple(i for _, i in sorted(chosen.get(f, []))) for f in _FALLBACK_FIELDS}
    statuses = _statuses(chosen, keys, tool, options, headers, source)
    attributes = min(chosen[Field.ATTRIBUTES])[1] if chosen.get(Field.ATTRIBUTES) else None
    used = {email, *(i for idx in sources.values() for i in idx), *(i for i, _ in statuses)}
    if attributes is not None:
        used.add(attributes)
    extras = tuple(i for i, h in enumerate(headers) if i not in used and template_name(h))
    extra_names = tuple(template_name(headers[i]) for i in extras)
    named = bool(sources[Field.FULL_NAME] or sources[Field.LAST_NAME])
    field_names = extra_names + (("full_name", "last_name") if named else ())
    how = _describe(headers, email, sources, statuses, attributes, extras, extra_names)
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
        everyone_left=tool.everyone_left if tool else "",
        everyone_left_as=tool.left_as if tool else Standing.UNSUBSCRIBED,
        how=how,
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
) -> dict[Field, list[tuple[tuple[int, int], int]]]:
    """Field -> [(priority, column)] for every column that could hold it."""
    configured = _configured(headers, keys, options, source)
    chosen: dict[Field, list[tuple[tuple[int, int], int]]] = {}
    for index, key in enumerate(keys):
        if not key:
            continue
        if index in configured:
            chosen.setdefault(configured[index], []).append(((_CONFIGURED, 0), index))
            continue
        if tool is not None and key in tool.columns:
            chosen.setdefault(tool.columns[key], []).append(((_TOOL, 0), index))
            continue
        if tool is not None and key in tool.statuses:
            chosen.setdefault(Field.STATUS, []).append(((_TOOL, 0), index))
            continue
        found = field_for(key)
        if found is not None:
            chosen.setdefault(found[0], []).append(((_TABLE, found[1]), index))
    return chosen


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
    chosen: dict[Field, list[tuple[tuple[int, int], int]]],
    headers: tuple[str, ...],
    source: str,
    options: ImportOptions,
) -> int:
    candidates = sorted(chosen.get(Field.EMAIL, []))
    if candidates:
        return candidates[0][1]
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


def _statuses(
    chosen: dict[Field, list[tuple[tuple[int, int], int]]],
    keys: tuple[str, ...],
    tool: Tool | None,
    options: ImportOptions,
    headers: tuple[str, ...],
    source: str,
) -> tuple[tuple[int, StatusRule], ...]:
    rules: dict[int, StatusRule] = {}
    for _, index in sorted(chosen.get(Field.STATUS, [])):
        rule = tool.statuses.get(keys[index]) if tool is not None else None
        rules[index] = rule or _KNOWN_STATUS
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
