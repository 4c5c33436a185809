"""First names from full names, through nameparser: "John Doe" -> John, "García, María" ->
María, "Dr. Ann Lee" -> Ann. A name written all in one case is capitalised the way nameparser
knows (JOHN DOE -> John, mcdonald -> McDonald); a first name given in its own column is the
subscriber's own spelling and stays as it is.
"""

from __future__ import annotations

from functools import lru_cache

from nameparser import HumanName


@lru_cache(maxsize=65_536)
def first_name_of(full_name: str) -> str:
    """The first name in a full name ('' if there is none)."""
    if not full_name:
        return ""
    name = HumanName(full_name)
    # Without force, nameparser only recases a name written all in upper or all in lower case.
    name.capitalize()
    return str(name.first)


def full_name_of(first: str, last: str) -> str:
    """'Ann' + 'Lee' -> 'Ann Lee' when a list has the halves but not the whole."""
    return f"{first} {last}".strip()
