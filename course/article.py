"""Parse a listicle article (plain text or Markdown) into a `Course`.

The shape: title (first non-blank line), preamble, reasons heading, items `1) Title`..`N)`,
action heading, steps `1)`..`M)`, closing sections. How each part is recognised:

- Blocks are separated by blank lines; a block's lines are joined with a space. `•` lines
  (also `-`/`*`/`+` in Markdown) form one `BulletList`; a block wholly wrapped in quotation
  marks, or `>` lines in Markdown, is a `Quote`. Text is kept as written, trailing spaces cut.
- The article is Markdown if any line is an ATX heading (`## …`). There only `#` lines are
  headings; a `#` line deeper than the numbered ones is kept as a paragraph.
- An item is a block that is one line `N) Title` or `N. Title`; in Markdown, if any heading is
  numbered, only numbered headings are items. Items must run 1..N; numbering restarting at 1
  starts the action list, and a missing action list (M = 0, a pure listicle) is accepted.
- A plain-text heading is a one-line block of at most 120 characters that is not a quotation
  and ends in "?" or in no sentence punctuation. Headings are only looked for in three places,
  never inside an item: the reasons heading is the last heading stating a count ("11 reasons")
  before item 1, else the block right before item 1 if it is a heading; the action heading is
  found the same way between the last reason and the restart, and blocks after it join step 1;
  after the last item, the first heading followed by more blocks (or a Markdown `---`) opens
  the closing sections, where a paragraph opening with a short question ("Did you like our
  article? Like us…") starts a section without a heading. A missing heading is "".
- Preamble paragraphs that mention affiliates, commission, sponsoring or a disclosure are the
  disclosure; every other preamble block is the welcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from course.content import Block, BulletList, Course, Lesson, Paragraph, Quote, Section
from course.errors import ArticleError

MAX_HEADING_CHARS = 120
# "Did you like our article? Like us…" is a run-in question; a long first sentence is prose.
_RUN_IN_QUESTION_CHARS = 60

_ATX_HEADING = re.compile(r" {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?")
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}")
_BULLET = re.compile(r"\s*•\s*(.*)")
_MARKDOWN_BULLET = re.compile(r"\s*[-*+]\s+(.*)")
_MARKDOWN_QUOTE = re.compile(r" {0,3}>\s?(.*)")
# Three digits at most, so a year standing alone ("2019.") is never taken for an item.
_NUMBERED = re.compile(r"(\d{1,3})([.)])\s+(\S.*)")
# A closed list of listicle nouns: "what to do in 24 hours" must not read as a count.
_COUNTED_NOUNS = (
    "reasons|signs|ways|things|steps|tips|tricks|strategies|mistakes|habits|secrets|questions"
    "|rules|lessons|ideas|facts|traits|methods|keys|truths|stages|phrases|examples|causes"
    "|symptoms|hacks|benefits|myths|options|exercises|flags|behaviors|behaviours|actions"
)
_COUNT = re.compile(rf"\b(\d{{1,3}})\s+(?:[^\W\d_]+\s+){{0,2}}?({_COUNTED_NOUNS})\b", re.IGNORECASE)
_DISCLOSURE = re.compile(r"\b(?:affiliates?|commissions?|sponsored|disclosure)\b", re.IGNORECASE)
_SENTENCE_END = ".!…:;,"
_CLOSING_MARKS = "”’\"')]»"
_QUOTE_PAIRS = (("“", "”"), ('"', '"'), ("„", "“"), ("«", "»"))

LineKind = Literal["blank", "text", "bullet", "quote", "heading", "rule"]
ChunkKind = Literal["text", "bullets", "quote", "heading", "subheading", "rule"]


@dataclass(frozen=True)
class _Line:
    """One source line, classified."""

    kind: LineKind
    number: int
    content: str
    indented: bool = False
    level: int = 0


@dataclass(frozen=True)
class _Chunk:
    """A run of lines that reads as one unit: a paragraph, a list, a quote, a heading."""

    kind: ChunkKind
    text: str
    line: int
    single_line: bool = True
    level: int = 0
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Item:
    """A numbered line: `index` is its position in the chunk list."""

    index: int
    number: int
    marker: str
    title: str
    line: int


@dataclass(frozen=True)
class _Layout:
    """Where the action list starts in the items, and chunk indices of headings and closing."""

    split: int
    reasons_heading: int | None
    action_heading: int | None
    closing_at: int


def load_article(path: Path) -> Course:
    """Read and parse the article at `path`; unreadable or non-UTF-8 files raise ArticleError."""
    return parse_article(_read_text(path), source=str(path))


def parse_article(text: str, *, source: str) -> Course:
    """Parse the article text; `source` names it in error messages and in Course.source."""
    lines = _split_lines(text)
    title_at = _title_index(lines, source)
    markdown = any(_ATX_HEADING.fullmatch(line) for line in lines)
    chunks = _chunks(lines, title_at + 1, markdown)
    items = _find_items(chunks)
    if not items:
        raise ArticleError(f'{source}: no numbered items found (expected lines like "1) Title")')
    chunks = _demote_subheadings(chunks, items)
    layout = _layout(chunks, items, _action_start(items, source), markdown)
    _check_count(_chunk_at(chunks, layout.reasons_heading), layout.split, source)
    _check_count(_chunk_at(chunks, layout.action_heading), len(items) - layout.split, source)
    title = _title_text(lines[title_at], markdown)
    return _course(title, chunks, items, layout, markdown, source)


def _read_text(path: Path) -> str:
    """The file's text, BOM removed."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ArticleError(f"{path}: cannot read the article: {error.strerror or error}") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = _line_number_at_end(data[: error.start])
        bad = data[error.start]
        raise ArticleError(f"{path}: line {line}: not UTF-8 (byte 0x{bad:02x})") from error


