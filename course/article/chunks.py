"""The reader's output: the article as a flat sequence of chunks, before any structure.

Both readers (plain text and Markdown) produce chunks; the structure (items, parts,
closing) is found on chunks alone, so every article shape works in both formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from course.article.inline import merge, trim
from course.content import Block, Inline, Run, plain


class ChunkKind(StrEnum):
    HEADING = "heading"  # a Markdown heading (level 1-6)
    PARAGRAPH = "paragraph"  # running text; a one-line paragraph may read as a heading
    LIST = "list"  # a numbered list (Markdown), whose entries may be the items
    BLOCK = "block"  # content only: bullets, quotes, code, images
    RULE = "rule"  # a thematic break (`---`)


@dataclass(frozen=True)
class Entry:
    """One entry of a numbered list: its number as written, first paragraph, the rest."""

    number: int
    lines: tuple[Inline, ...]
    blocks: tuple[Block, ...]
    line: int
    glued: bool = False


@dataclass(frozen=True)
class Chunk:
    """One top-level unit of the article, with the source line it starts on."""

    kind: ChunkKind
    line: int
    lines: tuple[Inline, ...] = ()  # heading or paragraph text, one Inline per source line
    level: int = 0  # heading level; 0 for plain text, where headings have no level
    blocks: tuple[Block, ...] = ()  # what a BLOCK chunk holds
    entries: tuple[Entry, ...] = ()  # what a LIST chunk holds
    ordered_delimiter: str = "."
    indent: int = 0  # leading spaces of a plain-text line (nested lists in web copy)
    glued: bool = False  # started without a blank line before it (web copy)

    # Cached: the structure asks for a chunk's text many times over. (A frozen dataclass
    # keeps its fields read-only; the cache lives in the instance's __dict__ beside them.)
    @cached_property
    def runs(self) -> Inline:
        """The text as one inline sequence, source lines joined with a space."""
        joined: list[Run] = []
        for index, line in enumerate(self.lines):
            if index:
                joined.append(Run(" "))
            joined.extend(line)
        return trim(merge(joined))

    @cached_property
    def text(self) -> str:
        return " ".join(plain(line).strip() for line in self.lines).strip()

    @property
    def is_heading(self) -> bool:
        return self.kind is ChunkKind.HEADING


@dataclass
class Notes:
    """What reading found worth telling the operator, each naming the file and line."""

    source: str
    items: list[str] = field(default_factory=list)

    def add(self, line: int | None, message: str) -> None:
        where = f"{self.source}: line {line}: " if line else f"{self.source}: "
        self.items.append(where + message)
