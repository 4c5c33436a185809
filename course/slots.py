"""Per-subscriber placeholders: templates render once per lesson, values are filled in later.

A template sees `subscriber.first_name` or `unsubscribe_url`; what it renders is a token
such as `__DC_3f9c0a…_0__`. The compiled HTML and text keep the token, and the message
builder swaps in each recipient's value, so MJML compiles once per lesson, not per person.

The token carries a random marker drawn when the process starts, so no article, CSV value
or link can contain one: text that merely looks like a token is left as it is. (A marker
character that text cannot hold, such as a private-use code point, does not survive MRML:
it rewrites non-ASCII inside attributes, and the unsubscribe link sits in an href.)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from course.errors import TemplateError

MARKER: Final = secrets.token_hex(8)
TOKEN_PATTERN: Final = re.compile(rf"__DC_{MARKER}_(\d+)__")


@dataclass(frozen=True, slots=True)
class Slot:
    """One placeholder: which value it stands for, and what to show when that is empty."""

    field: str
    fallback: str = ""

    def value(self, values: Mapping[str, str]) -> str:
        return values.get(self.field) or self.fallback


class SlotTable:
    """Hands out one token per distinct (field, fallback) while a lesson renders."""

    def __init__(self) -> None:
        self._slots: dict[Slot, int] = {}

    def token(self, slot: Slot) -> str:
        index = self._slots.setdefault(slot, len(self._slots))
        return f"__DC_{MARKER}_{index}__"

    def slots(self) -> tuple[Slot, ...]:
        return tuple(self._slots)


class SlotValue:
    """What a template gets for `subscriber.x`: renders as a token, safe in HTML as-is."""

    def __init__(self, table: SlotTable, field: str) -> None:
        self._table = table
        self.field = field

    def with_fallback(self, fallback: str) -> SlotValue:
        value = SlotValue(self._table, self.field)
        value._fallback = fallback
        return value

    _fallback = ""

    def __str__(self) -> str:
        return self._table.token(Slot(self.field, self._fallback))

    def __html__(self) -> str:
        # The token is plain ASCII; the real value is HTML-escaped when it is filled in.
        return str(self)


class SubscriberProxy:
    """`subscriber` in templates: any attribute is a placeholder for that CSV column."""

    def __init__(self, table: SlotTable) -> None:
        self._table = table

    def __getattr__(self, name: str) -> SlotValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return SlotValue(self._table, name)

    def __getitem__(self, name: str) -> SlotValue:
        return SlotValue(self._table, name)


def fallback_filter(value: object, fallback: str) -> object:
    """Jinja filter `fallback`: `{{ subscriber.first_name | fallback("there") }}`."""
    if isinstance(value, SlotValue):
        return value.with_fallback(fallback)
    return value if value else fallback


def split_on_tokens(text: str, slots: tuple[Slot, ...]) -> Iterator[str | int]:
    """Yield literal text and slot indexes in order; TemplateError for an unknown index."""
    position = 0
    for match in TOKEN_PATTERN.finditer(text):
        yield text[position : match.start()]
        yield _index(match, slots)
        position = match.end()
    yield text[position:]


def has_tokens(text: str) -> bool:
    return TOKEN_PATTERN.search(text) is not None


def fill(text: str, slots: tuple[Slot, ...], values: Mapping[str, str]) -> str:
    """Replace every token with its value (unescaped: for headers and previews)."""
    return TOKEN_PATTERN.sub(lambda m: slots[_index(m, slots)].value(values), text)


def without_marker(text: str) -> str:
    """`text` with this process's marker taken out, for digests that must not vary by run."""
    return text.replace(MARKER, "")


def _index(match: re.Match[str], slots: tuple[Slot, ...]) -> int:
    index = int(match[1])
    if index >= len(slots):
        # Only our templates make tokens, and each from this table; reaching here is a bug.
        raise TemplateError(f"placeholder {index} has no value: the lesson has {len(slots)}")
    return index