def _line_number_at_end(prefix: bytes) -> int:
    """The 1-based line on which `prefix` ends, counting CRLF, LF and CR as line breaks."""
    return prefix.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1


def _split_lines(text: str) -> list[str]:
    """The lines without BOM, line endings or trailing whitespace (NBSP included)."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [line.rstrip() for line in text.split("\n")]


def _title_index(lines: Sequence[str], source: str) -> int:
    """Index of the first non-blank line."""
    for index, line in enumerate(lines):
        if line:
            return index
    raise ArticleError(f"{source}: the article is empty")


def _title_text(line: str, markdown: bool) -> str:
    """The title line without Markdown's `#` marks."""
    heading = _ATX_HEADING.fullmatch(line) if markdown else None
    return heading[2] if heading else line.strip()


def _chunks(lines: Sequence[str], start: int, markdown: bool) -> list[_Chunk]:
    """The lines from `start` on, grouped into chunks."""
    classified = [_classify(line, number, markdown) for number, line in enumerate(lines, 1)]
    return _merge_bullet_lists(_chunk_of(group) for group in _group(classified[start:]))


def _classify(raw: str, number: int, markdown: bool) -> _Line:
    """What one line is; Markdown syntax counts only in a Markdown article."""
    if not raw:
        return _Line("blank", number, "")
    if markdown:
        marked = _classify_markdown(raw, number)
        if marked is not None:
            return marked
    bullet = _BULLET.fullmatch(raw)
    if bullet:
        return _Line("bullet", number, bullet[1])
    return _Line("text", number, raw.strip(), indented=raw[0].isspace())


def _classify_markdown(raw: str, number: int) -> _Line | None:
    """The line's Markdown kind, or None for plain text."""
    if heading := _ATX_HEADING.fullmatch(raw):
        return _Line("heading", number, heading[2], level=len(heading[1]))
    if _THEMATIC_BREAK.fullmatch(raw):
        return _Line("rule", number, "")
    if quote := _MARKDOWN_QUOTE.fullmatch(raw):
        # An empty `>` line separates two quoted paragraphs, like a blank line.
        return _Line("quote" if quote[1].strip() else "blank", number, quote[1].strip())
    if bullet := _MARKDOWN_BULLET.fullmatch(raw):
        return _Line("bullet", number, bullet[1])
    return None


