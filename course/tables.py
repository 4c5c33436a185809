"""Plain aligned tables for the terminal."""

from __future__ import annotations

import shutil
from collections.abc import Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns; long text columns are cut to fit the terminal."""
    width = shutil.get_terminal_size((160, 24)).columns
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    widths = _fit(widths, width)
    for row in (header, *rows):
        cells = [_cut(str(cell), w) for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())


def _fit(widths: list[int], total: int) -> list[int]:
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > total and max(widths) > 12:
        widest = widths.index(max(widths))
        widths[widest] -= 1
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
