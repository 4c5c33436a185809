"""Item candidates: every chunk (or numbered-list entry) that opens with an item marker.

A candidate's title is the text after its marker: a leading bold run, else a first line
that reads as a title, else the first sentence. What follows the title in the same
paragraph is the start of the item's body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from course.article.chunks import Chunk, ChunkKind
from course.article.inline import drop_prefix, take_prefix, trim, trim_start
from course.article.shapes import Marker, item_marker
from course.content import Block, Inline, Paragraph, Run, plain

MAX_TITLE_CHARS = 100
_SENTENCE = re.compile(r"[.?!:](?=\s+\S)|[。！？：](?=\S)")
# "Relevance – the text…": a short lead, a spaced dash, then the text.
_DASHED_LEAD = re.compile(r"\s[–—-]\s+(?=\S)")
MAX_LEAD_CHARS = 60
_TEXT_WORDS = 12
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.")
_TITLE_SEPARATORS = ":.–—-|"


@dataclass(frozen=True)
class Family:
    """Items of one list share how they are written: heading level, noun, delimiter, bold."""

    heading_level: int  # 0 for paragraphs and list entries
    noun: str
    delimiter: str
    hashed: bool
    bold: bool


@dataclass(frozen=True)
class Candidate:
    """A chunk (or list entry) that opens with an item marker."""

    chunk: int
    entry: int  # index into the LIST chunk's entries; -1 for a heading or paragraph
    number: int
    family: Family
    title: str
    rest: tuple[Block, ...]  # the body the candidate carries itself
    line: int
    indent: int
    glued: bool
    source: str  # the line as written, for messages
    after_marker: Inline  # everything after the marker, for when it is content after all

    @property
    def position(self) -> tuple[int, int]:
        return (self.chunk, self.entry)

    @property
    def is_heading(self) -> bool:
        return self.family.heading_level > 0


def candidates(chunks: Sequence[Chunk], nouns: tuple[str, ...]) -> list[Candidate]:
    found: list[Candidate] = []
    for index, chunk in enumerate(chunks):
        if chunk.kind is ChunkKind.LIST:
            # One Markdown list is one family, whether or not each entry opens in bold
            # ("1. **Tool** – …", "2. [Tool](…) – …"): most of its entries decide.
            opens_bold = sum(
                1 for e in chunk.entries if e.lines and e.lines[0][:1] and e.lines[0][0].strong
            )
            family = Family(
                0, "", chunk.ordered_delimiter, False, opens_bold * 2 > len(chunk.entries)
            )
            for number, entry in enumerate(chunk.entries):
                if not entry.lines:
                    continue
                title, rest = split_title(entry.lines, entry.line)
                found.append(
                    Candidate(
                        index,
                        number,
                        entry.number,
                        family,
                        title,
                        rest + entry.blocks,
                        entry.line,
                        0,
                        entry.glued,
                        f"{entry.number}{chunk.ordered_delimiter} {_text(entry.lines)}",
                        _joined(entry.lines),
                    )
                )
        elif chunk.kind in (ChunkKind.HEADING, ChunkKind.PARAGRAPH) and chunk.lines:
            candidate = _candidate(index, chunk, nouns)
            if candidate is not None:
                found.append(candidate)
    return found


def _candidate(index: int, chunk: Chunk, nouns: tuple[str, ...]) -> Candidate | None:
    first = chunk.lines[0]
    text = plain(first)
    stripped = text.lstrip()
    marker = item_marker(stripped, nouns)
    if marker is None:
        return None
    cut = len(text) - len(stripped) + marker.length
    lines = (trim(drop_prefix(first, cut)), *chunk.lines[1:])
    bold = bool(first) and first[0].strong
    family = _family(marker, chunk.level if chunk.is_heading else 0, bold)
    rest: tuple[Block, ...]
    if chunk.is_heading:
        title = _clean_title(plain(_joined(lines)))
        rest = title_links(lines[0], title, chunk.line)
    else:
        title, rest = split_title(lines, chunk.line)
    return Candidate(
        index,
        -1,
        marker.number,
        family,
        title,
        rest,
        chunk.line,
        chunk.indent,
        chunk.glued,
        chunk.text,
        _joined(lines),
    )


def _family(marker: Marker, level: int, bold: bool) -> Family:
    noun, delimiter, hashed = marker.style
    # A heading is a heading: "## 1.", "## 2)" and "## **3. …**" are one list. In running
    # text the delimiter tells lists apart ("1)" items with "1." sub-steps), as CommonMark
    # does, and so does bold ("**1. Title**" items with plain "1." sub-steps).
    if level:
        return Family(level, noun, "", hashed, False)
    return Family(level, noun, delimiter, hashed, bold)


def split_title(lines: Sequence[Inline], line: int) -> tuple[str, tuple[Block, ...]]:
    """(title, the body that follows it in the same paragraph). A link in the title (a
    subject line cannot hold one) opens the body, so its address is not lost."""
    title, body = _split_title(lines, line)
    links = title_links(lines[0] if lines else (), title, line)
    if links and body and isinstance(body[0], Paragraph):
        # "Hemingway Editor: Highlights long sentences…", the name linked.
        opened = Paragraph((*links[0].runs, Run(": "), *body[0].runs), body[0].line)
        return title, (opened, *body[1:])
    return title, links + body


def title_links(first: Inline, title: str, line: int) -> tuple[Paragraph, ...]:
    """The links of a title's line that are part of the title, as a paragraph."""
    linked = [run for run in first if run.url and run.text.strip() and run.text.strip() in title]
    if not linked:
        return ()
    runs: list[Run] = []
    for run in linked:
        if runs:
            runs.append(Run(" · "))
        runs.append(replace(run, text=run.text.strip(), strong=False, emphasis=False))
    return (Paragraph(tuple(runs), line),)


