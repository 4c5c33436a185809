"""Where each part of the article goes: each item's lesson text (up to the next item, the
next part's heading, or the closing), the welcome before the items, the closing after.
Lists that are not the items are rendered where they stand, as numbered lists."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.furniture import DROPPED, footer_line, is_furniture
from course.article.items import Candidate
from course.article.runs import ItemRun
from course.article.shapes import (
    is_closing_heading,
    is_sign_off,
    is_wrapped_quote,
    kind_of,
    kind_of_noun,
    quote,
)
from course.article.view import ArticleView, Position
from course.content import (
    Block,
    Heading,
    Inline,
    Kind,
    ListBlock,
    Paragraph,
    Quote,
    Run,
    Section,
)

_RUN_IN_QUESTION_CHARS = 60
_CONTENTS = re.compile(r"(?:table of )?contents\b|in this (?:post|article)", re.IGNORECASE)


@dataclass(frozen=True)
class PartPlan:
    heading: int | None  # chunk index of the heading that announces the part
    items: tuple[Candidate, ...]
    kind: Kind


@dataclass(frozen=True)
class Structure:
    """Where everything goes: each part's items with their bodies, welcome and closing."""

    parts: tuple[PartPlan, ...]
    bodies: tuple[tuple[Block, ...], ...]  # one per item, parts in order
    welcome: tuple[Block, ...]
    closing: tuple[Section, ...]
    headings: tuple[str, ...]  # each part's heading text ("" when it has none)


