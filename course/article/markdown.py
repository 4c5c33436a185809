"""Markdown -> chunks, from markdown-it-py's token tree (CommonMark, plus tables).

Headings, paragraphs, numbered lists (each entry with its number as written), bullets,
block quotes, code, images, tables and HTML blocks each become chunks or content blocks.
Inline markup becomes runs (see `course.article.inline`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from course.article.chunks import Chunk, ChunkKind, Entry, Notes
from course.article.inline import (
    HtmlPiece,
    ImageRef,
    InlineBuilder,
    Segment,
    merge,
    only_anchors,
    reduce_html_block,
    trim,
    without_anchors,
)
from course.article.lines import SourceLines
from course.article.shapes import quote
from course.content import (
    LINE_BREAK,
    Block,
    CodeBlock,
    Heading,
    Image,
    Inline,
    ListBlock,
    Paragraph,
    Quote,
    Run,
)

SOFT = "\x0b"  # a soft line break inside a paragraph, until the paragraph is cut into lines


@cache
def parser(indented_code: bool) -> MarkdownIt:
    md = (
        MarkdownIt("commonmark", {"html": True})
        .use(front_matter_plugin)
        .use(footnote_plugin)
        .enable(["table", "strikethrough"])
    )
    # Web copy read as Markdown (a .txt with some **bold**) indents its lists by hand; there an
    # indented line is text, not code.
    return md if indented_code else md.disable("code")


def read_markdown(
    source: SourceLines, notes: Notes, *, indented_code: bool = True
) -> tuple[str | None, list[Chunk]]:
    """(the YAML front matter's content, or None; the chunks)."""
    tree = SyntaxTreeNode(parser(indented_code).parse(source.text))
    footnotes = _footnotes(tree)
    reader = _Reader(source, notes, footnotes)
    front_matter: str | None = None
    chunks: list[Chunk] = []
    for node in tree.children:
        if node.type == "front_matter":
            front_matter = node.content
            continue
        if node.type == "footnote_block":
            # An email has no foot: each note goes in brackets where it is cited.
            notes.add(
                None,
                f"{len(footnotes)} footnote{'s' if len(footnotes) != 1 else ''} put in brackets "
                "where cited",
            )
            continue
        for chunk in reader.chunks(node):
            if _is_contents(chunk):
                if chunks and chunks[-1].is_heading and _CONTENTS.match(chunks[-1].text):
                    dropped = chunks.pop()
                    notes.add(dropped.line, f"{quote(dropped.text)} dropped with its list")
                notes.add(
                    chunk.line, "a table of contents dropped: its links go nowhere in an email"
                )
                continue
            chunks.append(_without_anchors(chunk))
    return front_matter, chunks


_CONTENTS = re.compile(r"(?:table of )?contents\b|in this (?:post|article)|jump to", re.IGNORECASE)


def _is_contents(chunk: Chunk) -> bool:
    """A list whose every entry is an in-page link: a table of contents."""
    if chunk.kind is ChunkKind.LIST:
        entries = [_flatten(entry.lines) for entry in chunk.entries]
        return bool(entries) and all(only_anchors(entry) for entry in entries)
    if chunk.kind is ChunkKind.BLOCK and len(chunk.blocks) == 1:
        block = chunk.blocks[0]
        if isinstance(block, ListBlock):
            return bool(block.items) and all(only_anchors(item) for item in block.items)
    return False


def _flatten(lines: Sequence[Inline]) -> Inline:
    return tuple(run for line in lines for run in line)


def _without_anchors(chunk: Chunk) -> Chunk:
    return replace(
        chunk,
        lines=tuple(without_anchors(line) for line in chunk.lines),
        blocks=tuple(_block_without_anchors(block) for block in chunk.blocks),
        entries=tuple(
            replace(
                entry,
                lines=tuple(without_anchors(line) for line in entry.lines),
                blocks=tuple(_block_without_anchors(block) for block in entry.blocks),
            )
            for entry in chunk.entries
        ),
    )


def _block_without_anchors(block: Block) -> Block:
    if isinstance(block, ListBlock):
        return replace(block, items=tuple(without_anchors(item) for item in block.items))
    if isinstance(block, Paragraph | Quote | Heading):
        return replace(block, runs=without_anchors(block.runs))
    return block


def _footnotes(tree: SyntaxTreeNode) -> dict[int, str]:
    """Each footnote's text, by its id."""
    found: dict[int, str] = {}
    for node in tree.children:
        if node.type != "footnote_block":
            continue
        for note in node.children:
            words: list[str] = []
            for child in note.walk():
                if child.type in ("text", "code_inline"):
                    words.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    words.append(" ")
            text = " ".join("".join(words).split())
            if text and isinstance(note.meta.get("id"), int):
                found[note.meta["id"]] = text
    return found


class _Reader:
    def __init__(self, source: SourceLines, notes: Notes, footnotes: dict[int, str]) -> None:
        self.source = source
        self.notes = notes
        self.footnotes = footnotes

    def line(self, node: SyntaxTreeNode) -> int:
        return self.source.line_of(node.map[0]) if node.map else 1

    def glued(self, node: SyntaxTreeNode) -> bool:
        return self.line(node) in self.source.glued

    def chunks(self, node: SyntaxTreeNode) -> Iterator[Chunk]:
        line = self.line(node)
        if node.type == "heading":
            level = int(node.tag[1])
            for segment in self.segments(node.children[0], line):
                if isinstance(segment, Image):
                    yield Chunk(ChunkKind.BLOCK, line, blocks=(segment,))
                elif segment:
                    yield Chunk(ChunkKind.HEADING, line, lines=(segment,), level=level)
        elif node.type == "paragraph":
            glued = self.glued(node)
            for segment in self.segments(node.children[0], line):
                if isinstance(segment, Image):
                    yield Chunk(ChunkKind.BLOCK, line, blocks=(segment,))
                else:
                    lines = _lines(segment)
                    if lines:
                        yield Chunk(ChunkKind.PARAGRAPH, line, lines=lines, glued=glued)
                        glued = False
        elif node.type == "ordered_list":
            yield Chunk(
                ChunkKind.LIST,
                line,
                entries=tuple(self.entries(node)),
                ordered_delimiter=node.markup or ".",
            )
        elif node.type == "hr":
            yield Chunk(ChunkKind.RULE, line)
        elif node.type == "html_block":
            yield from self.html_chunks(node.content, line)
        else:
            blocks = tuple(self.blocks(node))
            if blocks:
                yield Chunk(ChunkKind.BLOCK, line, blocks=blocks)

    def entries(self, node: SyntaxTreeNode) -> Iterator[Entry]:
        start = int(str(node.attrs.get("start", 1)))
        for index, item in enumerate(node.children):
            number = int(item.info) if item.info.isdigit() else start + index
            first: tuple[Inline, ...] = ()
            rest: list[Block] = []
            children = list(item.children)
            if children and children[0].type == "paragraph":
                segments = self.segments(children[0].children[0], self.line(children[0]))
                lead = segments[0] if segments else None
                if lead is not None and not isinstance(lead, Image):
                    first = _lines(lead)
                    segments = segments[1:]
                rest.extend(_blocks_of_segments(segments, self.line(children[0])))
                children = children[1:]
            for child in children:
                rest.extend(self.blocks(child))
            yield Entry(number, first, tuple(rest), self.line(item), self.glued(item))

    def blocks(self, node: SyntaxTreeNode) -> Iterator[Block]:
        """Content blocks for a node inside a list item, a quote, or a non-structural node."""
        line = self.line(node)
        kind = node.type
        if kind == "paragraph":
            yield from _blocks_of_segments(self.segments(node.children[0], line), line)
        elif kind == "heading":
            runs = _flat(self.segments(node.children[0], line))
            if runs:
                yield Heading(runs, line)
        elif kind in ("bullet_list", "ordered_list"):
            ordered = kind == "ordered_list"
            start = int(str(node.attrs.get("start", 1))) if ordered else 1
            entries = tuple(self.list_items(node))
            if entries:
                levels = tuple(level for _, level in entries)
                yield ListBlock(
                    tuple(item for item, _ in entries),
                    line,
                    ordered,
                    start,
                    levels if any(levels) else (),
                )
        elif kind == "blockquote":
            for child in node.children:
                for block in self.blocks(child):
                    if isinstance(block, Paragraph | Heading):
                        yield Quote(block.runs, block.line)
                    else:
                        yield block
        elif kind in ("fence", "code_block"):
            text = node.content.rstrip("\n")
            if text.strip():
                yield CodeBlock(text, line)
        elif kind == "html_block":
            for chunk in self.html_chunks(node.content, line):
                yield from _chunk_blocks(chunk)
        elif kind == "table":
            rows = _table_rows(self, node)
            if rows:
                yield ListBlock(tuple(rows), line)

    def list_items(self, node: SyntaxTreeNode) -> Iterator[tuple[Inline, int]]:
        """Each entry's text and depth; paragraphs inside an entry join with a line break,
        and a nested list's entries follow, one level deeper."""
        for item in node.children:
            parts: list[Inline] = []
            nested: list[tuple[Inline, int]] = []
            for child in item.children:
                for block in self.blocks(child):
                    if isinstance(block, ListBlock):
                        nested.extend(
                            (entry, block.level(index) + 1)
                            for index, entry in enumerate(block.items)
                        )
                    elif isinstance(block, Paragraph | Quote | Heading):
                        parts.append(block.runs)
                    elif isinstance(block, CodeBlock):
                        parts.append((Run(block.text, code=True),))
                    elif isinstance(block, Image) and block.alt:
                        parts.append((Run(block.alt),))
            joined: list[Run] = []
            for index, part in enumerate(parts):
                if index:
                    joined.append(Run(LINE_BREAK))
                joined.extend(part)
            if joined:
                yield merge(joined), 0
            yield from nested

    def segments(self, inline: SyntaxTreeNode, line: int) -> list[Inline | Image]:
        """An inline node's runs, cut where images stand; unusable images dropped, noted."""
        builder = InlineBuilder()
        _walk_inline(inline.children, builder, self.footnotes)
        return _usable(builder.finish(), line, self.notes)

    def html_chunks(self, html: str, line: int) -> Iterator[Chunk]:
        items: list[Inline] = []
        for piece in reduce_html_block(html):
            if piece.item:
                runs = _flat(_usable(list(piece.segments), line, self.notes))
                if runs:
                    items.append(runs)
                continue
            if items:
                yield Chunk(ChunkKind.BLOCK, line, blocks=(ListBlock(tuple(items), line),))
                items = []
            yield from self.html_piece(piece, line)
        if items:
            yield Chunk(ChunkKind.BLOCK, line, blocks=(ListBlock(tuple(items), line),))

    def html_piece(self, piece: HtmlPiece, line: int) -> Iterator[Chunk]:
        for segment in _usable(list(piece.segments), line, self.notes):
            if isinstance(segment, Image):
                yield Chunk(ChunkKind.BLOCK, line, blocks=(segment,))
            elif piece.level:
                yield Chunk(ChunkKind.HEADING, line, lines=(segment,), level=piece.level)
            else:
                lines = tuple(part for part in _split_breaks(segment) if part)
                if lines:
                    yield Chunk(ChunkKind.PARAGRAPH, line, lines=lines)


def _walk_inline(
    nodes: Sequence[SyntaxTreeNode], builder: InlineBuilder, footnotes: dict[int, str]
) -> None:
    for node in nodes:
        kind = node.type
        if kind == "footnote_ref":
            cited = footnotes.get(node.meta.get("id", -1))
            builder.text(f" ({cited})" if cited else "")
        elif kind == "footnote_anchor":
            continue
        elif kind == "text":
            builder.text(node.content)
        elif kind == "softbreak":
            builder.text(SOFT)
        elif kind == "hardbreak":
            builder.line_break()
        elif kind == "code_inline":
            builder.text(node.content, code=True)
        elif kind == "html_inline":
            builder.html(node.content)
        elif kind == "image":
            alt = "".join(child.content for child in node.children if child.type == "text")
            builder.image(str(node.attrs.get("src", "")), alt or node.content)
        elif kind == "strong":
            builder.strong += 1
            _walk_inline(node.children, builder, footnotes)
            builder.strong -= 1
        elif kind == "em":
            builder.emphasis += 1
            _walk_inline(node.children, builder, footnotes)
            builder.emphasis -= 1
        elif kind == "link":
            builder.open_link(str(node.attrs.get("href", "")))
            _walk_inline(node.children, builder, footnotes)
            builder.close_link()
        else:  # strikethrough and anything else: keep the text
            _walk_inline(node.children, builder, footnotes)


def _usable(segments: list[Segment], line: int, notes: Notes) -> list[Inline | Image]:
    """Absolute http(s) images kept as Images; the others dropped with a note naming them."""
    kept: list[Inline | Image] = []
    for segment in segments:
        if not isinstance(segment, ImageRef):
            kept.append(segment)
        elif segment.is_badge:
            notes.add(
                line,
                f"badge {quote(segment.alt or segment.src, 60)} dropped: it decorates a "
                "project page",
            )
        elif segment.usable:
            kept.append(Image(segment.src, segment.alt, line, segment.href))
        else:
            what = f"`{segment.src}`" if segment.src else "without an address"
            alt = f" ({segment.alt})" if segment.alt else ""
            notes.add(
                line,
                f"image {what}{alt} dropped: an email can only show an image at an absolute "
                "http(s) address; upload it and use its full URL, or remove it",
            )
    return kept


def _lines(runs: Inline) -> tuple[Inline, ...]:
    """A paragraph's runs cut at its soft line breaks, each line trimmed."""
    lines: list[Inline] = []
    current: list[Run] = []
    for run in runs:
        pieces = run.text.split(SOFT)
        for index, piece in enumerate(pieces):
            if index:
                lines.append(trim(current, keep_breaks=True))
                current = []
            if piece:
                current.append(Run(piece, run.url, run.strong, run.emphasis, run.code))
    lines.append(trim(current, keep_breaks=True))
    return tuple(line for line in lines if line)


def _flat(segments: Sequence[Inline | Image]) -> Inline:
    runs: list[Run] = []
    for segment in segments:
        if isinstance(segment, Image):
            continue
        if runs:
            runs.append(Run(" "))
        for index, line in enumerate(_lines(segment)):
            if index:
                runs.append(Run(" "))
            runs.extend(line)
    return trim(runs)


def _blocks_of_segments(segments: Sequence[Inline | Image], line: int) -> Iterator[Block]:
    for segment in segments:
        if isinstance(segment, Image):
            yield segment
        else:
            runs = _flat([segment])
            if runs:
                yield Paragraph(runs, line)


def _split_breaks(runs: Inline) -> Iterator[Inline]:
    """HTML text is one line: keep `<br>` as a break inside it, trimmed at the ends."""
    yield trim(runs)


def _chunk_blocks(chunk: Chunk) -> Iterator[Block]:
    if chunk.kind is ChunkKind.BLOCK:
        yield from chunk.blocks
    elif chunk.kind is ChunkKind.HEADING:
        yield Heading(chunk.runs, chunk.line)
    elif chunk.kind is ChunkKind.PARAGRAPH:
        yield Paragraph(chunk.runs, chunk.line)


def _table_rows(reader: _Reader, table: SyntaxTreeNode) -> list[Inline]:
    """A table as one entry per body row: "Header: cell · Header: cell"."""
    header: list[str] = []
    rows: list[Inline] = []
    for section in table.children:
        for row in section.children:
            cells = [
                _flat(reader.segments(cell.children[0], reader.line(row))) if cell.children else ()
                for cell in row.children
            ]
            if section.type == "thead":
                header = ["".join(run.text for run in cell) for cell in cells]
                continue
            runs: list[Run] = []
            for index, cell in enumerate(cells):
                if not cell:
                    continue
                if runs:
                    runs.append(Run(" · "))
                name = header[index] if index < len(header) else ""
                if name:
                    runs.append(Run(f"{name}: ", strong=True))
                runs.extend(cell)
            if runs:
                rows.append(merge(runs))
    return rows
