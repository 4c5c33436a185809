"""First names from full names, through nameparser: "John Doe" -> John, "García, María" ->
María, "Dr. Ann Lee" -> Ann. A name written all in one case is capitalised the way nameparser
knows (JOHN DOE -> John, mcdonald -> McDonald); a first name given in its own column is the
subscriber's own spelling and stays as it is.
"""

from __future__ import annotations

import re
from functools import lru_cache

from nameparser import HumanName

# Scripts that write a name without spaces: Han, kana, Hangul.
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")


@lru_cache(maxsize=65_536)
def first_name_of(full_name: str) -> str:
    """The first name in a full name ('' if there is none)."""
    if not full_name:
        return ""
    name = HumanName(full_name)
    # Without force, nameparser only recases a name written all in upper or all in lower case.
    name.capitalize()
    first = str(name.first)
    if not first and _UNSPACED.fullmatch(full_name.strip()):
        # A Chinese name written without a space (王伟) is no family name alone: nameparser
        # files it all as the last name, but the whole name is how to greet them.
        return full_name.strip()
    return first


def full_name_of(first: str, last: str) -> str:
    """'Ann' + 'Lee' -> 'Ann Lee' when a list has the halves but not the whole."""
    return f"{first} {last}".strip()