def _group(lines: Iterable[_Line]) -> list[list[_Line]]:
    """Consecutive lines that belong together; blank lines, headings and rules separate."""
    groups: list[list[_Line]] = []
    previous: LineKind = "blank"
    for line in lines:
        continues = _continues(previous, line)
        if continues:
            groups[-1].append(line)
        elif line.kind != "blank":
            groups.append([line])
        # An indented line under a bullet continues that bullet, so the group stays a list.
        previous = "bullet" if continues and previous == "bullet" else line.kind
    return groups


def _continues(previous: LineKind, line: _Line) -> bool:
    """Whether `line` carries on the group that a `previous` line is in."""
    if previous == "bullet" and line.kind == "text":
        return line.indented
    return previous == line.kind and line.kind in ("text", "bullet", "quote")


def _chunk_of(group: Sequence[_Line]) -> _Chunk:
    """The chunk a group of lines makes."""
    first = group[0]
    if first.kind == "bullet":
        return _Chunk("bullets", "", first.number, items=_bullet_items(group))
    if first.kind == "heading":
        return _Chunk("heading", first.content, first.number, level=first.level)
    if first.kind == "rule":
        return _Chunk("rule", "", first.number)
    text = " ".join(line.content for line in group)
    kind: ChunkKind = "quote" if first.kind == "quote" else "text"
    return _Chunk(kind, text, first.number, single_line=len(group) == 1)


def _bullet_items(group: Sequence[_Line]) -> tuple[str, ...]:
    """One string per bullet; indented lines continue the bullet above."""
    items: list[str] = []
    for line in group:
        if line.kind == "bullet":
            items.append(line.content)
        else:
            items[-1] = f"{items[-1]} {line.content}"
    return tuple(items)


def _merge_bullet_lists(chunks: Iterable[_Chunk]) -> list[_Chunk]:
    """Bullet lists separated only by blank lines are one (loose) list."""
    merged: list[_Chunk] = []
    for chunk in chunks:
        if merged and chunk.kind == merged[-1].kind == "bullets":
            merged[-1] = replace(merged[-1], items=merged[-1].items + chunk.items)
        else:
            merged.append(chunk)
    return merged


def _find_items(chunks: Sequence[_Chunk]) -> list[_Item]:
    """The numbered items: numbered headings if there are any, else numbered one-line blocks."""
    return _numbered(chunks, "heading") or _numbered(chunks, "text")


def _numbered(chunks: Sequence[_Chunk], kind: ChunkKind) -> list[_Item]:
    """Every one-line chunk of this kind that reads `N) Title` or `N. Title`."""
    found = (_item_at(index, chunk) for index, chunk in enumerate(chunks) if chunk.kind == kind)
    return [item for item in found if item is not None]


def _item_at(index: int, chunk: _Chunk) -> _Item | None:
    """The item this chunk starts, or None."""
    match = _NUMBERED.fullmatch(chunk.text) if chunk.single_line else None
    if match is None:
        return None
    return _Item(index, int(match[1]), match[1] + match[2], match[3], chunk.line)


def _demote_subheadings(chunks: Sequence[_Chunk], items: Sequence[_Item]) -> list[_Chunk]:
    """Headings deeper than the numbered ones are part of an item's text, not sections."""
    item_level = max(chunks[item.index].level for item in items) or 6
    return [
        replace(chunk, kind="subheading")
        if chunk.kind == "heading" and chunk.level > item_level
        else chunk
        for chunk in chunks
    ]


def _action_start(items: Sequence[_Item], source: str) -> int:
    """Where numbering restarts at 1 (len(items) if never); each list must run 1, 2, 3, …."""
    start = len(items)
    expected = 1
    for position, item in enumerate(items):
        if item.number == 1 and 0 < position < start:
            start, expected = position, 1
        if item.number != expected:
            found = f"{item.marker} {item.title}"
            raise _error(source, item.line, f"expected item {expected}, found {found}")
        expected += 1
    return start


def _layout(
    chunks: Sequence[_Chunk], items: Sequence[_Item], split: int, markdown: bool
) -> _Layout:
    """Find the reasons heading, the action heading and where the closing starts."""
    reasons_heading = _pick_heading(chunks, 0, items[0].index, markdown)
    action_heading = None
    if split < len(items):
        gap_start = items[split - 1].index + 1
        action_heading = _pick_heading(chunks, gap_start, items[split].index, markdown)
    closing_at = _closing_start(chunks, items[-1].index + 1, markdown)
    return _Layout(split, reasons_heading, action_heading, closing_at)


