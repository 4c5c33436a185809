"""The course's title: the front matter's, else the first heading, else the first short line.

Never an HTML line (those reduce to nothing), a rule, a web artefact ("Top of page"), an
item, or a paragraph: when nothing sane is there the title is "" and `course.name` must
be set (the build says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.furniture import DROPPED, is_furniture
from course.article.shapes import OPENING_WORDS, is_closing_heading, item_marker, quote
from course.content import Inline

MAX_TITLE_CHARS = 150
_MAX_SITE_WORDS = 4
_MIN_TITLE_WORDS = 3


def find_title(
    chunks: Sequence[Chunk], front_title: str, markdown: bool, notes: Notes
) -> tuple[str, list[Chunk]]:
    """(the title, the chunks without the title and the artefacts above it)."""
    title, rest = _find_title(chunks, front_title, markdown, notes)
    if front_title or " | " not in title:
        return title, rest
    # A browser tab's title: "8 Ways to Drink More Water | Example Health".
    head, _, site = title.rpartition(" | ")
    if len(site.split()) <= _MAX_SITE_WORDS and len(head.split()) >= _MIN_TITLE_WORDS:
        notes.add(None, f"{quote('| ' + site)} dropped from the title: it reads as the site's name")
        return head, rest
    return title, rest


def _find_title(
    chunks: Sequence[Chunk], front_title: str, markdown: bool, notes: Notes
) -> tuple[str, list[Chunk]]:
    rest = list(chunks)
    while rest and _is_artefact_chunk(rest[0]):
        dropped = rest.pop(0)
        notes.add(dropped.line, f"{quote(dropped.text)} {DROPPED}")
    leading = next(
        (
            i
            for i, c in enumerate(rest)
            if c.kind is not ChunkKind.RULE and c.kind is not ChunkKind.BLOCK
        ),
        None,
    )
    if front_title:
        if (
            leading is not None
            and rest[leading].is_heading
            and _same(rest[leading].text, front_title)
        ):
            del rest[leading]
        return front_title, rest
    if leading is None:
        return "", rest
    chunk = rest[leading]
    if chunk.is_heading and _usable(chunk.text) and not _sectioning(chunk.text):
        del rest[leading]
        return _flat(chunk.text), rest
    if markdown:
        for index, other in enumerate(rest):
            if other.is_heading and other.level == 1 and _usable(other.text):
                if not any(item_marker(c.text) for c in rest[:index] if c.lines):
                    del rest[index]
                    return _flat(other.text), rest
                break
    if chunk.kind is ChunkKind.PARAGRAPH and _usable(_first_line(chunk)) and _title_like(chunk):
        title = _flat(_first_line(chunk))
        if len(chunk.lines) == 1:
            del rest[leading]
        else:
            rest[leading] = replace(chunk, lines=chunk.lines[1:], line=chunk.line + 1)
        return title, rest
    return "", rest


def _first_line(chunk: Chunk) -> str:
    return "".join(run.text for run in chunk.lines[0]) if chunk.lines else ""


def _title_like(chunk: Chunk) -> bool:
    """A first line that reads as a title, not the start of prose."""
    line = _first_line(chunk).strip()
    if line.endswith(".") and not line.endswith("..."):
        return False
    if len(chunk.lines) == 1:
        return True
    following = "".join(run.text for run in chunk.lines[1]).lstrip()[:1]
    return following.isupper() or not following.isalpha()


def _usable(text: str) -> bool:
    text = text.strip()
    return (
        bool(text)
        and len(text) <= MAX_TITLE_CHARS
        and not is_furniture(text)
        and item_marker(text) is None
        and set(text) - set("-=*_#~ ") != set()
    )


def _sectioning(text: str) -> bool:
    """ "Introduction", "Conclusion": a section's heading, not the article's title."""
    return OPENING_WORDS.match(text.strip()) is not None or is_closing_heading(text)


def _is_artefact_chunk(chunk: Chunk) -> bool:
    return (
        chunk.kind in (ChunkKind.PARAGRAPH, ChunkKind.HEADING)
        and len(chunk.lines) == 1
        and is_furniture(chunk.text)
    )


def _same(a: str, b: str) -> bool:
    return _flat(a).casefold() == _flat(b).casefold()


def _flat(text: str) -> str:
    return " ".join(text.split())


def title_runs(chunk: Chunk) -> Inline:
    return chunk.runs
