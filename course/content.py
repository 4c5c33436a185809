"""The course as parsed from the article: frozen value objects, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of running text, as written (inline text, no markup)."""

    text: str
    line: int


@dataclass(frozen=True)
class BulletList:
    """Consecutive bullet lines (`•`, or `-`/`*` in Markdown)."""

    items: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Quote:
    """A paragraph that is a quotation (wrapped in quotation marks, or `>` in Markdown)."""

    text: str
    line: int


Block = Paragraph | BulletList | Quote
LessonKind = Literal["reason", "action"]


@dataclass(frozen=True)
class Section:
    """A headed run of blocks outside the numbered items (e.g. the closing sections)."""

    heading: str | None
    blocks: tuple[Block, ...]
    line: int


@dataclass(frozen=True)
class Lesson:
    """One numbered item of the article: one email of the course."""

    day: int
    kind: LessonKind
    number: int
    title: str
    blocks: tuple[Block, ...]
    line: int


@dataclass(frozen=True)
class Course:
    """The whole article, every paragraph in exactly one place."""

    title: str
    disclosure: tuple[Block, ...]
    welcome: tuple[Block, ...]
    reasons_heading: str
    action_heading: str
    lessons: tuple[Lesson, ...]
    closing: tuple[Section, ...]
    source: str

    @property
    def days(self) -> int:
        return len(self.lessons)