def _pick_heading(chunks: Sequence[_Chunk], start: int, stop: int, markdown: bool) -> int | None:
    """The last heading stating a count in [start, stop), else the last chunk if a heading."""
    counted = [i for i in range(start, stop) if _is_counted_heading(chunks[i], markdown)]
    if counted:
        return counted[-1]
    if start < stop and _is_heading(chunks[stop - 1], markdown):
        return stop - 1
    return None


def _is_heading(chunk: _Chunk, markdown: bool) -> bool:
    """Whether the chunk can be a section heading."""
    if markdown:
        return chunk.kind == "heading"
    return chunk.kind == "text" and chunk.single_line and _reads_as_heading(chunk.text)


def _is_counted_heading(chunk: _Chunk, markdown: bool) -> bool:
    """A heading that announces the list ("11 reasons"); in Markdown every heading is explicit."""
    if not _is_heading(chunk, markdown):
        return False
    return markdown or _COUNT.search(chunk.text) is not None


def _reads_as_heading(text: str) -> bool:
    """Short, not a quotation or a link, and ends in "?" or in no sentence punctuation."""
    if len(text) > MAX_HEADING_CHARS or _is_wrapped_quote(text) or "://" in text:
        return False
    last = text.rstrip(_CLOSING_MARKS)[-1:]
    return last == "?" or (last != "" and last not in _SENTENCE_END)


def _is_wrapped_quote(text: str) -> bool:
    """Whether one pair of quotation marks wraps the whole text."""
    return any(
        len(text) > 1
        and text.startswith(opening)
        and text.endswith(closing)
        # “A,” he said, “b.” opens and closes with quotation marks but is no quotation.
        and closing not in text[1:-1]
        for opening, closing in _QUOTE_PAIRS
    )


def _closing_start(chunks: Sequence[_Chunk], start: int, markdown: bool) -> int:
    """Index of the first chunk that opens a closing section (len(chunks) if none)."""
    for index in range(start, len(chunks)):
        if _opens_section(chunks, index, markdown):
            return index
    return len(chunks)


def _opens_section(chunks: Sequence[_Chunk], index: int, markdown: bool) -> bool:
    """A Markdown heading, or a heading or `---` that more blocks follow."""
    chunk = chunks[index]
    if markdown and chunk.kind == "heading":
        return True
    followed = index + 1 < len(chunks)
    return followed and (chunk.kind == "rule" or _is_heading(chunk, markdown))


def _is_run_in_question(chunk: _Chunk) -> bool:
    """A paragraph that opens with a short question and carries on after it."""
    if chunk.kind != "text" or _is_wrapped_quote(chunk.text):
        return False
    mark = chunk.text.find("?")
    return 0 < mark < _RUN_IN_QUESTION_CHARS and chunk.text[mark + 1 : mark + 2] == " "


def _check_count(heading: _Chunk | None, count: int, source: str) -> None:
    """A heading that states a count ("11 reasons") must match its list."""
    match = _COUNT.search(heading.text) if heading else None
    if heading is None or match is None or int(match[1]) == count:
        return
    items = "item" if count == 1 else "items"
    said = f"{match[1]} {match[2]}"
    raise _error(source, heading.line, f"heading says {said} but the list has {count} {items}")


def _chunk_at(chunks: Sequence[_Chunk], index: int | None) -> _Chunk | None:
    """The chunk at `index`, or None when there is no index."""
    return None if index is None else chunks[index]


def _course(
    title: str,
    chunks: Sequence[_Chunk],
    items: Sequence[_Item],
    layout: _Layout,
    markdown: bool,
    source: str,
) -> Course:
    """Put every chunk in its place."""
    preamble = [
        chunk for i, chunk in enumerate(chunks[: items[0].index]) if i != layout.reasons_heading
    ]
    disclosure, welcome = _split_preamble(_blocks(preamble))
    bodies = _lesson_bodies(chunks, items, layout)
    return Course(
        title=title,
        disclosure=disclosure,
        welcome=welcome,
        reasons_heading=_heading_text(chunks, layout.reasons_heading),
        action_heading=_heading_text(chunks, layout.action_heading),
        lessons=_lessons(items, bodies, layout.split),
        closing=_closing_sections(chunks[layout.closing_at :], markdown),
        source=source,
    )


