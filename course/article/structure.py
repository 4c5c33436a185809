"""Chunks -> the course's parts: which numbered lists are the items, where each item ends,
and what is welcome, disclosure, lesson text or closing.

Which lists are the items (the rest stays as lists inside the text they stand in):

- Lists of headings win over lists of paragraphs; a list of paragraphs inside a heading
  item (sub-steps) belongs to that item, as does a more indented list in web copy.
- A list of one item, or one whose items (mostly) have no text of their own, is a list
  inside the text: a quiz in the intro, a summary in the closing.
- A list in the intro, before the heading that announces the real list ("7 signs"), is
  part of the intro when its items are questions or much shorter than the real ones.
- A list after a closing heading ("Conclusion", "Final thoughts") is part of the closing.

Without numbered items, headings one level under a heading that announces a list ("Tips",
"5 reasons", "Why?") are the items; in plain text, heading lines are, when their number
is exactly the one the title or a heading announces.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from course.article.checks import median_of
from course.article.chunks import Chunk, ChunkKind, Notes
from course.article.items import Candidate, Family, candidates
from course.article.runs import ItemRun, build_runs, renumber_all_ones
from course.article.shapes import (
    announces,
    count_of,
    is_artefact,
    is_closing_heading,
    is_wrapped_quote,
    item_marker,
    kind_of,
    kind_of_noun,
    quote,
    reads_as_heading,
)
from course.content import (
    Block,
    Heading,
    Inline,
    Kind,
    ListBlock,
    Paragraph,
    Quote,
    Section,
    block_texts,
    plain,
)
from course.errors import ArticleError

_RUN_IN_QUESTION_CHARS = 60
_INTRO_SHORTER = 4  # an intro list's items are this many times shorter than the real ones

Position = tuple[int, int]  # (chunk, entry); entry -1 is the whole chunk


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


def structure(
    chunks: Sequence[Chunk], title: str, markdown: bool, notes: Notes, source: str
) -> Structure:
    finder = _Finder(chunks, title, markdown, notes, source)
    return finder.structure()


class _Finder:
    def __init__(
        self, chunks: Sequence[Chunk], title: str, markdown: bool, notes: Notes, source: str
    ) -> None:
        self.chunks = chunks
        self.title = title
        self.markdown = markdown
        # Markdown headings are explicit; Markdown without any (web copy with some **bold**)
        # has its headings as plain lines, like plain text.
        self.explicit = markdown and any(chunk.is_heading for chunk in chunks)
        self.notes = notes
        self.source = source
        self.nouns = self._heading_nouns()
        found = renumber_all_ones(candidates(chunks, self.nouns), notes)
        self.runs = build_runs(found, source)
        self.kept: list[ItemRun] = []
        self.in_kept: set[Position] = set()
        self.content_runs: dict[Position, ItemRun] = {}

    # Which lists are the items

    def structure(self) -> Structure:
        kept = self._select(self.runs) or self._heading_items() or self._plain_heading_items()
        if not kept:
            raise self._no_items()
        self.kept = kept
        self.in_kept = {c.position for run in kept for c in run.items}
        for run in self.runs:
            if run not in kept:
                for candidate in run.items:
                    self.content_runs[candidate.position] = run
        for run in kept:
            self._check_start(run)
        return self._assemble(kept)

    def _heading_nouns(self) -> tuple[str, ...]:
        nouns = []
        for chunk in self.chunks:
            if chunk.kind in (ChunkKind.HEADING, ChunkKind.PARAGRAPH) and len(chunk.lines) == 1:
                counted = count_of(chunk.text)
                if counted:
                    nouns.append(counted[1].lower().removesuffix("s"))
        counted = count_of(self.title)
        if counted:
            nouns.append(counted[1].lower().removesuffix("s"))
        return tuple(nouns)

    def _select(self, runs: Sequence[ItemRun]) -> list[ItemRun]:
        top = [run for run in runs if not run.nested]
        top = [run for run in top if not self._nested_in_other(run, top)]
        listed = [run for run in top if len(run.items) > 1 or self._announced_single(run)]
        if not listed:
            # An article of a single item.
            listed = [run for run in top if run.first.number == 1 and self._item_words(run, 0) > 0][
                :1
            ]
        bodied = [run for run in listed if self._bodied(run)]
        if not bodied and listed:
            # One-line items throughout: still the items (their lessons are near-empty,
            # which `course build` reports), unless there is nothing that announces them.
            bodied = [max(listed, key=lambda run: len(run.items))]
        kept = sorted(bodied, key=lambda run: run.first.position)
        kept = [run for run in kept if not self._after_closing_heading(run, kept)]
        if len(kept) > 1 and self._is_intro_list(kept[0], kept[1]):
            kept = kept[1:]
        return _without_overlaps(kept)

    def _nested_in_other(self, run: ItemRun, others: Sequence[ItemRun]) -> bool:
        for other in others:
            if other is run or not _outranks(other, run):
                continue
            if other.first.position < run.first.position < other.last.position:
                return True
            if run.first.position > other.last.position and not self._boundary_between(
                other, other.last.position, run.first.position
            ):
                return True
        return False

    def _boundary_between(self, outer: ItemRun, start: Position, end: Position) -> bool:
        """A heading between the two that ends the outer list's last item."""
        for index in range(start[0] + 1, end[0]):
            chunk = self.chunks[index]
            if chunk.is_heading and (
                not outer.first.is_heading or chunk.level <= outer.family.heading_level
            ):
                return True
            if not self.explicit and self._plain_heading(chunk) and announces(chunk.text):
                return True
        return False

    def _announced_single(self, run: ItemRun) -> bool:
        heading = self._part_heading(run, 0)
        return (
            heading is not None
            and announces(self.chunks[heading].text)
            and self._item_words(run, 0) > 0
        )

    def _bodied(self, run: ItemRun) -> bool:
        with_body = sum(1 for index in range(len(run.items)) if self._item_words(run, index) > 0)
        return with_body * 2 >= len(run.items)

    def _item_words(self, run: ItemRun, index: int) -> int:
        """Words of an item's own text: what follows its title, up to the next candidate."""
        candidate = run.items[index]
        words = sum(len(text.split()) for b in candidate.rest for text in block_texts(b))
        if candidate.entry >= 0:
            chunk = self.chunks[candidate.chunk]
            if candidate.entry < len(chunk.entries) - 1:
                return words
        following = self._following_candidate(candidate.position)
        stop = following[0] if following else len(self.chunks)
        for chunk in self.chunks[candidate.chunk + 1 : stop]:
            if chunk.is_heading and (
                not candidate.is_heading or chunk.level <= candidate.family.heading_level
            ):
                break
            words += len(chunk.text.split()) + sum(
                len(t.split()) for b in chunk.blocks for t in block_texts(b)
            )
        return words

    def _following_candidate(self, position: Position) -> Position | None:
        later = [c.position for run in self.runs for c in run.items if c.position > position]
        return min(later) if later else None

    def _after_closing_heading(self, run: ItemRun, kept: Sequence[ItemRun]) -> bool:
        previous = [other for other in kept if other.last.position < run.first.position]
        start = max((other.last.chunk for other in previous), default=-1)
        return any(
            self._heading_like(chunk) and is_closing_heading(chunk.text)
            for chunk in self.chunks[start + 1 : run.first.chunk]
        )

    def _is_intro_list(self, intro: ItemRun, main: ItemRun) -> bool:
        """A list before the heading that announces the main list, shorter or all questions."""
        if self._announcing_heading(intro) is not None:
            return False
        if self._announcing_heading(main) is None:
            return False
        questions = sum(1 for c in intro.items if c.title.endswith("?")) * 2 > len(intro.items)
        intro_words = median_of(self._item_words(intro, i) for i in range(len(intro.items)))
        main_words = median_of(self._item_words(main, i) for i in range(len(main.items)))
        return questions or intro_words * _INTRO_SHORTER < main_words

    def _announcing_heading(self, run: ItemRun) -> int | None:
        heading = self._part_heading(run, 0)
        if heading is not None and announces(self.chunks[heading].text):
            return heading
        return None

    def _heading_items(self) -> list[ItemRun]:
        """Markdown: headings one level under a heading that announces a list."""
        if not self.explicit:
            return []
        sets: list[tuple[int, list[int]]] = []
        for index, chunk in enumerate(self.chunks):
            if chunk.is_heading and announces(chunk.text):
                children = self._child_headings(index, chunk.level)
                if len(children) >= 2:
                    sets.append((index, children))
        if not sets and announces(self.title):
            children = self._child_headings(-1, 0)
            if len(children) >= 2:
                sets.append((-1, children))
        # Prefer the innermost: a set whose span holds another set's heading gives way.
        chosen = [
            (parent, children)
            for parent, children in sets
            if not any(children[0] <= other <= children[-1] for other, _ in sets if other != parent)
        ]
        runs = []
        for _, children in chosen:
            family = Family(self.chunks[children[0]].level, "", "", False, False)
            items = [
                Candidate(
                    index,
                    -1,
                    number,
                    family,
                    self.chunks[index].text,
                    (),
                    self.chunks[index].line,
                    0,
                    False,
                    self.chunks[index].text,
                    self.chunks[index].runs,
                )
                for number, index in enumerate(children, start=1)
            ]
            runs.append(ItemRun(family, items))
        return runs

    def _child_headings(self, parent: int, level: int) -> list[int]:
        span: list[int] = []
        for index in range(parent + 1, len(self.chunks)):
            chunk = self.chunks[index]
            if chunk.is_heading and chunk.level <= level:
                break
            if chunk.is_heading:
                span.append(index)
        if not span:
            return []
        child_level = min(self.chunks[i].level for i in span)
        children = [i for i in span if self.chunks[i].level == child_level]
        while children and _opening_or_closing(self.chunks[children[0]].text, first=True):
            children.pop(0)
        while children and _opening_or_closing(self.chunks[children[-1]].text, first=False):
            children.pop()
        return children

    def _plain_heading_items(self) -> list[ItemRun]:
        """Plain text: as many heading lines as the title or a heading announces."""
        if self.explicit:
            return []
        announcers = [(-1, self.title)] + [
            (i, c.text) for i, c in enumerate(self.chunks) if self._plain_heading(c)
        ]
        for parent, text in announcers:
            counted = count_of(text)
            if counted is None:
                continue
            lines = [
                i
                for i in range(parent + 1, len(self.chunks))
                if self._plain_heading(self.chunks[i])
                and i + 1 < len(self.chunks)
                and not self._plain_heading(self.chunks[i + 1])
            ]
            while lines and is_closing_heading(self.chunks[lines[-1]].text):
                lines.pop()
            if len(lines) == counted[0]:
                family = Family(0, "", "", False, False)
                items = [
                    Candidate(
                        i,
                        -1,
                        number,
                        family,
                        self.chunks[i].text,
                        (),
                        self.chunks[i].line,
                        0,
                        False,
                        self.chunks[i].text,
                        self.chunks[i].runs,
                    )
                    for number, i in enumerate(lines, start=1)
                ]
                return [ItemRun(family, items)]
        return []

    def _no_items(self) -> ArticleError:
        return ArticleError(
            f"{self.source}: no numbered items found; number the items in the article as "
            "`1) Title`, `1. Title`, `## 1. Title`, `#1 – Title` or `Step 1: Title`, or put "
            "them as headings under a heading that announces them (`## 5 tips`)"
        )

    def _check_start(self, run: ItemRun) -> None:
        first = run.first
        if run.descending:
            if run.last.number != 1:
                # "And the #1 reason is…" often closes a countdown in a sentence of its own.
                self.notes.add(
                    run.last.line,
                    f"this countdown ends at item {run.last.number}: "
                    f"{quote(run.last.source, 60)}; the text after it is that item's lesson "
                    "(give the last item its own numbered line to make it a lesson of its own)",
                )
        elif first.number != 1:
            raise ArticleError(
                f"{self.source}: line {first.line}: the list starts at item {first.number}: "
                f"{quote(first.source)}; number it from 1, or check that item 1 has its number "
                "and a blank line before it"
            )

    # Where each part starts and ends

    def _part_heading(self, run: ItemRun, floor: int) -> int | None:
        """The heading that announces a list, above its first item and below `floor`.

        Markdown: the nearest heading above the first item (shallower than heading items),
        unless it is a plain section heading ("Introduction") with text under it. Plain text:
        the last heading stating a count, else a heading line right above the first item.
        """
        first = run.first.chunk
        if self.explicit:
            for index in range(first - 1, floor - 1, -1):
                chunk = self.chunks[index]
                if not chunk.is_heading:
                    continue
                if run.first.is_heading:
                    # Heading items sit under a shallower heading, or under one of their own
                    # level that announces them ("## 4 reasons" above "## 1. …").
                    level = run.family.heading_level
                    if chunk.level > level or (chunk.level == level and not announces(chunk.text)):
                        continue
                    return index
                if announces(chunk.text) or not self._text_between(index, first):
                    return index
                return None
            return None
        counted = [
            i
            for i in range(floor, first)
            if self._plain_heading(self.chunks[i]) and count_of(self.chunks[i].text)
        ]
        if counted:
            return counted[-1]
        if first - 1 >= floor and self._plain_heading(self.chunks[first - 1]):
            return first - 1
        return None

    def _text_between(self, start: int, end: int) -> bool:
        return any(c.kind is ChunkKind.PARAGRAPH for c in self.chunks[start + 1 : end])

    def _heading_like(self, chunk: Chunk) -> bool:
        if self.explicit:
            return chunk.is_heading
        return self._plain_heading(chunk)

    @staticmethod
    def _plain_heading(chunk: Chunk) -> bool:
        """A one-line paragraph that reads as a heading (and is not a numbered line)."""
        return (
            chunk.kind is ChunkKind.PARAGRAPH
            and len(chunk.lines) == 1
            and reads_as_heading(chunk.text)
            and item_marker(chunk.text) is None
        )

    def _assemble(self, kept: list[ItemRun]) -> Structure:
        plans: list[PartPlan] = []
        floor = 0
        headings: list[int | None] = []
        for run in kept:
            heading = self._part_heading(run, floor)
            headings.append(heading)
            floor = run.last.chunk + 1
        for number, (run, heading) in enumerate(zip(kept, headings, strict=True)):
            plans.append(
                PartPlan(heading, tuple(run.items), self._kind(run, heading, number, len(kept)))
            )
        bodies: list[tuple[Block, ...]] = []
        for number, plan in enumerate(plans):
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
        first = plans[0]
        welcome_end = first.heading if first.heading is not None else first.items[0].chunk
        welcome = self._blocks_between((-1, -1), (welcome_end, -1))
        if first.heading is not None:
            welcome += self._blocks_between((first.heading, -1), first.items[0].position)
        closing_at = self._closing_start(plans[-1])
        return Structure(
            tuple(plans),
            tuple(bodies),
            tuple(welcome),
            self._closing(closing_at),
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
        if parts == 1:
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
            if self._plain_heading(c)
        }
        body_seen = bool(last.rest) or (
            last.entry >= 0 and bool(self.chunks[last.chunk].entries[last.entry].blocks)
        )
        for index in range(last.chunk + 1, len(self.chunks)):
            chunk = self.chunks[index]
            followed = index + 1 < len(self.chunks)
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
            elif self._plain_heading(chunk) and not self.explicit:
                if followed and (
                    is_closing_heading(chunk.text) or (body_seen and chunk.text not in inner_texts)
                ):
                    return index
            elif self.markdown and _bold_line(chunk) and is_closing_heading(chunk.text):
                return index
            body_seen = True
        return len(self.chunks)

    def _closing(self, start: int) -> tuple[Section, ...]:
        groups: list[tuple[Chunk | None, list[Block]]] = []
        for index in range(start, len(self.chunks)):
            chunk = self.chunks[index]
            followed = index + 1 < len(self.chunks)
            opens = (
                chunk.is_heading
                or (chunk.kind is ChunkKind.RULE and followed)
                or (not self.explicit and self._plain_heading(chunk) and followed)
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
        elif chunk.kind is ChunkKind.HEADING:
            yield Heading(chunk.runs, chunk.line)
        elif chunk.kind is ChunkKind.PARAGRAPH:
            if len(chunk.lines) == 1 and is_artefact(chunk.text):
                self.notes.add(
                    chunk.line, f"{quote(chunk.text)} dropped: it reads as web-page navigation"
                )
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


def _joined_lines(lines: Sequence[Inline]) -> Inline:
    from course.content import Run

    runs: list[Run] = []
    for line in lines:
        if runs:
            runs.append(Run(" "))
        runs.extend(line)
    return tuple(runs)


def _outranks(outer: ItemRun, inner: ItemRun) -> bool:
    if outer.first.is_heading and not inner.first.is_heading:
        return True
    if outer.first.is_heading and inner.first.is_heading:
        return outer.family.heading_level < inner.family.heading_level
    return not inner.first.is_heading and inner.first.indent > outer.first.indent


def _without_overlaps(runs: list[ItemRun]) -> list[ItemRun]:
    kept: list[ItemRun] = []
    for run in runs:
        if kept and run.first.position < kept[-1].last.position:
            continue
        kept.append(run)
    return kept


def _opening_or_closing(text: str, *, first: bool) -> bool:
    from course.article.shapes import OPENING_WORDS

    if first:
        return OPENING_WORDS.match(text.strip()) is not None
    return is_closing_heading(text)


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


def plain_runs(runs: Inline) -> str:
    return plain(runs)