class Sections(ArticleView):
    """Lays the chunks out around the chosen item lists."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        title: str,
        markdown: bool,
        notes: Notes,
        source: str,
        runs: Sequence[ItemRun],
        kept: Sequence[ItemRun],
        groups: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__(chunks, title, markdown, notes, source, runs, groups)
        self.kept = list(kept)
        self.content_runs: dict[Position, ItemRun] = {
            candidate.position: run
            for run in self.runs
            if run not in self.kept
            for candidate in run.items
        }
        self.contents = self._table_of_contents()
        self.end = self._footer_start()

    def structure(self) -> Structure:
        return self._assemble(self.kept)

    def _table_of_contents(self) -> set[int]:
        """Chunks of a table of contents: a list repeating the items' titles before them
        (web copy's "Contents: 1. … 2. …"), and its heading. They go, with a note."""
        titles = {c.title.casefold() for run in self.kept for c in run.items}
        first = min(run.first.position for run in self.kept)
        dropped: set[int] = set()
        for run in self.runs:
            if run in self.kept or len(run.items) < 2 or run.last.position > first:
                continue
            if not all(c.title.casefold() in titles and not c.rest for c in run.items):
                continue
            chunks = {c.chunk for c in run.items}
            above = run.first.chunk - 1
            start = run.first.line
            if above >= 0 and _CONTENTS.match(self.chunks[above].text):
                chunks.add(above)
                start = self.chunks[above].line
            dropped |= chunks
            self.notes.add(
                start,
                f"a table of contents dropped (lines {start}-{run.last.line}): it "
                "repeats the items' titles",
            )
        return dropped

    def _footer_start(self) -> int:
        """Where the web page's footer starts ("Share this:", "Related", "Written by"):
        the article ends there. It and everything after it go, with a note."""
        last = max(run.last.chunk for run in self.kept)
        for index in range(last + 1, len(self.chunks)):
            if footer_line(self.chunks[index]):
                final = self.chunks[-1]
                self.notes.add(
                    None,
                    f"lines {self.chunks[index].line}-{_last_line(final)} dropped: from "
                    f"{quote(self.chunks[index].text, 40)} on it reads as the web page's "
                    "footer, not the article",
                )
                return index
        return len(self.chunks)

    def _assemble(self, kept: list[ItemRun]) -> Structure:
        plans: list[PartPlan] = []
        floor = 0
        headings: list[int | None] = []
        for run in kept:
            heading = self.part_heading(run, floor)
            headings.append(heading)
            floor = run.last.chunk + 1
        for number, (run, heading) in enumerate(zip(kept, headings, strict=True)):
            plans.append(
                PartPlan(heading, tuple(run.items), self._kind(run, heading, number, len(kept)))
            )
        bodies: list[tuple[Block, ...]] = []
        for number, plan in enumerate(plans):
            part_start = len(bodies)
            for index, candidate in enumerate(plan.items):
                if index + 1 < len(plan.items):
                    end: Position = plan.items[index + 1].position
                elif number + 1 < len(plans):
                    following = plans[number + 1]
                    start = following.heading if following.heading is not None else None
                    end = (start, -1) if start is not None else following.items[0].position
                else:
                    end = (self._closing_start(plan), -1)
                body = list(candidate.rest) + self._blocks_between(candidate.position, end)
                if index == 0 and number > 0 and plan.heading is not None:
                    # The text between a part's heading and its first item opens that item.
                    body = self._blocks_between((plan.heading, -1), candidate.position) + body
                bodies.append(tuple(body))
            _carry_trailing_headings(bodies, part_start)
        first = plans[0]
        welcome_end = first.heading if first.heading is not None else first.items[0].chunk
        welcome = self._blocks_between((-1, -1), (welcome_end, -1))
        if first.heading is not None:
            welcome += self._blocks_between((first.heading, -1), first.items[0].position)
        closing_at = self._closing_start(plans[-1])
        last, sign_off = _sign_off(bodies[-1])
        bodies[-1] = last
        return Structure(
            tuple(plans),
            tuple(bodies),
            tuple(welcome),
            sign_off + self._closing(closing_at),
            tuple("" if p.heading is None else self.chunks[p.heading].text for p in plans),
        )

    def _kind(self, run: ItemRun, heading: int | None, number: int, parts: int) -> Kind:
        if heading is not None:
            kind = kind_of(self.chunks[heading].text)
            if kind is not None:
                return kind
        nouns = [c.family.noun for c in run.items if c.family.noun]
        if nouns:
            kind = kind_of_noun(nouns[0])
            if kind is not None:
                return kind
        if parts == 1 or (heading is not None and self.is_group(self.chunks[heading])):
            return kind_of(self.title) or Kind.LESSON
        if parts == 2:
            if number == 0:
                return kind_of(self.title) or Kind.REASON
            return Kind.ACTION
        return Kind.LESSON

    def _closing_start(self, plan: PartPlan) -> int:
        """The chunk where the closing starts: after the last item, at the heading that is
        no longer part of it."""
        last = plan.items[-1]
        announcing = None if plan.heading is None else self.chunks[plan.heading]
        inner_levels = [
            c.level for c in self.chunks[plan.items[0].chunk + 1 : last.chunk] if c.is_heading
        ]
        inner_texts = {
            c.text
            for c in self.chunks[plan.items[0].chunk + 1 : last.chunk]
            if self.plain_heading(c)
        }
        body_seen = bool(last.rest) or (
            last.entry >= 0 and bool(self.chunks[last.chunk].entries[last.entry].blocks)
        )
        for index in range(last.chunk + 1, self.end):
            chunk = self.chunks[index]
            followed = index + 1 < self.end
            if chunk.is_heading:
                if is_closing_heading(chunk.text):
                    return index
                if last.is_heading:
                    if chunk.level <= last.family.heading_level:
                        return index
                elif announcing is not None and announcing.is_heading:
                    if chunk.level <= announcing.level:
                        return index
                elif inner_levels:
                    if chunk.level < min(inner_levels):
                        return index
                elif body_seen:
                    return index
            elif chunk.kind is ChunkKind.RULE:
                if body_seen and followed:
                    return index
            elif self.plain_heading(chunk) and not self.explicit:
                if followed and (
                    is_closing_heading(chunk.text) or (body_seen and chunk.text not in inner_texts)
                ):
                    return index
            elif self.markdown and _bold_line(chunk) and is_closing_heading(chunk.text):
                return index
            body_seen = True
        return self.end

    def _closing(self, start: int) -> tuple[Section, ...]:
        groups: list[tuple[Chunk | None, list[Block]]] = []
        for index in range(start, self.end):
            chunk = self.chunks[index]
            followed = index + 1 < self.end
            opens = (
                chunk.is_heading
                or (chunk.kind is ChunkKind.RULE and followed)
                or (not self.explicit and self.plain_heading(chunk) and followed)
                or (self.markdown and _bold_line(chunk) and index == start)
            )
            if opens:
                groups.append((None if chunk.kind is ChunkKind.RULE else chunk, []))
                continue
            blocks = list(self._unit_blocks([(index, -1)]))
            if not groups or (groups[-1][1] and _is_run_in_question(chunk)):
                groups.append((None, blocks))
            else:
                groups[-1][1].extend(blocks)
        sections = []
        for heading, blocks in groups:
            if heading is not None:
                sections.append(Section(heading.text, tuple(blocks), heading.line))
            elif blocks:
                sections.append(Section(None, tuple(blocks), blocks[0].line))
        return tuple(sections)

    # Content

    def _units(self, start: Position, end: Position) -> list[Position]:
        """Every chunk (and list entry) strictly between two positions."""
        units: list[Position] = []
        first_chunk = max(start[0], 0)
        for index in range(first_chunk, min(end[0] + 1, len(self.chunks))):
            chunk = self.chunks[index]
            if chunk.kind is ChunkKind.LIST:
                for entry in range(len(chunk.entries)):
                    if start < (index, entry) < end:
                        units.append((index, entry))
            elif start < (index, -1) < end:
                units.append((index, -1))
        return units

    def _blocks_between(self, start: Position, end: Position) -> list[Block]:
        return list(self._unit_blocks(self._units(start, end)))

    def _unit_blocks(self, units: Sequence[Position]) -> Iterator[Block]:
        pending: list[tuple[int, Inline, int, tuple[Block, ...]]] = []  # number, runs, line, after
        pending_key: object = None
        for position in units:
            index = position[0]
            chunk = self.chunks[index]
            if index in self.contents:
                continue
            listed = self._as_list_item(position)
            if listed is not None:
                key, number, runs, line, after = listed
                if pending and (key != pending_key or number != pending[-1][0] + 1):
                    yield from _list_blocks(pending)
                    pending = []
                pending_key = key
                pending.append((number, runs, line, after))
                continue
            if pending:
                yield from _list_blocks(pending)
                pending = []
            yield from self._chunk_blocks(chunk)
        if pending:
            yield from _list_blocks(pending)

    def _as_list_item(
        self, position: Position
    ) -> tuple[object, int, Inline, int, tuple[Block, ...]] | None:
        """A list entry, or a numbered paragraph of a list that is not the items."""
        index, entry = position
        chunk = self.chunks[index]
        if entry >= 0:
            item = chunk.entries[entry]
            runs = _joined_lines(item.lines)
            return (("list", index), item.number, runs, item.line, item.blocks)
        run = self.content_runs.get(position)
        if run is None or len(run.items) < 2 or chunk.is_heading:
            return None
        candidate = next(c for c in run.items if c.position == position)
        return (id(run), candidate.number, candidate.after_marker, candidate.line, ())

    def _chunk_blocks(self, chunk: Chunk) -> Iterator[Block]:
        if chunk.kind is ChunkKind.BLOCK:
            yield from chunk.blocks
        elif chunk.is_heading or (chunk.kind is ChunkKind.PARAGRAPH and self.is_group(chunk)):
            yield Heading(chunk.runs, chunk.line)
        elif chunk.kind is ChunkKind.PARAGRAPH:
            if len(chunk.lines) == 1 and is_furniture(chunk.text):
                self.notes.add(chunk.line, f"{quote(chunk.text)} {DROPPED}")
            elif is_wrapped_quote(chunk.text):
                yield Quote(chunk.runs, chunk.line)
            else:
                yield Paragraph(chunk.runs, chunk.line)


def _list_blocks(pending: list[tuple[int, Inline, int, tuple[Block, ...]]]) -> Iterator[Block]:
    """Consecutive numbered entries as one numbered list; an entry's own blocks follow it."""
    group: list[tuple[int, Inline, int]] = []
    for number, runs, line, after in pending:
        group.append((number, runs, line))
        if after:
            yield _ordered(group)
            group = []
            yield from after
    if group:
        yield _ordered(group)


def _ordered(group: list[tuple[int, Inline, int]]) -> ListBlock:
    return ListBlock(tuple(runs for _, runs, _ in group), group[0][2], True, group[0][0])


def _carry_trailing_headings(bodies: list[tuple[Block, ...]], start: int) -> None:
    """A heading at the very end of an item's text heads the items that follow ("In the
    living room" between items 3 and 4, "Part 2" of a list numbered on): it opens the
    next lesson instead of closing this one with nothing under it."""
    for index in range(len(bodies) - 1, start, -1):
        previous = bodies[index - 1]
        cut = len(previous)
        while cut > 1 and isinstance(previous[cut - 1], Heading):
            cut -= 1
        if cut < len(previous):
            bodies[index - 1] = previous[:cut]
            bodies[index] = previous[cut:] + bodies[index]


def _sign_off(body: tuple[Block, ...]) -> tuple[tuple[Block, ...], tuple[Section, ...]]:
    """(the last lesson, the sign-off that closes the article): trailing paragraphs from
    the first that signs off ("That's it!", "Which will you try first?"), with the
    sub-heading right above them; the lesson keeps at least its first block."""
    start = len(body)
    for index in range(len(body) - 1, 0, -1):
        block = body[index]
        if not isinstance(block, Paragraph | Quote):
            break
        if isinstance(block, Paragraph) and is_sign_off(block.text):
            start = index
    if start == len(body):
        return body, ()
    blocks = body[start:]
    heading = body[start - 1]
    if start > 1 and isinstance(heading, Heading):
        return body[: start - 1], (Section(heading.text, blocks, heading.line),)
    return body[:start], (Section(None, blocks, blocks[0].line),)


def _last_line(chunk: Chunk) -> int:
    return chunk.line + max(len(chunk.lines) - 1, 0)


def _joined_lines(lines: Sequence[Inline]) -> Inline:
    runs: list[Run] = []
    for line in lines:
        if runs:
            runs.append(Run(" "))
        runs.extend(line)
    return tuple(runs)


def _bold_line(chunk: Chunk) -> bool:
    return (
        chunk.kind is ChunkKind.PARAGRAPH
        and len(chunk.lines) == 1
        and all(run.strong for run in chunk.lines[0])
    )


def _is_run_in_question(chunk: Chunk) -> bool:
    """A paragraph that opens with a short question and carries on after it."""
    if chunk.kind is not ChunkKind.PARAGRAPH:
        return False
    text = chunk.text
    if is_wrapped_quote(text):
        return False
    mark = text.find("?")
    return 0 < mark < _RUN_IN_QUESTION_CHARS and text[mark + 1 : mark + 2] == " "