def _heading_text(chunks: Sequence[_Chunk], index: int | None) -> str:
    """The heading's text, or "" when the article has none there."""
    return "" if index is None else chunks[index].text


def _split_preamble(blocks: Sequence[Block]) -> tuple[tuple[Block, ...], tuple[Block, ...]]:
    """(disclosure, welcome): the affiliate/commission paragraphs, then everything else."""
    disclosure: list[Block] = []
    welcome: list[Block] = []
    for block in blocks:
        is_disclosure = isinstance(block, Paragraph) and _DISCLOSURE.search(block.text)
        (disclosure if is_disclosure else welcome).append(block)
    return tuple(disclosure), tuple(welcome)


def _lesson_bodies(
    chunks: Sequence[_Chunk], items: Sequence[_Item], layout: _Layout
) -> list[list[_Chunk]]:
    """Each item's chunks: up to the next item, the action heading or the closing."""
    ends = [item.index for item in items[1:]] + [layout.closing_at]
    bodies = [list(chunks[item.index + 1 : end]) for item, end in zip(items, ends, strict=True)]
    heading = layout.action_heading
    if heading is not None:
        split = layout.split
        last_reason, first_step = items[split - 1], items[split]
        bodies[split - 1] = list(chunks[last_reason.index + 1 : heading])
        # Course has no field for an action intro; step 1 is where the reader meets it.
        bodies[split] = list(chunks[heading + 1 : first_step.index]) + bodies[split]
    return bodies


def _lessons(
    items: Sequence[_Item], bodies: Sequence[Sequence[_Chunk]], split: int
) -> tuple[Lesson, ...]:
    """One lesson per item, reasons first, days 1..N+M."""
    return tuple(
        Lesson(
            day=day,
            kind="reason" if day <= split else "action",
            number=item.number,
            title=item.title,
            blocks=_blocks(body),
            line=item.line,
        )
        for day, (item, body) in enumerate(zip(items, bodies, strict=True), start=1)
    )


def _closing_sections(chunks: Sequence[_Chunk], markdown: bool) -> tuple[Section, ...]:
    """The chunks after the last item, cut into sections at headings, rules, run-in questions."""
    groups: list[tuple[_Chunk | None, list[_Chunk]]] = []
    for index, chunk in enumerate(chunks):
        if _opens_section(chunks, index, markdown):
            groups.append((None if chunk.kind == "rule" else chunk, []))
        elif not groups or (groups[-1][1] and _is_run_in_question(chunk)):
            groups.append((None, [chunk]))
        else:
            groups[-1][1].append(chunk)
    sections = (_section(heading, body) for heading, body in groups)
    return tuple(section for section in sections if section is not None)


def _section(heading: _Chunk | None, body: Sequence[_Chunk]) -> Section | None:
    """A closing section, or None when it holds nothing (a trailing `---`)."""
    blocks = _blocks(body)
    if heading is not None:
        return Section(heading.text, blocks, heading.line)
    return Section(None, blocks, blocks[0].line) if blocks else None


def _blocks(chunks: Iterable[_Chunk]) -> tuple[Block, ...]:
    """The content blocks of these chunks; rules are markup and carry no text."""
    return tuple(block for chunk in chunks if (block := _block(chunk)) is not None)


def _block(chunk: _Chunk) -> Block | None:
    """The block a chunk becomes; a heading inside a body keeps its text as a paragraph."""
    if chunk.kind == "rule":
        return None
    if chunk.kind == "bullets":
        return BulletList(chunk.items, chunk.line)
    if chunk.kind == "quote" or (chunk.kind == "text" and _is_wrapped_quote(chunk.text)):
        return Quote(chunk.text, chunk.line)
    return Paragraph(chunk.text, chunk.line)


def _error(source: str, line: int, message: str) -> ArticleError:
    """An ArticleError naming the file and line."""
    return ArticleError(f"{source}: line {line}: {message}")