def _split_title(lines: Sequence[Inline], line: int) -> tuple[str, tuple[Block, ...]]:
    if not lines or not lines[0]:
        return "", ()
    first = lines[0]
    if first[0].strong or (first[0].emphasis and len(first) > 1):
        lead = first[0]
        title = _clean_title(lead.text)
        after = trim_start(trim(first[1:]), _TITLE_SEPARATORS)
        if title:
            return title, _body((after, *lines[1:]), line)
    text = plain(first).strip()
    if len(lines) > 1 and _reads_as_title_line(text, plain(lines[1])):
        return _clean_title(text), _body(lines[1:], line)
    joined = _joined(lines)
    whole = plain(joined).strip()
    end = _first_sentence_end(whole)
    dash = _DASHED_LEAD.search(whole, 0, MAX_LEAD_CHARS + 1)
    if dash is not None and (end is None or dash.start() < end) and _is_text(whole[dash.end() :]):
        title, cut = whole[: dash.start()], dash.end()
    elif end is None:
        return _clean_title(whole), ()
    else:
        title, cut = whole[: end + 1], end + 1
    rest = trim_start(drop_prefix(joined, len(_leading_space(joined)) + cut), " ")
    return _clean_title(title), _body((rest,), line)


def _is_text(tail: str) -> bool:
    """What follows a dash is the item's text, not the rest of its title ("Sleep – the
    habit nobody tracks"): a sentence, or a long run of words."""
    tail = tail.strip().rstrip("”’\"')")
    return tail.endswith((".", "!", "?", "…")) or len(tail.split()) >= _TEXT_WORDS


def _first_sentence_end(text: str) -> int | None:
    for match in _SENTENCE.finditer(text):
        end = match.start()
        if end > MAX_TITLE_CHARS:
            return None
        word = text[: end + 1].rsplit(None, 1)[-1].lower()
        if text[end] == "." and (word in _ABBREVIATIONS or re.fullmatch(r"\w\.", word)):
            continue
        return end
    return None


def _reads_as_title_line(first: str, second: str) -> bool:
    """A short first line, not cut mid-sentence: the next line starts a new sentence."""
    if len(first) > MAX_TITLE_CHARS or first.endswith((",", ";", "-", "–")):
        return False
    opener = second.lstrip()[:1]
    # Not a lower-case letter: upper case, a digit, a quotation mark, or a script without
    # case (Chinese, Japanese).
    return bool(opener) and not opener.islower()


def _clean_title(text: str) -> str:
    text = " ".join(text.split())
    return text.rstrip(" :.–—-|").strip() or text


def _body(lines: Sequence[Inline], line: int) -> tuple[Block, ...]:
    """What followed the title in its paragraph, as a paragraph of its own; it starts a
    sentence now ("**Title**: before you…" -> "Before you…")."""
    runs = trim(_joined(lines))
    if not runs:
        return ()
    first = runs[0]
    if first.text[:1].islower() and not first.code and not first.url:
        runs = (replace(first, text=first.text[0].upper() + first.text[1:]), *runs[1:])
    return (Paragraph(runs, line),)


def _joined(lines: Sequence[Inline]) -> Inline:
    runs: list[Run] = []
    for line in lines:
        if not line:
            continue
        if runs:
            runs.append(Run(" "))
        runs.extend(line)
    return tuple(runs)


def _text(lines: Sequence[Inline]) -> str:
    return " ".join(plain(line) for line in lines)


def _leading_space(runs: Inline) -> str:
    text = plain(take_prefix(runs, 10))
    return text[: len(text) - len(text.lstrip())]
