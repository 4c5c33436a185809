"""What a check finds, and how findings add up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Level = Literal["skipped", "ok", "warning", "error"]
LEVELS: tuple[Level, ...] = ("skipped", "ok", "warning", "error")
FAILING: tuple[Level, ...] = ("warning", "error")
SHOWN = 5  # offending items listed per check; the count says how many there are in all


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and the detail an operator acts on."""

    name: str
    level: Level
    detail: str

    @property
    def failed(self) -> bool:
        return self.level in FAILING


def worst(checks: Iterable[Check]) -> Level:
    return max((c.level for c in checks), key=LEVELS.index, default="ok")


def listing(items: list[str]) -> str:
    shown = ", ".join(repr(clip(item)) for item in items[:SHOWN])
    more = len(items) - SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
