"""Plain text (and web copy) -> chunks.

Blocks are separated by blank lines (see `course.article.lines` for web copy without them).
A block of `•`/`-`/`*`/`+` lines is a bullet list (an indented line continues the bullet
above); a block of `>` lines is a quote; anything else is a paragraph, one Inline per line.
In a block that holds a line of over 200 characters every line is a paragraph of its own:
that is web copy, not text wrapped by hand. A tag of HTML in the text is reduced to its text,
and bare http(s) addresses become links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.inline import ImageRef, InlineBuilder, merge, trim, without_anchors
from course.article.lines import SourceLines
from course.content import Image, Inline, ListBlock, Quote, Run

_BULLET = re.compile(r"\s*[•\-*+–·▪◦]\s+(\S.*)")
_QUOTE = re.compile(r"\s*>\s?(.*)")
_RULE = re.compile(r"\s*([-*_=~])(?:\s*\1){2,}\s*")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|<!--")
_URL = re.compile(r"https?://[^\s<>()\[\]]+[^\s<>()\[\].,;:!?'\"’”]")
_WEB_COPY_LINE = 200


def read_text(source: SourceLines, notes: Notes) -> list[Chunk]:
    chunks: list[Chunk] = []
    for group in _groups(source):
        chunks.extend(_chunks_of(group, source, notes))
    return chunks


def _groups(source: SourceLines) -> Iterator[list[tuple[int, str]]]:
    group: list[tuple[int, str]] = []
    for index, line in enumerate(source.lines):
        if line.strip():
            group.append((index, line.rstrip()))
        elif group:
            yield group
            group = []
    if group:
        yield group


def _chunks_of(group: list[tuple[int, str]], source: SourceLines, notes: Notes) -> Iterator[Chunk]:
    for kind, lines in _by_kind(group):
        line = source.line_of(lines[0][0])
        if kind == "bullets":
            yield _bullets(lines, source, notes)
        elif kind == "quote":
            runs = _joined(_QUOTE.fullmatch(text)[1] for _, text in lines)  # type: ignore[index]
            yield Chunk(ChunkKind.BLOCK, line, blocks=(Quote(runs, line),))
        elif kind == "rule":
            yield Chunk(ChunkKind.RULE, line)
        else:
            yield from _text_lines(lines, source, notes)


def _by_kind(group: list[tuple[int, str]]) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """A block's lines cut where they change kind: bullets (with the indented lines that
    continue them), quote lines, a rule, running text."""
    kind = ""
    lines: list[tuple[int, str]] = []
    for index, text in group:
        if _RULE.fullmatch(text):
            this = "rule"
        elif _BULLET.fullmatch(text):
            this = "bullets"
        elif _QUOTE.fullmatch(text):
            this = "quote"
        elif kind == "bullets" and text[:1].isspace():
            this = "bullets"
        else:
            this = "text"
        if lines and (this != kind or this == "rule"):
            yield kind, lines
            lines = []
        kind = this
        lines.append((index, text))
    if lines:
        yield kind, lines


def _text_lines(group: list[tuple[int, str]], source: SourceLines, notes: Notes) -> Iterator[Chunk]:
    first = group[0][1]
    glued = source.line_of(group[0][0]) in source.glued
    indent = len(first) - len(first.lstrip())
    if len(group) > 1 and any(len(text.strip()) > _WEB_COPY_LINE for _, text in group):
        for index, text in group:
            yield from _paragraph([(index, text)], source, notes, indent, glued)
            glued = False
        return
    yield from _paragraph(group, source, notes, indent, glued)


def _paragraph(
    group: Sequence[tuple[int, str]], source: SourceLines, notes: Notes, indent: int, glued: bool
) -> Iterator[Chunk]:
    line = source.line_of(group[0][0])
    lines: list[Inline] = []
    for index, text in group:
        runs, images = inline_text(text.strip(), source.line_of(index), notes)
        if runs:
            lines.append(runs)
        for image in images:
            if lines:
                yield Chunk(
                    ChunkKind.PARAGRAPH, line, lines=tuple(lines), indent=indent, glued=glued
                )
                lines, glued = [], False
            yield Chunk(ChunkKind.BLOCK, source.line_of(index), blocks=(image,))
    if lines:
        yield Chunk(ChunkKind.PARAGRAPH, line, lines=tuple(lines), indent=indent, glued=glued)


def _bullets(group: list[tuple[int, str]], source: SourceLines, notes: Notes) -> Chunk:
    """Bullet lines; an indented plain line continues the bullet above, an indented bullet
    is nested under the one above."""
    items: list[list[str]] = []
    indents: list[int] = []
    for _, text in group:
        bullet = _BULLET.fullmatch(text)
        if bullet:
            items.append([bullet[1]])
            indents.append(len(text) - len(text.lstrip()))
        else:
            items[-1].append(text.strip())
    line = source.line_of(group[0][0])
    depths = sorted(set(indents))
    entries = [
        (inline_text(" ".join(item), line, notes)[0], depths.index(indent))
        for item, indent in zip(items, indents, strict=True)
    ]
    entries = [(runs, level) for runs, level in entries if runs]
    levels = tuple(_levels([level for _, level in entries]))
    block = ListBlock(
        tuple(runs for runs, _ in entries), line, levels=levels if any(levels) else ()
    )
    return Chunk(ChunkKind.BLOCK, line, blocks=(block,))


def _levels(raw: list[int]) -> list[int]:
    """Depths that step down at most one level at a time (a list cannot start nested)."""
    levels: list[int] = []
    for level in raw:
        levels.append(min(level, levels[-1] + 1) if levels else 0)
    return levels


def _joined(texts: Iterator[str]) -> Inline:
    return trim([Run(" ".join(t.strip() for t in texts if t.strip()))])


def inline_text(text: str, line: int, notes: Notes) -> tuple[Inline, list[Image]]:
    """One line of plain text as runs: HTML tags reduced, bare URLs linked."""
    images: list[Image] = []
    if _TAG.search(text):
        builder = InlineBuilder()
        builder.html(text)
        runs: list[Run] = []
        for segment in builder.finish():
            if isinstance(segment, ImageRef):
                if segment.is_badge:
                    notes.add(
                        line,
                        f"badge `{segment.alt or segment.src}` dropped: it decorates a "
                        "project page",
                    )
                elif segment.usable:
                    images.append(Image(segment.src, segment.alt, line, segment.href))
                else:
                    notes.add(line, f"image `{segment.src}` dropped: not at an http(s) address")
            else:
                runs.extend(segment)
    else:
        runs = [Run(text)]
    return _linked(without_anchors(trim(runs))), images


def _linked(runs: Inline) -> Inline:
    out: list[Run] = []
    for run in runs:
        if run.url or run.is_break or "http" not in run.text:
            out.append(run)
            continue
        position = 0
        for match in _URL.finditer(run.text):
            out.append(Run(run.text[position : match.start()], "", run.strong, run.emphasis))
            out.append(Run(match[0], match[0], run.strong, run.emphasis))
            position = match.end()
        out.append(Run(run.text[position:], "", run.strong, run.emphasis))
    return merge(out)
