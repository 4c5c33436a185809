"""How long a subscriber's name may be where it is shown: the To: line and the greeting.

A module of its own, importing nothing of the course, so the message builder and the list
import share one limit without importing each other (config -> subscribers -> message ->
dkim -> config would be a cycle).
"""

from __future__ import annotations

import unicodedata
from typing import Final

# A display name longer than this is cut (with "…"): past it a name is no longer a name.
# The list import cuts such names with a note in the subscribers report, and the message
# builder cuts whatever reaches it from elsewhere (`send-test --as`, older ledgers).
MAX_NAME_LENGTH: Final = 100


def shorten_name(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`name`, or its first `limit` characters ending in "…" when it is longer."""
    if len(name) <= limit:
        return name
    cut = name[: limit - 1]
    # Never leave an accent without its letter, nor a space before the ellipsis.
    while cut and (unicodedata.combining(cut[-1]) or cut[-1].isspace()):
        cut = cut[:-1]
    return cut + "…"
