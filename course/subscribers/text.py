"""Values made safe to print, and the characters no row may carry."""

from __future__ import annotations

import re

# Line breaks and other control characters would let a name or address smuggle extra mail
# headers (To: "Eve\r\nBcc: ..."), so any of them anywhere rejects the row.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The control characters other than tab and the line breaks a spreadsheet's multi-line cell
# holds (CR, LF): never part of any text a list carries.
BREAKLESS_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
SHOW_MAX = 80


def shown(value: str) -> str:
    """Make a value safe and short to print: unprintables escaped repr-style, length capped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:SHOW_MAX])
    if len(text) > SHOW_MAX or len(value) > SHOW_MAX:
        return text[: SHOW_MAX - 1] + "…"
    return text


def count(number: int, noun: str) -> str:
    """'1 row', '2 rows'."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
