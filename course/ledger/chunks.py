"""Id lists cut into IN (...) lists of a size every database accepts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

# Ids per IN (...) list; far below SQLite's bound-parameter limit.
IN_CHUNK: Final = 500


_T = TypeVar("_T")


def in_chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
