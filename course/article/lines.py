"""Source lines made ready for reading, with a map back to the article's own line numbers.

Two habits of web copy are undone here, before either reader sees the text:

- An item line ("4) Title", "Step 4:", "#4 –") right under a paragraph, with no blank line
  between, starts a new block: a blank line is put before it, and the line is remembered
  as glued so the operator hears about it if it turns out to be an item.
- A file with no blank line anywhere (paragraphs separated by single newlines) is read as
  one paragraph per line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from course.article.shapes import item_marker

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_BULLET = re.compile(r"\s*(?:[-*+•–·]|\d{1,3}[.)])\s")
_QUOTE = re.compile(r" {0,3}>")
_BULLET_CHARACTER = re.compile(r"^(\s*)[•◦▪·]\s+")
_HEADING = re.compile(r" {0,3}#{1,6}(?:\s|$)")
_EMPHASIS_OPENERS = ("**", "__", "*", "_")
# Below this many lines a file without blank lines is a title and a sentence, not web copy.
_MIN_SINGLE_NEWLINE_LINES = 4


@dataclass(frozen=True)
class SourceLines:
    """The lines to read; `origin[i]` is the article's 1-based line number of `lines[i]`."""

    lines: tuple[str, ...]
    origin: tuple[int, ...]
    glued: frozenset[int]
    single_newlines: bool

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def line_of(self, index: int) -> int:
        """The article's line number for a 0-based index into `lines`."""
        return self.origin[min(index, len(self.origin) - 1)] if self.origin else 1


_NUMBER_LINE = re.compile(r" {0,3}(\*\*|__)?\(?0*(\d{1,3})[.):]?(\*\*|__)?\s*")
_NUMBER_TITLE_CHARS = 120


def join_number_lines(body: list[str], first: int) -> tuple[list[str], list[int]]:
    """Web copy that puts each item's number on a line of its own ("01", then the title on
    the next line): (the lines with "1. Title" on the title's line and the number's line
    gone, each line's 1-based number in the article). Only for two or more such numbers in
    order, so a lone "12" (a counter) is left alone. `first` is the number of body[0]."""
    numbers = list(range(first, first + len(body)))
    found: list[tuple[int, int, int]] = []  # (number's line, title's line, number)
    fence = ""
    for index, line in enumerate(body):
        fence, in_fence = _fence_state(fence, line)
        if in_fence:
            continue
        match = _NUMBER_LINE.fullmatch(line)
        if match is None or not match[2]:
            continue
        following = next(
            (j for j in range(index + 1, min(index + 3, len(body))) if body[j].strip()), None
        )
        if following is None:
            continue
        title = body[following].strip()
        if len(title) > _NUMBER_TITLE_CHARS or _NUMBER_LINE.fullmatch(body[following]):
            continue
        found.append((index, following, int(match[2])))
    steps = {b[2] - a[2] for a, b in itertools.pairwise(found)}
    if len(found) < 2 or steps not in ({1}, {-1}):
        return body, numbers
    gone: set[int] = set()
    joined = list(body)
    for index, following, number in found:
        joined[following] = f"{number}. {body[following].strip()}"
        gone.update(range(index, following))
    kept = [i for i in range(len(body)) if i not in gone]
    return [joined[i] for i in kept], [numbers[i] for i in kept]


def split_lines(text: str) -> list[str]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def prepare(raw: list[str], verbatim: int, *, markdown: bool) -> SourceLines:
    """The lines ready for a reader; the first `verbatim` ones (front matter) are untouched."""
    body, numbers = join_number_lines(raw[verbatim:], verbatim + 1)
    single = _single_newlines(body)
    lines: list[str] = list(raw[:verbatim])
    origin: list[int] = list(range(1, verbatim + 1))
    glued: set[int] = set()
    fence = ""
    previous = ""
    block_start = ""  # the first line of the block `previous` is in
    for offset, line in enumerate(body):
        number = numbers[offset]
        if markdown:
            fence, in_fence = _fence_state(fence, line)
            if in_fence:
                lines.append(line)
                origin.append(number)
                previous = line
                continue
        if not previous.strip():
            block_start = line
        if previous.strip() and _starts_item(line, markdown):
            # Under prose, an item line is glued; in a list (entries and the lines that
            # continue them) it is just the next entry.
            if not single and not _is_list_or_heading(block_start, markdown):
                glued.add(number)
            block_start = line
            lines.append("")
            origin.append(number)
        elif single and previous.strip() and line.strip() and not _continues(line, markdown):
            lines.append("")
            origin.append(number)
        if markdown:
            # Web copy's bullets, which Markdown does not know, become Markdown's.
            line = _BULLET_CHARACTER.sub(r"\1- ", line)
        lines.append(line)
        origin.append(number)
        previous = line
    return SourceLines(tuple(lines), tuple(origin), frozenset(glued), single)


def _is_list_or_heading(line: str, markdown: bool) -> bool:
    """A line after which an item line is simply the next entry, not glued to prose."""
    if _BULLET.match(line) or _starts_item(line, markdown):
        return True
    return markdown and _HEADING.match(line) is not None


def _single_newlines(body: list[str]) -> bool:
    filled = [line for line in body if line.strip()]
    if len(filled) < _MIN_SINGLE_NEWLINE_LINES:
        return False
    start = next(i for i, line in enumerate(body) if line.strip())
    end = max(i for i, line in enumerate(body) if line.strip())
    return all(line.strip() for line in body[start : end + 1])


def _continues(line: str, markdown: bool) -> bool:
    """Lines that must stay with the line above even in single-newline copy."""
    if markdown:
        return line.startswith(("    ", "\t", "|")) or _QUOTE.match(line) is not None
    return False


def _fence_state(fence: str, line: str) -> tuple[str, bool]:
    """(the open fence after this line, whether this line is inside or on a fence)."""
    match = _FENCE.match(line)
    if fence:
        if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
            return "", True
        return fence, True
    if match:
        return match[1], True
    return "", False


def _starts_item(line: str, markdown: bool) -> bool:
    stripped = line.strip()
    if markdown and (line.startswith("    ") or _QUOTE.match(line)):
        return False
    for opener in _EMPHASIS_OPENERS:
        if stripped.startswith(opener):
            stripped = stripped[len(opener) :]
            break
    return item_marker(stripped) is not None
