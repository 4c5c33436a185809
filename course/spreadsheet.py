"""Cells that a spreadsheet shows as text, never runs."""

from __future__ import annotations

# OWASP "CSV injection": a cell starting with one of these is run as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """Make a cell read as text: a leading apostrophe hides the formula character."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
