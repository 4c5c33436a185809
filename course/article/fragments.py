"""Markdown written by the operator (a lesson, the welcome, the closing) -> content blocks.

No structure is looked for: every chunk is content, as written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.encoding import read_article
from course.article.lines import prepare, split_lines
from course.article.markdown import read_markdown
from course.article.shapes import is_wrapped_quote
from course.content import Block, Heading, ListBlock, Paragraph, Quote, Run, Section


def read_fragment(path: Path) -> tuple[tuple[Block, ...], tuple[str, ...]]:
    """(the file's blocks, notes such as a dropped image)."""
    chunks, notes = _chunks(path)
    return tuple(b for chunk in chunks for b in _blocks(chunk)), tuple(notes.items)


def read_sections(path: Path) -> tuple[tuple[Section, ...], tuple[str, ...]]:
    """The file cut into sections at its headings (the closing)."""
    chunks, notes = _chunks(path)
    sections: list[Section] = []
    heading: Chunk | None = None
    blocks: list[Block] = []
    for chunk in [*chunks, None]:
        if chunk is None or chunk.is_heading:
            if heading is not None or blocks:
                line = heading.line if heading else blocks[0].line
                sections.append(Section(heading.text if heading else None, tuple(blocks), line))
            heading, blocks = chunk, []
        else:
            blocks.extend(_blocks(chunk))
    return tuple(sections), tuple(notes.items)


def _chunks(path: Path) -> tuple[Sequence[Chunk], Notes]:
    decoded = read_article(path)
    notes = Notes(str(path))
    if decoded.note:
        notes.items.append(decoded.note)
    lines = prepare(split_lines(decoded.text), 0, markdown=True)
    _, chunks = read_markdown(lines, notes)
    return chunks, notes


def _blocks(chunk: Chunk) -> Iterator[Block]:
    if chunk.kind is ChunkKind.BLOCK:
        yield from chunk.blocks
    elif chunk.kind is ChunkKind.HEADING:
        yield Heading(chunk.runs, chunk.line)
    elif chunk.kind is ChunkKind.LIST:
        items = []
        for entry in chunk.entries:
            runs: list[Run] = []
            for line in entry.lines:
                if runs:
                    runs.append(Run(" "))
                runs.extend(line)
            items.append(tuple(runs))
        start = chunk.entries[0].number if chunk.entries else 1
        yield ListBlock(tuple(items), chunk.line, True, start)
        for entry in chunk.entries:
            yield from entry.blocks
    elif chunk.kind is ChunkKind.PARAGRAPH:
        if is_wrapped_quote(chunk.text):
            yield Quote(chunk.runs, chunk.line)
        else:
            yield Paragraph(chunk.runs, chunk.line)
